"""Competitor listings matched to our SKUs: titles read alike, hand-built listings matched (exact,
reordered, abbreviated, wrong size, another model), bad input (no title, one id with two titles), a
person's decision winning, and the landing -> silver -> matches -> panel path."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from landing_files import write_csv, write_jsonl, write_parquet
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pricing.config import PricingConfig
from pricing.features import run_features
from pricing.ingest import run_ingest
from pricing.lakehouse.tables import COMPETITOR_MATCHES, QUARANTINE, SKU_DAY, Lakehouse
from pricing.listing_text import Size, describe, find_size, fold
from pricing.matching import (
    MatchingError,
    decide_listing,
    match_listings,
    review_queue,
    run_matching,
)
from pricing.schemas import SOURCES

# -- reading titles -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("Water Bottle 0.75L", Size("volume", 750.0)),
        ("water bottle 750 ml", Size("volume", 750.0)),
        ("water bottle 75cl", Size("volume", 750.0)),
        ("Tent 2,4 kg", Size("mass", 2400.0)),
        ("Sleeping bag 900 gr", Size("mass", 900.0)),
        ("Boreal 11 Socks pack of 3", Size("count", 3.0)),  # not "11 pack"
        ("Ridge 82 pack 20 ltr", Size("volume", 20000.0)),  # a volume outranks a count
        ("Socks 3-pack", Size("count", 3.0)),
        ("Running Shoe 47", None),
    ],
)
def test_pack_sizes_read_in_a_base_unit(text: str, size: Size | None) -> None:
    assert find_size(fold(text))[0] == size


def test_titles_fold_accents_case_and_take_the_size_out() -> None:
    assert fold("Ácme-3 BÖTTLE") == "acme 3 bottle"
    read = describe("Ácme 3 Classic Wätér Bottle 38 0.5 L", "BRAND ÁCME 3", None)
    assert read.text == "acme 3 classic water bottle 38"
    assert read.brand_tokens == ["3", "acme", "brand"]
    assert read.size == Size("volume", 500.0)
    # The size column wins over a size in the title.
    assert describe("Bottle 1 l", None, "500ml").size == Size("volume", 500.0)


# -- matching hand-built listings ----------------------------------------------------------------

CATALOG = [
    # sku, title, brand, size
    ("A1", "Acme Trail Runner 2 Running Shoe", "Acme", None),
    ("A2", "Acme Trail Runner 3 Running Shoe", "Acme", None),
    ("B1", "Boreal Classic Water Bottle", "Boreal", "750 ml"),
    ("B2", "Boreal Classic Water Bottle", "Boreal", "1 l"),
    ("C1", "Cascade Storm Rain Jacket", "Cascade", None),
]
LISTINGS = [
    # competitor_sku, title, brand, size
    ("exact", "Acme Trail Runner 2 Running Shoe", "Acme", None),
    ("reordered", "Running Shoe Trail Runner 2 - ACME", None, None),
    ("abbreviated", "Acme Trl Runner 2 Running Sh.", "acme", None),
    ("sized", "Boreal Classic Water Bottle 0.75L", "Boreal", None),
    ("wrong_size", "Boreal Classic Water Bottle", "Boreal", "500ml"),
    ("no_size", "Boreal Classic Water Bottle", "Boreal", None),
    ("other_model", "Acme Trail Runner 7 Running Shoe", "Acme", None),
    ("unknown_brand", "Zephyr Dome Tent", "Zephyr", None),
    ("no_title", None, None, None),
    ("retitled", "Cascade Storm Rain Jacket", "Cascade", None),
    ("retitled", "Cascade Storm Rain Jacket - new", "Cascade", None),
    ("reused_id", "Acme Trail Runner 2 Running Shoe", "Acme", None),
    ("reused_id", "Cascade Storm Rain Jacket", "Cascade", None),
]


def catalog_df(spark: SparkSession) -> DataFrame:
    rows = [
        {"sku": s, "title": t, "category": "c", "brand": b, "size": z, "_source_file": "f", "_batch_id": 0}
        for s, t, b, z in CATALOG
    ]
    return spark.createDataFrame(rows, SOURCES["catalog"].silver_schema)


def competitor_df(spark: SparkSession, listings: list[tuple], day: date = date(2026, 6, 1)) -> DataFrame:
    schema = SOURCES["competitor_prices"].silver_schema
    rows = [
        {
            "observed_ts": datetime(day.year, day.month, day.day, 9, i % 60),
            "competitor": "shopx",
            "competitor_sku": cid,
            "title": title,
            "brand": brand,
            "size": size,
            "price": Decimal("10.0000"),
            "observed_date": day,
            "_source_file": "f",
            "_batch_id": 0,
        }
        for i, (cid, title, brand, size) in enumerate(listings)
    ]
    return spark.createDataFrame(rows, schema)


@pytest.fixture(scope="module")
def matched(spark: SparkSession, cfg: PricingConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    fcfg = cfg.features.model_copy(update={"text_encoder": "hashed"})
    decisions = spark.createDataFrame(
        [], "competitor string, competitor_sku string, sku string, decided_at timestamp"
    )
    matches, unmatched = match_listings(
        competitor_df(spark, LISTINGS), catalog_df(spark), decisions, fcfg, cfg.matching
    )
    return matches.toPandas().set_index("competitor_sku"), unmatched.toPandas().set_index("competitor_sku")


def test_listings_match_exact_reordered_and_abbreviated_titles(
    matched: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    matches, _ = matched
    assert matches["sku"].to_dict() == {
        "exact": "A1",
        "reordered": "A1",
        "abbreviated": "A1",
        "sized": "B1",  # 0.75L is the 750 ml bottle, not the litre one with the same title
        "retitled": "C1",  # two titles, one product
    }
    assert (matches["method"] == "hashed-char3-1024").all()
    assert matches.loc["exact", "score"] == pytest.approx(1.0)
    assert (matches["score"] >= 0.5).all()


def test_listings_that_are_not_ours_or_not_sure_are_quarantined_with_why(
    matched: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    _, unmatched = matched
    assert set(unmatched["reason"]) == {"unmatched_listing"}
    detail = unmatched["detail"].to_dict()
    assert set(detail) == {"wrong_size", "no_size", "other_model", "unknown_brand", "no_title", "reused_id"}
    assert detail["wrong_size"].endswith("has a different size")
    assert detail["no_size"].startswith("ambiguous")  # both bottles fit a listing without a size
    assert detail["other_model"].endswith("has a different model number")
    assert unmatched.loc["other_model", "best_sku"] in {"A1", "A2"}
    assert detail["unknown_brand"] == "no catalogue SKU of the brand it names"
    assert detail["no_title"] == "no title to match"
    assert detail["reused_id"] == "its 2 titles match 2 different SKUs"
    assert unmatched.loc["reused_id", "price_rows"] == 2


def test_a_persons_decision_wins_over_the_matcher(spark: SparkSession, cfg: PricingConfig) -> None:
    fcfg = cfg.features.model_copy(update={"text_encoder": "hashed"})
    decisions = spark.createDataFrame(
        [
            ("shopx", "no_size", "B2", datetime(2026, 6, 2)),
            ("shopx", "exact", "A2", datetime(2026, 6, 2)),  # corrects the matcher ...
            ("shopx", "exact", None, datetime(2026, 6, 3)),  # ... then says it is not ours after all
        ],
        "competitor string, competitor_sku string, sku string, decided_at timestamp",
    )
    matches, unmatched = match_listings(
        competitor_df(spark, LISTINGS), catalog_df(spark), decisions, fcfg, cfg.matching
    )
    assertDataFrameEqual(
        matches.where(F.col("competitor_sku").isin("no_size", "exact")).select(
            "competitor_sku", "sku", "method", "score"
        ),
        spark.createDataFrame(
            [("no_size", "B2", "override", None)],
            "competitor_sku string, sku string, method string, score double",
        ),
    )
    assert unmatched.where(F.col("competitor_sku").isin("no_size", "exact")).count() == 0


# -- the stage, from landing files ---------------------------------------------------------------


def write_shop(landing: Path) -> None:
    write_jsonl(
        landing / "catalog" / "catalog.json",
        [
            {
                "sku": s,
                "title": t,
                "category": "c",
                "brand": b,
                "size": z,
                "unit_cost": "5.00",
                "updated_at": "2026-06-01T00:00:00Z",
            }
            for s, t, b, z in CATALOG
        ],
    )
    header = ["order_id", "order_ts", "sku", "quantity", "unit_price"]
    write_csv(
        landing / "transactions" / "day=2026-06-01" / "orders.csv",
        header,
        [[f"o{i}-{sku}", "2026-06-01T10:00:00Z", sku, 1, "12.00"] for i in range(2) for sku, *_ in CATALOG],
    )
    rows = [
        # one competitor that carries our SKU, one that delivers its own listings
        {"observed_ts": "2026-06-01T08:00:00", "competitor": "direct", "sku": "A1", "price": 11.0},
        *[
            {
                "observed_ts": f"2026-06-01T08:{i:02d}:00",
                "competitor": "shopx",
                "competitor_sku": cid,
                "title": t,
                "brand": b,
                "size": z,
                "price": 9.0 + i,
            }
            for i, (cid, t, b, z) in enumerate(LISTINGS)
        ],
        {"observed_ts": "2026-06-01T09:00:00", "competitor": "shopx", "price": 9.5},  # neither sku nor id
    ]
    frame = pd.DataFrame(rows)
    frame["observed_ts"] = pd.to_datetime(frame["observed_ts"])
    write_parquet(landing / "competitor_prices" / "day=2026-06-01" / "scrape.parquet", frame)


def test_listings_from_landing_to_the_panel(
    spark: SparkSession, cfg: PricingConfig, tmp_path: Path, pii_salt: str
) -> None:
    write_shop(tmp_path / "landing")
    root = str(tmp_path / "lakehouse")
    lakehouse = Lakehouse.at(spark, root)
    hashed = cfg.model_copy(update={"features": cfg.features.model_copy(update={"text_encoder": "hashed"})})
    report = run_ingest(spark, lakehouse, hashed.ingest, str(tmp_path / "landing"))
    competitor = next(r for r in report.results if r.source == "competitor_prices")
    assert (competitor.rows_read, competitor.rows_silver, competitor.rows_quarantined) == (15, 14, 1)
    quarantined = Lakehouse(root).read(spark, QUARANTINE).where("source = 'competitor_prices'")
    assert [r.detail for r in quarantined.collect()] == ["sku and competitor_sku are all missing"]

    result = run_matching(spark, lakehouse, hashed.matching, hashed.features)
    assert (result.listings, result.matched, result.quarantined) == (11, 5, 6)
    matches = lakehouse.read(spark, COMPETITOR_MATCHES)
    assert matches.where("competitor_sku = 'exact'").first().sku == "A1"
    assert len(review_queue(spark, lakehouse)) == 6

    # A person maps the unsized bottle; the next run takes it, and a second run changes nothing.
    decide_listing(spark, lakehouse, "shopx", "no_size", "B2", "tester", "checked the shop's page")
    with pytest.raises(MatchingError, match="not in the catalogue"):
        decide_listing(spark, lakehouse, "shopx", "wrong_size", "Z9", "tester")
    with pytest.raises(MatchingError, match="no listing"):
        decide_listing(spark, lakehouse, "shopx", "never-seen", "B1", "tester")
    assert run_matching(spark, lakehouse, hashed.matching, hashed.features).by_override == 1
    first = lakehouse.read(spark, COMPETITOR_MATCHES).orderBy("competitor_sku").collect()
    again = run_matching(spark, lakehouse, hashed.matching, hashed.features)
    assert again.skipped and (again.matched, again.quarantined) == (6, 5)
    assert lakehouse.read(spark, COMPETITOR_MATCHES).orderBy("competitor_sku").collect() == first
    # Other settings are another matching: it runs again, and the same data gives the same matches.
    stricter = hashed.model_copy(update={"matching": hashed.matching.model_copy(update={"threshold": 0.51})})
    assert not run_matching(spark, lakehouse, stricter.matching, stricter.features).skipped
    kept = {(r.competitor_sku, r.sku) for r in first if r.score is None or r.score >= 0.51}
    assert {(r.competitor_sku, r.sku) for r in lakehouse.read(spark, COMPETITOR_MATCHES).collect()} == kept

    # The panel counts shopx's listings under the matched SKUs; unmatched listings stay out.
    run_features(spark, lakehouse, hashed.features, hashed.catalog)
    panel = lakehouse.read(spark, SKU_DAY).where("date = '2026-06-01'")
    competitors = {r.sku: r.n_competitors for r in panel.select("sku", "n_competitors").collect()}
    assert competitors == {"A1": 2, "A2": None, "B1": 1, "B2": 1, "C1": 1}
    lowest = {r.sku: r.comp_min_price for r in panel.select("sku", "comp_min_price").collect()}
    # shopx lists A1 three times (9.00, 10.00, 11.00 at 08:00-08:02): one competitor, its latest price.
    assert lowest["A1"] == pytest.approx(11.0)
    assert lowest["B1"] == pytest.approx(12.0)  # "sized" (0.75L) at 08:03
