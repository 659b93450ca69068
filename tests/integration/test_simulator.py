"""The synthetic market: deterministic, economically sane, and its ground truth matches its files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import TEST_OVERRIDES
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pricing.config import PricingConfig, load_config
from pricing.ingest import IngestReport, run_ingest
from pricing.lakehouse.tables import QUARANTINE, SILVER, Lakehouse
from pricing.sim import MarketSummary, simulate_market
from pricing.sim.market import (
    expected_log_price_multiplier,
    sku_days,
    sku_parameters,
)

CLEAN = [
    "simulate.n_skus=12",
    "simulate.n_days=21",
    "simulate.dirt.duplicate_rate=0",
    "simulate.dirt.null_key_rate=0",
    "simulate.dirt.absurd_quantity_rate=0",
    "simulate.dirt.outlier_price_rate=0",
    "simulate.dirt.wrong_type_rate=0",
    "simulate.dirt.unknown_currency_rate=0",
    "simulate.dirt.unparseable_rows=0",
    "simulate.dirt.corrupt_files=false",
]
DIRTY = [
    "simulate.n_skus=16",
    "simulate.n_days=28",
    "simulate.seed=7",
    "simulate.dirt.duplicate_rate=0.01",
    "simulate.dirt.null_key_rate=0.005",
    "simulate.dirt.absurd_quantity_rate=0.005",
    "simulate.dirt.outlier_price_rate=0.005",
    "simulate.dirt.wrong_type_rate=0.005",
    "simulate.dirt.unknown_currency_rate=0.005",
]


def _market(
    spark: SparkSession, overrides: list[str], root: Path, salt_env: str
) -> tuple[PricingConfig, MarketSummary, IngestReport, Lakehouse]:
    cfg = load_config("local", overrides=TEST_OVERRIDES + overrides)
    summary = simulate_market(spark, cfg.simulate, str(root / "landing"), str(root / "truth"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv(salt_env, "s" * 32)
        report = run_ingest(
            spark, Lakehouse.at(spark, str(root / "lakehouse")), cfg.ingest, str(root / "landing")
        )
    return cfg, summary, report, Lakehouse(str(root / "lakehouse"))


@pytest.fixture(scope="module")
def clean_market(spark: SparkSession, cfg: PricingConfig, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return _market(spark, CLEAN, tmp_path_factory.mktemp("clean"), cfg.ingest.pii_salt_env)


def _silver(spark: SparkSession, lakehouse: Lakehouse, source: str) -> DataFrame:
    return lakehouse.read(spark, SILVER[source])


def test_clean_market_ingests_without_loss(clean_market) -> None:  # type: ignore[no-untyped-def]
    _, summary, report, _ = clean_market
    assert report.balanced
    counts = {
        r.source: (r.rows_read, r.rows_silver, r.rows_quarantined, r.rows_duplicate) for r in report.results
    }
    assert counts == {source: (n, n, 0, 0) for source, n in summary.rows.items()}


def test_ground_truth_matches_what_was_written(spark: SparkSession, clean_market) -> None:  # type: ignore[no-untyped-def]
    _, summary, _, lakehouse = clean_market
    truth = spark.read.parquet(f"{summary.truth}/sku_day")
    tx = _silver(spark, lakehouse, "transactions")
    sold = (
        tx.where("quantity > 0")
        .groupBy("sku", F.col("order_date").alias("date"))
        .agg(F.sum("quantity").cast("int").alias("units"))
    )
    assertDataFrameEqual(
        sold,
        truth.where("units_sold > 0").select("sku", "date", F.col("units_sold").alias("units")),
        checkRowOrder=False,
    )
    returned = (
        tx.where("quantity < 0")
        .groupBy("sku", F.col("order_date").alias("date"))
        .agg((-F.sum("quantity")).cast("int").alias("units"))
    )
    assertDataFrameEqual(
        returned,
        truth.where("units_returned > 0").select("sku", "date", F.col("units_returned").alias("units")),
        checkRowOrder=False,
    )
    # Paid prices are the true prices (foreign-currency rows round-trip through the FX rate).
    price_error = (
        tx.join(truth, (tx.sku == truth.sku) & (tx.order_date == truth.date))
        .agg(F.max(F.abs(tx.unit_price.cast("double") - truth.price)))
        .first()[0]
    )
    assert price_error < 0.01
    inventory = _silver(spark, lakehouse, "inventory").select(
        "sku", F.col("snapshot_date").alias("date"), F.col("on_hand").alias("units")
    )
    assertDataFrameEqual(
        inventory, truth.select("sku", "date", F.col("on_hand_start").alias("units")), checkRowOrder=False
    )
    views = (
        _silver(spark, lakehouse, "clickstream")
        .where("event_type = 'view'")
        .groupBy("sku", F.col("event_date").alias("date"))
        .agg(F.count("*").cast("int").alias("units"))
    )
    assertDataFrameEqual(
        views,
        truth.where("views > 0").select("sku", "date", F.col("views").alias("units")),
        checkRowOrder=False,
    )
    observed = truth.select(F.explode("competitor_observed").alias("seen")).where("seen").count()
    assert _silver(spark, lakehouse, "competitor_prices").count() == observed
    params = spark.read.parquet(f"{summary.truth}/sku_params")
    catalog = _silver(spark, lakehouse, "catalog")
    assert (
        catalog.join(params, "sku")
        .where(F.abs(catalog.unit_cost.cast("double") - params.unit_cost) > 1e-9)
        .count()
        == 0
    )


def test_truth_is_deterministic_confounded_and_censored(spark: SparkSession, cfg: PricingConfig) -> None:
    sim = load_config(
        "local", overrides=TEST_OVERRIDES + ["simulate.n_skus=40", "simulate.n_days=60"]
    ).simulate
    params = sku_parameters(spark, sim)
    again = sku_parameters(spark.newSession(), sim)
    assertDataFrameEqual(params, again, checkRowOrder=False)
    other = sku_parameters(spark, sim.model_copy(update={"seed": sim.seed + 1}))
    assert params.join(other, ["sku", "elasticity"]).count() == 0
    low, high = sim.elasticity_range
    assert params.where((F.col("elasticity") < low) | (F.col("elasticity") > high)).count() == 0

    days = sku_days(params, sim).cache()
    # The retailer discounts weak days: the hidden demand shock is lower on discounted days.
    shock = dict(
        days.where("not promo and not price_test").groupBy("discounted").agg(F.avg("shock")).collect()
    )
    assert shock[True] < shock[False] - 0.1
    assert days.where("price_test").count() > 0
    # Stock-outs censor sales on stock-out-prone SKUs.
    censored = (
        days.join(params.select("sku", "stockout_prone"), "sku")
        .groupBy("stockout_prone")
        .agg(F.avg(F.col("censored").cast("double")))
    )
    share = dict(censored.collect())
    assert share[True] > 0.05 and share[True] > 3 * share.get(False, 0.0)
    assert days.where("units_sold > demand or units_sold > on_hand_start").count() == 0
    days.unpersist()


def test_pricing_rule_in_expectation_leaves_only_unpredictable_prices(spark: SparkSession) -> None:
    """The rule's expectation (the best price nuisance, bench/elasticity_nuisance.py): what it leaves of
    the price is the markdown depth and the test prices, unrelated to demand."""
    sim = load_config(
        "local",
        overrides=TEST_OVERRIDES
        + ["simulate.n_skus=30", "simulate.n_days=60", "simulate.price_test_share=0.5"],
    ).simulate
    params = sku_parameters(spark, sim)
    days = (
        sku_days(params, sim)
        .join(params.select("sku", "price_tested"), "sku")
        .withColumn("log_multiplier", F.log(F.col("price") / F.col("ref_price")))
        .toPandas()
    )
    promoted = days.promo_scheduled & ~days.price_test
    depth = days.log_multiplier.where(promoted).groupby(days.sku).transform("median").fillna(0.0)
    expected = expected_log_price_multiplier(
        days.markdown_triggered, np.where(days.promo_scheduled, depth, 0.0), days.price_tested
    )
    residual = days.log_multiplier - expected
    ordinary = ~days.price_tested & ~days.markdown_triggered & ~days.promo_scheduled
    assert residual[ordinary].abs().max() < 1e-9
    markdown = ~days.price_tested & days.markdown_triggered & ~days.promo_scheduled
    assert markdown.sum() > 100 and abs(residual[markdown].mean()) < 0.02
    tested = days.price_tested
    assert days.price_test.sum() > 50 and abs(residual[tested].mean()) < 0.02
    # Markdowns follow weak days, so the price itself tracks the demand shock; the residual must not.
    assert np.corrcoef(days.log_multiplier, days.shock)[0, 1] > 0.2
    assert abs(np.corrcoef(residual, days.shock)[0, 1]) < 0.06


def test_dirty_market_quarantines_each_injected_kind(
    spark: SparkSession, cfg: PricingConfig, tmp_path: Path
) -> None:
    _, summary, report, lakehouse = _market(spark, DIRTY, tmp_path, cfg.ingest.pii_salt_env)
    assert report.balanced
    quarantine = lakehouse.read(spark, QUARANTINE)
    by_reason = {
        (r.source, r.reason): r["count"] for r in quarantine.groupBy("source", "reason").count().collect()
    }
    dirt = summary.dirt
    assert by_reason == {
        key: n
        for key, n in {
            ("transactions", "missing_field"): dirt.get("null_key", 0),
            ("transactions", "invalid_quantity"): dirt.get("absurd_quantity", 0),
            ("transactions", "bad_type"): dirt.get("wrong_type", 0),
            ("transactions", "unknown_currency"): dirt.get("unknown_currency", 0),
            ("transactions", "price_outlier"): dirt.get("outlier_price", 0),
            ("transactions", "unparseable"): dirt["unparseable"],
            ("competitor_prices", "price_outlier"): dirt.get("competitor_outlier_price", 0),
        }.items()
        if n
    }
    results = {r.source: r for r in report.results}
    assert results["transactions"].rows_duplicate == dirt["duplicate"] > 0
    assert sum(len(r.files_failed) for r in report.results) == dirt["corrupt_files"] == 2
    assert _silver(spark, lakehouse, "catalog").where("unit_cost_missing").count() == dirt.get(
        "missing_cost", 0
    )
