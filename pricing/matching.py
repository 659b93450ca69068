"""The matching stage: competitor listings (their id, title, brand, size) -> our SKUs.

plan -> read -> transform -> write, like every stage:

- **read** the listings in silver ``competitor_prices`` (rows without our ``sku``) as one row per
  distinct (competitor, competitor_sku, title, brand, size), and the catalogue;
- **describe** both sides per Arrow batch (:mod:`pricing.listing_text`): folded words, brand words,
  the pack size in a base unit, and a vector of the words from the catalogue's text encoder (MiniLM,
  or hashed character 3-grams);
- **block** on brand words, so a listing is compared only with SKUs whose brand it names (a join,
  no pairs outside a block);
- **check** each pair: the brand's distinctive words all present, the same model numbers where the
  listing states any, the same pack size where both state one; **score** it by the cosine of the
  vectors (a Spark SQL higher-order expression, no Python per pair);
- **decide** per listing: the best pair passing the checks, if its score reaches
  ``matching.threshold`` and leads the runner-up by ``matching.min_margin``. A competitor id whose
  titles lead to different SKUs, or that never carried a title, is not matched. A person's decision
  (``silver/competitor_match_overrides``) wins over the matcher;
- **write** ``silver/competitor_matches`` (what the gold panel uses) and the review queue
  ``audit/listing_quarantine`` (reason ``unmatched_listing``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import reduce
from typing import Any

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    DoubleType,
    FloatType,
    StringType,
    StructField,
    StructType,
)

from pricing.config import FeaturesConfig, MatchingConfig
from pricing.ingest import latest_batch_id
from pricing.lakehouse import io
from pricing.lakehouse.tables import (
    COMPETITOR_MATCH_OVERRIDES,
    COMPETITOR_MATCHES,
    LISTING_QUARANTINE,
    MATCH_RUNS,
    SILVER,
    Lakehouse,
)
from pricing.listing_text import describe
from pricing.schemas import (
    BATCH_ID,
    LISTING_OVERRIDES_SCHEMA,
    MATCH_RUNS_SCHEMA,
)
from pricing.text import MINILM, encoder_name, vectoriser

log = logging.getLogger(__name__)

UNMATCHED_LISTING = "unmatched_listing"
OVERRIDE = "override"
LISTING_KEY = ["competitor", "competitor_sku"]
TEXT_COLUMNS = ["title", "brand", "size"]

DESCRIBED_SCHEMA = StructType(
    [
        StructField("_id", StringType(), False),
        StructField("text", StringType(), False),
        StructField("title_tokens", ArrayType(StringType(), False), False),
        StructField("brand_tokens", ArrayType(StringType(), False), False),
        StructField("size_dimension", StringType()),
        StructField("size_value", DoubleType()),
        StructField("embedding", ArrayType(FloatType(), False), False),
    ]
)


class MatchingError(RuntimeError):
    """A request the listing tables cannot take (an unknown listing or SKU)."""


@dataclass
class MatchReport:
    listings: int = 0
    matched: int = 0
    by_override: int = 0
    quarantined: int = 0
    encoder: str = ""
    seconds: float = 0.0
    skipped: bool = False  # nothing changed since the last run: its tables stand

    def render(self) -> str:
        if self.skipped:
            return (
                f"no new listing text, catalogue row, decision or setting: the {self.matched} matches and "
                f"{self.quarantined} unmatched listings of the last run stand"
            )
        return (
            f"{self.listings} listings: {self.matched} matched ({self.by_override} by a person's decision), "
            f"{self.quarantined} quarantined as {UNMATCHED_LISTING} [{self.encoder}]"
        )


def matching_encoder(cfg: FeaturesConfig, mcfg: MatchingConfig) -> str:
    """The catalogue's sentence encoder, or hashed n-grams of ``matching.hashed_dim`` without it."""
    name = encoder_name(cfg)
    return name if name == MINILM else f"hashed-char3-{mcfg.hashed_dim}"


def describe_texts(df: DataFrame, encoder: str, dim: int, batch_size: int = 64) -> DataFrame:
    """(_id, title, brand, size) -> :data:`DESCRIBED_SCHEMA`, per Arrow batch."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        vectors = vectoriser(encoder, dim, batch_size)
        for batch in batches:
            read = [
                describe(t, b, s)
                for t, b, s in zip(batch["title"], batch["brand"], batch["size"], strict=True)
            ]
            texts = [r.text for r in read]
            yield pd.DataFrame(
                {
                    "_id": batch["_id"],
                    "text": texts,
                    "title_tokens": [r.title_tokens for r in read],
                    "brand_tokens": [r.brand_tokens for r in read],
                    "size_dimension": [r.size.dimension if r.size else None for r in read],
                    "size_value": [r.size.value if r.size else None for r in read],
                    "embedding": vectors(texts) if texts else [],
                }
            )

    return df.select("_id", *TEXT_COLUMNS).mapInPandas(run, DESCRIBED_SCHEMA)


def is_listing() -> Column:
    """A competitor row that names the product by the competitor's id instead of our ``sku``."""
    return F.col("sku").isNull() & F.col("competitor_sku").isNotNull()


def listing_texts(competitor_df: DataFrame) -> DataFrame:
    """Silver competitor rows -> one row per listing text: (competitor, competitor_sku, title, brand,
    size, price_rows, last_seen, _id), for rows that carry a ``competitor_sku`` and no ``sku``."""
    return (
        competitor_df.where(is_listing())
        .groupBy(*LISTING_KEY, *TEXT_COLUMNS)
        .agg(F.count(F.lit(1)).alias("price_rows"), F.max("observed_date").alias("last_seen"))
        .withColumn("_id", F.sha2(F.to_json(F.struct(*LISTING_KEY, *TEXT_COLUMNS)), 256))
    )


def _has_digit(tokens: Column) -> Column:
    return F.filter(tokens, lambda t: t.rlike("[0-9]"))


def brand_stop_words(described_catalog: DataFrame, mcfg: MatchingConfig) -> list[str]:
    """Brand words in more than ``brand_stop_share`` of the catalogue's distinct brands, and in 3 or
    more: no evidence of a brand (``brand`` in ``Brand Acme``). A short list, collected."""
    brands = described_catalog.select("brand_tokens").distinct()
    n_brands = brands.count()
    return [
        r["_token"]
        for r in brands.select(F.explode("brand_tokens").alias("_token"))
        .groupBy("_token")
        .count()
        .where((F.col("count") > mcfg.brand_stop_share * n_brands) & (F.col("count") >= 3))
        .collect()
    ]


def score_pairs(
    listings: DataFrame, catalog: DataFrame, stop_words: list[str], mcfg: MatchingConfig
) -> DataFrame:
    """Described listings x described catalogue, within brand blocks -> (_id, sku, score, failed).

    ``failed`` names the first check the pair fails (``brand``, ``model number``, ``size``), null when
    it passes them all.
    """
    stop = F.array(*[F.lit(w) for w in stop_words]).cast("array<string>")
    l_brand = F.array_except(F.col("l.brand_tokens"), stop)
    l_words = F.when(F.size(l_brand) > 0, l_brand).otherwise(F.array_except(F.col("l.title_tokens"), stop))
    blocks_l = (
        listings.alias("l")
        .select(F.col("_id"), F.explode(l_words).alias("_token"))
        .where(~F.col("_token").rlike("^[0-9.,]+$"))
    )
    c_brand = F.array_except(F.col("c.brand_tokens"), stop)
    blocks_c = (
        catalog.alias("c")
        .select(F.col("_id").alias("sku"), F.explode(c_brand).alias("_token"))
        .where(~F.col("_token").rlike("^[0-9.,]+$"))
    )
    pairs = blocks_l.join(blocks_c, "_token").select("_id", "sku").distinct()
    joined = pairs.join(listings.alias("l"), "_id").join(
        catalog.withColumnRenamed("_id", "sku").alias("c"), "sku"
    )
    l_ident = F.array_sort(
        F.array_distinct(_has_digit(F.array_except(F.col("l.title_tokens"), F.col("c.brand_tokens"))))
    )
    c_ident = F.array_sort(
        F.array_distinct(_has_digit(F.array_except(F.col("c.title_tokens"), F.col("c.brand_tokens"))))
    )
    brand_ok = (F.size(c_brand) > 0) & (F.size(F.array_except(c_brand, l_words)) == 0)
    ident_ok = (F.size(l_ident) == 0) | (l_ident == c_ident)
    l_size, c_size = F.col("l.size_value"), F.col("c.size_value")
    size_ok = (
        l_size.isNull()
        | c_size.isNull()
        | (F.col("l.size_dimension") != F.col("c.size_dimension"))
        | (F.abs(l_size - c_size) <= F.lit(mcfg.size_tolerance) * F.greatest(l_size, c_size))
    )
    cosine = F.aggregate(
        F.zip_with("l.embedding", "c.embedding", lambda x, y: x * y),
        F.lit(0.0).cast("double"),
        lambda a, v: a + v,
    )
    failed = F.when(~brand_ok, "brand").when(~ident_ok, "model number").when(~size_ok, "size")
    return joined.select("_id", "sku", cosine.alias("score"), failed.alias("failed"))


def decide(texts: DataFrame, scored: DataFrame, mcfg: MatchingConfig) -> DataFrame:
    """Per listing text: its best passing SKU or why there is none.

    Returns (_id, best_sku, best_score, matched, detail): ``matched`` when the best pair passing the
    checks reaches the threshold and leads the runner-up by the margin.
    """
    passing = scored.where(F.col("failed").isNull())
    ranked = passing.withColumn(
        "_rank", F.row_number().over(Window.partitionBy("_id").orderBy(F.col("score").desc(), F.col("sku")))
    )
    top = (
        ranked.where("_rank <= 2")
        .groupBy("_id")
        .agg(
            F.min_by("sku", "_rank").alias("best_sku"),
            F.max("score").alias("best_score"),
            F.min("score").alias("_second"),
            F.count(F.lit(1)).alias("_n"),
        )
    )
    # For listings nothing passed: the closest SKU and the check it failed, for the reviewer.
    closest = scored.groupBy("_id").agg(
        F.max_by(F.struct("sku", "failed", "score"), "score").alias("_closest")
    )
    margin = F.when(F.col("_n") > 1, F.col("best_score") - F.col("_second"))
    df = texts.select("_id", "title").join(top, "_id", "left").join(closest, "_id", "left")
    detail = (
        F.when(F.col("title").isNull(), F.lit("no title to match"))
        .when(
            F.col("best_sku").isNull() & F.col("_closest").isNull(),
            F.lit("no catalogue SKU of the brand it names"),
        )
        .when(
            F.col("best_sku").isNull(),
            F.format_string(
                "closest %s (score %.2f) has a different %s",
                "_closest.sku",
                "_closest.score",
                "_closest.failed",
            ),
        )
        .when(
            F.col("best_score") < mcfg.threshold,
            F.format_string(
                "best score %.2f is below the threshold %.2f", "best_score", F.lit(mcfg.threshold)
            ),
        )
        .when(
            margin < mcfg.min_margin,
            F.format_string("ambiguous: the runner-up scores within %.2f", margin),
        )
    )
    return df.select(
        "_id",
        F.coalesce("best_sku", F.col("_closest.sku")).alias("best_sku"),
        F.coalesce("best_score", F.col("_closest.score")).alias("best_score"),
        detail.isNull().alias("matched"),
        detail.alias("detail"),
    )


def listing_decisions(texts: DataFrame, decided: DataFrame) -> DataFrame:
    """Per listing (competitor, competitor_sku): matched when every titled text it came with leads to
    one SKU; else the reason. Columns: competitor, competitor_sku, sku, score, title, detail, best_sku,
    best_score, brand, size, price_rows, last_seen."""
    df = texts.join(decided, "_id")
    titled = F.col("title").isNotNull()
    by_listing = df.groupBy(*LISTING_KEY).agg(
        F.countDistinct(F.when(titled & F.col("matched"), F.col("best_sku"))).alias("_skus"),
        F.count(F.when(titled & ~F.col("matched"), 1)).alias("_unmatched"),
        F.count(F.when(titled, 1)).alias("_titled"),
        F.countDistinct(F.when(titled, F.col("title"))).alias("_titles"),
        F.min(F.when(titled & F.col("matched"), F.col("best_score"))).alias("score"),
        F.max(F.when(titled & F.col("matched"), F.col("best_sku"))).alias("sku"),
        # What the reviewer sees: the latest text, and the first reason among its texts.
        F.max_by(F.struct(*TEXT_COLUMNS), F.col("last_seen")).alias("_latest"),
        F.max_by(F.struct("detail", "best_sku", "best_score"), F.col("detail").isNotNull()).alias("_why"),
        F.sum("price_rows").alias("price_rows"),
        F.max("last_seen").alias("last_seen"),
    )
    detail = (
        F.when(F.col("_titled") == 0, F.lit("no title to match"))
        .when(
            F.col("_skus") > 1,
            F.format_string("its %d titles match %d different SKUs", F.col("_titles"), F.col("_skus")),
        )
        .when(
            (F.col("_unmatched") > 0) & (F.col("_titles") > 1),
            F.concat(F.lit("one of its titles: "), F.col("_why.detail")),
        )
        .when(F.col("_unmatched") > 0, F.col("_why.detail"))
    )
    return by_listing.select(
        *LISTING_KEY,
        F.when(detail.isNull(), F.col("sku")).alias("sku"),
        F.when(detail.isNull(), F.col("score")).alias("score"),
        F.col("_latest.title").alias("title"),
        F.col("_latest.brand").alias("brand"),
        F.col("_latest.size").alias("size"),
        detail.alias("detail"),
        F.coalesce(F.col("_why.best_sku"), F.col("sku")).alias("best_sku"),
        F.coalesce(F.col("_why.best_score"), F.col("score")).alias("best_score"),
        "price_rows",
        "last_seen",
    )


def latest_overrides(overrides_df: DataFrame) -> DataFrame:
    """The latest decision per listing: (competitor, competitor_sku, sku) with sku null for 'not ours'."""
    latest = Window.partitionBy(*LISTING_KEY).orderBy(F.col("decided_at").desc())
    return (
        overrides_df.withColumn("_n", F.row_number().over(latest)).where("_n = 1").select(*LISTING_KEY, "sku")
    )


def match_listings(
    competitor_df: DataFrame,
    catalog_df: DataFrame,
    overrides_df: DataFrame,
    fcfg: FeaturesConfig,
    mcfg: MatchingConfig,
) -> tuple[DataFrame, DataFrame]:
    """Silver competitor rows, catalogue and decisions -> (matches, unmatched) per listing.

    ``matches``: competitor, competitor_sku, sku, score, method, title. ``unmatched``: the listings with
    their reason, in the review queue's columns (without ``checked_at``).
    """
    encoder = matching_encoder(fcfg, mcfg)
    texts = listing_texts(competitor_df).cache()
    catalog = catalog_df.select(F.col("sku").alias("_id"), *TEXT_COLUMNS)
    described_l = describe_texts(texts.where(F.col("title").isNotNull()), encoder, mcfg.hashed_dim).cache()
    described_c = describe_texts(catalog, encoder, mcfg.hashed_dim).cache()
    stop_words = brand_stop_words(described_c, mcfg)
    scored = score_pairs(described_l, described_c, stop_words, mcfg).cache()
    # Both outputs read the decisions: computed once here, and the inputs cached for them let go.
    decisions = listing_decisions(texts, decide(texts, scored, mcfg)).localCheckpoint(eager=True)
    for cached in (texts, described_l, described_c, scored):
        cached.unpersist()

    decided = latest_overrides(overrides_df)
    automatic = decisions.join(decided, LISTING_KEY, "left_anti")
    manual = decided.where(F.col("sku").isNotNull()).join(
        decisions.select(*LISTING_KEY, "title"), LISTING_KEY, "left"
    )
    matches = (
        automatic.where(F.col("detail").isNull())
        .select(*LISTING_KEY, "sku", "score", F.lit(encoder).alias("method"), "title")
        .unionByName(
            manual.select(
                *LISTING_KEY,
                "sku",
                F.lit(None).cast("double").alias("score"),
                F.lit(OVERRIDE).alias("method"),
                "title",
            )
        )
    )
    unmatched = automatic.where(F.col("detail").isNotNull()).select(
        *LISTING_KEY,
        *TEXT_COLUMNS,
        F.lit(UNMATCHED_LISTING).alias("reason"),
        "detail",
        "best_sku",
        "best_score",
        "price_rows",
        "last_seen",
    )
    return matches, unmatched


def resolve_listings(competitor_df: DataFrame, matches_df: DataFrame) -> DataFrame:
    """Competitor rows with our SKU: listings take their match's SKU; unmatched listings drop out.

    A row matched after it was ingested counts as new from the match's batch, so the features stage
    recomputes the days it touches.
    """
    listed = (
        competitor_df.where(F.col("sku").isNull())
        .join(
            matches_df.select(*LISTING_KEY, F.col("sku").alias("_m_sku"), F.col(BATCH_ID).alias("_m_batch")),
            LISTING_KEY,
        )
        .withColumn("sku", F.col("_m_sku"))
        .withColumn(BATCH_ID, F.greatest(BATCH_ID, "_m_batch"))
        .drop("_m_sku", "_m_batch")
    )
    return competitor_df.where(F.col("sku").isNotNull()).unionByName(listed)


def run_matching(
    spark: SparkSession, lakehouse: Lakehouse, cfg: MatchingConfig, features: FeaturesConfig
) -> MatchReport:
    """Match every competitor listing in silver; write the matches and the review queue.

    ``features`` says how listing titles are encoded (the catalog's text features).
    """
    started = time.monotonic()
    report = MatchReport(encoder=matching_encoder(features, cfg))
    if not lakehouse.exists(spark, SILVER["competitor_prices"]) or not lakehouse.exists(
        spark, SILVER["catalog"]
    ):
        report.seconds = time.monotonic() - started
        return report
    watermark = latest_batch_id(spark, lakehouse)
    competitor_df = lakehouse.read_declared(spark, SILVER["competitor_prices"]).where(
        F.col(BATCH_ID) <= F.lit(-1 if watermark is None else watermark)
    )
    if competitor_df.where(is_listing()).limit(1).count() == 0:
        report.seconds = time.monotonic() - started
        return report  # no competitor delivers listings: nothing to match
    catalog_df = lakehouse.read_declared(spark, SILVER["catalog"])
    overrides_df = lakehouse.read_declared(spark, COMPETITOR_MATCH_OVERRIDES)
    state = _inputs_state(spark, competitor_df, catalog_df, lakehouse, cfg, features)
    last = _last_run(spark, lakehouse, state["settings"])
    if last is not None and _unchanged(competitor_df, last, state):
        report.skipped, report.listings = True, int(last["listings"])
        report.matched, report.quarantined = int(last["matched"]), int(last["quarantined"])
        report.seconds = time.monotonic() - started
        log.info(f"[matching] {report.render()}")
        return report
    matches, unmatched = match_listings(competitor_df, catalog_df, overrides_df, features, cfg)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    previous = lakehouse.read_declared(spark, COMPETITOR_MATCHES).select(
        *LISTING_KEY,
        F.col("sku").alias("_p_sku"),
        F.col("method").alias("_p_method"),
        F.col("matched_at").alias("_p_at"),
        F.col(BATCH_ID).alias("_p_batch"),
    )
    # An unchanged match keeps when it was made (and so does not make the features recompute).
    same = F.col("_p_sku").eqNullSafe(F.col("sku")) & F.col("_p_method").eqNullSafe(F.col("method"))
    matches_df = (
        matches.join(previous, LISTING_KEY, "left")
        .select(
            *LISTING_KEY,
            "sku",
            "score",
            "method",
            F.when(same, F.col("_p_at")).otherwise(F.lit(now)).alias("matched_at"),
            "title",
            F.when(same, F.col("_p_batch"))
            .otherwise(F.lit(-1 if watermark is None else watermark))
            .alias(BATCH_ID),
        )
        .cache()
    )
    quarantine_df = unmatched.withColumn("checked_at", F.lit(now)).cache()
    lakehouse.overwrite(COMPETITOR_MATCHES, matches_df)
    lakehouse.overwrite(LISTING_QUARANTINE, quarantine_df)
    counts = (
        matches_df.groupBy()
        .agg(F.count(F.lit(1)).alias("n"), F.count(F.when(F.col("method") == OVERRIDE, 1)).alias("manual"))
        .first()
    )
    assert counts is not None  # a global aggregate has one row
    report.matched, report.by_override = int(counts["n"]), int(counts["manual"])
    report.quarantined = quarantine_df.count()
    report.listings = (
        report.matched
        + report.quarantined
        + int(
            io.first_value(latest_overrides(overrides_df).where(F.col("sku").isNull()).agg(F.count(F.lit(1))))
            or 0
        )
    )
    lakehouse.append(
        MATCH_RUNS,
        spark.createDataFrame(
            [
                (
                    now,
                    state["settings"],
                    state["competitor_batch"],
                    state["catalog_batch"],
                    state["overrides_version"],
                    report.listings,
                    report.matched,
                    report.quarantined,
                )
            ],
            MATCH_RUNS_SCHEMA,
        ),
    )
    matches_df.unpersist()
    quarantine_df.unpersist()
    report.seconds = time.monotonic() - started
    log.info(f"[matching] {report.render()}")
    return report


def _inputs_state(
    spark: SparkSession,
    competitor_df: DataFrame,
    catalog_df: DataFrame,
    lakehouse: Lakehouse,
    cfg: MatchingConfig,
    features: FeaturesConfig,
) -> dict[str, Any]:
    """What a matching run consumes: the newest batches of both sources, the decisions' version, and
    the settings (encoder and thresholds) it decides with."""
    batches = competitor_df.agg(F.max(BATCH_ID)).first()
    catalog = catalog_df.agg(F.max(BATCH_ID)).first()
    settings = json.dumps({"encoder": matching_encoder(features, cfg), **cfg.model_dump()}, sort_keys=True)
    return {
        "settings": settings,
        "competitor_batch": int(batches[0]) if batches and batches[0] is not None else -1,
        "catalog_batch": int(catalog[0]) if catalog and catalog[0] is not None else -1,
        "overrides_version": io.latest_version(spark, lakehouse.path(COMPETITOR_MATCH_OVERRIDES)) or -1,
    }


def _last_run(spark: SparkSession, lakehouse: Lakehouse, settings: str) -> Any:
    runs = lakehouse.read_declared(spark, MATCH_RUNS).where(F.col("settings") == settings)
    return runs.orderBy(F.col("run_at").desc()).first()


def _unchanged(competitor_df: DataFrame, last: Any, state: dict[str, Any]) -> bool:
    """Nothing a run would read differently: no new catalogue batch or decision, and the listing rows
    that arrived since bring no (competitor, competitor_sku, title, brand, size) not seen before."""
    if (state["catalog_batch"], state["overrides_version"]) != (
        last["catalog_batch"],
        last["overrides_version"],
    ):
        return False
    if state["competitor_batch"] == last["competitor_batch"]:
        return True
    key = [*LISTING_KEY, *TEXT_COLUMNS]
    listed = competitor_df.where(is_listing())
    new = listed.where(F.col(BATCH_ID) > F.lit(last["competitor_batch"])).select(*key).distinct()
    seen = listed.where(F.col(BATCH_ID) <= F.lit(last["competitor_batch"])).select(*key).distinct()
    same = reduce(lambda a, b: a & b, [F.col(f"n.{c}").eqNullSafe(F.col(f"s.{c}")) for c in key])
    return new.alias("n").join(seen.alias("s"), same, "left_anti").limit(1).count() == 0


def decide_listing(
    spark: SparkSession,
    lakehouse: Lakehouse,
    competitor: str,
    competitor_sku: str,
    sku: str | None,
    decided_by: str,
    note: str | None = None,
) -> None:
    """Record a person's decision: the listing is ``sku`` (or, with ``sku=None``, none of ours).

    Takes effect at the next matching run (each night, or ``pricing listings match``).
    """

    def found(source: str, where: Column) -> bool:
        rows = lakehouse.read_declared(spark, SILVER[source])
        return rows.where(where).limit(1).count() > 0

    listing = (F.col("competitor") == competitor) & (F.col("competitor_sku") == competitor_sku)
    if not found("competitor_prices", listing):
        raise MatchingError(f"no listing {competitor_sku!r} of {competitor!r} in silver competitor_prices")
    if sku is not None and not found("catalog", F.col("sku") == sku):
        raise MatchingError(f"{sku!r} is not in the catalogue")
    row = [
        (competitor, competitor_sku, sku, decided_by, datetime.now(timezone.utc).replace(tzinfo=None), note)
    ]
    lakehouse.append(COMPETITOR_MATCH_OVERRIDES, spark.createDataFrame(row, LISTING_OVERRIDES_SCHEMA))


def review_queue(spark: SparkSession, lakehouse: Lakehouse, limit: int = 50) -> pd.DataFrame:
    """The unmatched listings, most price rows first (a small table for people)."""
    if not lakehouse.exists(spark, LISTING_QUARANTINE):
        return pd.DataFrame()
    return (
        lakehouse.read_declared(spark, LISTING_QUARANTINE)
        .orderBy(F.col("price_rows").desc(), *LISTING_KEY)
        .select(
            *LISTING_KEY,
            "title",
            "brand",
            "size",
            "detail",
            "best_sku",
            F.round("best_score", 2).alias("score"),
        )
        .limit(limit)
        .toPandas()
    )
