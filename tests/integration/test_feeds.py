"""Feeds as spreadsheets, ERPs and shop systems export them: read, not rejected."""

from __future__ import annotations

import gzip
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote

import pytest
from conftest import TEST_OVERRIDES
from landing_files import write_catalog
from landing_fuzz import NAME_PARTS, PRICES, deliveries
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from pricing.config import PricingConfig, load_config
from pricing.ingest import run_ingest
from pricing.ingest.landing import _list_hadoop, list_landing_files
from pricing.lakehouse.io import hadoop_fs
from pricing.lakehouse.tables import INGESTED_FILES, QUARANTINE, SILVER, Lakehouse
from pricing.schemas import SOURCE_FILE

CATALOG = "sku,title,category,brand,unit_cost,currency,updated_at"
TX = "order_id,order_ts,sku,quantity,unit_price"


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_bom_odd_names_multiline_fields_empty_files_crlf_offsets_and_damage_found_late(
    spark: SparkSession, cfg: PricingConfig, pii_salt: str, tmp_path: Path
) -> None:
    landing, lakehouse = tmp_path / "landing", Lakehouse(str(tmp_path / "lakehouse"))
    # Quoted titles with line breaks (one of them CRLF), in a CRLF file.
    catalog = (
        f"{CATALOG}\r\n"
        'A,"Tent\r\nfor two",tents,Acme,50.5,USD,2026-06-01T00:00:00Z\r\n'
        'B,"Sock, ""wool""\nsize 42",socks,Acme,2,USD,2026-06-01T00:00:00Z\r\n'
    )
    _write(landing / "catalog" / "catalog.csv", catalog.encode())
    tx = landing / "transactions"
    # Excel's "CSV UTF-8": a byte-order mark, and spaces around the header names.
    bom = "\ufeff Order_ID , order_ts ,SKU,quantity,unit_price\n" + "o1,2026-06-30T10:00:00Z,A,1,50.00\n"
    _write(tx / "excel.csv", bom.encode("utf-8"))
    # Colons, spaces, '#', '%' and non-ASCII in the name; offsets and Z converted to UTC.
    odd = f"{TX}\no2,2026-06-30T23:59:59+02:00,B,2,2.00\no3,2026-06-30T22:15:00Z,B,1,2.00\n"
    _write(tx / "export_2026-06-30T23:59:59_Überweisung #1 50%.csv", odd.encode())
    _write(tx / "nothing.csv", b"")  # an empty delivery is a delivery of nothing
    # Damage past the first bytes: a gzip stream cut off far into the file fails only when read.
    rows = "".join(f"x{i},2026-06-30T10:00:00Z,A,1,50.00\n" for i in range(20_000))
    compressed = gzip.compress(f"{TX}\n{rows}".encode())
    _write(tx / "cut.csv.gz", compressed[: len(compressed) // 2])
    report = run_ingest(spark, Lakehouse.at(spark, lakehouse.root), cfg.ingest, str(landing))

    by_source = {r.source: r for r in report.results}
    assert {name: (r.files_ingested, len(r.files_failed)) for name, r in by_source.items()} == {
        "catalog": (1, 0),
        "transactions": (3, 1),
    }, [(f.file.path, f.error) for r in report.results for f in r.files_failed]
    titles = {r.sku: r.title for r in lakehouse.read(spark, SILVER["catalog"]).collect()}
    # The line break inside quotes is kept (the CSV parser writes it as \n, whatever the file used).
    assert titles == {"A": "Tent\nfor two", "B": 'Sock, "wool"\nsize 42'}
    orders = {
        r.order_id: (r.order_ts, r.sku, r.quantity)
        for r in lakehouse.read(spark, SILVER["transactions"]).collect()
    }
    assert orders == {
        "o1": (datetime(2026, 6, 30, 10, 0, 0), "A", 1),
        "o2": (datetime(2026, 6, 30, 21, 59, 59), "B", 2),
        "o3": (datetime(2026, 6, 30, 22, 15, 0), "B", 1),
    }
    ledger = lakehouse.read(spark, INGESTED_FILES)
    rows = {Path(r.path).name: (r.status, r.rows_read) for r in ledger.collect()}
    assert rows["nothing.csv"] == ("ingested", 0)
    assert rows["cut.csv.gz"] == ("failed", None)
    (cut,) = ledger.where("status = 'failed'").collect()
    assert "unreadable csv" in cut.error and "end of" in cut.error.lower(), cut.error
    assert rows["export_2026-06-30T23:59:59_Überweisung #1 50%.csv"] == ("ingested", 2)


def _ingest_fuzzed(
    spark: SparkSession, cfg: PricingConfig, tmp_path: Path, seed: int, files: int, line_breaks: bool
) -> None:
    """Ingest ``files`` fuzzed transaction deliveries; every row and file accounted as the grammar says.

    ``line_breaks``: quoted values hold line breaks, and transactions are read as multi-line CSV.
    """
    expected = deliveries(seed, files, line_breaks)
    if line_breaks:
        multiline = "ingest.csv_multiline_sources=[catalog,transactions]"
        cfg = load_config("local", overrides=[*TEST_OVERRIDES, multiline])
    landing, lakehouse = tmp_path / f"landing-{seed}", Lakehouse(str(tmp_path / f"lakehouse-{seed}"))
    write_catalog(landing, sorted(PRICES))
    for delivery in expected.deliveries:
        _write(landing / "transactions" / delivery.name, delivery.data)
    report = run_ingest(spark, Lakehouse.at(spark, lakehouse.root), cfg.ingest, str(landing))

    ledger = lakehouse.read(spark, INGESTED_FILES).where("source = 'transactions'")
    by_name = {unquote(Path(r.path).name): r for r in ledger.collect()}
    assert sorted(by_name) == sorted(d.name for d in expected.deliveries)
    quarantine = lakehouse.read(spark, QUARANTINE).where("source = 'transactions'")
    reasons: dict[str, list[str]] = {}
    for row in quarantine.select(SOURCE_FILE, "reason").collect():
        reasons.setdefault(unquote(Path(row[SOURCE_FILE]).name), []).append(row.reason)
    for delivery in expected.deliveries:
        entry = by_name[delivery.name]
        if delivery.unreadable:
            assert (entry.status, delivery.unreadable in (entry.error or "")) == ("failed", True), (
                delivery,
                entry,
            )
            continue
        assert (entry.status, entry.rows_read) == ("ingested", delivery.rows), (delivery, entry)
        got = reasons.get(delivery.name, [])
        assert len(got) == delivery.quarantined and set(got) <= delivery.reasons, (delivery, got)

    (tx,) = [r for r in report.results if r.source == "transactions"]
    readable = [d for d in expected.deliveries if not d.unreadable]
    assert tx.rows_read == sum(d.rows for d in readable)
    assert tx.rows_quarantined == sum(d.quarantined for d in readable)
    assert tx.rows_duplicate == expected.duplicates
    assert tx.rows_read == tx.rows_silver + tx.rows_quarantined + tx.rows_duplicate
    assert tx.rows_unaccounted == 0
    silver = lakehouse.read(spark, SILVER["transactions"])
    want = spark.createDataFrame(
        [(order_id, *values) for order_id, values in expected.silver.items()],
        "order_id string, order_ts timestamp, sku string, quantity int, unit_price decimal(18,4), "
        "promo_id string",
    )
    assertDataFrameEqual(silver.select(*want.columns), want, checkRowOrder=False)


def test_fuzzed_deliveries_are_all_accounted_for(
    spark: SparkSession, cfg: PricingConfig, pii_salt: str, tmp_path: Path
) -> None:
    _ingest_fuzzed(spark, cfg, tmp_path, seed=1, files=30, line_breaks=True)


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "line_breaks"), [(2, True), (3, True), (4, False)])
def test_hundreds_of_fuzzed_deliveries_are_all_accounted_for(
    spark: SparkSession, cfg: PricingConfig, pii_salt: str, tmp_path: Path, seed: int, line_breaks: bool
) -> None:
    _ingest_fuzzed(spark, cfg, tmp_path, seed, files=100, line_breaks=line_breaks)


def test_a_local_landing_is_listed_as_hadoop_lists_it(spark: SparkSession, tmp_path: Path) -> None:
    source = tmp_path / "transactions"
    names = [f"{part} 1.csv" for part in NAME_PARTS] + ["a%20b.csv", "q?.csv", "t[1].csv", "e\\s.csv"]
    for index, name in enumerate(names):
        _write(source / f"day=2026-06-{index % 3 + 1:02d}" / name, b"x" * index)
    _write(source / "_temporary" / "part-0.csv", b"hidden")
    _write(source / ".staging" / "a.csv", b"hidden")
    _write(source / "day=2026-06-01" / ".a.csv.crc", b"hidden")
    (source / "linked").symlink_to(source / "day=2026-06-01", target_is_directory=True)
    (source / "day=2026-06-02" / "link.csv").symlink_to(source / "day=2026-06-03" / names[2])

    local = list_landing_files(spark, str(tmp_path), "transactions")
    fs, root = hadoop_fs(spark, f"file:{source}")
    assert local == _list_hadoop(fs, root, f"file:{source}", "transactions")
    assert len(local) == len(names) + 1 + len([n for n in names if (source / "linked" / n).exists()])
    assert list_landing_files(spark, str(tmp_path), "inventory") == []
