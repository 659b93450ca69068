"""Incremental == rebuild: the nightly panel update equals a rebuild from scratch and costs far less;
with nothing new it writes nothing."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest
from conftest import TEST_OVERRIDES
from landing_files import CATALOG_HEADER, TRANSACTIONS_HEADER, write_csv
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pricing.config import load_config
from pricing.features import run_features
from pricing.ingest import run_ingest
from pricing.lakehouse import io
from pricing.lakehouse.tables import SKU_CALENDAR, SKU_DAY, Lakehouse
from pricing.sim import simulate_market

START = date(2026, 6, 1)
MARKET = TEST_OVERRIDES + [
    "simulate.n_skus=8",
    "simulate.n_days=36",
    f"simulate.start_date={START}",
    "simulate.dirt.duplicate_rate=0",
    "simulate.dirt.corrupt_files=false",
    "simulate.dirt.unparseable_rows=0",
]


def _deliver(staging: Path, landing: Path, last_day: date) -> None:
    """Copy every landing folder up to ``last_day`` (catalog and FX whole) into the live landing zone."""
    for source_dir in staging.iterdir():
        for item in source_dir.iterdir():
            if item.name.startswith("day=") and date.fromisoformat(item.name[4:]) > last_day:
                continue
            target = landing / source_dir.name / item.name
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if item.is_dir():
                shutil.copytree(item, target)
            else:
                shutil.copy(item, target)


def test_incremental_equals_rebuild_and_is_cheap(spark: SparkSession, pii_salt: str, tmp_path: Path) -> None:
    cfg = load_config("local", overrides=MARKET)
    staging, landing, lakehouse = tmp_path / "staging", tmp_path / "landing", str(tmp_path / "lakehouse")
    simulate_market(spark, cfg.simulate, str(staging), str(tmp_path / "truth"))
    tables = Lakehouse.at(spark, lakehouse)
    day = [START + timedelta(days=i) for i in range(36)]

    _deliver(staging, landing, day[34])
    run_ingest(spark, tables, cfg.ingest, str(landing))
    first = run_features(spark, tables, cfg.features, cfg.catalog, run_date=day[34])
    calendar_version = io.latest_version(spark, tables.path(SKU_CALENDAR))
    assert (first.mode, first.rows_in_panel) == ("full", 8 * 35)
    before_late = (
        tables.read(spark, SKU_DAY).where((F.col("sku") == "SKU-00001") & (F.col("date") == day[19])).first()
    )

    # Night 36: the new day arrives, plus a late file with a sale from day 20.
    _deliver(staging, landing, day[35])
    write_csv(
        landing / "transactions" / "late" / "store-sync.csv",
        TRANSACTIONS_HEADER,
        [["LATE-1", f"{day[19]}T15:00:00Z", "SKU-00001", 4, str(before_late.price)]],
    )
    run_ingest(spark, tables, cfg.ingest, str(landing))
    incremental = run_features(spark, tables, cfg.features, cfg.catalog, run_date=day[35])
    incremental_version = io.latest_version(spark, tables.path(SKU_DAY))
    # No SKU is new and no first day moved: the calendar is not written again.
    assert io.latest_version(spark, tables.path(SKU_CALENDAR)) == calendar_version
    assert incremental.mode == "incremental"
    assert incremental.skus_recomputed == 8
    assert incremental.rows_in_panel == 8 * 36

    rebuild = run_features(spark, tables, cfg.features, cfg.catalog, run_date=day[35], full=True)
    assert rebuild.mode == "full" and rebuild.rows_written == 8 * 36
    incremental_df = tables.read(spark, SKU_DAY, version=incremental_version)
    rebuilt_df = tables.read(spark, SKU_DAY)
    assertDataFrameEqual(incremental_df, rebuilt_df, checkRowOrder=False)
    assertDataFrameEqual(
        tables.read(spark, SKU_CALENDAR, version=calendar_version),
        tables.read(spark, SKU_CALENDAR),
        checkRowOrder=False,
    )

    # The late sale moved day 20 and the windows after it, only for its SKU.
    after_late = rebuilt_df.where((F.col("sku") == "SKU-00001") & (F.col("date") == day[19])).first()
    assert after_late.units_sold == before_late.units_sold + 4
    # Work done, from Delta's MERGE metrics: 8 new rows + SKU-00001 from day 20 on (16 rows updated).
    assert int(incremental.metrics["numTargetRowsInserted"]) == 8
    assert int(incremental.metrics["numTargetRowsUpdated"]) == 16
    assert incremental.rows_written <= 0.1 * rebuild.rows_written

    # The same night again with nothing new: nothing recomputed, nothing written, the panel unchanged.
    panel_version = io.latest_version(spark, tables.path(SKU_DAY))
    again = run_features(spark, tables, cfg.features, cfg.catalog, run_date=day[35])
    assert (again.mode, again.skus_recomputed, again.rows_written, again.rows_in_panel) == (
        "incremental",
        0,
        0,
        8 * 36,
    )
    assert io.latest_version(spark, tables.path(SKU_DAY)) == panel_version

    # A SKU launched on the last day: the update gives it one panel row and the calendar its first day.
    write_csv(
        landing / "catalog" / "launch.csv",
        CATALOG_HEADER,
        [["SKU-NEW", "Item SKU-NEW", "tents", "Acme", "10.00", "USD", f"{day[35]}T08:00:00Z"]],
    )
    write_csv(
        landing / "transactions" / "launch" / "first-sale.csv",
        TRANSACTIONS_HEADER,
        [["LAUNCH-1", f"{day[35]}T10:00:00Z", "SKU-NEW", 2, "25.00"]],
    )
    run_ingest(spark, tables, cfg.ingest, str(landing))
    calendar_before = io.latest_version(spark, tables.path(SKU_CALENDAR))
    launched = run_features(spark, tables, cfg.features, cfg.catalog, run_date=day[35])
    assert (launched.skus_recomputed, launched.rows_in_panel) == (1, 8 * 36 + 1)
    assert io.latest_version(spark, tables.path(SKU_CALENDAR)) == calendar_before + 1
    assertDataFrameEqual(
        tables.read(spark, SKU_CALENDAR).where(F.col("sku") == "SKU-NEW"),
        spark.createDataFrame([("SKU-NEW", day[35])], "sku string, first_date date"),
    )


def test_features_need_silver(spark: SparkSession, tmp_path: Path) -> None:
    cfg = load_config("local", overrides=TEST_OVERRIDES)
    with pytest.raises(RuntimeError, match="run `pricing ingest` first"):
        run_features(spark, Lakehouse.at(spark, str(tmp_path / "empty")), cfg.features, cfg.catalog)
