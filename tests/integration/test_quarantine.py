"""Every kind of dirt ends in quarantine with the right reason; nothing is lost; PII never leaves bronze."""

from __future__ import annotations

import secrets
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from landing_files import write_catalog, write_csv
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pricing.config import PricingConfig
from pricing.ingest import IngestReport, run_ingest
from pricing.ingest.landing import json_to_bronze_rows
from pricing.ingest.silver import RAW_RECORD, REASONS, judged_columns, parse_bronze
from pricing.lakehouse.tables import (
    BRONZE,
    INGESTED_FILES,
    QUARANTINE,
    RECONCILIATION,
    SILVER,
    Lakehouse,
    Table,
    bronze_silver,
)
from pricing.schemas import CLICKSTREAM

HEADER = ["order_id", "order_ts", "sku", "quantity", "unit_price", "currency", "customer_id"]
TS = "2026-06-01T12:00:00Z"


@pytest.fixture(scope="module")
def dirty_run(
    spark: SparkSession, cfg: PricingConfig, tmp_path_factory: pytest.TempPathFactory
) -> tuple[IngestReport, Lakehouse, str]:
    salt = secrets.token_hex(24)
    root = tmp_path_factory.mktemp("dirty")
    landing = root / "landing"
    write_catalog(landing, ["A", "B"])
    write_csv(
        landing / "fx_rates" / "rates.csv", ["date", "currency", "rate"], [["2026-06-01", "EUR", "1.08"]]
    )
    tx = landing / "transactions"
    history = [[f"h{i}", TS, "A", 1, "20.00", "USD", f"cust-{i:04d}"] for i in range(10)]
    dirty = [
        ["q_nosku", TS, "", 1, "20.00", "USD", "cust-0100"],
        ["q_badqty", TS, "A", "two", "20.00", "USD", "cust-0101"],
        ["q_badts", "yesterday", "A", 1, "20.00", "USD", "cust-0102"],
        ["q_xyz", TS, "A", 1, "20.00", "XYZ", "cust-0103"],
        ["q_zero", TS, "A", 0, "20.00", "USD", "cust-0104"],
        ["q_huge", TS, "A", 100000, "20.00", "USD", "cust-0105"],
        ["q_negprice", TS, "A", 1, "-5", "USD", "cust-0106"],
        ["q_outlier", TS, "A", 1, "2000.00", "USD", "cust-0107"],
        ["eur", TS, "A", 1, "18.52", "eur", "cust-0108"],
    ]
    write_csv(tx / "2026-06-01" / "orders.csv", HEADER, history + dirty)
    write_csv(tx / "2026-06-03" / "redelivery.csv", HEADER, [history[0]])
    (tx / "2026-06-01" / "broken.csv").write_text(
        ",".join(HEADER) + "\n" + f"ok1,{TS},B,1,5.00,USD,cust-0200\n" + f'"q_unparse,{TS},B,1\n'
    )
    (tx / "2026-06-02").mkdir()
    (tx / "2026-06-02" / "export.csv").write_bytes(b"\x00\x01binary\xff" * 50)
    (tx / "2026-06-02" / "dump.parquet").write_bytes(b"PAR1 not really parquet")
    (tx / "2026-06-02" / "notes.txt").write_text("call the vendor\n")
    with pytest.MonkeyPatch.context() as env:
        env.setenv(cfg.ingest.pii_salt_env, salt)
        report = run_ingest(spark, Lakehouse.at(spark, str(root / "lakehouse")), cfg.ingest, str(landing))
    return report, Lakehouse(str(root / "lakehouse")), salt


def test_each_dirt_kind_has_its_reason(
    spark: SparkSession, dirty_run: tuple[IngestReport, Lakehouse, str]
) -> None:
    _, lakehouse, _ = dirty_run
    quarantine = lakehouse.read(spark, QUARANTINE).where("source = 'transactions'")
    actual = quarantine.where(~F.col("_source_file").endswith("broken.csv")).select(
        F.get_json_object("raw_record", "$.order_id").alias("order_id"), "reason"
    )
    expected = spark.createDataFrame(
        [
            ("q_nosku", "missing_field"),
            ("q_badqty", "bad_type"),
            ("q_badts", "bad_type"),
            ("q_xyz", "unknown_currency"),
            ("q_zero", "invalid_quantity"),
            ("q_huge", "invalid_quantity"),
            ("q_negprice", "invalid_price"),
            ("q_outlier", "price_outlier"),
        ],
        "order_id string, reason string",
    )
    assertDataFrameEqual(actual, expected, checkRowOrder=False)
    broken = quarantine.where(F.col("_source_file").endswith("broken.csv"))
    assert [r.reason for r in broken.collect()] == ["unparseable"]
    details = dict(quarantine.select(F.get_json_object("raw_record", "$.order_id"), "detail").collect())
    assert details["q_badqty"] == "quantity={two} is not int"
    assert details["q_xyz"] == "no rate for XYZ on 2026-06-01"


def test_unreadable_files_are_recorded_and_do_not_stop_the_rest(
    spark: SparkSession, dirty_run: tuple[IngestReport, Lakehouse, str]
) -> None:
    report, lakehouse, _ = dirty_run
    ledger = lakehouse.read(spark, INGESTED_FILES).where("source = 'transactions'")
    failed = {Path(r.path).name: r.error for r in ledger.where("status = 'failed'").collect()}
    assert set(failed) == {"export.csv", "dump.parquet", "notes.txt"}
    assert "binary content" in failed["export.csv"]
    assert "not a Parquet file" in failed["dump.parquet"]
    assert "unsupported file type" in failed["notes.txt"]
    ingested = {Path(r.path).name: r.rows_read for r in ledger.where("status = 'ingested'").collect()}
    assert ingested == {"orders.csv": 19, "redelivery.csv": 1, "broken.csv": 2}
    assert "FAILED FILE [transactions]" in report.render()


def test_reconciliation_balances_exactly(
    spark: SparkSession, dirty_run: tuple[IngestReport, Lakehouse, str]
) -> None:
    report, lakehouse, _ = dirty_run
    reconciliation = lakehouse.read(spark, RECONCILIATION).where("source = 'transactions'")
    row = reconciliation.first()
    # 22 rows read: 10 history + 9 dirty/eur in orders.csv, 1 re-delivered, 2 in broken.csv.
    assert (
        row.rows_read,
        row.rows_silver,
        row.rows_quarantined,
        row.rows_duplicate,
        row.rows_unaccounted,
    ) == (
        22,
        12,
        9,
        1,
        0,
    )
    assert (row.files_ingested, row.files_failed, row.balanced) == (3, 3, True)
    assert report.balanced
    # Every source's rejected rows went in with one commit, the batch's, and the counts are its rows.
    history = lakehouse.history(spark, QUARANTINE)
    writes = history.where("operation = 'WRITE'").collect()
    assert len(writes) == 1
    assert int(writes[0].operationMetrics["numOutputRows"]) == sum(r.rows_quarantined for r in report.results)


def test_foreign_currency_is_converted_to_base(
    spark: SparkSession, dirty_run: tuple[IngestReport, Lakehouse, str]
) -> None:
    _, lakehouse, _ = dirty_run
    eur = lakehouse.read(spark, SILVER["transactions"]).where("order_id = 'eur'").first()
    assert eur.unit_price == Decimal("20.0016")  # 18.52 EUR * 1.08 USD/EUR


def test_pii_is_pseudonymised_and_absent_past_bronze(
    spark: SparkSession, dirty_run: tuple[IngestReport, Lakehouse, str]
) -> None:
    _, lakehouse, salt = dirty_run

    def rows_mentioning_customers(df: DataFrame) -> int:
        return df.where(F.to_json(F.struct(*df.columns)).contains("cust-")).count()

    assert rows_mentioning_customers(lakehouse.read(spark, BRONZE["transactions"])) == 21
    assert rows_mentioning_customers(lakehouse.read(spark, SILVER["transactions"])) == 0
    assert rows_mentioning_customers(lakehouse.read(spark, QUARANTINE)) == 0
    silver = lakehouse.read(spark, SILVER["transactions"])
    assert "customer_id" not in silver.columns
    expected_hash = spark.sql(f"SELECT sha2(concat('{salt}', '|', 'cust-0003'), 256)").first()[0]
    assert silver.where("order_id = 'h3'").first().customer_id_hash == expected_hash
    quarantined = lakehouse.read(spark, QUARANTINE).where(
        F.get_json_object("raw_record", "$.order_id") == "q_zero"
    )
    assert (
        quarantined.select(F.get_json_object("raw_record", "$.customer_id_hash")).first()[0]
        == spark.sql(f"SELECT sha2(concat('{salt}', '|', 'cust-0104'), 256)").first()[0]
    )


def test_sources_ingested_one_by_one_write_the_same_tables(
    spark: SparkSession, cfg: PricingConfig, dirty_run: tuple[IngestReport, Lakehouse, str]
) -> None:
    """``ingest.parallel_sources`` changes how long a batch takes, never what it writes."""
    report, lakehouse, salt = dirty_run
    landing = str(Path(lakehouse.root).parent / "landing")
    serial = Lakehouse(str(Path(lakehouse.root).parent / "serial"))
    one_by_one = cfg.model_copy(update={"ingest": cfg.ingest.model_copy(update={"parallel_sources": 1})})
    with pytest.MonkeyPatch.context() as env:
        env.setenv(cfg.ingest.pii_salt_env, salt)
        serial_report = run_ingest(spark, Lakehouse.at(spark, serial.root), one_by_one.ingest, landing)
    assert [r.source for r in serial_report.results] == [r.source for r in report.results]

    def written(tables: Lakehouse, table: Table) -> DataFrame:
        # The clock, the one thing allowed to differ.
        return tables.read(spark, table).drop("_ingested_at")

    sources = ("fx_rates", "catalog", "transactions")
    for table in (QUARANTINE, RECONCILIATION, INGESTED_FILES, *bronze_silver(sources)):
        assertDataFrameEqual(written(lakehouse, table), written(serial, table))


def test_judged_rows_keep_the_silver_row_and_only_a_rejected_rows_record(spark: SparkSession) -> None:
    bronze = json_to_bronze_rows(
        spark.createDataFrame(
            [
                ('{"event_id":"e1","event_ts":"2026-06-01T10:00:00Z","sku":"A","event_type":"view"}',),
                ('{"event_id":"e2","event_ts":"2026-06-01T11:00:00Z","event_type":"view"}',),
                (
                    '{"event_id":"e3","event_ts":"2026-06-01T12:00:00Z","sku":"B","event_type":"view",'
                    '"price_shown":"-3"}',
                ),
            ],
            "value string",
        ).withColumn("_file_path", F.lit("file:/l/c.json")),
        CLICKSTREAM,
        1,
        datetime(2026, 6, 2),
    )
    parsed = parse_bronze(
        bronze, CLICKSTREAM, base_currency="EUR", fx_daily_df=None, pii_salt="s" * 32,
        max_abs_quantity=1000, max_price=10_000.0,
    )  # fmt: skip
    judged = judged_columns(parsed, CLICKSTREAM)
    silver = [f.name for f in CLICKSTREAM.silver_schema.fields]
    assert judged.columns[: len(silver)] == silver
    assert set(judged.columns[len(silver) :]) <= {REASONS, RAW_RECORD, "_source_file", "_ingested_at"}
    rows = {r["event_id"]: r for r in judged.collect()}
    assert rows["e1"][REASONS] == [] and rows["e1"][RAW_RECORD] is None
    for rejected in ("e2", "e3"):
        assert rows[rejected][REASONS] and f'"event_id":"{rejected}"' in rows[rejected][RAW_RECORD]
