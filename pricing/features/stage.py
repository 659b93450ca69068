"""The features stage: bring ``gold/sku_day`` up to a run date, recomputing only what new silver
rows affect (plan the ranges, read silver, build the panel's rows, MERGE them, record the run)."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import reduce
from typing import Literal

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pricing.config import CatalogConfig, FeaturesConfig
from pricing.features.panel import (
    DailyInputs,
    build_panel,
    catalog_attributes,
    daily_clicks,
    daily_competition,
    daily_sales,
    daily_spine,
    daily_stock,
)
from pricing.ingest import latest_batch_id
from pricing.lakehouse import io
from pricing.lakehouse.tables import (
    COMPETITOR_MATCHES,
    FEATURE_RUNS,
    SILVER,
    SKU_CALENDAR,
    SKU_DAY,
    Lakehouse,
)
from pricing.matching import resolve_listings
from pricing.schemas import (
    BATCH_ID,
    FEATURE_RUNS_SCHEMA,
    SOURCES,
    sku_day_schema,
)
from pricing.text import ensure_text_embeddings

log = logging.getLogger(__name__)

DAILY_SOURCES = {
    "transactions": "order_date",
    "clickstream": "event_date",
    "competitor_prices": "observed_date",
    "inventory": "snapshot_date",
}


@dataclass
class FeatureReport:
    """What one ``run_features`` did, with the Delta operation metrics of its write."""

    run_id: str
    run_date: date
    mode: str
    skus_recomputed: int
    rows_written: int
    rows_in_panel: int
    metrics: dict[str, str]
    seconds: float

    def render(self) -> str:
        return (
            f"gold/sku_day {self.mode} run for {self.run_date}: {self.skus_recomputed} SKUs recomputed, "
            f"{self.rows_written} rows written, {self.rows_in_panel} rows in panel ({self.seconds:.1f}s)"
        )


def read_sku_day(spark: SparkSession, lakehouse: Lakehouse, cfg: FeaturesConfig) -> DataFrame:
    """The panel with every column this release declares: one an earlier release wrote reads its newer
    columns as nulls until a features run adds them (model inputs need them all)."""
    return lakehouse.read_declared(spark, SKU_DAY, sku_day_schema(cfg.lags, cfg.windows))


def _last_run(spark: SparkSession, lakehouse: Lakehouse) -> tuple[int, date] | None:
    runs = lakehouse.read_declared(spark, FEATURE_RUNS)
    last = runs.orderBy(F.col("finished_at").desc()).select("batch_watermark", "run_date").first()
    return (int(last[0]), last[1]) if last else None


def _affected_ranges(
    silver: dict[str, DataFrame | None],
    calendar_df: DataFrame,
    since_batch: int,
    up_to_batch: int,
    last_run_date: date,
    run_date: date,
    promo_reach_days: int,
    new_days: DataFrame,
) -> DataFrame:
    """(sku, start): the earliest day whose features can have changed since the last run, per SKU.

    ``new_days``: (sku, start), the new rows' earliest day in the daily sources (``_earliest_days``).
    """
    new_rows = (F.col(BATCH_ID) > since_batch) & (F.col(BATCH_ID) <= up_to_batch)
    starts = [new_days]
    transactions_df = silver["transactions"]
    if transactions_df is not None and promo_reach_days:
        # A promoted sale can flag the unsold days of its promotion before it (with_promotion_spells).
        promoted = transactions_df.where(new_rows & F.col("promo_id").isNotNull() & (F.col("quantity") > 0))
        starts.append(
            promoted.groupBy("sku").agg(F.date_sub(F.min("order_date"), promo_reach_days).alias("start"))
        )
    catalog_df = silver["catalog"]
    if catalog_df is not None:
        # A changed catalog row (cost, MAP, text) touches every day of the SKU.
        changed = catalog_df.where(new_rows).select("sku").join(calendar_df, "sku")
        starts.append(changed.select("sku", F.col("first_date").alias("start")))
    if run_date > last_run_date:
        # Every SKU gains the days since the last run, sales or not.
        starts.append(calendar_df.select("sku", F.date_add(F.lit(last_run_date), 1).alias("start")))
    return reduce(DataFrame.unionByName, starts).groupBy("sku").agg(F.min("start").alias("start"))


def _earliest_days(silver: dict[str, DataFrame | None], rows: Column, name: str) -> list[DataFrame]:
    """Per daily source present: (sku, earliest day among ``rows``) as column ``name``."""
    return [
        df.where(rows).groupBy("sku").agg(F.min(date_column).alias(name))
        for source, date_column in DAILY_SOURCES.items()
        if (df := silver.get(source)) is not None
    ]


def _first_dates(
    silver: dict[str, DataFrame | None], batch_filter: Column, earliest: DataFrame | None = None
) -> DataFrame:
    """(sku, first_date) among ``batch_filter``'s rows; ``earliest``: the daily sources' part, if known."""
    firsts = [earliest] if earliest is not None else _earliest_days(silver, batch_filter, "first_date")
    catalog_df = silver["catalog"]
    if catalog_df is not None:
        firsts.append(
            catalog_df.where(batch_filter & F.col("updated_at").isNotNull()).select(
                "sku", F.to_date("updated_at").alias("first_date")
            )
        )
    return reduce(DataFrame.unionByName, firsts).groupBy("sku").agg(F.min("first_date").alias("first_date"))


def calendar_changes(known: DataFrame, calendar: DataFrame) -> DataFrame:
    """(sku, known_first, first_date): the SKUs whose first day is new, gone or moved between calendars."""
    return (
        known.select("sku", F.col("first_date").alias("known_first"))
        .join(calendar.select("sku", "first_date"), "sku", "full_outer")
        .where(~F.col("known_first").eqNullSafe(F.col("first_date")))
    )


@dataclass(frozen=True)
class FeaturePlan:
    """What one features run does: rebuild or update, up to which day, seeing which silver batches."""

    mode: Literal["full", "incremental"]
    run_date: date
    watermark: int  # the newest committed ingestion batch: silver rows up to it are what the run sees
    since_batch: int | None = None  # incremental: the batch watermark the last run saw
    last_run_date: date | None = None  # incremental: the day the last run built the panel up to


def plan_features(
    last_run: tuple[int, date] | None, latest_batch: int | None, run_date: date, full: bool
) -> FeaturePlan:
    """The run's plan (pure): a full rebuild without an earlier run (or when asked), else an update."""
    watermark = -1 if latest_batch is None else latest_batch
    if full or last_run is None:
        return FeaturePlan("full", run_date, watermark)
    return FeaturePlan("incremental", run_date, watermark, last_run[0], last_run[1])


def read_silver(spark: SparkSession, lakehouse: Lakehouse) -> dict[str, DataFrame | None]:
    """Each source's silver table (None where nothing was ingested), competitor listings under the SKU
    they were matched to (:mod:`pricing.matching`; unmatched ones do not count)."""
    silver = {name: lakehouse.read_if_exists(spark, SILVER[name]) for name in SOURCES}
    competitor_df = silver["competitor_prices"]
    if competitor_df is not None and "competitor_sku" in competitor_df.columns:
        silver["competitor_prices"] = resolve_listings(
            competitor_df, lakehouse.read_declared(spark, COMPETITOR_MATCHES)
        )
    if silver["transactions"] is None or silver["catalog"] is None:
        raise RuntimeError("gold features need silver transactions and catalog: run `pricing ingest` first")
    return silver


@dataclass
class _Ranges:
    calendar: DataFrame  # (sku, first_date): each SKU's first day, as gold/sku_calendar keeps it
    ranges: DataFrame  # (sku, keep_from, start, end): rows to write from keep_from, read from start
    new_days: DataFrame | None  # incremental: the new rows' earliest day per SKU (cached)

    def unpersist(self) -> None:
        for df in (self.calendar, self.ranges, self.new_days):
            if df is not None:
                df.unpersist()


def _plan_ranges(
    silver: dict[str, DataFrame | None],
    known_calendar: DataFrame | None,
    plan: FeaturePlan,
    cfg: FeaturesConfig,
) -> _Ranges:
    """Which (SKU, day) ranges the run recomputes: every SKU from its first day for a rebuild, else
    from the earliest day new silver rows can have changed (cached: the stage reads them thrice)."""
    seen = F.col(BATCH_ID) <= plan.watermark
    new_days: DataFrame | None = None
    if plan.mode == "full" or known_calendar is None:
        calendar_df = _first_dates(silver, seen)
        ranges_df = calendar_df.select("sku", F.col("first_date").alias("start"))
    else:
        assert plan.since_batch is not None and plan.last_run_date is not None
        new_rows = (F.col(BATCH_ID) > plan.since_batch) & seen
        # The new rows' earliest day per SKU serves both the calendar and the affected ranges: one
        # filtered scan of each source instead of two.
        new_days = (
            reduce(DataFrame.unionByName, _earliest_days(silver, new_rows, "day"))
            .groupBy("sku")
            .agg(F.min("day").alias("day"))
            .cache()
        )
        new_firsts = _first_dates(silver, new_rows, new_days.withColumnRenamed("day", "first_date"))
        calendar_df = (
            known_calendar.unionByName(new_firsts).groupBy("sku").agg(F.min("first_date").alias("first_date"))
        )
        ranges_df = _affected_ranges(
            silver,
            calendar_df,
            plan.since_batch,
            plan.watermark,
            plan.last_run_date,
            plan.run_date,
            cfg.promo_reach_days,
            new_days.withColumnRenamed("day", "start"),
        )
    calendar_df = calendar_df.where(F.col("first_date") <= F.lit(plan.run_date)).cache()
    # Recompute from `start`, reading `lookback_days` before it (never before the SKU's first day).
    ranges_df = (
        ranges_df.join(calendar_df, "sku")
        .where(F.col("start") <= F.lit(plan.run_date))
        .select(
            "sku",
            F.greatest("start", "first_date").alias("keep_from"),
            F.greatest(F.date_sub("start", cfg.lookback_days), F.col("first_date")).alias("start"),
            F.lit(plan.run_date).cast("date").alias("end"),
        )
        .cache()
    )
    return _Ranges(calendar_df, ranges_df, new_days)


def panel_update(
    silver: dict[str, DataFrame | None],
    ranges_df: DataFrame,
    earliest: date | None,
    plan: FeaturePlan,
    cfg: FeaturesConfig,
    default_margin: float,
) -> DataFrame:
    """The panel's rows for the planned ranges (``ranges_df``: sku, keep_from, start, end), built from
    the silver rows the plan sees; ``earliest``, the first ``start``, bounds every read by a literal."""
    seen = F.col(BATCH_ID) <= plan.watermark

    def window_of(df: DataFrame | None, date_column: str) -> DataFrame | None:
        if df is None:
            return None
        bounds = F.broadcast(
            ranges_df.select("sku", F.col("start").alias("_from"), F.col("end").alias("_to"))
        )
        # A literal bound as well as the per-SKU join: Delta skips files whose dates all lie before
        # it, so a night reads its lookback window, not the whole history.
        if earliest is not None:
            df = df.where(F.col(date_column) >= F.lit(earliest))
        return (
            df.where(seen).join(bounds, "sku").where(F.col(date_column).between(F.col("_from"), F.col("_to")))
        )

    catalog_df = silver["catalog"]
    assert catalog_df is not None
    inputs = DailyInputs(
        sales=daily_sales(window_of(silver["transactions"], "order_date")),  # type: ignore[arg-type]
        clicks=daily_clicks(c) if (c := window_of(silver["clickstream"], "event_date")) is not None else None,
        competition=daily_competition(c)
        if (c := window_of(silver["competitor_prices"], "observed_date")) is not None
        else None,
        stock=daily_stock(s) if (s := window_of(silver["inventory"], "snapshot_date")) is not None else None,
        catalog=catalog_attributes(catalog_df.where(seen)),
    )
    panel_df = build_panel(daily_spine(ranges_df), inputs, cfg, default_margin)
    keep = F.broadcast(ranges_df.select("sku", "keep_from"))
    return panel_df.join(keep, "sku").where(F.col("date") >= F.col("keep_from")).drop("keep_from")


def _write_panel(
    spark: SparkSession,
    lakehouse: Lakehouse,
    plan: FeaturePlan,
    update_df: DataFrame,
    skus: int,
    earliest: date | None,
    cfg: FeaturesConfig,
) -> tuple[int, dict[str, str]]:
    """Overwrite (rebuild) or MERGE (update) the panel; (rows written, the commit's metrics)."""
    schema = sku_day_schema(cfg.lags, cfg.windows)
    if plan.mode == "full":
        lakehouse.overwrite(SKU_DAY, update_df, schema)
        metrics = io.last_operation_metrics(spark, lakehouse.path(SKU_DAY))
        lakehouse.assert_unique(spark, SKU_DAY)
        return int(metrics.get("numOutputRows", 0)), metrics
    if not skus:
        return 0, {}
    touched = f"date >= DATE'{earliest}'"
    lakehouse.merge(SKU_DAY, update_df, "true", schema, target_condition=f"t.{touched}")
    metrics = io.last_operation_metrics(spark, lakehouse.path(SKU_DAY))
    lakehouse.assert_unique(spark, SKU_DAY, where=touched)
    return int(metrics.get("numTargetRowsInserted", 0)) + int(metrics.get("numTargetRowsUpdated", 0)), metrics


def _record(spark: SparkSession, lakehouse: Lakehouse, plan: FeaturePlan, report: FeatureReport) -> None:
    row = (
        report.run_id,
        plan.run_date,
        plan.mode,
        plan.watermark,
        report.skus_recomputed,
        report.rows_written,
        datetime.now(timezone.utc).replace(tzinfo=None),
    )
    lakehouse.append(FEATURE_RUNS, spark.createDataFrame([row], FEATURE_RUNS_SCHEMA))


def run_features(
    spark: SparkSession,
    lakehouse: Lakehouse,
    cfg: FeaturesConfig,
    catalog: CatalogConfig,
    run_date: date | None = None,
    full: bool = False,
    run_id: str | None = None,
) -> FeatureReport:
    """Bring ``gold/sku_day`` up to ``run_date``: recompute only what new silver rows affect.

    Plan (the last run's watermark and day) -> read silver -> the affected ranges and their panel rows
    -> overwrite or MERGE -> record the run in ``audit/feature_runs``.

    Args:
        catalog: its ``default_margin`` costs the SKUs delivered without a unit cost.
        run_date: last day of the panel; default the latest transaction date in silver.
        full: rebuild every SKU and day from scratch (overwrites the panel).
        run_id: the id recorded in ``audit/feature_runs`` (default: a random one).
    """
    started = time.monotonic()
    silver = read_silver(spark, lakehouse)
    if run_date is None:
        run_date = io.first_value(silver["transactions"].agg(F.max("order_date")))  # type: ignore[union-attr]
        if run_date is None:
            raise RuntimeError("silver transactions are empty: nothing to build features from")
    updating = not full and lakehouse.exists(spark, SKU_DAY)
    plan = plan_features(
        _last_run(spark, lakehouse) if updating else None, latest_batch_id(spark, lakehouse), run_date, full
    )
    known = lakehouse.read(spark, SKU_CALENDAR) if plan.mode == "incremental" else None
    ranges = _plan_ranges(silver, known, plan, cfg)
    skus, earliest = ranges.ranges.agg(F.count("*"), F.min("start")).first() or (0, None)
    update_df = panel_update(silver, ranges.ranges, earliest, plan, cfg, catalog.default_margin)
    rows_written, metrics = _write_panel(spark, lakehouse, plan, update_df, skus, earliest, cfg)
    # Most nights bring no new SKU and no earlier day: a rewrite would then be a commit for nothing.
    if known is None or not calendar_changes(known, ranges.calendar).isEmpty():
        lakehouse.overwrite(SKU_CALENDAR, ranges.calendar)
    ranges.unpersist()
    catalog_df = silver["catalog"]
    assert catalog_df is not None  # read_silver refuses a lakehouse without one
    ensure_text_embeddings(spark, catalog_df, lakehouse, cfg)
    report = FeatureReport(
        run_id=run_id or uuid.uuid4().hex,
        run_date=run_date,
        mode=plan.mode,
        skus_recomputed=skus,
        rows_written=rows_written,
        rows_in_panel=lakehouse.read(spark, SKU_DAY).count(),
        metrics=metrics,
        seconds=time.monotonic() - started,
    )
    _record(spark, lakehouse, plan, report)
    log.info(report.render())
    return report
