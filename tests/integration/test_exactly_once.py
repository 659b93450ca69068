"""Every file is ingested exactly once, whatever its name and whenever it arrives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from landing_files import TRANSACTIONS_HEADER, write_catalog, write_csv
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pricing.config import PricingConfig
from pricing.ingest import run_ingest
from pricing.lakehouse import io
from pricing.lakehouse.tables import INGESTED_FILES, SILVER, Lakehouse
from pricing.platform.console import show_progress


def _version(spark: SparkSession, path: str) -> int:
    version = io.latest_version(spark, path)
    assert version is not None
    return version


def test_second_run_does_nothing_and_late_files_are_picked_up_once(
    spark: SparkSession,
    cfg: PricingConfig,
    pii_salt: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    landing, lakehouse = tmp_path / "landing", Lakehouse.at(spark, str(tmp_path / "lakehouse"))
    write_catalog(landing, ["A", "B"])
    day2 = write_csv(
        landing / "transactions" / "2026-06-02" / "part-0.csv",
        TRANSACTIONS_HEADER,
        [
            ["o1", "2026-06-02T09:00:00Z", "A", 1, "10.00"],
            ["o2", "2026-06-02T10:00:00Z", "B", 2, "5.00"],
            ["o3", "2026-06-02T11:00:00Z", "A", 1, "10.00"],
        ],
    )
    show_progress()  # as the command and the notebooks do: the library logs, this shows it on stdout
    first = run_ingest(spark, lakehouse, cfg.ingest, str(landing))
    assert [(r.source, r.rows_silver) for r in first.results] == [("catalog", 2), ("transactions", 3)]
    # catalog and transactions ingest concurrently: their progress lines must not run together
    progress = [line for line in capsys.readouterr().out.splitlines() if "[ingest]" in line]
    assert len(progress) >= 4 and all(line.count("[ingest]") == 1 for line in progress), progress
    assert all(line.startswith("[ingest] ") for line in progress), progress
    versions = {name: _version(spark, lakehouse.path(SILVER[name])) for name in ("catalog", "transactions")}

    second = run_ingest(spark, lakehouse, cfg.ingest, str(landing))
    assert second.results == []
    assert second.batch_id == first.batch_id + 1
    assert {name: _version(spark, lakehouse.path(SILVER[name])) for name in versions} == versions

    # A late file for an older day, and the day-2 file delivered again under another name.
    write_csv(
        landing / "transactions" / "2026-05-30" / "late.csv",
        TRANSACTIONS_HEADER,
        [
            ["o0", "2026-05-30T18:00:00Z", "B", 1, "5.00"],
        ],
    )
    (landing / "transactions" / "2026-06-05").mkdir()
    shutil.copy(day2, landing / "transactions" / "2026-06-05" / "resend.csv")
    third = run_ingest(spark, lakehouse, cfg.ingest, str(landing))
    (tx,) = third.results
    assert (tx.files_ingested, tx.rows_read, tx.rows_silver, tx.rows_duplicate, tx.rows_unaccounted) == (
        2,
        4,
        1,
        3,
        0,
    )

    silver = lakehouse.read(spark, SILVER["transactions"])
    assert sorted(r.order_id for r in silver.collect()) == ["o0", "o1", "o2", "o3"]
    assert silver.where("order_id = 'o0'").first().order_date.isoformat() == "2026-05-30"
    ledger = lakehouse.read(spark, INGESTED_FILES)
    per_file = ledger.groupBy("path").agg(F.count("*").alias("times"), F.max("_batch_id").alias("batch"))
    assert {(Path(r.path).name, r.times, r.batch) for r in per_file.collect()} == {
        ("catalog.csv", 1, first.batch_id),
        ("part-0.csv", 1, first.batch_id),
        ("late.csv", 1, third.batch_id),
        ("resend.csv", 1, third.batch_id),
    }
    assert run_ingest(spark, lakehouse, cfg.ingest, str(landing)).results == []
