"""The table catalog: every table declared once, and the Lakehouse that reads and writes by it."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pricing.config import PricingConfig
from pricing.lakehouse.tables import (
    CURRENT_PRICES,
    PRICE_OVERRIDES,
    SILVER,
    SKU_DAY,
    TABLES,
    Lakehouse,
)
from pricing.schemas import CURRENT_PRICES_SCHEMA, PRICE_OVERRIDES_SCHEMA, SOURCES, sku_day_schema


def test_every_table_is_declared_once_with_its_key_among_its_columns(cfg: PricingConfig) -> None:
    labels = [t.label for t in TABLES]
    assert len(labels) == len(set(labels))
    assert {t.layer for t in TABLES} == {"bronze", "silver", "gold", "audit"}
    assert {name for name in SILVER} == set(SOURCES)
    for table in TABLES:
        schema = table.schema or sku_day_schema(cfg.features.lags, cfg.features.windows)
        columns = set(schema.fieldNames())
        assert set(table.key) <= columns, table.label
        assert set(table.cluster_by) <= columns and set(table.partition_by) <= columns, table.label
        assert table.written in {"merge", "append", "batch", "overwrite"}, table.label
        # A merged table needs a key to merge on.
        assert table.written != "merge" or table.key, table.label


def test_paths_follow_the_one_naming_rule() -> None:
    lakehouse = Lakehouse("s3://shop/lakehouse/")
    assert lakehouse.path(CURRENT_PRICES) == "s3://shop/lakehouse/gold/current_prices"
    assert lakehouse.path(SILVER["catalog"]) == "s3://shop/lakehouse/silver/catalog"
    assert lakehouse.model_data("run1") == "s3://shop/lakehouse/model_data/run1"
    assert lakehouse.model_data("run1", "train") == "s3://shop/lakehouse/model_data/run1/train"


def test_a_training_runs_model_data_reads_back_as_written(spark: SparkSession, tmp_path: Path) -> None:
    lakehouse = Lakehouse(str(tmp_path))
    rows = spark.createDataFrame([("A", 1.0), ("B", 2.0), ("C", 3.0)], "sku string, price double")
    lakehouse.write_model_data("run1", "holdout", rows)
    assert (tmp_path / "model_data" / "run1" / "holdout" / "_SUCCESS").exists()
    assertDataFrameEqual(lakehouse.read_model_data(spark, "run1", "holdout"), rows)
    # A run's shards are written once: a second write of the same part is refused, not mixed in.
    with pytest.raises(Exception, match="already exists"):
        lakehouse.write_model_data("run1", "holdout", rows)


def test_writes_are_checked_against_the_declaration(spark: SparkSession, tmp_path: Path) -> None:
    lakehouse = Lakehouse(str(tmp_path))
    wrong = spark.createDataFrame([("A", 1.0)], "sku string, price double")
    with pytest.raises(ValueError, match="gold/current_prices does not match its declared schema"):
        lakehouse.append(CURRENT_PRICES, wrong)
    assert not lakehouse.exists(spark, CURRENT_PRICES)
    # A table whose schema comes from configuration needs it given.
    with pytest.raises(ValueError, match="gold/sku_day's schema comes from configuration"):
        lakehouse.append(SKU_DAY, wrong)


def test_merge_uses_the_declared_key_and_reads_fill_in_absent_tables(
    spark: SparkSession, tmp_path: Path
) -> None:
    lakehouse = Lakehouse(str(tmp_path))
    assert lakehouse.read_if_exists(spark, CURRENT_PRICES) is None
    assert lakehouse.read_declared(spark, CURRENT_PRICES).count() == 0
    assert lakehouse.delete(spark, PRICE_OVERRIDES, F.lit(True)) == 0  # absent: nothing to delete

    def prices(*rows: tuple[str, float, date]) -> object:
        return spark.createDataFrame(
            [(sku, price, day, "approved", "1", "r", datetime(2026, 3, 1)) for sku, price, day in rows],
            CURRENT_PRICES_SCHEMA,
        )

    lakehouse.merge(
        CURRENT_PRICES, prices(("A", 10.0, date(2026, 3, 1)), ("B", 5.0, date(2026, 3, 1))), "true"
    )
    lakehouse.merge(CURRENT_PRICES, prices(("A", 11.0, date(2026, 3, 2))), "true")
    assertDataFrameEqual(
        lakehouse.read(spark, CURRENT_PRICES).select("sku", "price"),
        spark.createDataFrame([("A", 11.0), ("B", 5.0)], "sku string, price double"),
        checkRowOrder=False,
    )
    lakehouse.assert_unique(spark, CURRENT_PRICES)
    assert [r.operation for r in lakehouse.history(spark, CURRENT_PRICES).collect()][:2] == ["MERGE", "MERGE"]

    override = spark.createDataFrame(
        [("A", None, 9.99, "clearance", "ana", datetime(2026, 3, 1))], PRICE_OVERRIDES_SCHEMA
    )
    lakehouse.append(PRICE_OVERRIDES, override)
    lakehouse.append(PRICE_OVERRIDES, override.withColumn("sku", F.lit("B")))
    assert lakehouse.delete(spark, PRICE_OVERRIDES, F.col("sku") == "A") == 1
    assert [r.sku for r in lakehouse.read(spark, PRICE_OVERRIDES).collect()] == ["B"]


def test_the_operations_guide_lists_every_table() -> None:
    listed = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    for table in TABLES:
        label = f"`{table.layer}/<source>`" if table.name in SOURCES else f"`{table.label}`"
        assert f"| {label} |" in listed, table.label
