"""Price experiments: the split, scoring that holds the control arm, and the readout's numbers."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual
from scipy import stats

from pricing.decide.experiment import (
    ExperimentError,
    assign_arms,
    experiment_effects,
    experiment_units,
    exploration_outcomes,
    unit_outcomes,
)
from pricing.decide.stage import held_prices

OUTCOME_COLUMNS = "unit string, arm string, segment string, " + ", ".join(
    f"{p}_{m} double" for p in ("pre", "post") for m in ("profit", "revenue", "units")
)


def _outcomes(spark: SparkSession, unit: list[str], arm: list[str], segment: list[str], pre, post):  # type: ignore[no-untyped-def]
    """Unit outcomes with the same pre and post values for every metric."""
    frame = pd.DataFrame({"unit": unit, "arm": arm, "segment": segment})
    for period, values in (("pre", pre), ("post", post)):
        for metric in ("profit", "revenue", "units"):
            frame[f"{period}_{metric}"] = np.asarray(values, dtype=float)
    return spark.createDataFrame(frame, OUTCOME_COLUMNS)


def _units(spark: SparkSession, strata: dict[str, int]) -> pd.DataFrame:
    rows = [(f"{s}-{k}", s) for s, n in strata.items() for k in range(n)]
    return spark.createDataFrame(rows, "unit string, stratum string")


def test_the_split_is_balanced_within_every_stratum_and_reproducible(spark: SparkSession) -> None:
    units = _units(spark, {"a": 10, "b": 7, "c": 4})
    whole = assign_arms(units, "e1", 3, 1.0).toPandas()
    assert len(whole) == 21
    per = whole.groupby(["stratum", "arm"]).size().unstack(fill_value=0)
    assert (per["treatment"] - per["control"]).abs().max() <= 1  # halves to within the odd unit
    assert abs(per["treatment"].sum() - per["control"].sum()) <= 1  # and overall, strata of 1 included
    singles = assign_arms(_units(spark, {f"s{k}": 1 for k in range(9)}), "e1", 3, 1.0).toPandas()
    assert sorted(singles["arm"].value_counts()) == [4, 5]
    half = assign_arms(units, "e1", 3, 0.5).toPandas()
    assert len(half) in (10, 11)  # share of the units to within one
    taken = half.groupby("stratum").size()
    assert (taken - pd.Series({"a": 5, "b": 3.5, "c": 2})).abs().max() <= 1  # each stratum its share
    again = assign_arms(units, "e1", 3, 0.5).toPandas()
    assert half.sort_values("unit").equals(again.sort_values("unit"))
    other = assign_arms(units, "e1", 4, 0.5).toPandas()
    assert (
        not half.sort_values("unit")
        .reset_index(drop=True)
        .equals(other.sort_values("unit").reset_index(drop=True))
    )
    with pytest.raises(ExperimentError):
        assign_arms(units, "e1", 3, 0.0)


def test_units_and_strata_come_from_the_pre_period(spark: SparkSession) -> None:
    d = date(2026, 6, 1)
    pre = spark.createDataFrame(
        [
            ("s1", d, "toys", 1),
            ("s1", d + timedelta(1), "toys", 3),
            ("s2", d, "toys", 10),
            ("s3", d, None, 0),
        ],
        "sku string, date date, category string, units_sold int",
    )
    by_sku = experiment_units(pre, "sku")
    assertDataFrameEqual(
        by_sku,
        spark.createDataFrame(
            [("s1", "s1", "toys|sales2"), ("s2", "s2", "toys|sales3"), ("s3", "s3", "unknown|sales1")],
            "sku string, unit string, stratum string",
        ),
    )
    by_category = experiment_units(pre, "category")
    assertDataFrameEqual(
        by_category,
        spark.createDataFrame(
            [("s1", "toys", "sales2"), ("s2", "toys", "sales2"), ("s3", "unknown", "sales1")],
            "sku string, unit string, stratum string",
        ),
    )


def test_control_skus_keep_their_price_unless_a_guardrail_moves_it() -> None:
    frame = pd.DataFrame({"sku": ["a", "b", "c"], "held": [True, True, None]})
    candidates = pd.DataFrame(
        {
            "row": [0, 0, 0, 1, 1, 2, 2],
            "candidate_price": [9.49, 9.99, 10.49, 12.49, 12.99, 4.99, 5.49],
            "current_price": [9.99, 9.99, 9.99, 11.99, 11.99, 5.99, 5.99],
            "expected_units": [5.0, 4.0, 3.0, 2.0, 1.5, 8.0, 7.0],
            "gain": [1.0, 0.0, -1.0, 0.4, 0.3, 2.0, 1.0],
            "gain_low": [0.5, 0.0, -2.0, 0.1, 0.0, 1.0, 0.5],
            "gain_high": [1.5, 0.0, 0.0, 0.8, 0.6, 3.0, 1.5],
        }
    )
    got = held_prices(frame, candidates)
    # a keeps 9.99 (gain 0); b's 11.99 is below its band (a floor moved): the nearest allowed price,
    # 12.49, with that price's own expectation; c is not held.
    expected = pd.DataFrame(
        {
            "candidate_price": [9.99, 12.49],
            "expected_units": [4.0, 2.0],
            "gain": [0.0, 0.4],
            "gain_low": [0.0, 0.1],
            "gain_high": [0.0, 0.8],
        },
        index=pd.Index([0, 1], name="row"),
    )
    pd.testing.assert_frame_equal(got, expected)
    assert held_prices(frame.drop(columns="held"), candidates).empty


def test_the_readout_matches_welchs_test_by_hand(spark: SparkSession) -> None:
    rng = np.random.default_rng(5)
    n = 12
    pre = rng.gamma(4.0, 5.0, 2 * n)
    post = 0.8 * pre + rng.normal(0, 2, 2 * n) + np.r_[np.full(n, 3.0), np.zeros(n)]
    arm = ["treatment"] * n + ["control"] * n
    outcomes = _outcomes(spark, [f"u{i}" for i in range(2 * n)], arm, ["toys"] * (2 * n), pre, post)
    effects = experiment_effects(outcomes, level=0.9, by_segment=False)
    profit = effects[(effects["metric"] == "profit")].set_index("estimator")
    t, c = np.arange(n), np.arange(n, 2 * n)
    # Difference in differences: Welch's t-test on post - pre.
    did = stats.ttest_ind((post - pre)[t], (post - pre)[c], equal_var=False)
    assert profit.loc["did", "effect"] == pytest.approx((post - pre)[t].mean() - (post - pre)[c].mean())
    assert profit.loc["did", "p_value"] == pytest.approx(did.pvalue)
    # CUPED: the slope of post on pre within arms, then Welch on the adjusted outcome.
    centred = np.r_[pre[t] - pre[t].mean(), pre[c] - pre[c].mean()]
    theta = (centred * np.r_[post[t] - post[t].mean(), post[c] - post[c].mean()]).sum() / (centred**2).sum()
    adjusted = post - theta * pre
    cuped = stats.ttest_ind(adjusted[t], adjusted[c], equal_var=False)
    assert profit.loc["cuped", "effect"] == pytest.approx(adjusted[t].mean() - adjusted[c].mean())
    assert profit.loc["cuped", "p_value"] == pytest.approx(cuped.pvalue)
    interval = cuped.confidence_interval(0.9)
    assert (profit.loc["cuped", "ci_low"], profit.loc["cuped", "ci_high"]) == pytest.approx(
        (interval.low, interval.high)
    )
    assert profit.loc["cuped", "se"] < profit.loc["did", "se"]  # the slope is 0.8, not 1
    balance = profit.loc["pre_period_balance"]
    assert balance["effect"] == pytest.approx(pre[t].mean() - pre[c].mean())
    assert set(effects["metric"]) == {"profit", "revenue", "units"}


def test_the_interval_covers_a_known_effect_nine_times_in_ten(spark: SparkSession) -> None:
    # 300 experiments at once, one per segment: 40 units each, half treated, a true effect of +1.5 per
    # unit and day on skewed, noisy outcomes. The 90 % interval should cover it about 270 times.
    rng = np.random.default_rng(11)
    reps, n, effect = 300, 40, 1.5
    level = rng.lognormal(2.0, 0.8, (reps, n))
    pre = rng.poisson(level * 7) / 7
    treated = np.tile(np.arange(n) % 2 == 0, (reps, 1))
    post = rng.poisson(level * 1.05 * 7) / 7 + effect * treated
    outcomes = _outcomes(
        spark,
        [f"u{i}" for _ in range(reps) for i in range(n)],
        list(np.where(treated.ravel(), "treatment", "control")),
        [f"r{r}" for r in range(reps) for _ in range(n)],
        pre.ravel(),
        post.ravel(),
    )
    effects = experiment_effects(outcomes, level=0.9)
    per_rep = effects[(effects["segment"] != "all") & (effects["metric"] == "units")]
    for estimator in ("cuped", "did"):
        found = per_rep[per_rep["estimator"] == estimator]
        assert len(found) == reps
        covered = ((found["ci_low"] <= effect) & (found["ci_high"] >= effect)).mean()
        assert 0.85 <= covered <= 0.95, (estimator, covered)
        assert abs(found["effect"].mean() - effect) < 3 * found["se"].mean() / np.sqrt(reps)
    balance = per_rep[per_rep["estimator"] == "pre_period_balance"]
    assert 0.85 <= (balance["p_value"] > 0.1).mean() <= 0.95  # a fair split fails the check 1 in 10


def test_unit_outcomes_average_days_and_sum_skus_of_a_unit(spark: SparkSession) -> None:
    start = date(2026, 7, 10)
    day = start - timedelta(days=1)
    panel = spark.createDataFrame(
        [
            ("s1", day - timedelta(1), "toys", 2, 20.0, 4.0),
            ("s1", day, "toys", 4, 40.0, 4.0),
            ("s2", day, "toys", 1, 10.0, 5.0),
            ("s1", start, "toys", 3, 30.0, 4.0),
            ("s2", start, "toys", 0, 0.0, 5.0),
            ("s3", start, "food", 9, 9.0, 0.5),
        ],
        "sku string, date date, category string, units_sold int, revenue double, unit_cost double",
    )
    assignments = spark.createDataFrame(
        [("s1", "toys", "treatment"), ("s2", "toys", "treatment")], "sku string, unit string, arm string"
    )
    got = unit_outcomes(panel, assignments, start, start, pre_days=7)
    # Pre: day-1 s1 only (2 units), day s1 + s2 (5 units): mean 3.5 units, revenue 35, profit 35 - 13 = 22 /
    # day-1: 20 - 8 = 12, day: 40 - 16 + 10 - 5 = 29 -> 20.5. Post: 3 units, 30 revenue, 18 profit.
    assertDataFrameEqual(
        got,
        spark.createDataFrame(
            [("toys", "treatment", "toys", 20.5, 35.0, 3.5, 18.0, 30.0, 3.0)], OUTCOME_COLUMNS
        ),
    )


def test_every_unit_is_treated_half_the_time_and_single_unit_strata_are_not_tied(spark: SparkSession) -> None:
    # Nine strata of one unit and one of four: over many seeds each unit is treated about half the time,
    # and two single-unit strata's arms agree about as often as two draws without replacement would
    # (16 / 36), never always (a design whose pairing carries over from stratum to stratum ties them).
    units = _units(spark, {**{f"s{k}": 1 for k in range(9)}, "big": 4})
    draws = pd.concat(
        [assign_arms(units, "tie", seed, 1.0).toPandas().assign(seed=seed) for seed in range(60)]
    )
    treated = draws.assign(t=draws["arm"] == "treatment").pivot(index="seed", columns="unit", values="t")
    assert treated.mean().between(0.3, 0.7).all()
    assert (treated.sum(axis=1) - 6.5).abs().max() <= 0.5  # 13 units: 6 or 7 treated every time
    singles = [f"s{k}-0" for k in range(9)]
    agree = [(treated[a] == treated[b]).mean() for i, a in enumerate(singles) for b in singles[i + 1 :]]
    assert 0.3 < float(np.mean(agree)) < 0.6 and max(agree) < 0.8 and min(agree) > 0.15


def test_exploration_reads_out_as_an_experiment_of_sku_nights(spark: SparkSession) -> None:
    start = date(2026, 7, 10)
    before = start - timedelta(days=3)
    panel = spark.createDataFrame(
        [
            ("a", before, "toys", 2, 20.0, 4.0),
            ("a", start, "toys", 1, 11.0, 4.0),
            ("a", start + timedelta(1), "toys", 3, 30.0, 4.0),
            ("b", before, None, 5, 25.0, 1.0),
            ("b", start, None, 4, 20.0, 1.0),
        ],
        "sku string, date date, category string, units_sold int, revenue double, unit_cost double",
    )
    recommendations = spark.createDataFrame(
        [
            ("a", start, "price_test"),
            ("b", start, "no_price_history"),
            ("a", start + timedelta(1), "uncertain_gain"),
            ("b", start + timedelta(1), "price_test"),  # no sales day yet: not read
            ("a", start - timedelta(1), "price_test"),  # before the start: not read
        ],
        "sku string, price_date date, binding_constraint string",
    )
    got = exploration_outcomes(panel, recommendations, start, start + timedelta(days=1), pre_days=7)
    expected = [
        ("a|2026-07-10", "treatment", "toys", 12.0, 20.0, 2.0, 7.0, 11.0, 1.0),
        ("b|2026-07-10", "control", "unknown", 20.0, 25.0, 5.0, 16.0, 20.0, 4.0),
        ("a|2026-07-11", "control", "toys", 12.0, 20.0, 2.0, 18.0, 30.0, 3.0),
    ]
    assertDataFrameEqual(got, spark.createDataFrame(expected, OUTCOME_COLUMNS))
    # Exploration aimed at SKUs without price history: its controls are the ones kept for that reason
    # (drawn from the same pool), not every SKU-night that was not tested.
    aimed = exploration_outcomes(
        panel, recommendations, start, start + timedelta(days=1), pre_days=7, scope="no_price_history"
    )
    assertDataFrameEqual(aimed, spark.createDataFrame(expected[:2], OUTCOME_COLUMNS))
