"""Evaluation markets and their judge: exact truth, the landing contract, numbers on hand-built rows."""

from __future__ import annotations

import ast
import math
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession

from pricing.config import PolicyConfig, PricingConfig
from pricing.evaluation.families import (
    ALL_FAMILIES,
    FAMILIES,
    HELD_OUT_FAMILIES,
    MARKET_STREAMS,
    Family,
    FamilyMarket,
    generate_market,
    log_units,
    true_elasticity,
)
from pricing.evaluation.guardrails import guardrail_violations
from pricing.evaluation.judge import judged_skus, summarise
from pricing.lakehouse.tables import PRICE_RECOMMENDATIONS, RECONCILIATION, SILVER, SKU_DAY, Lakehouse

PACKAGE = Path(__file__).resolve().parents[2] / "pricing"
# The product's stages: none may see an evaluation market's truth.
PRODUCTION = sorted(
    path for path in PACKAGE.rglob("*.py") if path.relative_to(PACKAGE).parts[0] not in ("evaluation", "sim")
)
NOT_PRODUCTION = {"cli.py"}  # the entry point: it also runs simulations and evaluations


def test_production_code_never_imports_the_evaluation_package() -> None:
    offenders = []
    for path in PRODUCTION:
        if path.name in NOT_PRODUCTION:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("pricing.evaluation")]
    assert offenders == []
    assert len([p for p in PRODUCTION if p.name not in NOT_PRODUCTION]) >= 15


def _curves() -> pd.DataFrame:
    # One SKU per form, each at its reference price 10 (the reference form remembers 10 too).
    return pd.DataFrame(
        {
            "form": ["loglog", "semilog", "linear", "logit", "reference"],
            "log_level": np.log([5.0, 5.0, 5.0, 20.0, 5.0]),
            "curve_ref": 10.0,
            "c1": [-2.0, -2.0, -0.5, 3.0, -1.0],
            "c2": [0.0, 0.0, 0.0, 0.0, 10.0],
            "c3": [0.0, 0.0, 0.0, 2.0, -1.5],
            "c4": [0.0, 0.0, 0.0, 0.0, -0.3],
        }
    )


def test_every_demand_form_has_the_units_and_elasticity_of_its_formula() -> None:
    curves = _curves()
    at_ref = np.exp(log_units(curves, 10.0))
    assert at_ref == pytest.approx([5.0, 5.0, 5.0, 20.0 / 4.0, 5.0])  # logit share 1 / (1 + 2 + 1)
    at_12 = np.exp(log_units(curves, 12.0))
    assert at_12[0] == pytest.approx(5.0 * 1.2**-2.0)
    assert at_12[1] == pytest.approx(5.0 * math.exp(-2.0 * 0.2))
    assert at_12[2] == pytest.approx(5.0 * (1 - 0.5 * 0.2))
    own = math.exp(-3.0 * 0.2)
    assert at_12[3] == pytest.approx(20.0 * own / (3.0 + own))
    assert at_12[4] == pytest.approx(5.0 * 1.2**-1.0 * 1.2**-1.5)  # above the remembered price: the loss side
    assert np.exp(log_units(curves.iloc[[4]], 8.0))[0] == pytest.approx(5.0 * 0.8**-1.0 * 0.8**-0.3)
    e = true_elasticity(curves, 12.0)
    share = own / (3.0 + own)
    expected = [-2.0, -2.0 * 1.2, -0.5 * 1.2 / (1 - 0.5 * 0.2), -3.0 * 1.2 * (1 - share), -2.5]
    assert e == pytest.approx(expected, rel=1e-5)


def test_adding_a_family_leaves_every_earlier_familys_markets_unchanged() -> None:
    # Each family draws from its own random stream; the seven judged since the first robustness run
    # keep theirs, so a recorded market can be generated again from its family and seed.
    assert MARKET_STREAMS[:7] == (
        "linear_costplus",
        "logit_competitor",
        "loglog_weekday",
        "reference_promo",
        "rigid_semilog",
        "semilog_stock",
        "simulator",
    )
    assert sorted(MARKET_STREAMS) == sorted(ALL_FAMILIES) and len(set(MARKET_STREAMS)) == len(MARKET_STREAMS)
    # A held-out family is never among those `make robustness` runs and the defaults were chosen on.
    assert HELD_OUT_FAMILIES and not set(HELD_OUT_FAMILIES) & set(FAMILIES)


def _small_market(
    spark: SparkSession, cfg: PricingConfig, tmp_path: Path, family: Family
) -> tuple[FamilyMarket, pd.DataFrame]:
    """``family``'s market of 12 SKUs x 30 days (seed 3) and its truth's days, whose curves give
    exactly the expected demand the market was drawn with."""
    sim = cfg.simulate.model_copy(update={"n_skus": 12, "n_days": 30, "seed": 3})
    market = generate_market(spark, family, sim, str(tmp_path / "market"), str(tmp_path / "truth"))
    days = spark.read.parquet(market.truth + "/sku_day").toPandas()
    assert np.allclose(np.exp(log_units(days, days["price"])), days["expected_demand"])
    return market, days


@pytest.mark.parametrize("name", ["loglog_weekday", "rigid_semilog", "linear_costplus", "loglog_elastic"])
def test_family_markets_carry_exact_truth(
    spark: SparkSession, cfg: PricingConfig, tmp_path: Path, name: str
) -> None:
    market, days = _small_market(spark, cfg, tmp_path, FAMILIES[name])
    assert len(days) == 12 * 31 and days["date"].max() == date.fromisoformat(market.price_date)
    assert market.price_date == (cfg.simulate.start_date + timedelta(days=30)).isoformat()
    # Stock censors sales, never the other way round.
    assert (days["units_sold"] <= days["demand"]).all()
    assert ((days["units_sold"] < days["demand"]) == days["censored"]).all()
    if FAMILIES[name].demand == "loglog":
        # The truth's per-SKU elasticity is the curve's, scaled families included.
        params = spark.read.parquet(market.truth + "/sku_params").toPandas().set_index("sku")
        assert np.allclose(days.groupby("sku")["c1"].first(), params["elasticity"].loc[sorted(params.index)])
    if name == "loglog_elastic":
        # Beyond the simulator's range (-3.5 to -0.6): the prior's centre is not this shop's.
        assert params["elasticity"].min() < -3.5 and params["elasticity"].max() < -0.6 * 1.8 + 1e-9
    spread = days.groupby("sku")["price"].agg(lambda p: np.log(p).std()).mean()
    if name == "rigid_semilog":
        assert spread < 0.03  # almost no price variation
    else:
        assert spread > 0.01
    landing = sorted(p.name for p in Path(market.market).iterdir())
    assert landing == ["catalog", "clickstream", "competitor_prices", "fx_rates", "inventory", "transactions"]
    folders = {p.name for p in Path(market.market, "transactions").glob("day=*")}
    # Every simulated day has its orders (re-delivered duplicates also land two days later).
    assert {f"day={cfg.simulate.start_date + timedelta(days=d)}" for d in range(31)} <= folders


@pytest.mark.parametrize("name", ["loglog_anticipated", "loglog_anticipated_elastic"])
def test_the_anticipating_shop_prices_with_demand_its_data_does_not_show(
    spark: SparkSession, cfg: PricingConfig, tmp_path: Path, name: str
) -> None:
    family = ALL_FAMILIES[name]
    market, days = _small_market(spark, cfg, tmp_path, family)
    ordinary = days[~days["promo_scheduled"] & ~days["price_test"]]
    gap = np.log(ordinary["price"] / ordinary["ref_price"])
    # The price moves with the day's hidden demand shock: the confounder is the retailer's, not the data's.
    assert np.corrcoef(gap, ordinary["shock"])[0, 1] > 0.7
    # Its traffic does not reveal the shock (views follow the SKU's usual demand, not the day's).
    assert not family.traffic_follows_shock
    if name == "loglog_anticipated_elastic":
        # Its shoppers are 1.8x as price-sensitive: for most SKUs the list price sits above the
        # profit-maximising e / (1 + e) times cost.
        params = spark.read.parquet(market.truth + "/sku_params").toPandas()
        e = params["elasticity"].to_numpy()
        assert e.max() < -0.6 * 1.8 + 1e-9
        best_markup = e / (1 + e)
        assert (params["ref_price"] / params["unit_cost"] > best_markup).mean() > 0.5


def test_the_second_held_out_shops_elasticity_follows_the_week(
    spark: SparkSession, cfg: PricingConfig, tmp_path: Path
) -> None:
    family = HELD_OUT_FAMILIES["loglog_weekly_sensitivity"]
    market, days = _small_market(spark, cfg, tmp_path, family)
    params = spark.read.parquet(market.truth + "/sku_params").toPandas().set_index("sku")
    days = days.join(params[["elasticity", "weekly_peak_dow"]], on="sku")
    ratio = days["c1"] / days["elasticity"]
    # Up to exp(0.5) times the SKU's elasticity on its busiest weekday, down to exp(-0.5) three days on.
    assert ratio.max() < math.exp(0.5) + 1e-9 and ratio.min() > math.exp(-0.5) - 1e-9
    weekday = pd.to_datetime(days["date"]).dt.dayofweek
    busiest, quiet = weekday == days["weekly_peak_dow"], weekday == (days["weekly_peak_dow"] + 3) % 7
    assert (ratio[busiest] > 1.28).all() and (ratio[quiet] < 0.8).all()
    # The same weekday, the same elasticity: it follows the week, nothing else.
    assert days.assign(weekday=weekday).groupby(["sku", "weekday"])["c1"].nunique().max() == 1
    # The retailer's discounts fall on the quiet days, whose shoppers respond least.
    discounted = days[days["discounted"]]
    assert len(discounted) > 0 and (discounted["c1"] / discounted["elasticity"]).max() < 0.8
    with pytest.raises(ValueError, match="weekly elasticity swing"):
        Family("x", "logit", (), "", weekly_elasticity_swing=0.5)


def test_the_held_out_lifecycle_shop_marks_down_as_its_products_age(
    spark: SparkSession, cfg: PricingConfig, tmp_path: Path
) -> None:
    market, days = _small_market(spark, cfg, tmp_path, HELD_OUT_FAMILIES["linear_lifecycle"])
    ordinary = days[~days["promo_scheduled"] & ~days["price_test"]].sort_values(["sku", "day_idx"])
    gap = np.log(ordinary["price"] / ordinary["ref_price"])
    # A markdown is never taken back: outside promotions each SKU's price only steps down.
    assert (gap.groupby(ordinary["sku"]).diff().dropna() < 1e-2).all()
    aged = ordinary.groupby("sku")["markdown_triggered"].transform("any")
    assert 0 < aged.groupby(ordinary["sku"]).first().sum() < 12
    # The cuts follow the product's age (the decline of its demand, which no price caused), not the
    # day's demand: within a SKU, the price falls with the days.
    within = gap - gap.groupby(ordinary["sku"]).transform("mean")
    age = ordinary["day_idx"] - ordinary.groupby("sku")["day_idx"].transform("mean")
    assert np.corrcoef(within[aged], age[aged])[0, 1] < -0.6
    # SKUs that do not age keep their list price outside promotions.
    assert (gap[~aged].abs() < 0.01).all()


def test_a_family_market_ingests_through_the_landing_contract(
    spark: SparkSession, cfg: PricingConfig, tmp_path: Path, pii_salt: str
) -> None:
    from pricing.ingest import run_ingest
    from pricing.sim.deliver import deliver

    sim = cfg.simulate.model_copy(update={"n_skus": 10, "n_days": 20, "seed": 5})
    market = generate_market(
        spark, FAMILIES["logit_competitor"], sim, str(tmp_path / "market"), str(tmp_path / "truth")
    )
    deliver(spark, market.market, str(tmp_path / "landing"), date.fromisoformat(market.history_end))
    report = run_ingest(
        spark, Lakehouse.at(spark, str(tmp_path / "lakehouse")), cfg.ingest, str(tmp_path / "landing")
    )
    assert {r.source for r in report.results} >= {"transactions", "catalog", "clickstream", "inventory"}
    lakehouse = Lakehouse.at(spark, str(tmp_path / "lakehouse"))
    reconciliation = lakehouse.read(spark, RECONCILIATION)
    assert reconciliation.where("NOT balanced").count() == 0
    silver = lakehouse.read(spark, SILVER["transactions"])
    # Only the history arrives: the night being priced is not in the landing area.
    assert str(silver.agg({"order_date": "max"}).first()[0]) == market.history_end


def _hand_built_night(spark: SparkSession, root: Path) -> tuple[str, str, date]:
    """Three SKUs, log-log demand with elasticity -2 at 10.00 (cost 4, 10 units a day): profit
    (p - 4) 10 (p / 10)^-2 peaks at 8 (2 x cost), below the band 9..11, so lower is better in it."""

    price_date = date(2026, 3, 10)
    lakehouse, truth = str(root / "lakehouse"), str(root / "truth")
    recs = pd.DataFrame(
        {
            "sku": ["A", "B", "C"],
            "price_date": [price_date] * 3,
            "current_price": [10.0, 10.0, 10.0],
            "recommended_price": [11.0, 10.0, 9.0],
            "final_price": [10.0, 10.0, 9.0],
            "price_floor": [9.0, 9.0, 9.0],
            "price_ceiling": [11.0, 11.0, 11.0],
            "expected_units_current": [10.0, 12.0, 8.0],
            "expected_profit_current": [60.0, 72.0, 48.0],
            "expected_profit_recommended": [70.0, 72.0, 50.0],
            "elasticity": [-1.5, -2.5, -2.0],
            "elasticity_low": [-1.8, -3.0, -2.2],
            "elasticity_high": [-1.2, -2.1, -1.9],
            "binding_constraint": ["max_change", "uncertain_gain", "max_change"],
        }
    )
    tables = Lakehouse(lakehouse)
    recs_df = spark.createDataFrame(recs)
    tables.overwrite(PRICE_RECOMMENDATIONS, recs_df, recs_df.schema)  # only the columns the judge reads
    panel = spark.createDataFrame(
        pd.DataFrame(
            {"sku": ["A", "B", "C"], "date": [price_date - timedelta(days=7)] * 3, "units_gross": [9, 10, 13]}
        )
    )
    tables.overwrite(SKU_DAY, panel, panel.schema)
    curve = pd.DataFrame(
        {
            "sku": ["A", "B", "C"],
            "date": [price_date] * 3,
            "form": "loglog",
            "log_level": math.log(10.0),
            "curve_ref": 10.0,
            "c1": -2.0,
            "c2": 0.0,
            "c3": 0.0,
            "c4": 0.0,
        }
    )
    spark.createDataFrame(curve).write.parquet(f"{truth}/sku_day")
    params = pd.DataFrame(
        {
            "sku": ["A", "B", "C"],
            "sku_idx": [0, 1, 2],
            "unit_cost": 4.0,
            "min_price": 5.0,
            "max_price": 20.0,
            "map_price": [None, None, 9.5],  # C's recommendation breaks its MAP
        }
    )
    spark.createDataFrame(
        params,
        "sku string, sku_idx long, unit_cost double, min_price double, max_price double, map_price double",
    ).write.parquet(f"{truth}/sku_params")
    return lakehouse, truth, price_date


def test_the_judge_scores_a_night_by_true_demand(
    spark: SparkSession, cfg: PricingConfig, tmp_path: Path
) -> None:
    lakehouse, truth, price_date = _hand_built_night(spark, tmp_path)
    # No SKU's unit cost is missing from this catalog (the simulator's own missing-cost draw).
    sim = cfg.simulate.model_copy(
        update={"dirt": cfg.simulate.dirt.model_copy(update={"missing_cost_rate": 0.0})}
    )
    judged = judged_skus(spark, lakehouse, truth, price_date, cfg.policy, sim)
    result = summarise(judged)

    def profit(p: float) -> float:
        return (p - 4.0) * 10.0 * (p / 10.0) ** -2.0

    keep, recommended = 3 * profit(10.0), profit(11.0) + profit(10.0) + profit(9.0)
    best = 3 * profit(9.49)  # the band's lowest x.49/x.99 price (9.00 ends in neither)
    assert result["profit_vs_keep"] == pytest.approx(recommended / keep - 1)
    assert result["final_vs_keep"] == pytest.approx((2 * profit(10.0) + profit(9.0)) / keep - 1)
    assert result["best_vs_keep"] == pytest.approx(best / keep - 1)
    assert result["uplift_share"] == pytest.approx((recommended - keep) / (best - keep))
    assert result["elasticity_mae"] == pytest.approx((0.5 + 0.5 + 0.0) / 3)
    assert result["elasticity_bias"] == pytest.approx(0.0)
    assert result["interval_coverage"] == pytest.approx(1 / 3)  # only C's interval holds -2
    assert result["wape"] == pytest.approx((0 + 2 + 2) / 30)
    assert result["seasonal_naive_wape"] == pytest.approx((1 + 0 + 3) / 30)
    assert result["moved_share"] == pytest.approx(2 / 3) and result["raised_share"] == pytest.approx(1 / 3)
    # Every SKU's best price in the band is 9.49, a cut: A moved the wrong way, C the right one.
    assert judged.select("true_best_price").distinct().collect()[0][0] == pytest.approx(9.49)
    assert result["best_raised_share"] == 0.0 and result["right_direction_share"] == pytest.approx(1 / 2)
    # C below its MAP; A's 11.00 a change that ends in neither .49 nor .99 though its band holds such
    # prices (the ending rule, which the judge checks as the backtest does); B kept its price.
    assert result["violations"] == 2
    assert result["binding"] == {"max_change": 2, "uncertain_gain": 1}


def test_an_evaluation_plan_travels_to_its_workers_and_each_market_is_claimed_once(tmp_path: Path) -> None:
    from pricing.evaluation.robustness import EvaluationPlan, claim_market

    plan = EvaluationPlan(("simulator", "rigid_semilog"), (1, 2), 30, 45, ("expected",), reuse=True, jobs=2)
    assert EvaluationPlan.from_json(plan.to_json()) == plan
    assert plan.markets == [("simulator", 1), ("simulator", 2), ("rigid_semilog", 1), ("rigid_semilog", 2)]
    (tmp_path / "_claims").mkdir()
    assert claim_market(tmp_path, "simulator", 1)
    assert not claim_market(tmp_path, "simulator", 1)  # the other worker moves on
    assert claim_market(tmp_path, "simulator", 2)
    with pytest.raises(ValueError, match="jobs"):
        EvaluationPlan(("simulator",), (1,), 30, 45, jobs=0)


def test_a_failed_worker_stops_the_evaluation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import time

    from pricing.config import load_config
    from pricing.evaluation.robustness import EvaluationPlan, run_evaluation

    # Workers stand-in: worker 0 fails at once, worker 1 would run for a minute.
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\n[ "$4" = "0" ] && exit 3\nexec sleep 60\n')
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    plan = EvaluationPlan(("simulator",), (1, 2), 30, 45, jobs=2)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"evaluation worker 0 failed \(exit 3\)"):
        run_evaluation(None, load_config("local"), plan, str(tmp_path / "eval"), str(tmp_path / "out.json"))
    assert time.monotonic() - started < 30  # the other worker was stopped, not waited for
    assert not (tmp_path / "out.json").exists()


@pytest.mark.slow
def test_pricing_evaluate_smoke_run_on_two_families(tmp_path: Path, pii_salt: str) -> None:
    """``pricing evaluate`` end to end on two families: nightly from scratch, judged, JSON and report."""
    import json

    from conftest import TEST_OVERRIDES

    from pricing.cli import main

    out = tmp_path / "robustness.json"
    code = main(
        [
            "evaluate",
            "--workdir",
            str(tmp_path / "eval"),
            "--families",
            "simulator,reference_promo",
            "--seeds",
            "1",
            "--skus",
            "30",
            "--days",
            "45",
            "--decisions",
            "lower_bound:0.9,expected",
            "--out",
            str(out),
            *TEST_OVERRIDES,
            "train.epochs=8",
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [(r["family"], r["decision"]) for r in rows] == [
        (family, decision)
        for family in ("simulator", "reference_promo")
        for decision in ("posterior", "lower_bound:0.9", "expected")
    ]
    required = {
        "family", "seed", "profit_vs_keep", "uplift_share", "interval_coverage", "elasticity_mae",
        "elasticity_bias", "wape", "seasonal_naive_wape",
    }  # fmt: skip
    for row in rows:
        assert required <= row.keys()
        assert row["skus"] == 30 and row["violations"] == 0
        assert -0.5 < row["profit_vs_keep"] < 0.5 and 0 <= row["interval_coverage"] <= 1
        assert row["best_vs_keep"] >= row["profit_vs_keep"] - 1e-9  # nothing beats the best in the band
        assert row["wape"] > 0 and row["seasonal_naive_wape"] > 0
    # The same model under every rule: the lower bound never moves more prices than the point estimate.
    for family in ("simulator", "reference_promo"):
        posterior, bound, point = (r for r in rows if r["family"] == family)
        assert posterior["model_version"] == bound["model_version"] == point["model_version"]
        assert bound["moved_share"] <= point["moved_share"]
    report = Path(result["report"])
    assert report.is_file() and (report.parent / "profit_vs_keep.png").is_file()

    # --reuse: the same markets scored and judged again under another rule, on the same models, by two
    # worker processes side by side; the rows come back in the plan's order.
    again = tmp_path / "again.json"
    args = ["--workdir", str(tmp_path / "eval"), "--families", "simulator,reference_promo", "--seeds", "1"]
    sizes = ["--skus", "30", "--days", "45", "--reuse", "--jobs", "2", "--out", str(again), *TEST_OVERRIDES]
    assert main(["evaluate", *args, *sizes, "score.decision=expected"]) == 0
    reused = json.loads(again.read_text())["rows"]
    assert [(r["family"], r["reused"]) for r in reused] == [("simulator", True), ("reference_promo", True)]
    for row in reused:
        first = next(r for r in rows if r["family"] == row["family"] and r["decision"] == "expected")
        assert row["model_version"] == first["model_version"]
        assert row["profit_vs_keep"] == pytest.approx(first["profit_vs_keep"])


def test_one_guardrail_check_for_the_judge_and_the_backtest() -> None:
    """Hard limits from the true cost and the catalog, the recorded band, the change limit, endings."""
    nan = float("nan")
    # fmt: off
    rows = [
        # price, previous, true cost, cost known, min, max, MAP, band floor, band ceiling, binding, violation
        (10.99, 10.49, 8.0, True, nan, nan, nan, 9.0, 12.0, "none", False),    # inside everything
        (8.49, 8.99, 8.5, True, nan, nan, nan, 8.0, 12.0, "none", True),       # under cost + 5 %
        (12.99, 12.49, 8.0, True, nan, 12.5, nan, 10.0, 14.0, "none", True),   # over max_price
        (10.49, 10.99, 8.0, True, nan, nan, 10.6, 10.0, 12.0, "none", True),   # under MAP
        (11.99, 10.99, 8.0, True, nan, nan, nan, 9.0, 11.5, "none", True),     # outside the band
        (14.99, 10.99, 8.0, True, nan, nan, nan, 10.0, 16.0, "none", True),    # +36 %, over 25 %
        (9.49, 7.00, 8.0, True, nan, nan, nan, 9.0, 12.0, "none", False),      # a forced move up
        (10.50, 10.99, 8.0, True, nan, nan, nan, 9.0, 12.0, "none", True),     # no allowed ending
        (10.50, 10.50, 8.0, True, nan, nan, nan, 9.0, 12.0, "none", False),    # kept, any ending
        (7.99, 7.99, 8.0, True, 9.0, 8.5, nan, 9.0, 8.5, "infeasible", False),  # no price can comply
        (8.49, 8.99, 8.5, False, nan, nan, nan, 8.0, 12.0, "none", False),     # cost unknown to the shop
    ]
    # fmt: on
    columns = ["price", "previous_price", "true_cost", "cost_known", "min_price", "max_price", "map_price"]
    frame = pd.DataFrame(rows, columns=[*columns, "price_floor", "price_ceiling", "binding_constraint", "x"])
    expected = frame.pop("x").to_numpy(bool)
    np.testing.assert_array_equal(guardrail_violations(frame, PolicyConfig()), expected)
    # Without a recorded band (the backtest's keep policy) only the hard limits and the change count.
    unbanded = frame.assign(price_floor=nan, price_ceiling=nan).drop(columns="binding_constraint")
    np.testing.assert_array_equal(
        guardrail_violations(unbanded, PolicyConfig()),
        [False, True, True, True, False, True, False, False, False, True, False],
    )
