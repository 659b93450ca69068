"""`pricing train`: gold panel -> distributed training -> holdout evaluation -> MLflow registry gate."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.models import infer_signature
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StructField, StructType

from pricing.config import FeaturesConfig, TrainConfig
from pricing.decide.experiment import PRICE_TEST
from pricing.features import feature_rows, read_sku_day
from pricing.lakehouse import io
from pricing.lakehouse.tables import ELASTICITIES, PRICE_RECOMMENDATIONS, TEXT_EMBEDDINGS, Lakehouse
from pricing.model.dataset import InputSpec, fit_input_spec, input_features, model_inputs, text_basis
from pricing.model.distributed import SHARD_COLUMN, WorkerSpec, run_distributed
from pricing.model.network import NetSpec, elasticity_slope
from pricing.model.predict import (
    LAKEHOUSE_ID_TAG,
    PREDICTION_COLUMNS,
    DemandPyfunc,
    LoadedModel,
    foreign_model,
    model_requirements,
    predict_batches,
    softplus_argument,
)
from pricing.platform import tracking
from pricing.schemas import ELASTICITIES_SCHEMA
from pricing.text import encoder_name

log = logging.getLogger(__name__)


@dataclass
class TrainReport:
    """What a training run produced and how it compares."""

    run_id: str
    model_version: str
    alias: str
    backend: str
    world_size: int
    device: str  # what rank 0 trained on: "cpu", "cuda:0"
    losses: list[float]
    param_checksums: list[list[float]]
    holdout_wape: float
    seasonal_naive_wape: float
    champion_wape: float | None
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def elasticity_mae(self) -> float | None:
        """Against a simulated market's truth, once ``pricing.sim.truth`` has judged the run."""
        return self.metrics.get("elasticity_mae")

    def render(self) -> str:
        lines = [
            f"model {self.model_version} ({self.alias}) trained with {self.backend} on "
            f"{self.world_size} processes ({self.device}) in {self.seconds:.0f}s; "
            f"loss {self.losses[0]:.4f} -> {self.losses[-1]:.4f}",
            f"holdout WAPE {self.holdout_wape:.3f} vs seasonal naive {self.seasonal_naive_wape:.3f}"
            + (f" (champion {self.champion_wape:.3f})" if self.champion_wape is not None else ""),
        ]
        if self.metrics.get("price_change_rows"):
            lines.append(
                f"holdout days after a price move: {self.metrics['price_change_rows']:.0f}, WAPE "
                f"{self.metrics['price_change_wape']:.3f}, response slope "
                f"{self.metrics['price_change_slope']:.2f}, price response slope "
                f"{self.metrics.get('price_response_slope', float('nan')):.2f} "
                f"± {self.metrics.get('price_response_slope_se', float('nan')):.2f} (1 = right on average)"
            )
        if self.elasticity_mae is not None:
            lines.append(self.render_truth())
        return "\n".join(lines)

    def render_truth(self) -> str:
        """The elasticities against a simulated market's truth (``pricing.sim.truth``), once judged."""
        return (
            f"elasticity vs truth: MAE {self.elasticity_mae:.3f}, bias "
            f"{self.metrics.get('elasticity_bias', float('nan')):+.3f}, interval coverage "
            f"{self.metrics.get('elasticity_interval_coverage', float('nan')):.2f}; "
            f"category means off by {self.metrics.get('elasticity_category_mae', float('nan')):.3f}, "
            f"SKU deviations by {self.metrics.get('elasticity_within_mae', float('nan')):.3f} "
            f"(0 for every SKU: {self.metrics.get('elasticity_within_floor_mae', float('nan')):.3f})"
        )


def wape(df: DataFrame, forecast: str) -> float:
    """Weighted absolute percentage error of ``forecast`` vs ``units`` over uncensored rows."""
    row = (
        df.where(F.col("weight") > 0)
        .agg(F.sum(F.abs(F.col("units") - F.col(forecast))), F.sum("units"))
        .first()
    )
    return float(row[0] / row[1]) if row and row[1] else float("nan")


# A holdout day's price "moved" when it differs from the SKU's previous holdout day by more than this.
PRICE_MOVE = 0.02
# Fewer moved rows than this say too little to gate on.
MIN_PRICE_CHANGE_ROWS = 30


def price_change_metrics(predictions_df: DataFrame) -> dict[str, float]:
    """How the model's price response holds on held-out days whose price moved (works on real data).

    Over holdout SKU-days whose price differs by more than :data:`PRICE_MOVE` from the SKU's previous
    holdout day (both uncensored): ``price_change_rows``; ``price_change_wape``, the model's WAPE on
    those days; ``price_change_slope``, the slope of the actual day-over-day change in log units on
    the predicted one (1: the predicted response is right on average; below 1: it overstates what a
    price move does; above 1: it understates it); ``price_change_corr``, their correlation.

    ``price_response_slope`` (and its standard error ``price_response_slope_se``): the same actual
    change regressed on the predicted change split in two, its price part (the row's elasticity times
    the change in log price) and the rest (weekday, traffic, competitors...), with an intercept; the
    price part's coefficient. 1: the elasticities are right on average; above 1: too inelastic; below
    1: too elastic. Unlike ``price_change_slope`` it is not pulled below 1 by the rest's errors.
    """
    by_day = Window.partitionBy("sku").orderBy("date")
    before = {c: F.lag(c).over(by_day) for c in ("log_price_ratio", "units", "expected_units", "weight")}
    moved = predictions_df.select(
        "*", *[column.alias(f"prev_{name}") for name, column in before.items()]
    ).where(
        (F.abs(F.col("log_price_ratio") - F.col("prev_log_price_ratio")) > F.lit(float(np.log1p(PRICE_MOVE))))
        & (F.col("weight") > 0)
        & (F.col("prev_weight") > 0)
    )
    actual = F.log((F.col("units") + 0.5) / (F.col("prev_units") + 0.5))
    predicted = F.log((F.col("expected_units") + 0.5) / (F.col("prev_expected_units") + 0.5))
    price = F.col("elasticity") * (F.col("log_price_ratio") - F.col("prev_log_price_ratio"))
    terms = {"1": F.lit(1.0), "p": price, "r": predicted - price, "y": actual}
    # The regression's sums of products, in the same pass: X'X and X'y for X = (1, p, r), and y'y.
    pairs = [(a, b) for i, a in enumerate(terms) for b in list(terms)[i:]]
    row = moved.agg(
        F.count("*"),
        F.try_divide(F.sum(F.abs(F.col("units") - F.col("expected_units"))), F.sum("units")),
        F.try_divide(F.covar_pop(actual, predicted), F.var_pop(predicted)),
        F.try_divide(F.covar_pop(actual, predicted), F.stddev_pop(actual) * F.stddev_pop(predicted)),
        *[F.sum(terms[a] * terms[b]) for a, b in pairs],
    ).first()
    assert row is not None
    slope, slope_se = _price_response(dict(zip(pairs, row[4:], strict=True)), int(row[0]))
    return {
        "price_change_rows": float(row[0]),
        "price_change_wape": float(row[1]) if row[1] is not None else float("nan"),
        "price_change_slope": float(row[2]) if row[2] is not None else float("nan"),
        "price_change_corr": float(row[3]) if row[3] is not None else float("nan"),
        "price_response_slope": slope,
        "price_response_slope_se": slope_se,
    }


def interval_stretch(changes: dict[str, float], z: float, to_bound: bool = False) -> float:
    """The factor the elasticity intervals stretch by: the price response slope where the holdout
    has at least :data:`MIN_PRICE_CHANGE_ROWS` moved days and the slope is over ``z`` standard errors
    from 1; else 1 (also when ``z`` is 0, off). With ``to_bound``, the slope's ``z``-se bound nearest
    1 (``s - z se`` above 1, ``s + z se`` below): only as far as the evidence clearly reaches."""
    slope, se = changes.get("price_response_slope", np.nan), changes.get("price_response_slope_se", np.nan)
    clear = z > 0 and changes.get("price_change_rows", 0) >= MIN_PRICE_CHANGE_ROWS and abs(slope - 1) > z * se
    if not (clear and np.isfinite(slope) and slope > 0):
        return 1.0
    return float(slope - np.sign(slope - 1) * z * se) if to_bound else float(slope)


def _price_response(sums: dict[tuple[str, str], float | None], n: int) -> tuple[float, float]:
    """Least squares of y on (1, p, r) from their sums of products: p's coefficient and its se."""
    if n < 4 or any(v is None for v in sums.values()):
        return float("nan"), float("nan")

    def s(a: str, b: str) -> float:
        return float(sums.get((a, b), sums.get((b, a))))  # type: ignore[arg-type]

    xtx = np.array([[s(a, b) for b in "1pr"] for a in "1pr"])
    xty = np.array([s(a, "y") for a in "1pr"])
    if np.linalg.cond(xtx) > 1e12:
        return float("nan"), float("nan")
    inverse = np.linalg.inv(xtx)
    beta = inverse @ xty
    residual_ss = max(s("y", "y") - float(beta @ xty), 0.0)
    return float(beta[1]), float(np.sqrt(residual_ss / (n - 3) * inverse[1, 1]))


def evaluate(holdout_df: DataFrame, loader: Any) -> DataFrame:
    """Holdout rows with predictions, computed on the executors (model loaded once per task)."""
    keep = ["sku", "date", "units", "weight", "seasonal_naive", "log_price_ratio"]
    schema = StructType(
        [f for f in holdout_df.schema.fields if f.name in keep]
        + [StructField(c, DoubleType()) for c in PREDICTION_COLUMNS]
    )
    return holdout_df.mapInPandas(predict_batches(loader, keep), schema)


# The system's own price tests (score.exploration_share) re-fit the elasticity level only from this
# many tested SKU-days (and where the level they call for is train.own_test_z standard errors from the
# history's): elsewhere the history's level stands, with no extra uncertainty.
MIN_OWN_TEST_ROWS = 30
# How far back each SKU's usual (untested) price is read: where a shifted curve pivots.
OWN_TEST_PIVOT_DAYS = 28


def mark_own_tests(spark: SparkSession, lakehouse: Lakehouse, rows_df: DataFrame) -> DataFrame:
    """Model-input rows with ``own_test``: the row's weight where its price was one of the system's own
    price tests and was in force that day (within half a percent of the test's price), else null.

    A fit with ``WorkerSpec.own_tests_out`` leaves those rows out (weight and censoring 0): out of its
    sample, they say by how much the elasticity level it learned is off (:func:`own_test_level`).
    """
    tests = (
        lakehouse.read_declared(spark, PRICE_RECOMMENDATIONS)
        .where(F.col("binding_constraint") == PRICE_TEST)
        .select("sku", F.col("price_date").alias("date"), F.col("recommended_price").alias("_test_price"))
    )
    tested = F.abs(F.col("price") / F.col("_test_price") - 1) <= 0.005
    return (
        rows_df.join(tests, ["sku", "date"], "left")
        .withColumn("own_test", F.when(tested, F.col("weight")).cast("float"))
        .drop("_test_price")
    )


def own_test_level(rows_df: DataFrame, state: bytes, config: dict[str, Any], z: float) -> dict[str, Any]:
    """The elasticity level the system's own price tests call for, as :class:`LoadedModel` config.

    A retailer's price history can follow demand its data does not hold (prices raised on days it saw
    strong demand coming): the level of every elasticity learned from it is then off, and no check on
    the same history can tell (docs/benchmarks.md, "A held-out family"). The system's own tests are
    priced at random: holding everything else the model learned, Newton steps on one shift of every
    member's softplus argument fit their uncensored days (the rows of ``rows_df`` that
    :func:`mark_own_tests` marked, which the fit left out), each day's log price ratio taken from its
    SKU's usual one over the last :data:`OWN_TEST_PIVOT_DAYS` untested days. The shift
    counts only where it is ``z`` standard errors (quasi-Poisson, plus the members' disagreement) from
    0 and rests on :data:`MIN_OWN_TEST_ROWS` days: then it, its sd and each SKU's pivot go into the
    model's config, beside what was found (``own_test_*``, logged). Nothing (``{}``) for a debiased
    model, with ``z`` 0, or without a marked row.
    """
    if config.get("debias") or z <= 0:
        return {}
    if "own_test" not in rows_df.columns:
        return {}
    marked: pd.DataFrame = rows_df.where(F.col("own_test").isNotNull()).toPandas()
    if marked.empty:
        return {}
    # A tested day that sold out (weight 0) says nothing about the level.
    tested = marked[marked["own_test"] > 0]
    if len(tested) < MIN_OWN_TEST_ROWS:
        return {"own_test_rows": len(tested)}
    last = io.first_value(rows_df.agg(F.max("date")))
    usual: pd.DataFrame = (
        rows_df.where(F.col("own_test").isNull())
        .where(F.col("date") > F.lit(last - timedelta(days=OWN_TEST_PIVOT_DAYS)))
        .groupBy("sku_idx")
        .agg(F.avg("log_price_ratio").alias("pivot"))
        .toPandas()
    )
    pivot = np.zeros(int(config["net"]["n_skus"]) + 1)
    pivot[usual["sku_idx"].to_numpy(int)] = usual["pivot"].to_numpy(float)
    log_mean, elasticity = LoadedModel(state, config).members(tested)
    x = tested["log_price_ratio"].to_numpy(float) - pivot[tested["sku_idx"].to_numpy(int)]
    units = tested["units"].to_numpy(float)
    argument = softplus_argument(torch.from_numpy(elasticity)).numpy()
    shifts, variances = [], []
    for member_mean, member_argument, member_elasticity in zip(log_mean, argument, elasticity, strict=True):
        shift = 0.0
        for _ in range(20):
            moved = -np.logaddexp(0.0, member_argument + shift)
            mean = np.exp(member_mean + (moved - member_elasticity) * x)
            slope = -elasticity_slope(torch.from_numpy(moved)).numpy() * x  # d log mean / d shift
            information = float(np.sum(mean * slope**2))
            step = float(np.sum((units - mean) * slope)) / max(information, 1e-12)
            shift += step
            if abs(step) < 1e-6:
                break
        dispersion = max(1.0, float(np.sum((units - mean) ** 2 / np.maximum(mean, 1e-6))) / (len(units) - 1))
        shifts.append(shift)
        variances.append(dispersion / max(information, 1e-12))
    level, sd = float(np.mean(shifts)), float(np.sqrt(np.mean(variances) + np.var(shifts)))
    found = {"own_test_rows": len(tested), "own_test_shift": level, "own_test_shift_sd": sd}
    if abs(level) <= z * sd:
        return found
    log.info(f"[train] the system's own price tests move the elasticity level by {level:+.2f} ± {sd:.2f}")
    return {
        **found,
        "elasticity_level_shift": level,
        "elasticity_level_shift_sd": sd,
        "elasticity_level_pivot": pivot.tolist(),
    }


def sku_elasticities(predictions_df: DataFrame) -> DataFrame:
    """Per SKU: mean elasticity over its holdout days, with the ensemble's interval."""
    return predictions_df.groupBy("sku").agg(
        F.avg("elasticity").alias("elasticity"),
        F.avg("elasticity_low").alias("elasticity_low"),
        F.avg("elasticity_high").alias("elasticity_high"),
    )


def worker_spec(
    tcfg: TrainConfig,
    net: dict[str, Any],
    train_dir: str,
    run_id: str | None = None,
    text_basis: list[list[float]] | None = None,
) -> WorkerSpec:
    """What every training process gets from the configuration (``run_id``: its MLflow run, if any;
    ``text_basis``: the text's projection, :func:`pricing.model.dataset.text_basis`)."""
    return WorkerSpec(
        train_dir=train_dir,
        net=net,
        epochs=tcfg.epochs,
        nuisance_epochs=tcfg.epochs,
        batch_size=tcfg.batch_size,
        max_steps_per_epoch=tcfg.max_steps_per_epoch,
        learning_rate=tcfg.learning_rate,
        lr_decay=tcfg.lr_decay,
        weight_decay=tcfg.weight_decay,
        ensemble_size=tcfg.ensemble_size,
        debias=tcfg.debias,
        seed=tcfg.seed,
        sku_elasticity_sd=tcfg.sku_elasticity_sd,
        fit_sku_elasticity_sd=tcfg.fit_sku_elasticity_sd,
        sku_weekday_sd=tcfg.sku_weekday_sd or 1.0,
        category_elasticity_sd=tcfg.category_elasticity_sd,
        elasticity_interval=tcfg.elasticity_interval,
        backend=tcfg.backend,
        use_gpu=tcfg.use_gpu,
        text_basis=text_basis,
        tracking_uri=tcfg.tracking_uri,
        run_id=run_id,
    )


def model_config(tcfg: TrainConfig, net: dict[str, Any]) -> dict[str, Any]:
    """The model's ``config.json``: what :class:`LoadedModel` needs besides the weights."""
    return {
        "net": net,
        "ensemble_size": tcfg.ensemble_size,
        "debias": tcfg.debias,
        "elasticity_interval": tcfg.elasticity_interval,
        "interval_level": tcfg.interval_level,
    }


@dataclass
class ModelPanels:
    """The gold panel split as training uses it: days before ``holdout_start`` train, the last
    ``train.holdout_days`` (through ``end``) are held out; the text embeddings and the input spec."""

    train: DataFrame
    holdout: DataFrame
    holdout_start: date
    end: date
    encoder: str
    embeddings: DataFrame
    text_dim: int
    spec: InputSpec


def model_panels(
    spark: SparkSession, lakehouse: Lakehouse, cfg: TrainConfig, features: FeaturesConfig
) -> ModelPanels:
    """The lakehouse's panel split for training (what a run's holdout was, read again)."""
    panel = feature_rows(read_sku_day(spark, lakehouse, features), features)
    end = io.first_value(panel.agg(F.max("date")))
    if end is None:
        raise RuntimeError("gold/sku_day is empty: run `pricing features` first")
    holdout_start = end - timedelta(days=cfg.holdout_days - 1)
    train_panel = panel.where(F.col("date") < F.lit(holdout_start))
    encoder = encoder_name(features)
    embeddings = lakehouse.read_declared(spark, TEXT_EMBEDDINGS).where(F.col("encoder") == encoder)
    text_dim = int(io.first_value(embeddings.select(F.size("embedding"))) or 0)
    return ModelPanels(
        train=train_panel,
        holdout=panel.where(F.col("date") >= F.lit(holdout_start)),
        holdout_start=holdout_start,
        end=end,
        encoder=encoder,
        embeddings=embeddings,
        text_dim=text_dim,
        spec=fit_input_spec(
            train_panel,
            encoder,
            text_dim,
            holdout_start - timedelta(days=1),
            input_features(cfg.units_lags),
        ),
    )


def shard_count(cfg: TrainConfig) -> int:
    """How many shards a run's training rows are written as: two per training process, at least two."""
    return max(2, cfg.num_processes * 2)


def training_shards(rows_df: DataFrame, shards: int) -> DataFrame:
    """Training rows with the shard each is written to (:data:`SHARD_COLUMN`): its key's hash.

    What a process reads then cannot depend on how many files Spark writes. It once wrote one file for
    four (docs/training.md, "Why Spark wrote one file"): the first night's join with the not yet
    written price tests is a sort-merge join on (sku, date), which makes the repartition below
    redundant to the planner, and adaptive execution may then coalesce the join's shuffle. Spark's
    hash partitioning is the same pmod(hash(sku, date), shards): where it writes every file, each
    shard holds one file's rows.
    """
    shard = F.pmod(F.hash("sku", "date"), F.lit(shards))
    return rows_df.withColumn(SHARD_COLUMN, shard).repartition(shards, "sku", "date")


def write_inputs(
    panels: ModelPanels, lakehouse: Lakehouse, run_id: str, shards: int, own_tests: bool = False
) -> None:
    """The training and holdout rows as network inputs, the run's model data (what workers read);
    with ``own_tests``, the system's own price tests marked (:func:`mark_own_tests`)."""
    train = model_inputs(panels.train, panels.embeddings, panels.spec)
    if own_tests:
        train = mark_own_tests(train.sparkSession, lakehouse, train)
    lakehouse.write_model_data(run_id, "train", training_shards(train, shards), SHARD_COLUMN)
    holdout = model_inputs(panels.holdout, panels.embeddings, panels.spec)
    lakehouse.write_model_data(run_id, "holdout", holdout)


def _network(panels: ModelPanels, tcfg: TrainConfig, basis: list[list[float]] | None) -> dict[str, Any]:
    """The network's shape for this panel's vocabularies and inputs."""
    return NetSpec(
        n_skus=len(panels.spec.skus),
        n_categories=len(panels.spec.categories),
        n_brands=len(panels.spec.brands),
        text_dim=panels.text_dim if basis is None else len(basis[0]),
        n_numeric=len(panels.spec.numeric_features),
        embedding_dim=tcfg.embedding_dim,
        hidden=tcfg.hidden,
        elasticity_inputs=list(tcfg.elasticity_inputs),
        elasticity_prior=tcfg.elasticity_prior,
        weekday_columns=(
            [panels.spec.numeric_features.index(f"dow_{d}") for d in range(7)]
            if tcfg.sku_weekday_sd > 0
            else []
        ),
    ).to_dict()


def _judge_holdout(
    holdout_df: DataFrame, state: bytes, config: dict[str, Any], tcfg: TrainConfig
) -> tuple[DataFrame, dict[str, float], dict[str, Any]]:
    """The trained model on the holdout: its predictions (cached), the metrics that gate it, and its
    config with the interval stretch the holdout's price moves call for (if any)."""
    predictions = evaluate(holdout_df, lambda: LoadedModel(state, config)).cache()
    changes = price_change_metrics(predictions)
    stretch = interval_stretch(changes, tcfg.interval_stretch_z)
    if stretch != 1.0:
        # The intervals (what scoring and gold/elasticities read) as the stretched model gives them.
        predictions.unpersist()
        config = {**config, "interval_stretch": stretch}
        predictions = evaluate(holdout_df, lambda: LoadedModel(state, config)).cache()
    metrics = {
        "holdout_wape": wape(predictions, "expected_units"),
        "seasonal_naive_wape": wape(predictions.where(F.col("seasonal_naive").isNotNull()), "seasonal_naive"),
        **changes,
        "interval_stretch": stretch,
    }
    return predictions, metrics, config


def _log_model(
    holdout_df: DataFrame, state: bytes, config: dict[str, Any], spec: InputSpec, tcfg: TrainConfig
) -> str:
    """Log the model (weights, config, input spec) to the active run and register it; its version."""
    sample: pd.DataFrame = holdout_df.limit(5).toPandas()
    signature = infer_signature(
        sample.drop(columns=["sku", "date"]), LoadedModel(state, config).predict(sample)
    )
    with tempfile.TemporaryDirectory() as tmp:
        paths = {
            "weights": Path(tmp, "weights.pt"),
            "config": Path(tmp, "config.json"),
            "input_spec": Path(tmp, "input_spec.json"),
        }
        paths["weights"].write_bytes(state)
        paths["config"].write_text(json.dumps(config))
        paths["input_spec"].write_text(spec.to_json())
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=DemandPyfunc(),
            artifacts={k: str(v) for k, v in paths.items()},
            signature=signature,
            pip_requirements=model_requirements(),
            registered_model_name=tcfg.model_name,
        )
    return str(info.registered_model_version)


def run_train(
    spark: SparkSession,
    lakehouse: Lakehouse,
    cfg: TrainConfig,
    features: FeaturesConfig,
    tags: dict[str, str] | None = None,
) -> TrainReport:
    """Train the demand model on the gold panel, evaluate on a time-based holdout, register, gate.

    Read (the panel, split) -> write the network's inputs -> fit (distributed) -> judge on the holdout
    -> keep the run's elasticities, register, gate (a champion's elasticities become
    ``gold/elasticities``) -> record (MLflow metrics, the report).
    ``features`` says how the panel's model rows are built; ``tags`` go on the MLflow run (the nightly
    job tags its run to find it again after a crash).
    """
    started = time.monotonic()
    panels = model_panels(spark, lakehouse, cfg, features)

    mlflow.set_tracking_uri(cfg.tracking_uri)
    experiment_id = tracking.experiment_id(cfg, cfg.experiment)
    lakehouse_id = lakehouse.identity(spark)
    with mlflow.start_run(
        experiment_id=experiment_id,
        tags={**(tags or {}), "panel_end": panels.end.isoformat(), LAKEHOUSE_ID_TAG: lakehouse_id},
    ) as run:
        run_id = run.info.run_id
        shards = shard_count(cfg)
        # A debiased fit keeps its own level (own_test_level), so it keeps the tested days too.
        own_tests = cfg.own_test_z > 0 and not cfg.debias
        write_inputs(panels, lakehouse, run_id, shards, own_tests=own_tests)
        # A shard without rows writes no folder (a panel of a handful of rows).
        written = lakehouse.model_data_partitions(spark, run_id, "train", SHARD_COLUMN)
        if written < shards:
            log.warning(f"[train] the training rows fill {written} of {shards} shards")
        # The training SKUs' titles, each once, decide the text's principal axes.
        basis = text_basis(
            panels.embeddings.join(panels.train.select("text_hash").distinct(), "text_hash"),
            panels.text_dim,
            cfg.text_components,
        )
        net = _network(panels, cfg, basis)
        worker = replace(
            worker_spec(cfg, net, lakehouse.model_data(run_id, "train"), run_id, text_basis=basis),
            own_tests_out=own_tests,
        )
        mlflow.log_params(
            {
                **{k: v for k, v in cfg.model_dump().items() if k != "tracking_uri"},
                "encoder": panels.encoder,
                "text_dim": panels.text_dim,
                "holdout_start": panels.holdout_start.isoformat(),
                "train_shards": written,
                "train_shards_asked": shards,
            }
        )
        log.info(f"[train] {cfg.backend}: {cfg.num_processes} processes, {cfg.epochs} epochs")
        phases = {"seconds_prepare": time.monotonic() - started}
        result = run_distributed(worker, cfg.num_processes, cfg.local_mode, cfg.start_timeout_s)
        config = model_config(cfg, net)
        level = (
            own_test_level(
                lakehouse.read_model_data(spark, run_id, "train"), result["state"], config, cfg.own_test_z
            )
            if own_tests
            else {}
        )
        if level and "elasticity_level_shift" not in level:
            # The tests agree with the history's level: they are the prices that say the most about the
            # elasticities, so they go back into the fit (the fit a run without own tests makes).
            log.info(
                "[train] the system's own price tests leave the elasticity level as it is: refit with them"
            )
            result = run_distributed(
                replace(worker, own_tests_out=False), cfg.num_processes, cfg.local_mode, cfg.start_timeout_s
            )
            level["own_test_refit"] = 1.0
        phases["seconds_fit"] = time.monotonic() - started - sum(phases.values())
        state = result["state"]
        mlflow.set_tag("train_device", result["device"])

        holdout_df = lakehouse.read_model_data(spark, run_id, "holdout")
        config = {**config, **{k: v for k, v in level.items() if k.startswith("elasticity_")}}
        predictions, judged, config = _judge_holdout(holdout_df, state, config, cfg)
        metrics = {
            "holdout_wape": judged.pop("holdout_wape"),
            "seasonal_naive_wape": judged.pop("seasonal_naive_wape"),
            "final_train_poisson_loss": result["losses"][-1],
            "train_samples_per_s": result["samples_per_s"],
            "sku_elasticity_sd_fitted": result["sku_elasticity_sd"],
            **{k: v for k, v in level.items() if k.startswith("own_test_")},
            "elasticity_level_shift": level.get("elasticity_level_shift", 0.0),
            **judged,
        }
        phases["seconds_evaluate"] = time.monotonic() - started - sum(phases.values())
        mlflow.log_metrics(metrics)

        # The run's elasticities, kept beside its holdout before registering: gating copies them to
        # gold/elasticities if the model becomes champion, also when it resumes a run that crashed.
        elasticities = sku_elasticities(predictions).select([f.name for f in ELASTICITIES_SCHEMA.fields])
        lakehouse.write_model_data(run_id, "elasticities", elasticities)
        predictions.unpersist()
        version = _log_model(holdout_df, state, config, panels.spec, cfg)
        mlflow.MlflowClient().set_model_version_tag(cfg.model_name, version, LAKEHOUSE_ID_TAG, lakehouse_id)
        champion_wape, alias = promote(spark, lakehouse, cfg, run_id, version)
        # Where a training run's time went (docs/benchmarks.md, "Training a large panel").
        phases["seconds_register"] = time.monotonic() - started - sum(phases.values())
        mlflow.log_metrics(phases)
        metrics.update(phases)

    report = TrainReport(
        run_id=run_id,
        model_version=version,
        alias=alias,
        backend=cfg.backend,
        world_size=result["world_size"],
        device=result["device"],
        losses=result["losses"],
        param_checksums=result["param_checksums"],
        holdout_wape=metrics["holdout_wape"],
        seasonal_naive_wape=metrics["seasonal_naive_wape"],
        champion_wape=champion_wape,
        seconds=time.monotonic() - started,
        metrics=metrics,
    )
    log.info(report.render())
    return report


def run_elasticities(spark: SparkSession, lakehouse: Lakehouse, run_id: str) -> DataFrame:
    """The per-SKU elasticities and intervals training run ``run_id`` found (champion or not)."""
    return lakehouse.read_model_data(spark, run_id, "elasticities")


def promote(
    spark: SparkSession, lakehouse: Lakehouse, cfg: TrainConfig, run_id: str, version: str
) -> tuple[float | None, str]:
    """Gate a registered ``version`` of training run ``run_id`` and record the outcome on the run.

    Also how a run that crashed after registering is finished: everything it needs (the holdout
    files, the run's elasticities and the logged holdout WAPE) was written before registration.
    """
    client = mlflow.MlflowClient()
    logged = client.get_run(run_id).data.metrics
    new_wape = logged["holdout_wape"]
    # Runs logged before the price-change check existed gate on WAPE alone.
    new_change = logged.get("price_change_wape", float("nan"))
    holdout_df = lakehouse.read_model_data(spark, run_id, "holdout")
    champion_wape, champion_change, alias = _gate(
        spark, holdout_df, cfg.model_name, version, new_wape, new_change, lakehouse.identity(spark)
    )
    # gold/elasticities describes the model that prices: a challenger leaves it alone. (A run
    # registered by a version that wrote gold/elasticities itself, before registering, kept none.)
    if alias == "champion" and lakehouse.has_model_data(spark, run_id, "elasticities"):
        lakehouse.overwrite(ELASTICITIES, run_elasticities(spark, lakehouse, run_id))
    client.log_metric(
        run_id, "champion_holdout_wape", champion_wape if champion_wape is not None else new_wape
    )
    if champion_change is not None:
        client.log_metric(run_id, "champion_price_change_wape", champion_change)
    client.set_tag(run_id, "alias", alias)
    client.set_tag(run_id, "model_version", version)
    return champion_wape, alias


def _gate(
    spark: SparkSession,
    holdout_df: DataFrame,
    name: str,
    version: str,
    new_wape: float,
    new_change_wape: float = float("nan"),
    lakehouse: str | None = None,
) -> tuple[float | None, float | None, str]:
    """Give ``version`` the alias ``champion`` only if it beats the champion on the same holdout.

    Beating means a lower WAPE, and, where the holdout has at least :data:`MIN_PRICE_CHANGE_ROWS`
    days whose price moved, a WAPE on those days no worse than the champion's: a forecast that is
    right on ordinary days can still be wrong about what a price change does, and that is what prices
    are chosen by. Returns the champion's WAPE and price-change WAPE (None without a champion).
    """
    client = mlflow.MlflowClient()
    try:
        champion = client.get_model_version_by_alias(name, "champion")
    except mlflow.exceptions.MlflowException:
        champion = None
    if champion is not None and foreign_model(champion, lakehouse):
        # Another lakehouse's champion is no yardstick here: this lakehouse's first model takes the alias.
        champion = None
    if champion is not None and str(champion.version) == version:
        return new_wape, None, "champion"  # gated already, by a run that crashed right after
    champion_wape = champion_change = None
    better_on_changes = True
    if champion is not None:
        uri, tracking_uri = f"models:/{name}@champion", mlflow.get_tracking_uri()

        def load_champion() -> Any:
            # Runs in executor processes, which know nothing of the driver's MLflow settings.
            mlflow.set_tracking_uri(tracking_uri)
            return mlflow.pyfunc.load_model(uri)

        predictions = evaluate(holdout_df, load_champion).cache()
        champion_wape = wape(predictions, "expected_units")
        changes = price_change_metrics(predictions)
        predictions.unpersist()
        champion_change = changes["price_change_wape"]
        if changes["price_change_rows"] >= MIN_PRICE_CHANGE_ROWS and np.isfinite(new_change_wape):
            better_on_changes = new_change_wape <= champion_change
    if champion_wape is None or (new_wape < champion_wape and better_on_changes):
        client.set_registered_model_alias(name, "champion", version)
        return champion_wape, champion_change, "champion"
    client.set_registered_model_alias(name, "challenger", version)
    return champion_wape, champion_change, "challenger"
