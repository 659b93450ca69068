"""Nightly scoring with a real registered model: guardrails, MERGE idempotence, overrides, approval."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import SHOP, TEST_OVERRIDES, copy_shop
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pricing.config import FeaturesConfig, PricingConfig, load_config
from pricing.decide.approval import add_override, remove_overrides
from pricing.decide.experiment import (
    CONTROL_REASON,
    ExperimentError,
    controls_on,
    readout,
    render_readout,
    start_experiment,
)
from pricing.decide.stage import (
    NO_PRICE_HISTORY,
    ScoreReport,
    load_champion,
    next_night,
    run_score,
    scoring_inputs,
    whatif,
)
from pricing.features import feature_rows
from pricing.lakehouse import io
from pricing.lakehouse.tables import (
    CURRENT_PRICES,
    EXPERIMENT_ASSIGNMENTS,
    EXPERIMENT_READOUTS,
    PRICE_RECOMMENDATIONS,
    SKU_DAY,
    TEXT_EMBEDDINGS,
    Lakehouse,
)
from pricing.model.dataset import model_inputs
from pricing.model.train import TrainReport, run_train
from pricing.nightly.job import NightlyReport
from pricing.nightly.report import render_night
from pricing.nightly.retrain import retrain_reason
from pricing.sim.truth import night_vs_truth

MARKET = SHOP
SMALL_MODEL = ["train.epochs=4", "train.ensemble_size=2", "train.hidden=16", "train.holdout_days=7"]
BINDING = {
    "none",
    "no_model",
    "infeasible",
    "cost_floor",
    "map",
    "min_price",
    "max_price",
    "max_change",
    "low_stock",
    "clearance",
    "uncertainty",
    "competitor_premium",
    "uncertain_gain",
    "experiment_control",
}


@pytest.fixture(scope="module")
def market(spark: SparkSession, gold_shop: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated market with its gold panel and one registered champion model."""
    root = tmp_path_factory.mktemp("score_market")
    copy_shop(gold_shop, root)
    _train(spark, _config(root))
    return root


def _config(root: Path, *overrides: str, lakehouse: Path | None = None) -> PricingConfig:
    return load_config(
        "local",
        overrides=TEST_OVERRIDES
        + MARKET
        + SMALL_MODEL
        + [
            f"paths.lakehouse={lakehouse or root / 'lakehouse'}",
            f"train.tracking_uri=sqlite:///{root}/mlflow.db",
            f"train.artifact_location={root}/artifacts",
            *overrides,
        ],
    )


def _lakehouse(spark: SparkSession, cfg: PricingConfig) -> Lakehouse:
    return Lakehouse.at(spark, cfg.paths.lakehouse)


def _score(spark: SparkSession, cfg: PricingConfig, **night: Any) -> ScoreReport:
    return run_score(spark, _lakehouse(spark, cfg), cfg, **night)


def _train(spark: SparkSession, cfg: PricingConfig) -> TrainReport:
    return run_train(spark, _lakehouse(spark, cfg), cfg.train, cfg.features)


def _fresh_lakehouse(market: Path, tmp_path: Path) -> Path:
    """A copy of the market's gold tables and its id (the same shop), so each test's price tables start
    empty."""
    lakehouse = tmp_path / "lakehouse"
    source, target = Lakehouse(str(market / "lakehouse")), Lakehouse(str(lakehouse))
    # A Delta table copies as its files (its log holds relative paths): a Spark read and overwrite
    # of the two tables took 2-5 s a test.
    for table in (SKU_DAY, TEXT_EMBEDDINGS):
        shutil.copytree(source.path(table), target.path(table))
    shutil.copy(market / "lakehouse" / io.LAKEHOUSE_ID_FILE, lakehouse / io.LAKEHOUSE_ID_FILE)
    return lakehouse


def _night(spark: SparkSession, lakehouse: Path) -> DataFrame:
    return Lakehouse.at(spark, str(lakehouse)).read(spark, PRICE_RECOMMENDATIONS)


@pytest.mark.parametrize("decision", ["lower_bound", "posterior"])
def test_every_sku_gets_a_price_inside_its_guardrails(
    spark: SparkSession, market: Path, tmp_path: Path, decision: str
) -> None:
    lakehouse = _fresh_lakehouse(market, tmp_path)
    cfg = _config(market, f"score.decision={decision}", lakehouse=lakehouse)
    report = _score(spark, cfg)
    rows = _night(spark, lakehouse).toPandas()
    skus = Lakehouse(str(lakehouse)).read(spark, SKU_DAY).select("sku").distinct().count()
    assert len(rows) == skus == report.skus
    assert (rows["model_version"] == "1").all()
    assert set(rows["binding_constraint"]) <= BINDING
    # Hard limits: never below cost × (1 + min margin) nor MAP, never above max_price.
    scored = rows[rows["band_note"] != "infeasible"]
    assert (scored["recommended_price"] >= scored["price_floor"] - 1e-9).all()
    assert (scored["recommended_price"] <= scored["price_ceiling"] + 1e-9).all()
    assert (scored["price_floor"] >= scored["unit_cost"] * (1 + cfg.policy.min_margin) - 1e-9).all()
    assert np.allclose(scored["recommended_price"] * 100, np.round(scored["recommended_price"] * 100))
    # Keeping today's price is always a candidate, so the model never expects to lose profit.
    inside = scored[
        (scored["current_price"] >= scored["price_floor"])
        & (scored["current_price"] <= scored["price_ceiling"])
    ]
    assert (inside["expected_profit_recommended"] >= inside["expected_profit_current"] - 1e-6).all()
    assert (rows["elasticity"] <= 0).all() and (rows["elasticity_low"] <= rows["elasticity_high"]).all()
    # The recorded gain sits inside its interval; a kept price gains exactly 0; a move gains in expectation.
    gains = scored[["expected_gain_low", "expected_gain", "expected_gain_high"]].to_numpy()
    assert (np.diff(gains, axis=1) >= -1e-9).all()
    kept = np.isclose(scored["recommended_price"], scored["current_price"])
    assert (gains[kept] == 0).all() and (gains[~kept, 1] > 0).all()
    # `pricing score --truth` judges the written night afterwards (scoring never reads ground truth).
    truth = night_vs_truth(spark, str(lakehouse), report.price_date, str(market / "truth"), cfg.simulate)
    assert truth["true_profit_current"] > 0 and truth["true_profit_recommended"] > 0
    # The price in force downstream: one row per SKU, the night's final price.
    current = Lakehouse.at(spark, str(lakehouse)).read(spark, CURRENT_PRICES).toPandas()
    assert sorted(current["sku"]) == sorted(rows["sku"])
    merged = current.merge(rows, on="sku")
    assert (merged["price"] == merged["final_price"]).all()


def test_rescoring_a_night_replaces_it_and_keeps_earlier_nights(
    spark: SparkSession, market: Path, tmp_path: Path
) -> None:
    lakehouse = _fresh_lakehouse(market, tmp_path)
    cfg = _config(market, lakehouse=lakehouse)
    last_day = io.first_value(Lakehouse(str(lakehouse)).read(spark, SKU_DAY).agg(F.max("date")))
    earlier, night = last_day, last_day + timedelta(days=1)
    _score(spark, cfg, price_date=earlier)
    first = _score(spark, cfg, price_date=night)
    again = _score(spark, cfg, price_date=night)
    table = _night(spark, lakehouse)
    assert table.count() == 2 * first.skus  # two nights, no duplicates after the re-run
    assert table.groupBy("sku", "price_date").count().where("count > 1").count() == 0
    assert table.where(F.col("price_date") == F.lit(night)).select("run_id").distinct().collect()[0][0] == (
        again.run_id
    )
    # The second night starts from the first night's final prices.
    both = table.groupBy("sku").pivot("price_date", [earlier, night]).agg(F.first("final_price"))
    current = table.where(F.col("price_date") == F.lit(night)).select("sku", "current_price")
    joined = both.join(current, "sku").toPandas()
    assert np.allclose(joined[str(earlier)], joined["current_price"])
    # Time travel: version 1 (after the table's creation) holds the earlier night only.
    tables = Lakehouse.at(spark, str(lakehouse))
    assert [r.operation for r in tables.history(spark, PRICE_RECOMMENDATIONS).collect()][:3] == ["MERGE"] * 3
    version1 = tables.read(spark, PRICE_RECOMMENDATIONS, version=1)
    assert [r[0] for r in version1.select("price_date").distinct().collect()] == [earlier]


def test_approval_threshold_and_overrides(spark: SparkSession, market: Path, tmp_path: Path) -> None:
    lakehouse = _fresh_lakehouse(market, tmp_path)
    strict = _config(market, "score.auto_approve_max_change=0.0", lakehouse=lakehouse)
    report = _score(spark, strict)
    rows = _night(spark, lakehouse).toPandas()
    moved = rows["recommended_price"] != rows["current_price"]
    assert (rows.loc[moved, "status"] == "needs_review").all()
    assert rows.loc[moved, "review_reason"].str.contains("large_change").all()
    # Until someone approves, the price in force stays the current one.
    assert (rows.loc[moved, "final_price"] == rows.loc[moved, "current_price"]).all()

    loose = _config(market, "score.auto_approve_max_change=1.0", lakehouse=lakehouse)
    _score(spark, loose, price_date=report.price_date)
    rows = _night(spark, lakehouse).toPandas().set_index("sku")
    assert (rows["status"] == "auto_approved").all()
    assert (rows["final_price"] == rows["recommended_price"]).all()

    first, second = sorted(rows.index)[:2]
    add_override(
        spark, Lakehouse.at(spark, str(lakehouse)), first, 12.34, "supplier deal", "ana"
    )  # open-ended
    add_override(spark, Lakehouse.at(spark, str(lakehouse)), second, 9.99, "launch", "ben", report.price_date)
    add_override(
        spark, Lakehouse.at(spark, str(lakehouse)), second, 8.49, "old deal", "ben"
    )  # the dated one wins
    with pytest.raises(ValueError):
        add_override(spark, Lakehouse.at(spark, str(lakehouse)), first, 1.234, "fractional cents", "ana")
    _score(spark, loose, price_date=report.price_date)
    rows = _night(spark, lakehouse).toPandas().set_index("sku")
    assert rows.loc[first, ["status", "final_price", "override_author"]].tolist() == [
        "overridden",
        12.34,
        "ana",
    ]
    assert rows.loc[second, ["status", "final_price", "override_reason"]].tolist() == [
        "overridden",
        9.99,
        "launch",
    ]
    current = Lakehouse.at(spark, str(lakehouse)).read(spark, CURRENT_PRICES)
    assert current.where(F.col("sku") == first).select("price").first()[0] == 12.34

    assert remove_overrides(spark, Lakehouse.at(spark, str(lakehouse)), first) == 1
    _score(spark, loose, price_date=report.price_date)
    rows = _night(spark, lakehouse).toPandas().set_index("sku")
    assert rows.loc[first, "status"] == "auto_approved"


def test_without_a_model_every_sku_keeps_its_price(spark: SparkSession, market: Path, tmp_path: Path) -> None:
    lakehouse = _fresh_lakehouse(market, tmp_path)
    cfg = _config(tmp_path, lakehouse=lakehouse)  # an empty registry
    report = _score(spark, cfg)
    rows = _night(spark, lakehouse).toPandas()
    assert report.model_version is None and len(rows) == report.skus
    assert set(rows["binding_constraint"]) <= {"no_model", "infeasible"}
    assert (rows["recommended_price"] == rows["current_price"]).all()
    assert rows["expected_units_current"].isna().all()


def test_a_first_night_prices_from_whole_cents(spark: SparkSession, market: Path, tmp_path: Path) -> None:
    # No published prices yet: the price in force comes from the panel, where an average paid price
    # carries FX residue (64.480967 for a 64.48 shelf price). No recommendation may carry it on.
    lakehouse = _fresh_lakehouse(market, tmp_path)
    tables = Lakehouse(str(lakehouse))
    panel = tables.read(spark, SKU_DAY)
    shelf = panel.groupBy("sku").agg(F.round(F.max_by("price", "date"), 2).alias("shelf")).toPandas()
    tables.overwrite(SKU_DAY, panel.withColumn("price", F.round("price", 2) + F.lit(0.000967)), panel.schema)
    _score(spark, _config(market, "score.exploration_share=0.5", lakehouse=lakehouse))
    rows = _night(spark, lakehouse).toPandas().merge(shelf, on="sku")
    assert np.allclose(rows["current_price"], rows["shelf"], rtol=0, atol=1e-9)
    for column in ("current_price", "recommended_price", "final_price"):
        cents = rows[column] * 100
        assert (np.abs(cents - np.round(cents)) < 1e-6).all(), column


def test_whatif_answers_for_any_prices(spark: SparkSession, market: Path) -> None:
    cfg = _config(market)
    panel = Lakehouse.at(spark, str(market / "lakehouse")).read(spark, SKU_DAY)
    first = panel.select(F.min("sku")).first()[0]
    table = whatif(spark, _lakehouse(spark, cfg), cfg, first, [5.0, 10.0, 20.0, 40.0])
    assert table["price"].tolist() == [5.0, 10.0, 20.0, 40.0]
    assert (np.diff(table["expected_units"]) <= 1e-9).all()  # never more demand at a higher price
    unit_cost = (table["expected_revenue"] - table["expected_profit"]) / table["expected_units"]
    assert np.allclose(unit_cost, unit_cost.iloc[0]) and unit_cost.iloc[0] > 0  # profit = units × (p − cost)
    assert np.allclose(table["expected_revenue"], table["expected_units"] * table["price"])
    with pytest.raises(KeyError):
        whatif(spark, _lakehouse(spark, cfg), cfg, "NO-SUCH-SKU", [10.0])


def test_tonights_rows_carry_yesterdays_traffic_and_predict_its_level(
    spark: SparkSession, market: Path
) -> None:
    """Yesterday's views and add-to-carts are model inputs; without them demand is badly under-predicted."""
    cfg = _config(market)
    root = str(market / "lakehouse")
    champion = load_champion(cfg.train, cfg.score.model_alias)
    assert champion is not None
    night = next_night(spark, Lakehouse(root))
    panel = Lakehouse(root).read(spark, SKU_DAY)
    yesterday = panel.where(F.col("date") == F.lit(night - timedelta(days=1))).select(
        "sku", "views", "units_sold"
    )
    rows = scoring_inputs(spark, Lakehouse(root), cfg.features, night, champion.input_spec).toPandas()
    spec = champion.input_spec
    i = spec.numeric_features.index("log1p_views_lag_1")
    views_lag = np.stack(rows["numeric"].to_numpy())[:, i] * spec.stds[i] + spec.means[i]
    expected = yesterday.toPandas().set_index("sku").loc[rows["sku"], "views"].to_numpy(float)
    assert np.allclose(views_lag, np.log1p(np.nan_to_num(expected)), atol=1e-3)  # missing reads as 0
    # The same model predicts tonight on the level it predicts yesterday (features barely moved);
    # without yesterday's traffic it predicted less than half.
    model = champion.load()
    embeddings = Lakehouse(root).read(spark, TEXT_EMBEDDINGS)
    last_day = model_inputs(
        feature_rows(panel, cfg.features, start=night - timedelta(days=1), end=night - timedelta(days=1)),
        embeddings,
        spec,
    ).toPandas()
    tonight, before = (
        model.predict(rows)["expected_units"].sum(),
        model.predict(last_day)["expected_units"].sum(),
    )
    assert before / 1.5 < tonight < before * 1.5


def test_price_exploration_tests_random_prices_inside_the_band(
    spark: SparkSession, market: Path, tmp_path: Path
) -> None:
    lakehouse = _fresh_lakehouse(market, tmp_path)
    # Against the point-estimate choice, the highest expected profit (the lower-bound rule's is not).
    best = _config(market, "score.decision=expected", lakehouse=lakehouse)
    _score(spark, best)
    chosen = _night(spark, lakehouse).toPandas().set_index("sku")
    explore = _config(market, "score.exploration_share=1.0", "score.decision=expected", lakehouse=lakehouse)
    _score(spark, explore)
    tested = _night(spark, lakehouse).toPandas().set_index("sku").loc[chosen.index]
    scored = tested["band_note"] != "infeasible"
    assert (tested.loc[scored, "binding_constraint"] == "price_test").all()
    # Random, yet inside the same guardrails, snapped to the allowed endings.
    assert (tested["recommended_price"] >= tested["price_floor"] - 1e-9).all()
    assert (tested["recommended_price"] <= tested["price_ceiling"] + 1e-9).all()
    cents = np.round(tested.loc[scored, "recommended_price"] * 100).astype(int) % 100
    assert set(cents) <= {round(e * 100) for e in best.policy.price_endings} | set(
        np.round(tested.loc[scored, "current_price"] * 100).astype(int) % 100
    )
    assert (tested["recommended_price"] != chosen["recommended_price"]).mean() > 0.5
    # The model's expectation is for the tested price, so its expected profit can only be lower.
    assert (tested["expected_profit_recommended"] <= chosen["expected_profit_recommended"] + 1e-6).all()
    # The same night draws the same tests; half the SKUs are tested at share 0.5.
    _score(spark, explore)
    again = _night(spark, lakehouse).toPandas().set_index("sku").loc[chosen.index]
    assert (again["recommended_price"] == tested["recommended_price"]).all()
    _score(spark, _config(market, "score.exploration_share=0.5", lakehouse=lakehouse))
    half = _night(spark, lakehouse).toPandas()
    assert 0.2 < (half["binding_constraint"] == "price_test").mean() < 0.8
    # Exploration reads out as an experiment of its own, from its first explored night (whose sales
    # the panel does not hold yet); its name is reserved.
    assert readout(spark, Lakehouse.at(spark, str(lakehouse)), "exploration").empty
    with pytest.raises(ExperimentError, match="exploration"):
        start_experiment(
            spark,
            Lakehouse.at(spark, str(lakehouse)),
            "exploration",
            0.5,
            half["price_date"].max() + timedelta(1),
            7,
        )


def test_skus_whose_price_never_moved_keep_it_unless_tested(
    spark: SparkSession, market: Path, tmp_path: Path
) -> None:
    lakehouse = _fresh_lakehouse(market, tmp_path)
    _score(spark, _config(market, "score.decision=expected", lakehouse=lakehouse))
    free = _night(spark, lakehouse).toPandas().set_index("sku")
    assert (free["binding_constraint"] != NO_PRICE_HISTORY).all()  # the market's prices all moved
    assert (free["recommended_price"] != free["current_price"]).any()
    # As if no SKU's price had moved often enough: each keeps its price where its band allows it.
    blind = _config(market, "score.decision=expected", "score.min_price_changes=10000", lakehouse=lakehouse)
    _score(spark, blind)
    kept = _night(spark, lakehouse).toPandas().set_index("sku").loc[free.index]
    scored = kept["band_note"] != "infeasible"
    allowed = (
        scored
        & (kept["current_price"] >= kept["price_floor"] - 1e-9)
        & (kept["current_price"] <= kept["price_ceiling"] + 1e-9)
    )
    assert allowed.any()
    assert (kept.loc[allowed, "binding_constraint"] == NO_PRICE_HISTORY).all()
    assert (kept.loc[allowed, "recommended_price"] == kept.loc[allowed, "current_price"]).all()
    assert (kept.loc[allowed, "expected_gain"] == 0).all()
    # A price test still moves them: that is how such a history gets the variation it lacks.
    _score(
        spark,
        _config(
            market,
            "score.decision=expected",
            "score.min_price_changes=10000",
            "score.exploration_share=1.0",
            lakehouse=lakehouse,
        ),
    )
    tested = _night(spark, lakehouse).toPandas().set_index("sku").loc[free.index]
    assert (tested.loc[scored, "binding_constraint"] == "price_test").all()
    # Exploration aimed at them tests only them: every SKU here when none counts as priced, none when
    # every price moved (the shipped min_price_changes), the model's choice then standing for all.
    for changes, tests in (("10000", True), ("1", False)):
        aimed = _config(
            market,
            "score.decision=expected",
            f"score.min_price_changes={changes}",
            "score.exploration_share=1.0",
            "score.exploration_scope=no_price_history",
            lakehouse=lakehouse,
        )
        _score(spark, aimed)
        night = _night(spark, lakehouse).toPandas().set_index("sku").loc[free.index]
        if tests:
            assert (night.loc[scored, "binding_constraint"] == "price_test").all()
        else:
            assert (night["binding_constraint"] != "price_test").all()
            assert (night["recommended_price"] == free["recommended_price"]).all()


def test_features_outside_the_training_range_are_clipped_to_it(spark: SparkSession, market: Path) -> None:
    from pricing.model.dataset import fit_input_spec

    panel = feature_rows(Lakehouse(str(market / "lakehouse")).read(spark, SKU_DAY), FeaturesConfig())
    last = panel.agg(F.max("date")).first()[0]
    spec = fit_input_spec(panel, "hashed", 8, last)
    # Three months on: calendar months the training window never saw (a network would extrapolate).
    later = panel.withColumn("month", F.month(F.add_months("date", 3)))
    rows = np.vstack(model_inputs(later, None, spec).select("numeric").toPandas()["numeric"].to_numpy())
    assert spec.lows is not None and spec.highs is not None
    for i, name in enumerate(spec.numeric_features):
        low = (spec.lows[i] - spec.means[i]) / spec.stds[i]
        high = (spec.highs[i] - spec.means[i]) / spec.stds[i]
        assert rows[:, i].min() >= low - 1e-4 and rows[:, i].max() <= high + 1e-4, name


def test_a_champion_from_another_lakehouse_is_never_used(
    spark: SparkSession, market: Path, tmp_path: Path
) -> None:
    # Another shop's lakehouse on the same MLflow store (a copy of it, so the module's champion stays).
    shutil.copy(market / "mlflow.db", tmp_path / "mlflow.db")
    lakehouse = _fresh_lakehouse(market, tmp_path)
    (lakehouse / io.LAKEHOUSE_ID_FILE).unlink()  # the same tables, but not the same lakehouse
    cfg = _config(market, f"train.tracking_uri=sqlite:///{tmp_path}/mlflow.db", lakehouse=lakehouse)
    ours = io.lakehouse_id(spark, io.qualify(spark, str(lakehouse)))
    assert load_champion(cfg.train, cfg.score.model_alias, ours) is None
    assert load_champion(cfg.train, cfg.score.model_alias) is not None  # it is there, and not ours
    night = next_night(spark, Lakehouse(str(lakehouse)))
    reason = retrain_reason(spark, _lakehouse(spark, cfg), cfg, night - timedelta(days=1))
    assert reason is not None and "was trained on another lakehouse" in reason
    report = _score(spark, cfg)
    assert report.model_version is None and set(report.by_binding) == {"no_model"}
    with pytest.raises(RuntimeError, match="no model has alias"):
        whatif(spark, _lakehouse(spark, cfg), cfg, "SKU-00000", [10.0])
    # Trained here, its own model becomes the champion (the other's is no yardstick) and prices tonight.
    trained = _train(spark, cfg)
    assert trained.alias == "champion" and trained.champion_wape is None
    champion = load_champion(cfg.train, cfg.score.model_alias, ours)
    assert champion is not None and champion.version == trained.model_version
    assert _score(spark, cfg).model_version == trained.model_version


def test_a_running_experiment_holds_its_control_skus(
    spark: SparkSession, market: Path, tmp_path: Path
) -> None:
    lakehouse = _fresh_lakehouse(market, tmp_path)
    cfg = _config(market, lakehouse=lakehouse)
    root = str(lakehouse)
    night = next_night(spark, Lakehouse.at(spark, root))
    with pytest.raises(ExperimentError, match="already priced"):
        start_experiment(spark, Lakehouse.at(spark, root), "past", 1.0, night - timedelta(days=1), 7)
    with pytest.raises(ExperimentError, match="per store"):
        start_experiment(spark, Lakehouse.at(spark, root), "by-store", 1.0, night, 7, unit="store")
    started = start_experiment(spark, Lakehouse.at(spark, root), "e1", 1.0, night, 7, seed=1)
    assert started.units_treatment + started.units_control == started.eligible_units == 10
    assert abs(started.units_treatment - started.units_control) <= 1  # halves
    with pytest.raises(ExperimentError, match="already exists"):
        start_experiment(spark, Lakehouse.at(spark, root), "e1", 0.5, night, 7)
    with pytest.raises(ExperimentError, match="eligible"):  # every SKU is busy in e1 on those nights
        start_experiment(spark, Lakehouse.at(spark, root), "e2", 1.0, night + timedelta(days=6), 7)
    qualified = io.qualify(spark, root)
    assert (
        controls_on(spark, Lakehouse.at(spark, qualified), night + timedelta(days=6)).count()
        == started.units_control
    )
    assert controls_on(spark, Lakehouse.at(spark, qualified), night + timedelta(days=7)).count() == 0
    assert controls_on(spark, Lakehouse.at(spark, qualified), night - timedelta(days=1)).count() == 0

    report = _score(spark, cfg, price_date=night)
    arms = Lakehouse(qualified).read(spark, EXPERIMENT_ASSIGNMENTS).toPandas()
    rows = _night(spark, lakehouse).toPandas().merge(arms[["sku", "arm"]], on="sku")
    held = rows[rows["arm"] == "control"]
    assert len(held) == started.units_control == report.by_binding[CONTROL_REASON]
    assert (held["recommended_price"] == held["current_price"]).all()
    assert (held["final_price"] == held["current_price"]).all()
    assert (held["expected_gain"] == 0).all()
    assert (rows.loc[rows["arm"] == "treatment", "binding_constraint"] != CONTROL_REASON).all()
    # A guardrail that moved past a control SKU's price outranks the experiment: the SKU takes the
    # band's nearest allowed price (here a margin floor above most current prices).
    _score(spark, _config(market, "policy.min_margin=0.6", lakehouse=lakehouse), price_date=night)
    rows = _night(spark, lakehouse).toPandas().merge(arms[["sku", "arm"]], on="sku")
    held = rows[(rows["arm"] == "control") & (rows["band_note"] != "infeasible")]
    assert (held["binding_constraint"] == CONTROL_REASON).all()
    assert (held["recommended_price"] >= held["price_floor"] - 1e-9).all()
    assert (held["recommended_price"] <= held["price_ceiling"] + 1e-9).all()
    pushed = held[held["current_price"] < held["price_floor"] - 1e-9]
    assert len(pushed) and (pushed["recommended_price"] > pushed["current_price"]).all()
    kept = held[held["current_price"] >= held["price_floor"] - 1e-9]
    assert (kept["recommended_price"] == kept["current_price"]).all()


def test_an_experiment_reads_out_from_the_panel(spark: SparkSession, market: Path, tmp_path: Path) -> None:
    # The panel up to a cut, the experiment started at it, then the later days arrive: an A/A test on real
    # panel rows (no price was held), whose readout has every metric, estimator and category.
    lakehouse = tmp_path / "lakehouse"
    panel = Lakehouse(str(market / "lakehouse")).read(spark, SKU_DAY)
    tables = Lakehouse(str(lakehouse))
    last = panel.agg(F.max("date")).first()[0]
    cut = last - timedelta(days=9)
    tables.overwrite(SKU_DAY, panel.where(F.col("date") < F.lit(cut)), panel.schema)
    root = str(lakehouse)
    start_experiment(spark, Lakehouse.at(spark, root), "aa", 1.0, cut, 14, seed=2, pre_days=21)
    before = readout(spark, Lakehouse.at(spark, root), "aa")
    assert set(before["estimator"]) == {"pre_period_balance"} and (before["days_post"] == 0).all()
    tables.append(SKU_DAY, panel.where(F.col("date") >= F.lit(cut)), panel.schema)
    effects = readout(spark, Lakehouse.at(spark, root), "aa", level=0.8)
    whole = effects[effects["segment"] == "all"]
    assert len(whole) == 9  # 3 metrics x (cuped, did, balance)
    assert set(whole["estimator"]) == {"cuped", "did", "pre_period_balance"}
    assert (whole["n_treatment"] + whole["n_control"] == 10).all()
    assert (effects["days_post"] == 10).all() and (effects["through_date"] == last).all()
    assert ((whole["ci_low"] <= whole["effect"]) & (whole["effect"] <= whole["ci_high"])).all()
    categories = Lakehouse(root).read(spark, SKU_DAY).select("category").distinct().count()
    assert effects.loc[effects["segment"] != "all", "segment"].nunique() <= categories
    stored = Lakehouse.at(spark, root).read(spark, EXPERIMENT_READOUTS).toPandas()
    assert len(stored) == len(before) + len(effects) and set(stored["level"]) == {0.9, 0.8}
    # The night report of a night inside the experiment shows it, read out from the panel.
    night = NightlyReport(last, "night", last + timedelta(days=1), status="succeeded", model_version=None)
    page = render_night(spark, Lakehouse.at(spark, io.qualify(spark, root)), night, _config(market).train)
    assert "<h2>Experiments</h2>" in page and ">aa<" in page
    text = render_readout(effects)
    assert "profit" in text and "pre-period balance" in text
    # A category is read out only with two units in each arm (10 SKUs over several categories: few).
    segments = effects[effects["segment"] != "all"]
    assert (segments["n_treatment"] >= 2).all() and (segments["n_control"] >= 2).all()
