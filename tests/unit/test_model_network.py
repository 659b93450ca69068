"""The price response is monotone by construction; stock-out days do not teach "no stock = no demand";
the elasticity reads only the configured product inputs; its Laplace interval widens where prices say
little; naive and debiased fits both recover a known elasticity from prices confounded through x;
shards that name each text by hash read its vector from the table of distinct texts; how far SKUs stray
from their category is estimated from the shop's own prices (empirical Bayes)."""

from __future__ import annotations

import io
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing.model.distributed import (
    LocalComm,
    NoTrainingRows,
    StepPlan,
    TrainingDiverged,
    WorkerSpec,
    _plan,
    cross_fit_nuisances,
    elasticity_sds,
    elasticity_u_sd,
    fit_ensemble,
    fit_sku_prior_sd,
    hold_out_own_tests,
    read_shard,
)
from pricing.model.network import DemandNet, Ensemble, NetSpec, Nuisance, poisson_loss
from pricing.model.predict import LoadedModel

SPEC = NetSpec(n_skus=5, n_categories=2, n_brands=3, text_dim=4, n_numeric=3, hidden=16)


def _batch(n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {
        "sku": torch.randint(0, 6, (n,), generator=generator),
        "category": torch.randint(0, 3, (n,), generator=generator),
        "brand": torch.randint(0, 4, (n,), generator=generator),
        "text": torch.randn(n, 4, generator=generator),
        "numeric": torch.randn(n, 3, generator=generator),
    }


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), low=st.floats(-1.5, 1.0), step=st.floats(0.001, 1.0))
def test_expected_units_never_increase_with_price(seed: int, low: float, step: float) -> None:
    torch.manual_seed(seed)
    net = DemandNet(SPEC)
    with torch.no_grad():  # any weights, including extreme ones
        for parameter in net.parameters():
            parameter.mul_(1 + 4 * torch.rand(()).item())
    batch = _batch(64, torch.Generator().manual_seed(seed))
    cheap, elasticity = net(**batch, log_price_ratio=torch.full((64,), low))
    dear, _ = net(**batch, log_price_ratio=torch.full((64,), low + step))
    assert torch.all(elasticity <= 0)
    assert torch.all(dear <= cheap + 1e-6)
    # Finite log units: positive expected units (exp of an extreme log, -104 with these weights at
    # seed 3079, underflows float32 to 0, which says nothing about the model).
    assert torch.all(torch.isfinite(dear))


def _fit_rate(units: torch.Tensor, weight: torch.Tensor, censored: torch.Tensor | None = None) -> float:
    torch.manual_seed(0)
    net = DemandNet(SPEC)
    batch = _batch(len(units), torch.Generator().manual_seed(1))
    batch = {k: torch.zeros_like(v) for k, v in batch.items()}  # one SKU, no features: fit a rate
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        log_mean, _ = net(**batch, log_price_ratio=torch.zeros(len(units)))
        poisson_loss(log_mean, units, weight, censored).backward()
        optimizer.step()
    with torch.no_grad():
        return float(torch.exp(net(**batch, log_price_ratio=torch.zeros(len(units)))[0]).mean())


def test_stockout_days_are_masked_not_learned_as_zero_demand() -> None:
    generator = torch.Generator().manual_seed(3)
    demand = torch.poisson(torch.full((2000,), 5.0), generator=generator)
    stockout = torch.rand(2000, generator=generator) < 0.4
    observed = torch.where(stockout, torch.zeros_like(demand), demand)  # censored: sold nothing
    masked = _fit_rate(observed, (~stockout).float())
    unmasked = _fit_rate(observed, torch.ones(2000))
    assert abs(masked - 5.0) < 0.25
    assert unmasked < 3.5


def test_sold_out_days_bound_demand_from_below() -> None:
    # Stock of 4 a day against demand of mean 5: most days sell out. Dropping them keeps only the
    # weak days (the estimate falls far below 5); reading their sales as demand caps it at about 4;
    # the censored likelihood (demand >= what sold) recovers the rate.
    generator = torch.Generator().manual_seed(5)
    demand = torch.poisson(torch.full((3000,), 5.0), generator=generator)
    sold = torch.clamp(demand, max=4.0)
    out = demand >= 4
    censored = _fit_rate(sold, torch.ones(3000), out.float())
    assert abs(censored - 5.0) < 0.25
    assert _fit_rate(sold, (~out).float()) < 3.0
    assert _fit_rate(sold, torch.ones(3000)) < 4.0
    # A censored day that sold nothing says nothing: it has no weight, whatever the rate.
    zero = poisson_loss(torch.zeros(2), torch.zeros(2), torch.ones(2), torch.tensor([1.0, 0.0]))
    assert torch.isclose(zero, torch.tensor(1.0))  # only the uncensored row: mean 1, 0 units -> 1


def test_elasticity_reads_only_the_configured_product_inputs() -> None:
    torch.manual_seed(0)
    batch = _batch(32, torch.Generator().manual_seed(1))
    other = {**batch, "brand": (batch["brand"] + 1) % 4, "text": torch.randn(32, 4)}  # same SKUs, categories
    zero = torch.zeros(32)
    pooled = DemandNet(NetSpec(**{**SPEC.to_dict(), "elasticity_inputs": ["category"]}))
    assert torch.equal(pooled(**batch, log_price_ratio=zero)[1], pooled(**other, log_price_ratio=zero)[1])
    # A model saved before the setting existed has no such key: it reads category, brand and text.
    saved = {k: v for k, v in SPEC.to_dict().items() if k != "elasticity_inputs"}
    full = DemandNet(NetSpec(**saved))
    full.load_state_dict(DemandNet(SPEC).state_dict())
    assert not torch.equal(full(**batch, log_price_ratio=zero)[1], full(**other, log_price_ratio=zero)[1])


def _frame(skus: list[int]) -> pd.DataFrame:
    n = len(skus)
    return pd.DataFrame(
        {
            "sku_idx": skus,
            "category_idx": [1] * n,
            "brand_idx": [1] * n,
            "numeric": [np.zeros(3, np.float32)] * n,
            "text": [np.zeros(4, np.float32)] * n,
            "log_price_ratio": np.zeros(n, np.float32),
        }
    )


def _still_and_moving(n: int, spread: float) -> dict[str, torch.Tensor]:
    """n rows each of SKU 1, always at one price, and SKU 2, at log prices spread evenly over +-spread
    (one category, no features; the caller adds the units)."""
    return {
        "sku": torch.tensor([1] * n + [2] * n),
        "category": torch.ones(2 * n, dtype=torch.long),
        "brand": torch.ones(2 * n, dtype=torch.long),
        "text": torch.zeros(2 * n, 4),
        "numeric": torch.zeros(2 * n, 3),
        "log_price_ratio": torch.cat([torch.zeros(n), torch.linspace(-spread, spread, n)]),
        "weight": torch.ones(2 * n),
    }


def test_laplace_interval_is_wide_where_the_sku_own_prices_say_little() -> None:
    torch.manual_seed(0)
    ensemble = Ensemble(SPEC, members=2)
    n = 400
    # SKU 1 always sold at one price; SKU 2 at prices spread +-20 %, with plenty of sales.
    data = {**_still_and_moving(n, 0.2), "units": torch.full((2 * n,), 20.0)}
    u_sd = elasticity_u_sd(ensemble, data, SPEC.n_skus, prior_sd=0.35)
    assert u_sd.shape == (2, SPEC.n_skus + 1)
    # The category's own elasticity: identified by its SKUs' price variation (SKU 2's), while a
    # category whose prices never moved (2: no rows at all here) keeps its prior.
    _, category_sd = elasticity_sds(
        ensemble, data, SPEC.n_skus, prior_sd=0.35, n_categories=2, category_prior_sd=1.0
    )
    assert category_sd.shape == (2, 3)
    assert torch.allclose(category_sd[:, [0, 2]], torch.tensor(1.0, dtype=torch.float64))
    assert torch.all(category_sd[:, 1] < 1.0 - 1e-4)
    flat = {**data, "log_price_ratio": torch.zeros(2 * n)}
    _, unmoved = elasticity_sds(ensemble, flat, SPEC.n_skus, prior_sd=0.35, n_categories=2)
    assert torch.allclose(unmoved, torch.tensor(1.0, dtype=torch.float64))
    assert torch.allclose(u_sd[:, [0, 1, 3]], torch.tensor(0.35, dtype=torch.float64))  # unseen, no info
    assert torch.all(u_sd[:, 2] < 0.35)

    buffer = io.BytesIO()
    torch.save(
        {"ensemble": ensemble.state_dict(), "nuisance": Nuisance(SPEC).state_dict(), "elasticity_u_sd": u_sd},
        buffer,
    )
    config = {"net": SPEC.to_dict(), "ensemble_size": 2, "debias": False}
    laplace = LoadedModel(buffer.getvalue(), {**config, "elasticity_interval": "laplace"}).predict(
        _frame([1, 2])
    )
    width = laplace["elasticity_high"] - laplace["elasticity_low"]
    assert width[0] > width[1] > 0
    assert (laplace["elasticity_low"] <= laplace["elasticity"]).all()
    assert (laplace["elasticity"] <= laplace["elasticity_high"]).all() and (
        laplace["elasticity_high"] <= 0
    ).all()
    # Without the setting (models saved before it) the interval is the members' min-max, as before.
    ensemble_only = LoadedModel(buffer.getvalue(), config).predict(_frame([1, 2]))
    assert (ensemble_only["elasticity_high"] - ensemble_only["elasticity_low"] < width).all()

    # A model whose holdout said its elasticities are too inelastic (slope 1.3) stretches each interval
    # towards 1.3 x, on the elastic side only; one that said too elastic (0.7), on the other side.
    laplace_config = {**config, "elasticity_interval": "laplace"}
    for slope in (1.3, 0.7):
        stretched = LoadedModel(buffer.getvalue(), {**laplace_config, "interval_stretch": slope}).predict(
            _frame([1, 2])
        )
        assert np.allclose(stretched["elasticity"], laplace["elasticity"])
        assert np.allclose(stretched["expected_units"], laplace["expected_units"])
        low, high = laplace["elasticity_low"], laplace["elasticity_high"]
        assert np.allclose(stretched["elasticity_low"], np.minimum(low, slope * low))
        assert np.allclose(stretched["elasticity_high"], np.maximum(high, slope * high))
        assert (stretched["elasticity_high"] - stretched["elasticity_low"] > width).all()


def test_intervals_stretch_only_where_the_holdout_slope_is_clear_of_one() -> None:
    from pricing.model.train import interval_stretch

    clear = {"price_change_rows": 400.0, "price_response_slope": 1.2, "price_response_slope_se": 0.05}
    assert interval_stretch(clear, 1.5) == pytest.approx(1.2)
    assert interval_stretch(clear, 0.0) == 1.0  # off
    assert interval_stretch({**clear, "price_response_slope_se": 0.2}, 1.5) == 1.0  # inside 1.5 se
    assert interval_stretch({**clear, "price_change_rows": 12.0}, 1.5) == 1.0  # too few moved days
    assert interval_stretch({**clear, "price_response_slope": float("nan")}, 1.5) == 1.0
    assert interval_stretch({**clear, "price_response_slope": -0.5}, 1.5) == 1.0  # not a response


def _spec(**changes: object) -> WorkerSpec:
    base = WorkerSpec(
        train_dir="",
        net=SPEC.to_dict(),
        epochs=30,
        nuisance_epochs=30,
        batch_size=256,
        learning_rate=0.02,
        weight_decay=0.0,
        ensemble_size=1,
        debias=False,
        seed=0,
        backend="local",
        use_gpu=False,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def _confounded_market(n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Prices cut when an observed signal is weak, which also lowers demand (true elasticity -2)."""
    signal = torch.randn(n, generator=generator)
    # Markdown when the signal is weak (confounding through an observed feature) plus random depth.
    log_price = torch.where(signal < -0.3, -0.15, 0.0) + 0.08 * torch.randn(n, generator=generator)
    mean = torch.exp(2.0 + 0.6 * signal - 2.0 * log_price)
    return {
        "sku": torch.randint(1, 6, (n,), generator=generator),
        "category": torch.ones(n, dtype=torch.long),
        "brand": torch.ones(n, dtype=torch.long),
        "text": torch.zeros(n, 4),
        "numeric": torch.stack([signal, torch.zeros(n), torch.zeros(n)], dim=1),
        "log_price_ratio": log_price,
        "units": torch.poisson(mean, generator=generator),
        "weight": torch.ones(n),
        "fold": torch.randint(0, 2, (n,), generator=generator),
    }


def test_one_process_recovers_a_known_elasticity_with_either_fit() -> None:
    """Prices cut when an observed signal is weak, which also lowers demand: both fits must see through it."""
    data = _confounded_market(4000, torch.Generator().manual_seed(3))
    for debias in (False, True):
        spec = _spec(debias=debias)
        torch.manual_seed(0)
        rows, comm = dict(data), LocalComm()
        if debias:
            cross_fit_nuisances(comm, rows, SPEC, spec)
            assert {"offset", "base"} <= rows.keys()
        ensemble, losses, _ = fit_ensemble(comm, rows, SPEC, spec)
        assert debias or losses[-1] < losses[0]  # the debiased fit starts from the demand nuisance
        with torch.no_grad():
            _, elasticity = ensemble(rows, rows.get("offset"), rows.get("base"))
        assert abs(float(elasticity.mean()) + 2.0) < 0.3, (debias, float(elasticity.mean()))


def test_a_large_panel_takes_larger_batches_and_a_small_one_trains_as_before() -> None:
    comm = LocalComm()
    small = _spec(max_steps_per_epoch=200)
    # Up to 200 batches of 256 nothing changes (the evaluation markets and the demo are far below).
    assert _plan(comm, 51_200, small) == StepPlan(256, 200, 0.02, 256)
    assert _plan(comm, 10_000, small) == StepPlan(256, 40, 0.02, 256)
    # Above, the batch grows to keep 200 steps, the learning rate with its square root.
    assert _plan(comm, 204_800, small) == StepPlan(1024, 200, 0.04, 1024)
    # Unset (how a notebook's WorkerSpec trains): always the configured batch.
    assert _plan(comm, 204_800, _spec()) == StepPlan(256, 800, 0.02, 256)


class _EqualRanks(LocalComm):
    """The collectives of ``size`` processes that each hold the same number of rows."""

    def __init__(self, size: int) -> None:
        self.size = size

    def allreduce(self, tensor: torch.Tensor, op: str) -> torch.Tensor:
        return tensor * self.size if op == "sum" else tensor.clone()


@pytest.mark.parametrize("processes", [2, 8])
def test_a_fit_takes_the_same_steps_on_any_number_of_processes(processes: int) -> None:
    """The processes share the group's batch: each epoch takes the steps one process holding every row
    would, at its rate (each process taking a whole batch cut a small panel's steps N-fold, and fewer
    steps are not made up by a larger rate, docs/training.md)."""
    small = _spec(max_steps_per_epoch=200)
    for rows in (10_000, 51_200, 204_800, 1_000_000):
        alone = _plan(LocalComm(), rows, small)
        shared = _plan(_EqualRanks(processes), rows // processes, small)
        assert (shared.steps, shared.learning_rate) == (alone.steps, alone.learning_rate), rows
        assert shared.group_batch_size == alone.group_batch_size == alone.batch_size
        assert shared.batch_size == math.ceil(alone.batch_size / processes)


def test_larger_batches_still_recover_a_known_elasticity() -> None:
    """The confounded market of the test above, ten times larger, trained on 40 steps an epoch (1,200
    in all; 600 were too few: a fit needs enough steps, whatever their size, docs/training.md)."""
    n = 40_000
    data = _confounded_market(n, torch.Generator().manual_seed(5))
    spec = _spec(max_steps_per_epoch=40)
    assert _plan(LocalComm(), n, spec).batch_size == 1000
    torch.manual_seed(0)
    ensemble, losses, _ = fit_ensemble(LocalComm(), data, SPEC, spec)
    assert losses[-1] < losses[0]
    with torch.no_grad():
        _, elasticity = ensemble(data, None)
    assert abs(float(elasticity.mean()) + 2.0) < 0.2, float(elasticity.mean())


def test_a_fit_that_diverges_stops_with_a_clear_error() -> None:
    """A rare input far out of scale at a reckless learning rate overflows exp(): the fit must say so
    itself instead of handing NaN weights on (seen on a 2,000-SKU panel, docs/training.md)."""
    generator = torch.Generator().manual_seed(1)
    n = 2000
    numeric = torch.zeros(n, 3)
    numeric[::500, 0] = 120.0  # a rare flag, standardised
    data = {
        "sku": torch.randint(1, 6, (n,), generator=generator),
        "category": torch.ones(n, dtype=torch.long),
        "brand": torch.ones(n, dtype=torch.long),
        "text": torch.zeros(n, 4),
        "numeric": numeric,
        "log_price_ratio": 0.1 * torch.randn(n, generator=generator),
        "units": torch.poisson(torch.full((n,), 3.0), generator=generator),
        "weight": torch.ones(n),
        "fold": torch.zeros(n, dtype=torch.long),
    }
    torch.manual_seed(0)
    with pytest.raises(TrainingDiverged, match="diverged"):
        fit_ensemble(LocalComm(), data, SPEC, _spec(learning_rate=50.0, epochs=5))


def _weekday_market(n_weeks: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """5 SKUs, each with its own weekly profile, discounted on its own two weakest weekdays (true
    elasticity -2): the price follows each SKU's weekly pattern."""
    sku = torch.arange(1, 6).repeat_interleave(7 * n_weeks)
    dow = torch.arange(7).repeat(n_weeks).repeat(5)
    phase = (sku * 2) % 7
    weekly = 0.5 * torch.cos(2 * torch.pi * (dow - phase) / 7)
    weak = weekly < -0.2
    log_price = torch.where(weak, -0.15, 0.0) + 0.06 * torch.randn(len(sku), generator=generator)
    mean = torch.exp(2.0 + weekly - 2.0 * log_price)
    return {
        "sku": sku,
        "category": torch.ones(len(sku), dtype=torch.long),
        "brand": torch.ones(len(sku), dtype=torch.long),
        "text": torch.zeros(len(sku), 4),
        "numeric": torch.nn.functional.one_hot(dow, 7).float(),
        "log_price_ratio": log_price,
        "units": torch.poisson(mean, generator=generator),
        "weight": torch.ones(len(sku)),
        "fold": torch.randint(0, 2, (len(sku),), generator=generator),
    }


def test_each_skus_weekly_profile_keeps_weekday_discounts_out_of_the_elasticity() -> None:
    data = _weekday_market(60, torch.Generator().manual_seed(5))
    spec_net = NetSpec(
        n_skus=5,
        n_categories=2,
        n_brands=3,
        text_dim=4,
        n_numeric=7,
        hidden=8,
        weekday_columns=list(range(7)),
    )
    spec = _spec(net=spec_net.to_dict(), epochs=40, nuisance_epochs=40, batch_size=128, sku_weekday_sd=0.5)
    torch.manual_seed(0)
    ensemble, _, _ = fit_ensemble(LocalComm(), dict(data), spec_net, spec)
    member = ensemble.members[0]
    assert isinstance(member, DemandNet)
    profile = member.sku_weekday.weight.detach().view(6, 7)[1:]
    assert float(profile.std(dim=1).mean()) > 0.15  # each SKU's weekly swing is in its own profile
    with torch.no_grad():
        _, elasticity = ensemble(data, None)
    assert abs(float(elasticity.mean()) + 2.0) < 0.3, float(elasticity.mean())


def test_laplace_interval_widens_with_over_dispersed_sales() -> None:
    torch.manual_seed(0)
    ensemble = Ensemble(SPEC, members=1)
    generator = torch.Generator().manual_seed(1)
    n = 600
    base = {
        "sku": torch.tensor([2] * n),
        "category": torch.ones(n, dtype=torch.long),
        "brand": torch.ones(n, dtype=torch.long),
        "text": torch.zeros(n, 4),
        "numeric": torch.zeros(n, 3),
        "log_price_ratio": torch.linspace(-0.2, 0.2, n),
        "weight": torch.ones(n),
    }
    with torch.no_grad():
        mean = torch.exp(ensemble(base, None)[0][0])
    poisson = torch.poisson(mean, generator=generator)
    # Negative binomial with shape 0.5: variance mu + 2 mu^2.
    gamma = torch.distributions.Gamma(torch.full((n,), 0.5), torch.full((n,), 0.5)).sample()
    overdispersed = torch.poisson(mean * gamma, generator=generator)
    sd_poisson = elasticity_u_sd(ensemble, {**base, "units": poisson}, SPEC.n_skus, prior_sd=10.0)[0, 2]
    sd_over = elasticity_u_sd(ensemble, {**base, "units": overdispersed}, SPEC.n_skus, prior_sd=10.0)[0, 2]
    assert float(sd_over) > 1.3 * float(sd_poisson)  # Poisson-only information: about equal


def test_a_product_whose_prices_never_moved_keeps_the_prior_elasticity() -> None:
    """No price variation, nothing learned about the response: the elasticity stays at the configured
    prior centre, and a model saved before the setting existed keeps its old centre (-softplus(0))."""
    generator = torch.Generator().manual_seed(2)
    n = 1500
    data = {
        **_batch(n, generator),
        "log_price_ratio": torch.zeros(n),
        "units": torch.poisson(torch.full((n,), 4.0), generator=generator),
        "weight": torch.ones(n),
        "fold": torch.zeros(n, dtype=torch.long),
    }
    for prior in (-2.0, -1.0):
        net = {**SPEC.to_dict(), "elasticity_prior": prior}
        spec = _spec(net=net, epochs=10, nuisance_epochs=10, weight_decay=1e-4)
        torch.manual_seed(0)
        ensemble, _, _ = fit_ensemble(LocalComm(), dict(data), NetSpec(**net), spec)
        with torch.no_grad():
            _, elasticity = ensemble(data, None)
        assert torch.allclose(elasticity, torch.tensor(prior), atol=0.15), (prior, float(elasticity.mean()))
    saved = {k: v for k, v in SPEC.to_dict().items() if k != "elasticity_prior"}
    untrained = DemandNet(NetSpec(**saved))
    torch.nn.init.zeros_(untrained.elasticity_head[-1].weight)
    torch.nn.init.zeros_(untrained.elasticity_head[-1].bias)
    _, old = untrained(**_batch(4, generator), log_price_ratio=torch.zeros(4))
    assert torch.allclose(old, torch.tensor(-float(torch.nn.functional.softplus(torch.tensor(0.0)))))


def test_price_variation_the_inputs_explain_is_no_information_about_the_elasticity() -> None:
    """Both SKUs' prices follow a feature the base reads (their recent average price, say); SKU 2's also
    move beyond it. Only that unexplained variation narrows an interval."""
    torch.manual_seed(0)
    ensemble = Ensemble(SPEC, members=1)
    generator = torch.Generator().manual_seed(4)
    n = 800
    feature = torch.randn(2 * n, generator=generator)
    moves = 0.1 * torch.randn(2 * n, generator=generator)
    sku = torch.tensor([1] * n + [2] * n)
    log_price = 0.1 * feature + torch.where(sku == 2, moves, torch.zeros(2 * n))
    data = {
        "sku": sku,
        "category": torch.ones(2 * n, dtype=torch.long),
        "brand": torch.ones(2 * n, dtype=torch.long),
        "text": torch.zeros(2 * n, 4),
        "numeric": torch.stack([feature, torch.zeros(2 * n), torch.zeros(2 * n)], dim=1),
        "log_price_ratio": log_price,
        "weight": torch.ones(2 * n),
    }
    with torch.no_grad():
        data["units"] = torch.poisson(torch.exp(ensemble(data, None)[0][0]), generator=generator)
    u_sd = elasticity_u_sd(ensemble, data, SPEC.n_skus, prior_sd=1.0)[0]
    assert float(u_sd[1]) > 0.99  # explained: the prior's sd
    assert float(u_sd[2]) < 0.8


def _write_shard(folder: Path, **columns: Any) -> None:
    """One training shard file of three rows (SKUs 1-3) in ``folder``: ``columns`` beside the rest."""
    folder.mkdir()
    rows = {
        "sku_idx": [1, 2, 3],
        "category_idx": [1, 1, 1],
        "brand_idx": [1, 1, 1],
        "numeric": [[0.5], [0.0], [-0.5]],
        "log_price_ratio": [0.0, 0.1, -0.1],
        "units": [1.0, 2.0, 3.0],
        "fold": [0, 1, 0],
        **columns,
    }
    pq.write_table(pa.table(rows), folder / "part-0.parquet")


def test_shards_that_name_texts_by_hash_read_unknown_and_missing_ones_as_zeros(tmp_path: Path) -> None:
    _write_shard(tmp_path / "train", text_hash=["a", "gone", None], weight=[1.0, 1.0, 1.0])
    (tmp_path / "texts").mkdir()
    texts = pa.table({"text_hash": ["b", "a"], "text": [[9.0, 9.0], [1.0, 2.0]]})
    pq.write_table(texts, tmp_path / "texts" / "part-0.parquet")
    data = read_shard(str(tmp_path / "train"), 0, 1, texts_dir=str(tmp_path / "texts"))
    assert torch.equal(data["text"], torch.tensor([[1.0, 2.0], [0.0, 0.0], [0.0, 0.0]]))
    assert torch.equal(data["sku"], torch.tensor([1, 2, 3]))


def test_processes_share_the_rows_when_there_are_fewer_files_than_processes(tmp_path: Path) -> None:
    # Spark wrote a run's rows as one file where four were asked for: each of 2 processes must still
    # get rows (a process without any made the group take no steps, and an untrained model was kept).
    _write_shard(tmp_path / "train", text=[[1.0], [2.0], [3.0]], weight=[1.0, 1.0, 1.0])
    shares = [read_shard(str(tmp_path / "train"), rank, 2) for rank in (0, 1)]
    assert [share["sku"].tolist() for share in shares] == [[1, 3], [2]]
    assert [share["units"].tolist() for share in shares] == [[1.0, 3.0], [2.0]]
    assert [share["text"].tolist() for share in shares] == [[[1.0], [3.0]], [[2.0]]]
    # With as many files as processes, each reads its own file whole, as before.
    _write_shard(tmp_path / "second", text=[[1.0], [2.0], [3.0]], weight=[1.0, 1.0, 1.0])
    (tmp_path / "second" / "part-0.parquet").rename(tmp_path / "train" / "part-1.parquet")
    assert [len(read_shard(str(tmp_path / "train"), rank, 2)["units"]) for rank in (0, 1)] == [3, 3]


def test_a_fit_without_rows_stops_instead_of_keeping_untrained_weights() -> None:
    empty = {
        "sku": torch.zeros(0, dtype=torch.long),
        "category": torch.zeros(0, dtype=torch.long),
        "brand": torch.zeros(0, dtype=torch.long),
        "text": torch.zeros(0, 4),
        "numeric": torch.zeros(0, 3),
        "log_price_ratio": torch.zeros(0),
        "units": torch.zeros(0),
        "weight": torch.zeros(0),
        "fold": torch.zeros(0, dtype=torch.long),
    }
    with pytest.raises(NoTrainingRows, match="no rows"):
        fit_ensemble(LocalComm(), empty, SPEC, _spec(epochs=2))


def test_the_rows_marked_as_own_price_tests_leave_the_fit_when_asked(tmp_path: Path) -> None:
    # SKU 2's tested day sold out: out of the fit, censoring included; SKU 3's was not tested.
    _write_shard(
        tmp_path / "train",
        text=[[1.0], [1.0], [1.0]],
        weight=[1.0, 0.0, 1.0],
        censored=[0.0, 1.0, 0.0],
        own_test=pa.array([1.0, 0.0, None], pa.float32()),
    )
    every_row = read_shard(str(tmp_path / "train"), 0, 1)
    assert "own_test" not in every_row and every_row["weight"].tolist() == [1.0, 0.0, 1.0]
    data = read_shard(str(tmp_path / "train"), 0, 1, ("own_test",))
    hold_out_own_tests(data)
    assert "own_test" not in data
    assert data["weight"].tolist() == [0.0, 0.0, 1.0] and data["censored"].tolist() == [0.0, 0.0, 0.0]
    assert torch.equal(data["units"], every_row["units"])


@pytest.mark.parametrize("truth_sd", [0.15, 0.35, 0.8])
def test_the_prior_sd_of_sku_deviations_is_the_one_their_prices_support(truth_sd: float) -> None:
    """Unpooled deviations drawn with sd ``truth_sd`` around their category, each measured with variance
    1 / info, give that sd back, smaller or larger than the starting 0.35. A category the head got wrong
    shifts all its SKUs one way: that is not scatter. SKUs whose prices say nothing take no part."""
    generator = torch.Generator().manual_seed(11)
    info = torch.cat([torch.zeros(1), torch.linspace(0.5, 60.0, 900)]).double()  # index 0: unseen
    category = torch.arange(901) % 6
    head_error = torch.tensor([0.0, 1.5, -1.0, 0.5, 2.0, -0.5], dtype=torch.float64)[category]
    true = truth_sd * torch.randn(2, 901, generator=generator, dtype=torch.float64)
    noise = torch.randn(2, 901, generator=generator, dtype=torch.float64) / info.clamp_min(1e-9).sqrt()
    unpooled = torch.where(info > 0, head_error + true + noise, torch.zeros(()))
    estimate = fit_sku_prior_sd(unpooled, info.expand(2, -1), 0.35, category)
    assert abs(estimate - truth_sd) < 0.1 * truth_sd + 0.03, estimate
    assert fit_sku_prior_sd(unpooled, info.expand(2, -1), 0.35) > truth_sd + 0.5  # read as one category
    silent = torch.zeros(1, 901, dtype=torch.float64)
    assert fit_sku_prior_sd(silent, silent, prior_sd=0.35) == 0.35


@pytest.mark.parametrize("scatter", [0.8, 0.05])
def test_training_learns_how_far_skus_stray_from_their_category(scatter: float) -> None:
    """40 SKUs of one category, each with its own price tests. Where their elasticities scatter widely
    (sd 0.8 around it, in the softplus's argument) the fitted prior sd grows towards that scatter, and
    the SKUs' elasticities come closer to their own than under the fixed 0.35, which pools them too
    hard. Where they hardly differ (0.05) it stays at the configured 0.35, the least it can be."""
    generator = torch.Generator().manual_seed(6)
    n_skus, days = 40, 120
    net = NetSpec(n_skus=n_skus, n_categories=1, n_brands=1, text_dim=4, n_numeric=3, hidden=8)
    argument = 1.85 + scatter * torch.randn(n_skus + 1, generator=generator)
    true_elasticity = -torch.nn.functional.softplus(argument)
    sku = torch.arange(1, n_skus + 1).repeat_interleave(days)
    log_price = 0.12 * torch.randn(len(sku), generator=generator)
    data = {
        "sku": sku,
        "category": torch.ones(len(sku), dtype=torch.long),
        "brand": torch.ones(len(sku), dtype=torch.long),
        "text": torch.zeros(len(sku), 4),
        "numeric": torch.zeros(len(sku), 3),
        "log_price_ratio": log_price,
        "units": torch.poisson(torch.exp(2.0 + true_elasticity[sku] * log_price), generator=generator),
        "weight": torch.ones(len(sku)),
        "fold": torch.zeros(len(sku), dtype=torch.long),
    }
    errors = {}
    for fit in (False, True):
        spec = _spec(net={**net.to_dict(), "elasticity_prior": -2.0}, epochs=30, fit_sku_elasticity_sd=fit)
        torch.manual_seed(0)
        ensemble, _, _ = fit_ensemble(LocalComm(), dict(data), NetSpec(**spec.net), spec)
        with torch.no_grad():
            _, elasticity = ensemble(data, None)
        errors[fit] = float((elasticity[0] - true_elasticity[sku]).abs().mean())
        if not fit:
            assert ensemble.sku_elasticity_sd is None
        elif scatter > 0.35:
            assert ensemble.sku_elasticity_sd is not None and 0.55 < ensemble.sku_elasticity_sd < 1.1, (
                ensemble.sku_elasticity_sd
            )
        else:
            assert ensemble.sku_elasticity_sd == 0.35
    if scatter > 0.35:
        assert errors[True] < 0.9 * errors[False], errors
    else:
        assert errors[True] == pytest.approx(errors[False], rel=0.05), errors


def test_a_sku_whose_own_prices_pin_its_elasticity_borrows_little_of_its_categorys_doubt() -> None:
    """Of the category's uncertainty only the share a SKU's estimate borrows from its category reaches
    its interval (u_sd² / prior sd²): all of it where the SKU's prices never moved, little where they
    moved a lot. A model saved before the prior sd was stored passes all of it to every SKU."""
    torch.manual_seed(0)
    ensemble = Ensemble(SPEC, members=1)
    n = 2000
    data = _still_and_moving(n, 0.5)
    with torch.no_grad():  # sales as the model expects them: Poisson, no over-dispersion
        data["units"] = torch.poisson(
            torch.exp(ensemble(data, None)[0][0]), generator=torch.Generator().manual_seed(3)
        )
    u_sd, category_sd = elasticity_sds(
        ensemble, data, SPEC.n_skus, 0.35, n_categories=2, category_prior_sd=3.0
    )
    weights = {"ensemble": ensemble.state_dict(), "nuisance": Nuisance(SPEC).state_dict()}
    weights |= {"elasticity_u_sd": u_sd, "elasticity_category_sd": category_sd}
    config = {"net": SPEC.to_dict(), "ensemble_size": 1, "debias": False, "elasticity_interval": "laplace"}
    widths = []
    for stored in (True, False):
        saved = weights | (
            {"elasticity_sku_prior_sd": torch.tensor([0.35], dtype=torch.float64)} if stored else {}
        )
        buffer = io.BytesIO()
        torch.save(saved, buffer)
        interval = LoadedModel(buffer.getvalue(), config).predict(_frame([1, 2]))
        widths.append((interval["elasticity_high"] - interval["elasticity_low"]).to_numpy())
    borrowed, old = widths
    assert borrowed[0] == pytest.approx(old[0])  # prices never moved: the category's doubt is all its own
    assert borrowed[1] < 0.8 * old[1]
    assert borrowed[1] < borrowed[0]

    # The interval's two parts: the still SKU carries its category's whole sd as the shared part, the
    # moving one little of it; together they are the interval predict gives.
    buffer = io.BytesIO()
    torch.save(weights | {"elasticity_sku_prior_sd": torch.tensor([0.35], dtype=torch.float64)}, buffer)
    model = LoadedModel(buffer.getvalue(), config)
    parts, interval = model.interval_parts(_frame([1, 2])), model.predict(_frame([1, 2]))
    assert parts["shared_sd"].iloc[0] == pytest.approx(float(category_sd[0, 1]))  # _frame: category 1
    assert parts["shared_sd"].iloc[1] < 0.5 * parts["shared_sd"].iloc[0]
    sd = torch.tensor(np.hypot(parts["own_sd"], parts["shared_sd"]).to_numpy())
    centre = torch.tensor(parts["centre"].to_numpy())
    assert np.allclose(
        -torch.nn.functional.softplus(centre + model.z * sd), interval["elasticity_low"], atol=1e-5
    )
    assert np.allclose(
        -torch.nn.functional.softplus(centre - model.z * sd), interval["elasticity_high"], atol=1e-5
    )
    with pytest.raises(ValueError, match="laplace"):
        LoadedModel(buffer.getvalue(), {**config, "elasticity_interval": "ensemble"}).interval_parts(
            _frame([1])
        )
