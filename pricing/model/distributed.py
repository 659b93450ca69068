"""One training function, two distributed backends: TorchDistributor (DDP) and Horovod on Spark.

``train_worker`` runs in every process. It reads its shard of the training Parquet files in batches,
optionally fits the cross-fitted nuisances E[log(p/p_ref) | x] and log E[units | x] (double machine
learning), then trains an ensemble of :class:`DemandNet` members on bootstrap weights with the Poisson
loss. Gradients are averaged across processes by the backend's allreduce (DDP's, or Horovod's
DistributedOptimizer); both keep every process's weights identical, which the result reports as
per-rank checksums.
"""

from __future__ import annotations

import io
import logging
import math
import os
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from pricing.model.network import (
    DemandNet,
    Ensemble,
    NetSpec,
    Nuisance,
    elasticity_slope,
    poisson_loss,
    sku_elasticity_penalty,
    sku_weekday_penalty,
)

log = logging.getLogger(__name__)

# The folder (``shard=<k>``) each training row is written to, from its (sku, date) key.
SHARD_COLUMN = "shard"
BATCH_COLUMNS = [
    "sku_idx",
    "category_idx",
    "brand_idx",
    "numeric",
    "text",
    "log_price_ratio",
    "units",
    "weight",
    "fold",
]


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a training process needs; plain data so it pickles to any executor."""

    train_dir: str
    net: dict[str, Any]
    epochs: int
    nuisance_epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    ensemble_size: int
    debias: bool
    seed: int
    backend: str
    use_gpu: bool
    sku_elasticity_sd: float = 0.35
    sku_weekday_sd: float = 0.3  # prior sd of a SKU's own weekday effects (when the net has them)
    # Prior sd of a category's elasticity for the Laplace interval: how wrong the head may be where
    # no price in the category ever moved.
    category_elasticity_sd: float = 3.0
    elasticity_interval: str = "ensemble"  # "laplace": also store each SKU's posterior sd of u
    # Estimate the prior sd of the SKU deviations from the shop's price variation while training
    # (empirical Bayes, fit_sku_prior_sd), starting from sku_elasticity_sd.
    fit_sku_elasticity_sd: bool = False
    lr_decay: str = "linear"  # "linear": the learning rate falls to 0 over the epochs; "none": constant
    # At most this many steps an epoch: a larger panel trains on larger batches (never smaller than
    # ``batch_size``, all processes together) at a learning rate scaled by the square root of the
    # batch's growth (see _plan).
    max_steps_per_epoch: int | None = None
    # Rows of a (text_dim, k) matrix: each row's text vector is projected onto it once, after reading
    # (train.text_components); None: the whole vector.
    text_basis: list[list[float]] | None = None
    # Leave the rows the shards mark as the system's own price tests (``own_test``) out of the fit
    # (pricing.model.train.mark_own_tests).
    own_tests_out: bool = False
    tracking_uri: str | None = None
    run_id: str | None = None


def read_shard(
    train_dir: str,
    rank: int,
    world: int,
    extra_columns: tuple[str, ...] = (),
    texts_dir: str | None = None,
) -> dict[str, torch.Tensor]:
    """This process's share of a run's training rows: the shards ``k`` with ``k % world == rank``, each
    in (sku, date) order, however many files Spark wrote for them (:data:`SHARD_COLUMN` folders); rows
    written without shard folders, every world-th file. Where there are fewer shards (or files) than
    processes, every world-th row of them all.

    ``extra_columns``: numeric columns to read as well, as float tensors under their own names.
    Shards that name each row's title by ``text_hash`` (``model_inputs(..., text="hash")``) take its
    vector from ``texts_dir`` (:func:`~pricing.model.dataset.text_vectors`); a hash it lacks reads as
    zeros. Shards written with the vector in every row are read as they are.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    dataset = ds.dataset(train_dir, format="parquet", partitioning="hive")
    fragments = sorted(dataset.get_fragments(), key=lambda f: f.path)
    # Training data written before stock-outs were read as censored has no ``censored`` column.
    schema_names = set(fragments[0].physical_schema.names) if fragments else set()
    censored = ("censored",) if "censored" in schema_names and "censored" not in extra_columns else ()
    by_hash = "text" not in schema_names and "text_hash" in schema_names
    if by_hash and texts_dir is None:
        raise ValueError(f"the shards under {train_dir} name their texts by hash: pass texts_dir")
    text = "text_hash" if by_hash else "text"
    wanted = [*(text if c == "text" else c for c in BATCH_COLUMNS), *censored, *extra_columns]
    shards: dict[int, list[Any]] = {}
    for fragment in fragments:
        key = ds.get_partition_keys(fragment.partition_expression).get(SHARD_COLUMN)
        if key is not None:
            shards.setdefault(int(key), []).append(fragment)
    # Each shard a group of fragments read as one; without shard folders, each file its own group.
    groups = [shards[k] for k in sorted(shards)] if shards else [[f] for f in fragments]
    # A process without a group would take no rows, and the group no steps (_fit's check): so then
    # every process reads every group and keeps its share of rows.
    by_rows = len(groups) < world
    columns: dict[str, list[np.ndarray]] = {c: [] for c in wanted}
    for group in groups if by_rows else groups[rank::world]:
        if shards:
            table = pa.concat_tables(f.to_table(columns=[*wanted, "sku", "date"]) for f in group)
            table = table.sort_by([("sku", "ascending"), ("date", "ascending")])
            record_batches = table.select(wanted).to_batches(max_chunksize=65_536)
        else:
            record_batches = group[0].to_batches(columns=wanted, batch_size=65_536)
        for record_batch in record_batches:
            for name in wanted:
                array = record_batch.column(name)
                if name in ("numeric", "text"):
                    columns[name].append(_rows(array))
                else:
                    columns[name].append(array.to_numpy(zero_copy_only=False))
    if not columns["units"]:
        return {}
    merged = {name: np.concatenate(parts) for name, parts in columns.items()}
    if by_rows:
        merged = {name: values[rank::world] for name, values in merged.items()}
    if by_hash:
        assert texts_dir is not None
        merged["text"] = _texts_by_hash(texts_dir, merged.pop("text_hash"))
    return {
        "sku": torch.from_numpy(merged["sku_idx"].astype(np.int64)),
        "category": torch.from_numpy(merged["category_idx"].astype(np.int64)),
        "brand": torch.from_numpy(merged["brand_idx"].astype(np.int64)),
        "numeric": torch.from_numpy(merged["numeric"].astype(np.float32)),
        "text": torch.from_numpy(merged["text"].astype(np.float32)),
        "log_price_ratio": torch.from_numpy(merged["log_price_ratio"].astype(np.float32)),
        "units": torch.from_numpy(merged["units"].astype(np.float32)),
        "weight": torch.from_numpy(merged["weight"].astype(np.float32)),
        "fold": torch.from_numpy(merged["fold"].astype(np.int64)),
        **{name: torch.from_numpy(merged[name].astype(np.float32)) for name in (*censored, *extra_columns)},
    }


def _rows(array: Any) -> np.ndarray:
    """A pyarrow list array of equal-length rows as a (rows, width) matrix."""
    width = len(array[0]) if len(array) else 0
    return np.asarray(array.flatten().to_numpy()).reshape(len(array), width)


def _texts_by_hash(texts_dir: str, hashes: np.ndarray) -> np.ndarray:
    """Each row's text vector, gathered from the table of distinct texts (zeros for a hash it lacks)."""
    import pandas as pd
    import pyarrow.dataset as ds

    table = ds.dataset(texts_dir, format="parquet").to_table(columns=["text_hash", "text"])
    vectors = _rows(table.column("text").combine_chunks())
    # One extra zero row at the end: get_indexer's -1 (an unknown or null hash) lands on it.
    matrix = np.zeros((len(vectors) + 1, vectors.shape[1]), dtype=np.float32)
    matrix[:-1] = vectors
    index = pd.Index(table.column("text_hash").to_numpy(zero_copy_only=False))
    return matrix[index.get_indexer(pd.Series(hashes, dtype=object))]


class _Comm:
    """The few collective operations training needs, over DDP or Horovod."""

    rank: int
    size: int

    def wrap(
        self, model: nn.Module, optimizer: torch.optim.Optimizer
    ) -> tuple[nn.Module, torch.optim.Optimizer]:
        raise NotImplementedError

    def allreduce(self, tensor: torch.Tensor, op: str) -> torch.Tensor:
        raise NotImplementedError

    def allgather(self, tensor: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class LocalComm(_Comm):
    """One process, no launcher: every collective over a group of one is the identity.

    For a notebook or a diagnostic that calls :func:`cross_fit_nuisances` and :func:`fit_ensemble`
    directly on a whole training set.
    """

    rank, size = 0, 1

    def wrap(
        self, model: nn.Module, optimizer: torch.optim.Optimizer
    ) -> tuple[nn.Module, torch.optim.Optimizer]:
        return model, optimizer

    def allreduce(self, tensor: torch.Tensor, op: str) -> torch.Tensor:
        return tensor.clone()

    def allgather(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.unsqueeze(0).clone()


class _TorchComm(_Comm):
    def __init__(self, use_gpu: bool) -> None:
        import torch.distributed as dist

        self.dist = dist
        # Each process decides from what it sees: an executor without a GPU trains on CPU with Gloo.
        self.device = _device(use_gpu)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.rank, self.size = dist.get_rank(), dist.get_world_size()
        # NCCL reduces only CUDA tensors: small bookkeeping tensors travel through the GPU and back.

    def wrap(
        self, model: nn.Module, optimizer: torch.optim.Optimizer
    ) -> tuple[nn.Module, torch.optim.Optimizer]:
        from torch.nn.parallel import DistributedDataParallel

        # DDP broadcasts rank 0's weights at construction and averages gradients in backward().
        return DistributedDataParallel(model), optimizer

    def allreduce(self, tensor: torch.Tensor, op: str) -> torch.Tensor:
        ops = {"min": self.dist.ReduceOp.MIN, "sum": self.dist.ReduceOp.SUM}
        result = tensor.to(self.device, copy=True)
        self.dist.all_reduce(result, op=ops[op])
        return result.cpu()

    def allgather(self, tensor: torch.Tensor) -> torch.Tensor:
        local = tensor.to(self.device)
        parts = [torch.zeros_like(local) for _ in range(self.size)]
        self.dist.all_gather(parts, local)
        return torch.stack(parts).cpu()


class _HorovodComm(_Comm):
    def __init__(self) -> None:
        import horovod.torch as hvd

        self.hvd = hvd
        hvd.init()
        self.rank, self.size = hvd.rank(), hvd.size()

    def wrap(
        self, model: nn.Module, optimizer: torch.optim.Optimizer
    ) -> tuple[nn.Module, torch.optim.Optimizer]:
        hvd = self.hvd
        hvd.broadcast_parameters(model.state_dict(), root_rank=0)
        # No hvd.broadcast_optimizer_state: the optimizer is new (no state on any rank), and on a new
        # optimizer it takes a real step on zero gradients to create the state, which under Adam's
        # weight decay moves every weight by about the learning rate before training starts.
        return model, hvd.DistributedOptimizer(optimizer, named_parameters=model.named_parameters())

    def allreduce(self, tensor: torch.Tensor, op: str) -> torch.Tensor:
        ops = {"min": self.hvd.Min, "sum": self.hvd.Sum}
        return self.hvd.allreduce(tensor, op=ops[op])

    def allgather(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.hvd.allgather(tensor.unsqueeze(0))


def _device(use_gpu: bool) -> torch.device:
    if use_gpu and torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", os.environ.get("HOROVOD_LOCAL_RANK", "0")))
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


class TrainingDiverged(RuntimeError):
    """A fit's loss stopped being finite: its weights are NaN and must never reach the registry."""


class NoTrainingRows(RuntimeError):
    """A fit whose group takes no steps (a process holds no rows): its weights are the untrained
    initial ones and must never reach the registry."""


@dataclass(frozen=True)
class StepPlan:
    """How one fit walks its data: the same on every process, or an allreduce would wait forever."""

    batch_size: int  # each process's share of the group's batch
    steps: int  # per epoch
    learning_rate: float
    group_batch_size: int  # every process's rows of one step together


def _plan(comm: _Comm, rows: int, spec: WorkerSpec) -> StepPlan:
    """Batch size per process, steps per epoch and learning rate for a process holding ``rows`` rows.

    The group's batch (every process's together, whose gradients are averaged into one step) is
    ``spec.batch_size``, split over the processes, so a fit takes as many steps, of the same size, on
    any number of processes. Up to ``spec.max_steps_per_epoch`` steps an epoch; a larger panel takes a
    larger group batch instead of more steps (a step's fixed cost, operator dispatch and one allreduce,
    is then spread over more rows), at a learning rate grown with the square root of the batch (the
    gradient's noise falls with it; Adam's steps are already normalised).

    Each process used to take ``batch_size`` rows itself: on N processes a small panel's fit took N
    times fewer steps, and fewer steps are not made up by a larger rate (docs/training.md, "Steps").
    """
    total = int(comm.allreduce(torch.tensor([rows]), "sum").item())
    world = max(comm.size, 1)
    group = spec.batch_size
    if spec.max_steps_per_epoch and total > spec.max_steps_per_epoch * group:
        group = math.ceil(total / spec.max_steps_per_epoch)
    batch = math.ceil(group / world)
    steps = int(comm.allreduce(torch.tensor([math.ceil(rows / batch)]), "min").item())
    return StepPlan(batch, steps, spec.learning_rate * math.sqrt(group / spec.batch_size), group)


def _fit(
    comm: _Comm,
    model: nn.Module,
    loss_fn: Any,
    data: dict[str, torch.Tensor],
    spec: WorkerSpec,
    epochs: int,
    metric: str,
    after_epoch: Any = None,
) -> tuple[list[float], float]:
    """Fit ``model`` for ``epochs``; return the per-epoch losses and the samples/s of all processes.

    ``after_epoch(epoch)``, if given, runs on every process after each epoch (it may use collectives).
    """
    rows = len(data["units"]) if data else 0
    plan = _plan(comm, rows, spec)
    steps = plan.steps
    if steps == 0:
        # The same on every process (the plan's steps are the group's minimum), so all stop together.
        raise NoTrainingRows(
            f"{metric}: a training process holds no rows (this one {rows}), so the group would take no "
            "steps: nothing was trained; nothing was registered"
        )
    # foreach: one multi-tensor update instead of a Python loop over every parameter, the same
    # arithmetic (about a tenth of a CPU step saved, docs/benchmarks.md "Training a large panel").
    optimizer: torch.optim.Optimizer = torch.optim.Adam(
        model.parameters(), lr=plan.learning_rate, weight_decay=spec.weight_decay, foreach=True
    )
    model, optimizer = comm.wrap(model, optimizer)
    if comm.rank == 0 and spec.run_id:
        import mlflow

        client = mlflow.MlflowClient(spec.tracking_uri)
        fit = metric.removesuffix("_loss")  # train_poisson, nuisance
        # The group's batch (all processes together) decides the fit; each process takes its share.
        client.log_param(spec.run_id, f"{fit}_batch_size", plan.group_batch_size)
        client.log_param(spec.run_id, f"{fit}_process_batch_size", plan.batch_size)
        client.log_param(spec.run_id, f"{fit}_learning_rate", f"{plan.learning_rate:.6g}")
    total_steps = max(1, epochs * steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 1.0 - step / total_steps if spec.lr_decay == "linear" else 1.0
    )
    generator = torch.Generator().manual_seed(spec.seed * 1000 + comm.rank)
    device = data["units"].device if data else torch.device("cpu")
    history = []
    started, seen = time.perf_counter(), 0
    for epoch in range(epochs):
        # The order is drawn on the CPU (the same on any device) and moved once per epoch.
        order = torch.randperm(rows, generator=generator).to(device)
        # Summed where the loss lives: reading it back every step would stall a GPU each step.
        loss_sum, count = torch.zeros((), device=device), 0
        for step in range(steps):
            index = order[step * plan.batch_size : (step + 1) * plan.batch_size]
            batch = {k: v[index] for k, v in data.items()}
            optimizer.zero_grad()
            loss = loss_fn(model, batch)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.detach() * len(index)
            count += len(index)
        seen += count
        totals = comm.allreduce(torch.stack([loss_sum.cpu(), torch.tensor(float(count))]), "sum")
        epoch_loss = float(totals[0] / totals[1].clamp_min(1))
        history.append(epoch_loss)
        if comm.rank == 0 and spec.run_id:
            import mlflow

            mlflow.MlflowClient(spec.tracking_uri).log_metric(spec.run_id, metric, epoch_loss, step=epoch)
        if not math.isfinite(epoch_loss):
            # Every rank sees the same reduced loss, so all stop together. A diverged fit would only
            # fail later, obscurely, when its NaN predictions reach the holdout (docs/training.md).
            raise TrainingDiverged(
                f"{metric} is {epoch_loss} in epoch {epoch + 1} of {epochs} (batch {plan.batch_size}, "
                f"learning rate {plan.learning_rate:.3g}): the fit diverged; nothing was registered"
            )
        if after_epoch is not None:
            after_epoch(epoch)
    # Throughput of the whole group: every row any process trained on, over the slowest process's time.
    elapsed = -float(comm.allreduce(torch.tensor([-(time.perf_counter() - started)]), "min").item())
    samples = float(comm.allreduce(torch.tensor([float(seen)]), "sum").item())
    return history, samples / elapsed if elapsed > 0 else 0.0


# How many rows' worth of weight the whole panel's over-dispersion carries in each SKU's estimate.
DISPERSION_PRIOR_ROWS = 30.0


def _unexplained_treatment(
    data: dict[str, torch.Tensor],
    size: int,
    n_numeric: int,
    weekday_columns: list[int],
    comm: _Comm | None,
) -> torch.Tensor:
    """Per row, the part of the treatment (log price ratio, minus the price nuisance when debiased) that
    the model's other inputs do not explain: the residual of a weighted least-squares fit on the numeric
    features within each SKU (and weekday, where the model gives each SKU its own week).

    Only that part of a SKU's price variation tells the elasticity apart from the base: a price that
    follows its own recent average, its weak weekdays, stock or traffic is matched by inputs the base
    reads, and counting it as information would make the interval say more than the data do.
    Sums run over every process's rows (every process must call this, with or without rows).
    """
    rows = len(data["units"]) if data else 0
    groups = size * 7 if weekday_columns else size
    sums = torch.zeros(groups, n_numeric + 2, dtype=torch.float64)
    gram = torch.zeros(n_numeric, n_numeric + 1, dtype=torch.float64)
    if rows:
        sku = data["sku"].cpu()
        numeric = data["numeric"].double().cpu()
        treatment = data["log_price_ratio"] - data["offset"] if "offset" in data else data["log_price_ratio"]
        treatment = treatment.double().cpu()
        weight = data["weight"].double().cpu()
        group = sku * 7 + numeric[:, weekday_columns].argmax(1) if weekday_columns else sku
        columns = [weight[:, None], (weight * treatment)[:, None], weight[:, None] * numeric]
        sums.index_add_(0, group, torch.cat(columns, 1))
    sums = comm.allreduce(sums, "sum") if comm else sums
    if not rows:
        if comm:  # a process without rows still takes part in the collective
            comm.allreduce(gram, "sum")
        return torch.zeros(0, dtype=torch.float64)
    total = sums[:, 0].clamp_min(1e-12)
    treatment = treatment - (sums[:, 1] / total)[group]
    numeric = numeric - (sums[:, 2:] / total[:, None])[group]
    weighted = numeric * weight[:, None]
    gram = torch.cat([weighted.T @ numeric, (weighted.T @ treatment)[:, None]], 1)
    gram = comm.allreduce(gram, "sum") if comm else gram
    ridge = 1e-6 * float(torch.diagonal(gram[:, :n_numeric]).mean()) + 1e-12
    identity = torch.eye(n_numeric, dtype=torch.float64)
    beta = torch.linalg.solve(gram[:, :n_numeric] + ridge * identity, gram[:, n_numeric])
    return treatment - numeric @ beta


def elasticity_information(
    ensemble: Ensemble,
    data: dict[str, torch.Tensor],
    n_skus: int,
    comm: _Comm | None = None,
    chunk: int = 65_536,
    centred: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per member, the information each SKU's own price variation carries about its elasticity
    deviation ``u`` (shape (members, n_skus + 1), index 0 none), the Newton step from its fitted
    ``u`` to its own prices' estimate (score / information, same shape) and each SKU's category.

    ``I = Σ weight · μ̂ · (∂ log μ / ∂u)² / φ`` over the SKU's rows, with ``∂ log μ / ∂u =
    ∂elasticity/∂u · (treatment - the SKU's mean treatment)``: its mean price level is the base's to
    explain. ``φ`` is the SKU's over-dispersion (quasi-Poisson: the Pearson statistic over its weight,
    shrunk towards the whole panel's with the weight of :data:`DISPERSION_PRIOR_ROWS` rows, never below
    1): sales noisier than Poisson carry less information. ``centred``: the treatment the other inputs
    do not explain (:func:`_unexplained_treatment`), when the caller has it already. Sums run over every
    process's rows (every process must call this, with or without rows).
    """
    size = n_skus + 1
    rows = len(data["units"]) if data else 0
    total_weight = torch.zeros(size, dtype=torch.float64)
    category_of = torch.zeros(size, dtype=torch.float64)
    if rows:
        sku = data["sku"].cpu()
        weight = data["weight"].double().cpu()
        total_weight.index_add_(0, sku, weight)
        category_of[sku] = data["category"].double().cpu()
    total_weight = comm.allreduce(total_weight, "sum") if comm else total_weight
    # Each SKU's category, from whichever process holds its rows (a SKU has one category).
    category_of = -comm.allreduce(-category_of, "min") if comm else category_of
    members = len(ensemble.members)
    info = torch.zeros(members, size, dtype=torch.float64)
    pearson = torch.zeros(members, size, dtype=torch.float64)
    score = torch.zeros(members, size, dtype=torch.float64)
    if centred is None:
        centred = unexplained_treatment(ensemble, data, n_skus, comm)
    if rows:
        units = data["units"].double().cpu()
        with torch.no_grad():
            for start in range(0, rows, chunk):
                part = slice(start, start + chunk)
                batch = {k: v[part] for k, v in data.items()}
                log_mean, elasticity = ensemble(batch, batch.get("offset"), batch.get("base"))
                mean = torch.exp(log_mean.double().cpu())
                slope = elasticity_slope(elasticity.double().cpu()) * centred[part]
                contribution = weight[part] * mean * slope**2
                residual = weight[part] * (units[part] - mean) ** 2 / mean.clamp_min(1e-6)
                # d log mu / du = -slope: a larger u makes the SKU more elastic.
                gradient = -weight[part] * (units[part] - mean) * slope
                for k in range(len(contribution)):
                    info[k].index_add_(0, sku[part], contribution[k])
                    pearson[k].index_add_(0, sku[part], residual[k])
                    score[k].index_add_(0, sku[part], gradient[k])
    info = comm.allreduce(info, "sum") if comm else info
    score = comm.allreduce(score, "sum") if comm else score
    step = torch.where(info > 1e-12, score / info.clamp_min(1e-12), torch.zeros(()))
    pearson = comm.allreduce(pearson, "sum") if comm else pearson
    overall = pearson.sum(1, keepdim=True) / total_weight.sum().clamp_min(1e-12)
    dispersion = (pearson + DISPERSION_PRIOR_ROWS * overall) / (total_weight + DISPERSION_PRIOR_ROWS)
    info = info / dispersion.clamp_min(1.0)
    info[:, 0] = 0.0
    step[:, 0] = 0.0
    return info, step, category_of


def unexplained_treatment(
    ensemble: Ensemble, data: dict[str, torch.Tensor], n_skus: int, comm: _Comm | None = None
) -> torch.Tensor:
    """:func:`_unexplained_treatment` for ``ensemble``'s inputs (every process must call this)."""
    rows = len(data["units"]) if data else 0
    first = ensemble.members[0]
    assert isinstance(first, DemandNet)
    return _unexplained_treatment(
        data if rows else {}, n_skus + 1, first.spec.n_numeric, first.weekday_columns, comm
    )


# The range an estimated prior sd of the SKU deviations is kept in: below it every SKU would be its
# category; above it the prior would no longer pool at all.
SKU_PRIOR_SD_RANGE = (0.05, 3.0)


def fit_sku_prior_sd(
    unpooled: torch.Tensor,
    info: torch.Tensor,
    prior_sd: float,
    category: torch.Tensor | None = None,
    iterations: int = 1000,
) -> float:
    """The SKU deviations' prior sd that the shop's own price variation supports (empirical Bayes).

    ``unpooled``: each member's SKU deviations as their own prices alone estimate them (the fitted ``u``
    plus the Newton step of :func:`elasticity_information`), with sampling variance ``1 / info``; both
    (members, n_skus + 1). The sd maximises their marginal likelihood around their category's mean,
    ``unpooled ~ N(m_category, sd² + 1 / info)`` (the normal-normal model, by EM, each category's mean
    re-weighted each step), per member, then averaged. Around the category's mean because the head's
    estimate of the category may itself be off (pulled towards the prior centre where the category's
    prices say little): that shifts all its SKUs one way, which is not scatter. Computed from the score,
    not from the pooled ``u`` alone, so it does not matter how far the optimiser has taken a SKU whose
    prices say little. ``category``: each SKU's (shape (n_skus + 1,); None: one category). SKUs without
    price information do not take part; a shop with none keeps ``prior_sd``. Kept inside
    :data:`SKU_PRIOR_SD_RANGE`.
    """
    low, high = SKU_PRIOR_SD_RANGE
    groups = torch.zeros(unpooled.shape[1], dtype=torch.long) if category is None else category.long()
    estimates = []
    for member_unpooled, member_info in zip(unpooled.double(), info.double(), strict=True):
        seen = member_info > 1e-9
        if not bool(seen.any()):
            return prior_sd
        raw, variance = member_unpooled[seen], 1.0 / member_info[seen]
        _, group = torch.unique(groups[seen], return_inverse=True)
        n_groups = int(group.max()) + 1
        tau2 = prior_sd**2
        for _ in range(iterations):
            weight = 1.0 / (tau2 + variance)
            sums = torch.zeros(n_groups, 2, dtype=torch.float64)
            sums.index_add_(0, group, torch.stack([weight, weight * raw], 1))
            centred = raw - (sums[:, 1] / sums[:, 0])[group]
            shrink = tau2 / (tau2 + variance)
            updated = min(max(float(((centred * shrink) ** 2 + shrink * variance).mean()), low**2), high**2)
            converged = abs(updated - tau2) < 1e-9
            tau2 = updated
            if converged:
                break
        estimates.append(tau2**0.5)
    return float(np.mean(estimates))


def elasticity_sds(
    ensemble: Ensemble,
    data: dict[str, torch.Tensor],
    n_skus: int,
    prior_sd: float,
    comm: _Comm | None = None,
    chunk: int = 65_536,
    n_categories: int = 0,
    category_prior_sd: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per member, the Laplace posterior sds of each SKU's elasticity deviation ``u`` and of each
    category's elasticity (the head's output for it).

    ``u``: ``1 / sqrt(1 / prior_sd² + I)`` with ``I`` the SKU's information
    (:func:`elasticity_information`).

    Category: a shift of the whole category's elasticity is identified by the price variation of all its
    SKUs, but each SKU's deviation is unknown too, so one SKU says at most ``1 / prior_sd²`` about its
    category however long its price history (the normal-normal model):
    ``1 / sqrt(1 / category_prior_sd² + Σ_sku I / (1 + prior_sd² I))``. Where no SKU of a category ever
    changed price, its elasticity is the head's guess and this sd stays at the prior: the interval says so.

    Sums run over every process's rows. Index 0 (unseen) keeps the priors. Returns tensors of shape
    (members, n_skus + 1) and (members, n_categories + 1).
    """
    info, _, category_of = elasticity_information(ensemble, data, n_skus, comm, chunk)
    members = len(ensemble.members)
    category_info = torch.zeros(members, n_categories + 1, dtype=torch.float64)
    if n_categories:
        index = category_of.long().clamp(0, n_categories)
        for k in range(members):
            category_info[k].index_add_(0, index, info[k] / (1 + prior_sd**2 * info[k]))
        category_info[:, 0] = 0.0
    u_sd = 1.0 / torch.sqrt(1.0 / prior_sd**2 + info)
    return u_sd, 1.0 / torch.sqrt(1.0 / category_prior_sd**2 + category_info)


def elasticity_u_sd(
    ensemble: Ensemble,
    data: dict[str, torch.Tensor],
    n_skus: int,
    prior_sd: float,
    comm: _Comm | None = None,
    chunk: int = 65_536,
) -> torch.Tensor:
    """The SKU deviations' posterior sds of :func:`elasticity_sds` alone."""
    return elasticity_sds(ensemble, data, n_skus, prior_sd, comm, chunk)[0]


def cross_fit_nuisances(
    comm: _Comm, data: dict[str, torch.Tensor], net_spec: NetSpec, spec: WorkerSpec
) -> tuple[Nuisance, list[float]]:
    """Fit both double-ML nuisances on two folds; add ``offset`` (m̂) and ``base`` (l̂) to ``data``.

    Each row gets the predictions of the fold model that never saw it (cross-fitting). Returns the
    nuisance models and their per-epoch losses.
    """
    nuisance = Nuisance(net_spec).to(_device(spec.use_gpu))

    def nuisance_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        price, demand = model(batch)  # (2, batch) each
        fold = batch["fold"]
        own = torch.stack([fold == 0, fold == 1]).float()  # each fold fits only its own rows
        squared = (price - batch["log_price_ratio"].unsqueeze(0)) ** 2
        price_loss = (squared * own).sum() / own.sum().clamp_min(1.0)
        demand_loss = poisson_loss(demand[0], batch["units"], batch["weight"] * own[0]) + poisson_loss(
            demand[1], batch["units"], batch["weight"] * own[1]
        )
        return price_loss + demand_loss

    history, _ = _fit(comm, nuisance, nuisance_loss, data, spec, spec.nuisance_epochs, "nuisance_loss")
    with torch.no_grad():
        if data:
            price, demand = _unwrap(nuisance)(data)
            other = (1 - data["fold"]).unsqueeze(0)
            data["offset"] = price.gather(0, other).squeeze(0)
            data["base"] = demand.gather(0, other).squeeze(0)
    trained = _unwrap(nuisance)
    assert isinstance(trained, Nuisance)
    return trained, history


def fit_ensemble(
    comm: _Comm, data: dict[str, torch.Tensor], net_spec: NetSpec, spec: WorkerSpec
) -> tuple[Ensemble, list[float], float]:
    """Train the demand ensemble (Poisson loss, bootstrap weights, the random effect's prior).

    With ``spec.debias`` the rows must carry ``offset`` and ``base`` (:func:`cross_fit_nuisances`).
    Returns the trained ensemble, its per-epoch losses and the group's samples/s.
    """
    device = _device(spec.use_gpu)
    ensemble = Ensemble(net_spec, spec.ensemble_size, spec.debias).to(device)
    member_weights = (
        torch.distributions.Poisson(torch.ones(spec.ensemble_size, len(data["units"]))).sample()
        if data
        else torch.zeros(spec.ensemble_size, 0)
    ).to(device)  # Poisson(1) bootstrap per member: the spread of the ensemble is the uncertainty
    if data:
        data["member_weight"] = member_weights.T.contiguous()

    # The random effect's prior, scaled like the per-row Poisson loss: sum(d^2) / (2 sd^2 N).
    local_weight = torch.zeros(1)
    if data:
        fitted = torch.maximum(data["weight"], data["censored"]) if "censored" in data else data["weight"]
        local_weight = fitted.sum().reshape(1).cpu()
    total_weight = comm.allreduce(local_weight, "sum")
    rows_weight = float(total_weight.clamp_min(1.0))
    prior = {"sd": spec.sku_elasticity_sd, "scale": 1.0 / (2 * spec.sku_elasticity_sd**2 * rows_weight)}
    weekday_scale = 1.0 / (2 * spec.sku_weekday_sd**2 * rows_weight)

    def demand_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        log_mean, _ = model(batch, batch.get("offset"), batch.get("base"))
        censored = batch.get("censored")
        # A stock-out day's sales bound its demand from below: it takes part through the censored
        # likelihood (poisson_loss) instead of being left out.
        row_weight = batch["weight"] if censored is None else torch.maximum(batch["weight"], censored)
        weights = row_weight.unsqueeze(0) * batch["member_weight"].T
        members = _unwrap(model).members
        assert isinstance(members, nn.ModuleList)
        return torch.stack(
            [
                poisson_loss(log_mean[k], batch["units"], weights[k], batch.get("censored"))
                + prior["scale"] * sku_elasticity_penalty(members[k])  # type: ignore[arg-type]
                + weekday_scale * sku_weekday_penalty(members[k])  # type: ignore[arg-type]
                for k in range(len(log_mean))
            ]
        ).sum()

    # Empirical Bayes: how far SKUs stray from their category is the shop's, not a constant. Estimated
    # at these epochs from the fit so far; the remaining epochs refit the deviations under it.
    estimate_at = {max(0, math.ceil(spec.epochs * share) - 1) for share in EB_ESTIMATES}
    centred: list[torch.Tensor] = []

    def estimate_prior_sd(epoch: int) -> None:
        if not spec.fit_sku_elasticity_sd or epoch not in estimate_at or epoch == spec.epochs - 1:
            return
        fitted = _unwrap(ensemble)
        assert isinstance(fitted, Ensemble)
        if not centred:  # the data's part: the same in every pass
            centred.append(unexplained_treatment(fitted, data, net_spec.n_skus, comm))
        info, step, category = elasticity_information(fitted, data, net_spec.n_skus, comm, centred=centred[0])
        u = torch.stack([_sku_deviations(m) for m in fitted.members])
        # The configured sd is the least it can be: an estimate from weak price information scatters
        # (0.08 to 0.15 on three markets whose true scatter is 0.30), and one below the truth makes
        # every interval too narrow; one above only keeps more prices where they are.
        sd = max(spec.sku_elasticity_sd, fit_sku_prior_sd(u.double() + step, info, prior["sd"], category))
        prior.update(sd=sd, scale=1.0 / (2 * sd**2 * rows_weight))
        if comm.rank == 0:
            log.debug(f"[train] epoch {epoch + 1}: SKU elasticity prior sd {sd:.3f} (empirical Bayes)")

    history, samples_per_s = _fit(
        comm, ensemble, demand_loss, data, spec, spec.epochs, "train_poisson_loss", estimate_prior_sd
    )
    trained = _unwrap(ensemble)
    assert isinstance(trained, Ensemble)
    if spec.fit_sku_elasticity_sd:
        trained.sku_elasticity_sd = prior["sd"]
        if comm.rank == 0:
            log.info(
                f"[train] SKU elasticity prior sd {prior['sd']:.3f} (empirical Bayes; configured "
                f"{spec.sku_elasticity_sd})"
            )
    return trained, history, samples_per_s


def _sku_deviations(member: nn.Module) -> torch.Tensor:
    assert isinstance(member, DemandNet)
    return member.sku_elasticity.weight.detach()[:, 0].cpu()


# When (as shares of the epochs) fit_ensemble estimates the SKU deviations' prior sd.
EB_ESTIMATES = (0.4, 0.6, 0.8)


def model_state(
    comm: _Comm,
    ensemble: Ensemble,
    nuisance: Nuisance,
    data: dict[str, torch.Tensor],
    net_spec: NetSpec,
    spec: WorkerSpec,
) -> bytes:
    """The trained weights as :class:`~pricing.model.predict.LoadedModel` reads them."""
    weights: dict[str, Any] = {"ensemble": ensemble.state_dict(), "nuisance": nuisance.state_dict()}
    basis = text_basis_tensor(spec.text_basis)
    if basis is not None:
        weights["text_basis"] = basis  # LoadedModel projects the text vectors it is given the same way
    if spec.elasticity_interval == "laplace":  # the same on every rank: its allreduces all take part
        prior_sd = ensemble.sku_elasticity_sd or spec.sku_elasticity_sd
        # The prior sd tells LoadedModel how much of the category's uncertainty reaches each SKU.
        weights["elasticity_sku_prior_sd"] = torch.tensor([prior_sd], dtype=torch.float64)
        weights["elasticity_u_sd"], weights["elasticity_category_sd"] = elasticity_sds(
            ensemble,
            data,
            net_spec.n_skus,
            prior_sd,
            comm,
            n_categories=net_spec.n_categories,
            category_prior_sd=spec.category_elasticity_sd,
        )
    buffer = io.BytesIO()
    torch.save(weights, buffer)
    return buffer.getvalue()


def text_basis_tensor(basis: list[list[float]] | None) -> torch.Tensor | None:
    """``WorkerSpec.text_basis`` as a float32 (text_dim, k) tensor, or None."""
    return None if basis is None else torch.tensor(basis, dtype=torch.float32)


def hold_out_own_tests(data: dict[str, torch.Tensor]) -> None:
    """Out of the fit (weight and censoring 0): the rows whose ``own_test`` mark is set (not NaN)."""
    tested = ~torch.isnan(data.pop("own_test"))
    for name in ("weight", "censored"):
        if name in data:
            data[name] = torch.where(tested, torch.zeros_like(data[name]), data[name])


def train_worker(spec: WorkerSpec) -> dict[str, Any]:
    """Train on this process's shard; return the weights, losses and every rank's checksums."""
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    comm: _Comm = _HorovodComm() if spec.backend == "horovod" else _TorchComm(spec.use_gpu)
    device = _device(spec.use_gpu)
    torch.manual_seed(spec.seed)
    net_spec = NetSpec(**spec.net)
    marks = ("own_test",) if spec.own_tests_out else ()
    data = {k: v.to(device) for k, v in read_shard(spec.train_dir, comm.rank, comm.size, marks).items()}
    if marks and data:
        hold_out_own_tests(data)
    basis = text_basis_tensor(spec.text_basis)
    if basis is not None and data:
        # Once per row here, not once per row and step in every member's first layer.
        data["text"] = data["text"] @ basis.to(device)

    if spec.debias:
        nuisance, nuisance_history = cross_fit_nuisances(comm, data, net_spec, spec)
    else:
        nuisance, nuisance_history = Nuisance(net_spec).to(device), []
    ensemble, history, samples_per_s = fit_ensemble(comm, data, net_spec, spec)
    flat = torch.cat([p.detach().flatten().cpu() for p in ensemble.parameters()])
    checksums = comm.allgather(torch.tensor([flat.sum().item(), (flat**2).sum().item()], dtype=torch.float64))
    # Every rank returns the weights (identical on all ranks after synchronised training):
    # TorchDistributor's local mode has every process write its output to one file, so the result
    # it hands back can come from any rank.
    return {
        "rank": comm.rank,
        "world_size": comm.size,
        "losses": history,
        "nuisance_losses": nuisance_history,
        "param_checksums": checksums.tolist(),
        "device": str(device),
        "samples_per_s": samples_per_s,
        "sku_elasticity_sd": ensemble.sku_elasticity_sd or spec.sku_elasticity_sd,
        "state": model_state(comm, ensemble, nuisance, data, net_spec, spec),
    }


def _local_gpu_plan(spec: WorkerSpec, num_processes: int) -> tuple[bool, WorkerSpec]:
    """TorchDistributor's ``use_gpu`` and the workers' spec for training on the driver's GPUs.

    Where the session gives the driver GPUs (``spark.driver.resource.gpu.*``, as Databricks does),
    TorchDistributor hands them out. Where it gives none but CUDA sees some (a workstation's plain
    ``local[N]`` session), each process takes ``cuda:LOCAL_RANK`` itself. With no GPU at all, the
    workers train on the CPU with Gloo.
    """
    from pyspark import SparkContext

    context = SparkContext._active_spark_context
    if context is not None and "gpu" in context.resources:
        return True, spec
    visible = torch.cuda.device_count()
    if visible == 0:
        log.warning("[train] train.use_gpu: no GPU visible, training on the CPU with Gloo")
        return False, replace(spec, use_gpu=False)
    if num_processes > visible:
        raise ValueError(
            f"train.use_gpu with {num_processes} processes needs as many GPUs; {visible} visible"
            " (NCCL cannot put two processes on one GPU): set train.num_processes"
        )
    return False, spec


def _unwrap(model: nn.Module) -> nn.Module:
    inner = getattr(model, "module", model)  # DDP keeps the wrapped model in .module
    assert isinstance(inner, nn.Module)
    return inner


def run_distributed(
    spec: WorkerSpec, num_processes: int, local_mode: bool, start_timeout_s: int
) -> dict[str, Any]:
    """Run :func:`train_worker` on ``num_processes`` processes with the configured backend.

    Returns:
        One rank's result (weights, losses, checksums of every rank): all ranks' are the same.
    """
    if spec.backend == "horovod":
        import horovod.spark

        results = horovod.spark.run(
            train_worker,
            args=(spec,),
            num_proc=num_processes,
            start_timeout=start_timeout_s,
            use_gloo=True,
            verbose=0,
        )
        return next(r for r in results if r["rank"] == 0)
    from pyspark.ml.torch.distributor import TorchDistributor

    distributor_gpu = spec.use_gpu
    if spec.use_gpu and local_mode:
        distributor_gpu, spec = _local_gpu_plan(spec, num_processes)
    distributor = TorchDistributor(
        num_processes=num_processes, local_mode=local_mode, use_gpu=distributor_gpu
    )
    result = distributor.run(train_worker, spec)
    if not isinstance(result, dict):
        raise RuntimeError(f"TorchDistributor returned no result from rank 0: {result!r}")
    return result
