"""Delta table helpers: schema upgrades of tables written by an earlier release."""

from __future__ import annotations

import shutil
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql.types import BooleanType, StringType, StructField, StructType
from pyspark.testing import assertDataFrameEqual

from pricing.lakehouse import io
from pricing.platform.spark import user_cache_dir

OLD = StructType([StructField("sku", StringType(), False), StructField("title", StringType())])
NEW = StructType([*OLD.fields, StructField("promo", BooleanType())])


def test_existing_table_gains_new_nullable_columns(spark: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "t")
    io.append(spark.createDataFrame([("A", "tent")], OLD), path, OLD, "old table")
    io.append(spark.createDataFrame([("B", "shoe", True)], NEW), path, NEW, "new table")
    expected = spark.createDataFrame([("A", "tent", None), ("B", "shoe", True)], NEW)
    assertDataFrameEqual(io.read_table(spark, path), expected, checkRowOrder=False)


def test_a_column_an_earlier_release_required_may_then_be_empty(spark: SparkSession, tmp_path: Path) -> None:
    # silver competitor_prices: `sku` became optional when listings (competitor_sku, title) arrived.
    path = str(tmp_path / "t")
    io.append(spark.createDataFrame([("A", "tent")], OLD), path, OLD, "old table")
    relaxed = StructType([StructField("sku", StringType()), StructField("title", StringType())])
    io.append(spark.createDataFrame([(None, "listing")], relaxed), path, relaxed, "new table")
    expected = spark.createDataFrame([("A", "tent"), (None, "listing")], relaxed)
    assertDataFrameEqual(io.read_table(spark, path), expected, checkRowOrder=False)


def test_a_table_an_earlier_release_wrote_reads_with_the_new_columns(
    spark: SparkSession, tmp_path: Path
) -> None:
    # `pricing train` on a panel no features run has upgraded yet must not fail on the new column.
    path = str(tmp_path / "t")
    io.append(spark.createDataFrame([("A", "tent")], OLD), path, OLD, "old table")
    expected = spark.createDataFrame([("A", "tent", None)], NEW)
    assertDataFrameEqual(io.read_table(spark, path, NEW), expected)
    assert io.read_table(spark, path).columns == ["sku", "title"]  # the table itself is untouched


def test_a_lakehouse_gets_its_id_once_and_a_copy_keeps_it(spark: SparkSession, tmp_path: Path) -> None:
    first, other = str(tmp_path / "a"), str(tmp_path / "b")
    minted = io.lakehouse_id(spark, first)
    assert len(minted) == 32 and io.lakehouse_id(spark, first) == minted
    assert (tmp_path / "a" / io.LAKEHOUSE_ID_FILE).read_text() == minted
    assert io.lakehouse_id(spark, other) != minted
    shutil.copytree(tmp_path / "a", tmp_path / "copy")
    assert io.lakehouse_id(spark, str(tmp_path / "copy")) == minted


def test_rows_of_the_one_commit_since_a_version(spark: SparkSession, tmp_path: Path) -> None:
    # The intake counts what it wrote from the commit itself; it must never read another commit's rows.
    path = str(tmp_path / "t")
    rows = [("A", "tent"), ("B", "shoe")]
    io.append(spark.createDataFrame(rows, OLD), path, OLD, "t")
    assert io.commit_metrics(spark, path, None)["numOutputRows"] == "2"  # created, then written

    before = io.latest_version(spark, path)
    io.replace_where(spark.createDataFrame([("A", "tarp")], OLD), path, OLD, "sku = 'A'", "t")
    assert io.commit_metrics(spark, path, before)["numOutputRows"] == "1"

    before = io.latest_version(spark, path)
    io.merge_by_key(
        spark.createDataFrame([("B", "boot"), ("C", "cap")], OLD), path, OLD, ["sku"], "true", "t"
    )
    merged = io.commit_metrics(spark, path, before)
    assert (merged["numTargetRowsInserted"], merged["numTargetRowsUpdated"]) == ("1", "1")

    before = io.latest_version(spark, path)
    assert io.commit_metrics(spark, path, before) is None  # nothing committed since
    io.append(spark.createDataFrame([("D", "hat")], OLD), path, OLD, "t")
    io.append(spark.createDataFrame([("E", "mat")], OLD), path, OLD, "t")
    assert io.commit_metrics(spark, path, before) is None  # two writes: neither is known to be ours
    assert io.latest_version(spark, str(tmp_path / "absent")) is None


def test_a_table_reads_as_of_a_version_with_the_newer_columns(spark: SparkSession, tmp_path: Path) -> None:
    # The intake reads its batch back from the bronze version it wrote, whatever a later commit added.
    path = str(tmp_path / "t")
    io.append(spark.createDataFrame([("A", "tent")], OLD), path, OLD, "t")
    written = io.latest_version(spark, path)
    io.append(spark.createDataFrame([("B", "shoe", True)], NEW), path, NEW, "t")
    as_written = spark.createDataFrame([("A", "tent")], OLD)
    assertDataFrameEqual(io.read_table(spark, path, version=written), as_written)
    expected = spark.createDataFrame([("A", "tent", None)], NEW)
    assertDataFrameEqual(io.read_table(spark, path, NEW, version=written), expected)
    assert io.read_table(spark, path).count() == 2


def test_a_local_session_keeps_spark_warehouse_out_of_the_working_folder(spark: SparkSession) -> None:
    warehouse = spark.conf.get("spark.sql.warehouse.dir") or ""
    assert warehouse.removeprefix("file:").rstrip("/") == str(user_cache_dir() / "spark-warehouse")
