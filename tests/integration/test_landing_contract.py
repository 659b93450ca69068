"""The landing contract: every format, any sub-folder, case-insensitive columns, extras kept."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from landing_files import write_catalog, write_csv, write_jsonl, write_parquet
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType
from pyspark.testing import assertDataFrameEqual

from pricing.config import PricingConfig
from pricing.ingest import IngestError, run_ingest
from pricing.ingest.landing import json_to_bronze_rows
from pricing.lakehouse.tables import BRONZE, SILVER, Lakehouse
from pricing.schemas import CLICKSTREAM, TRANSACTIONS

HEADER = [
    "order_id",
    "order_ts",
    "sku",
    "quantity",
    "unit_price",
    "list_price",
    "currency",
    "customer_id",
    "channel",
]


def test_every_format_lands_in_the_same_typed_silver_rows(
    spark: SparkSession, cfg: PricingConfig, pii_salt: str, tmp_path: Path
) -> None:
    landing, lakehouse = tmp_path / "landing", Lakehouse(str(tmp_path / "lakehouse"))
    catalog = landing / "catalog" / "2026-06-01" / "Catalog Export.CSV"
    write_csv(
        catalog,
        ["SKU", "Title", "CATEGORY", "Brand", "Unit_Cost", "Supplier"],
        [["A", "Tent", "tents", "Acme", "50.5", "s1"], ["B", "Sock", "socks", "Acme", "", "s2"]],
    )
    tx = landing / "transactions"
    write_csv(
        tx / "2026-06-01" / "pos.csv",
        HEADER,
        [["o1", "2026-06-01T10:00:00Z", "A", 1, "99.99", "109.99", "USD", "c1", "web"]],
    )
    write_csv(
        tx / "2026-06-02" / "pos.csv.gz",
        HEADER,
        [["o2", "2026-06-02T11:30:00+02:00", "B", 3, "4.5", "", "", "c2", "store_01"]],
        gz=True,
    )
    write_jsonl(
        tx / "late" / "app.json",
        [
            {
                "order_id": "o3",
                "order_ts": "2026-06-01T23:59:59Z",
                "sku": "A",
                "quantity": -1,
                "unit_price": 99.99,
                "customer_id": "c1",
                "channel": "app",
            }
        ],
    )
    write_jsonl(
        tx / "x" / "y" / "web.jsonl",
        [
            {
                "ORDER_ID": "o4",
                "Order_Ts": "2026-06-03T08:00:00Z",
                "SKU": "B",
                "Quantity": "2",
                "Unit_Price": "4.25",
                "Line_Id": "7",
                "coupon": "SAVE10",
            }
        ],
    )
    write_parquet(
        tx / "bulk.parquet",
        pd.DataFrame(
            {
                "order_id": ["o5"],
                "order_ts": [pd.Timestamp("2026-06-03 09:15:00")],
                "sku": ["A"],
                "quantity": [2],
                "unit_price": [95.0],
                "channel": ["web"],
            }
        ),
    )
    # Hidden files and folders (Spark's convention) are not deliveries.
    write_csv(tx / "_tmp" / "partial.csv", HEADER, [["bad", "", "", "", "", "", "", "", ""]])
    write_csv(tx / ".staging.csv", HEADER, [["bad", "", "", "", "", "", "", "", ""]])

    report = run_ingest(spark, Lakehouse.at(spark, lakehouse.root), cfg.ingest, str(landing))

    assert report.balanced
    assert {r.source: (r.files_ingested, r.rows_read, r.rows_silver) for r in report.results} == {
        "catalog": (1, 2, 2),
        "transactions": (5, 5, 5),
    }
    silver = lakehouse.read(spark, SILVER["transactions"])
    columns = [
        "order_id",
        "line_id",
        "order_ts",
        "sku",
        "quantity",
        "unit_price",
        "list_price",
        "channel",
        "order_date",
        "line_key",
        "_batch_id",
    ]
    expected = spark.createDataFrame(
        [
            (
                "o1",
                None,
                datetime(2026, 6, 1, 10, 0),
                "A",
                1,
                Decimal("99.99"),
                Decimal("109.99"),
                "web",
                date(2026, 6, 1),
                "A",
                0,
            ),
            (
                "o2",
                None,
                datetime(2026, 6, 2, 9, 30),
                "B",
                3,
                Decimal("4.5"),
                Decimal("4.5"),
                "store_01",
                date(2026, 6, 2),
                "B",
                0,
            ),
            (
                "o3",
                None,
                datetime(2026, 6, 1, 23, 59, 59),
                "A",
                -1,
                Decimal("99.99"),
                Decimal("99.99"),
                "app",
                date(2026, 6, 1),
                "A",
                0,
            ),
            (
                "o4",
                "7",
                datetime(2026, 6, 3, 8, 0),
                "B",
                2,
                Decimal("4.25"),
                Decimal("4.25"),
                None,
                date(2026, 6, 3),
                "7",
                0,
            ),
            (
                "o5",
                None,
                datetime(2026, 6, 3, 9, 15),
                "A",
                2,
                Decimal("95"),
                Decimal("95"),
                "web",
                date(2026, 6, 3),
                "A",
                0,
            ),
        ],
        StructType([f for f in TRANSACTIONS.silver_schema.fields if f.name in columns]),
    )
    assertDataFrameEqual(silver.select(columns), expected.select(columns), checkRowOrder=False)
    assert silver.schema == TRANSACTIONS.silver_schema

    bronze = lakehouse.read(spark, BRONZE["transactions"])
    assert bronze.where("order_id = 'o4'").select("_extra").first()[0] == {"coupon": "SAVE10"}
    catalog_bronze = lakehouse.read(spark, BRONZE["catalog"])
    assert sorted(r[0] for r in catalog_bronze.select(F.col("_extra")["Supplier"]).collect()) == ["s1", "s2"]
    catalog_silver = lakehouse.read(spark, SILVER["catalog"])
    assert {r.sku: r.unit_cost_missing for r in catalog_silver.collect()} == {"A": False, "B": True}
    # Optional sources absent: no tables for them, and the run still succeeded.
    assert not Path(lakehouse.path(SILVER["clickstream"])).exists()


def test_json_lines_become_bronze_rows_however_their_keys_are_spelled(spark: SparkSession) -> None:
    # Lines that spell only contract columns take plain look-ups, the others the lowered map: both
    # must give what the contract says (values as their JSON text, extras kept, bad lines corrupt).
    lines = [
        '{"event_id":"e1","event_ts":"2026-06-01T10:00:00Z","sku":"A","event_type":"view",'
        '"session_id":"s1","customer_id":"c1","price_shown":9.99}',
        '{"event_id":"e2","sku":"B","price_shown":null}',
        '{"Event_ID":"e3"," sku ":"C","EVENT_TYPE":"cart"}',
        '{"event_id":"e4","sku":"D","Referrer":"ads","nested":{"a":1}}',
        "not json at all",
        "{}",
    ]
    lines_df = spark.createDataFrame(
        [(v, "file:/l/f.json") for v in lines], "value string, _file_path string"
    )
    at = datetime(2026, 6, 2, 3, 0)
    bronze = json_to_bronze_rows(lines_df, CLICKSTREAM, 7, at)
    none: dict[str, str] = {}
    expected = [
        ("e1", "2026-06-01T10:00:00Z", "A", "view", "s1", "c1", "9.99", none, None),
        ("e2", None, "B", None, None, None, None, none, None),
        ("e3", None, "C", "cart", None, None, None, none, None),
        ("e4", None, "D", None, None, None, None, {"Referrer": "ads", "nested": '{"a":1}'}, None),
        (None, None, None, None, None, None, None, none, "not json at all"),
        (None, None, None, None, None, None, None, none, None),
    ]
    assertDataFrameEqual(
        bronze,
        spark.createDataFrame(
            [(*row, "file:/l/f.json", at, 7) for row in expected], CLICKSTREAM.bronze_schema
        ),
        checkRowOrder=False,
    )


def test_required_source_missing_fails_clearly(
    spark: SparkSession, cfg: PricingConfig, pii_salt: str, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    write_catalog(landing, ["A"])
    with pytest.raises(IngestError, match="required source 'transactions' has no files"):
        run_ingest(spark, Lakehouse.at(spark, str(tmp_path / "lakehouse")), cfg.ingest, str(landing))


def test_missing_pii_secret_refuses_to_run(
    spark: SparkSession, cfg: PricingConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(cfg.ingest.pii_salt_env, raising=False)
    with pytest.raises(IngestError, match=cfg.ingest.pii_salt_env):
        run_ingest(
            spark, Lakehouse.at(spark, str(tmp_path / "lakehouse")), cfg.ingest, str(tmp_path / "landing")
        )


def test_a_silver_table_an_earlier_release_wrote_takes_the_next_batch(
    spark: SparkSession, cfg: PricingConfig, pii_salt: str, tmp_path: Path
) -> None:
    # silver/competitor_prices as releases before competitor listings wrote it (no competitor_sku,
    # title, brand, size): the next intake judges its outliers against that history and upgrades it.
    landing, lakehouse = tmp_path / "landing", Lakehouse(str(tmp_path / "lakehouse"))
    write_catalog(landing, ["A", "B"])
    tx_header = ["order_id", "order_ts", "sku", "quantity", "unit_price"]
    competitor_header = ["observed_ts", "competitor", "sku", "price"]
    for day in (1, 2):
        write_csv(
            landing / "transactions" / f"day={day}" / "tx.csv",
            tx_header,
            [[f"O{day}", f"2026-06-0{day}T10:00:00Z", "A", 1, "20.00"]],
        )
        write_csv(
            landing / "competitor_prices" / f"day={day}" / "rival.csv",
            competitor_header,
            [[f"2026-06-0{day}T09:00:00Z", "rival", sku, "19.00"] for sku in ("A", "B")],
        )
        if day == 1:
            run_ingest(spark, Lakehouse.at(spark, lakehouse.root), cfg.ingest, str(landing))
            path = lakehouse.path(SILVER["competitor_prices"])
            listing_columns = ["competitor_sku", "title", "brand", "size"]
            # Forged straight in Delta: the catalog refuses a table short of its declared columns.
            old = spark.read.format("delta").load(path).drop(*listing_columns)
            old.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
            assert not set(listing_columns) & set(spark.read.format("delta").load(path).columns)
    report = run_ingest(spark, Lakehouse.at(spark, lakehouse.root), cfg.ingest, str(landing))
    assert report.balanced
    counts = {r.source: (r.rows_read, r.rows_silver) for r in report.results}
    assert counts == {"transactions": (1, 1), "competitor_prices": (2, 2)}
    silver = lakehouse.read(spark, SILVER["competitor_prices"])
    assert set(listing_columns) <= set(silver.columns)
    assert silver.count() == 4 and silver.where(F.col("competitor_sku").isNotNull()).count() == 0
