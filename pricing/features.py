"""Silver -> gold: the SKU x day panel the demand model and the optimizer read.

``build_panel`` is pure: daily aggregates of each source in, one row per SKU and day out, with every
window feature computed by Spark window functions over a contiguous daily spine. A day's features
depend only on the ``FeaturesConfig.lookback_days`` days before it (forward fills are bounded too),
which is what lets ``run_features`` recompute just the affected (SKU, date) ranges each night and MERGE
them, with a result equal to a rebuild from scratch.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.window import WindowSpec

from pricing.config import FeaturesConfig, PricingConfig
from pricing.ingest import latest_batch_id
from pricing.lakehouse import io
from pricing.lakehouse.tables import (
    FEATURE_RUNS,
    SILVER,
    SKU_CALENDAR,
    SKU_DAY,
    Lakehouse,
)
from pricing.matching import read_matches, resolve_listings
from pricing.schemas import (
    BATCH_ID,
    FEATURE_RUNS_SCHEMA,
    SOURCES,
    sku_day_schema,
)
from pricing.text import ensure_text_embeddings, text_hash

log = logging.getLogger(__name__)

DAILY_SOURCES = {
    "transactions": "order_date",
    "clickstream": "event_date",
    "competitor_prices": "observed_date",
    "inventory": "snapshot_date",
}


def daily_sales(transactions_df: DataFrame) -> DataFrame:
    """Units (net, gross, returned), orders, revenue and average prices per SKU and day."""
    sold = F.col("quantity") > 0
    quantity = F.col("quantity")
    # Money is summed as the decimals silver holds, then made a double: exact, so the same lines give
    # the same panel whatever order a shuffle delivers them in (a double sum's last bits would not).
    paid, listed = F.col("unit_price"), F.col("list_price")
    units = F.sum(F.when(sold, quantity))
    return transactions_df.groupBy("sku", F.col("order_date").alias("date")).agg(
        F.sum(quantity).cast("int").alias("units_sold"),
        F.sum(F.when(sold, quantity).otherwise(0)).cast("int").alias("units_gross"),
        (-F.sum(F.when(~sold, quantity).otherwise(0))).cast("int").alias("units_returned"),
        F.countDistinct(F.when(sold, F.col("order_id"))).cast("int").alias("orders"),
        F.sum(quantity * paid).cast("double").alias("revenue"),
        (F.sum(F.when(sold, quantity * paid)).cast("double") / units).alias("avg_paid_price"),
        (F.sum(F.when(sold, quantity * listed)).cast("double") / units).alias("avg_list_price"),
        # Promotions are planned (known before the day starts); seen here through promoted lines.
        F.max(sold & F.col("promo_id").isNotNull()).alias("promo"),
    )


def daily_clicks(clickstream_df: DataFrame) -> DataFrame:
    """Views, add-to-carts, purchase events and the average price shown per SKU and day."""
    kind = F.col("event_type")
    return clickstream_df.groupBy("sku", F.col("event_date").alias("date")).agg(
        F.count(F.when(kind == "view", 1)).cast("int").alias("views"),
        F.count(F.when(kind == "add_to_cart", 1)).cast("int").alias("add_to_carts"),
        F.count(F.when(kind == "purchase", 1)).cast("int").alias("purchases"),
        F.avg(F.when(kind == "view", F.col("price_shown"))).cast("double").alias("avg_price_shown"),
    )


def daily_competition(competitor_df: DataFrame) -> DataFrame:
    """Lowest and median competitor price and number of competitors seen per SKU and day.

    A competitor observed several times a day counts with its latest observation.
    """
    latest = Window.partitionBy("sku", "observed_date", "competitor").orderBy(F.col("observed_ts").desc())
    last_seen = competitor_df.withColumn("_n", F.row_number().over(latest)).where("_n = 1")
    price = F.col("price").cast("double")
    return last_seen.groupBy("sku", F.col("observed_date").alias("date")).agg(
        F.min(price).alias("comp_min_price"),
        F.median(price).alias("comp_median_price"),
        F.countDistinct("competitor").cast("int").alias("n_competitors"),
    )


def daily_stock(inventory_df: DataFrame) -> DataFrame:
    return inventory_df.select(
        "sku", F.col("snapshot_date").alias("date"), F.col("on_hand"), F.col("on_order")
    )


def catalog_attributes(catalog_df: DataFrame) -> DataFrame:
    """Latest catalog attributes per SKU, with the hash keying its text embedding."""
    return catalog_df.select(
        "sku",
        "category",
        "brand",
        text_hash().alias("text_hash"),
        F.col("unit_cost").cast("double").alias("_catalog_cost"),
        F.col("map_price").cast("double").alias("map_price"),
        F.col("min_price").cast("double").alias("min_price"),
        F.col("max_price").cast("double").alias("max_price"),
    )


def daily_spine(ranges_df: DataFrame) -> DataFrame:
    """(sku, start, end) -> one row per SKU and day in [start, end]: zero-demand days are rows too."""
    return ranges_df.select("sku", F.explode(F.sequence("start", "end")).alias("date"))


@dataclass(frozen=True)
class DailyInputs:
    """Daily aggregates per source; None for a source that has never delivered."""

    sales: DataFrame
    clicks: DataFrame | None
    competition: DataFrame | None
    stock: DataFrame | None
    catalog: DataFrame


# Columns of an optional source that has never delivered: present, typed, null.
_CLICK_COLUMNS = {"views": "int", "add_to_carts": "int", "purchases": "int", "avg_price_shown": "double"}
_COMPETITION_COLUMNS = {"comp_min_price": "double", "comp_median_price": "double", "n_competitors": "int"}
_STOCK_COLUMNS = {"on_hand": "int", "on_order": "int"}


def _ffill(column: str, window: WindowSpec) -> Column:
    return F.last(F.col(column), ignorenulls=True).over(window)


def _ratio(numerator: Column, denominator: Column) -> Column:
    return F.when(denominator > 0, numerator / denominator)


def history_features(df: DataFrame, cfg: FeaturesConfig) -> DataFrame:
    """Lags, trailing windows, days of cover and calendar columns over a daily (sku, date) frame.

    Shared by the panel and by scoring, which needs the same features for the day after the panel.
    """
    by_day = Window.partitionBy("sku").orderBy("date")
    for k in cfg.lags:
        df = df.withColumn(f"units_lag_{k}", F.lag("units_sold", k).over(by_day))
    for w in cfg.windows:
        previous = by_day.rowsBetween(-w, -1)
        df = df.withColumn(f"units_mean_{w}d", F.avg("units_sold").over(previous))
        df = df.withColumn(f"price_mean_{w}d", F.avg("price").over(previous))
    cover_window = f"units_mean_{max(cfg.windows)}d"
    holidays = [F.lit(d) for d in cfg.holidays]
    return (
        df.withColumn("days_of_cover", _ratio(F.col("on_hand").cast("double"), F.col(cover_window)))
        .withColumn("day_of_week", ((F.dayofweek("date") + 5) % 7).cast("int"))  # Monday = 0
        .withColumn("week_of_year", F.weekofyear("date"))
        .withColumn("month", F.month("date"))
        .withColumn("is_holiday", F.col("date").isin(*holidays) if holidays else F.lit(False))
    )


def with_promotion_spells(df: DataFrame, reach_days: int) -> DataFrame:
    """Flag every day of a promotion, not only the days it sold something (pure).

    The transactions show a promotion only through the lines sold under it, so a promoted day that sold
    nothing would read as an ordinary day at a low price with no sales: a price response with the
    wrong sign, and on slow sellers a large one. A day is promoted when it sold a promoted line, or
    when its price is below the list price and equal to that of a day with promoted sales at most
    ``reach_days`` away with no price change in between (one run of the same price).

    Args:
        df: one row per SKU and contiguous day with ``price``, ``discount_depth`` and ``promo``.
    """
    by_day = Window.partitionBy("sku").orderBy("date")
    # In cents: an average paid price carries float noise that differs between runs.
    cents = F.round(F.col("price") * 100)
    previous = F.lag(cents).over(by_day)
    change = (previous.isNull() | cents.isNull() | (cents != previous)).cast("int")
    run = F.sum("_price_change").over(by_day.rowsBetween(Window.unboundedPreceding, 0))
    spell = Window.partitionBy("sku", "_price_run").orderBy("date").rowsBetween(-reach_days, reach_days)
    promoted_nearby = F.max(F.col("promo").cast("int")).over(spell) == 1
    discounted = F.coalesce(F.col("discount_depth") > 1e-3, F.lit(False))
    return (
        df.withColumn("_price_change", change)
        .withColumn("_price_run", run)
        .withColumn("promo", F.col("promo") | (discounted & promoted_nearby))
        .drop("_price_change", "_price_run")
    )


def build_panel(
    spine_df: DataFrame,
    inputs: DailyInputs,
    cfg: FeaturesConfig,
    default_margin: float,
) -> DataFrame:
    """Assemble the panel over ``spine_df`` (sku, date) from daily inputs (pure; no I/O).

    Returns:
        Rows shaped like :func:`pricing.schemas.sku_day_schema`.
    """
    df = spine_df.join(inputs.sales, ["sku", "date"], "left")
    for daily_df, absent_columns in (
        (inputs.clicks, _CLICK_COLUMNS),
        (inputs.competition, _COMPETITION_COLUMNS),
        (inputs.stock, _STOCK_COLUMNS),
    ):
        df = (
            df.join(daily_df, ["sku", "date"], "left")
            if daily_df is not None
            else df.select("*", *[F.lit(None).cast(t).alias(c) for c, t in absent_columns.items()])
        )
    df = df.join(F.broadcast(inputs.catalog), "sku", "left")

    by_day = Window.partitionBy("sku").orderBy("date")
    recent = by_day.rowsBetween(-cfg.max_ffill_days, 0)
    zero_if_absent = {"views": inputs.clicks, "add_to_carts": inputs.clicks, "purchases": inputs.clicks}
    for name in ("units_sold", "units_gross", "units_returned", "orders"):
        df = df.withColumn(name, F.coalesce(F.col(name), F.lit(0)))
    df = df.withColumn("revenue", F.coalesce(F.col("revenue"), F.lit(0.0)))
    df = df.withColumn("promo", F.coalesce(F.col("promo"), F.lit(False)))
    for name, source in zero_if_absent.items():
        if source is not None:
            df = df.withColumn(name, F.coalesce(F.col(name), F.lit(0)))

    # The price in force: what customers paid, else what the shop showed, else the last known price.
    df = (
        df.withColumn("_observed_price", F.coalesce("avg_paid_price", "avg_price_shown"))
        .withColumn("price", _ffill("_observed_price", recent))
        .withColumn("list_price", F.coalesce(_ffill("avg_list_price", recent), F.col("price")))
        .withColumn("discount_depth", 1 - _ratio(F.col("price"), F.col("list_price")))
        .withColumn("price_change_1d", F.col("price") / F.lag("price", 1).over(by_day) - 1)
        .withColumn("price_change_7d", F.col("price") / F.lag("price", 7).over(by_day) - 1)
    )
    df = with_promotion_spells(df, cfg.promo_reach_days)
    # Competitor prices carried forward over days without observations, with their age.
    df = (
        df.withColumn("_comp_day", F.when(F.col("comp_median_price").isNotNull(), F.col("date")))
        .withColumn("comp_min_price", _ffill("comp_min_price", recent))
        .withColumn("comp_median_price", _ffill("comp_median_price", recent))
        .withColumn("n_competitors", _ffill("n_competitors", recent))
        .withColumn("comp_obs_age_days", F.datediff("date", _ffill("_comp_day", recent)))
        .withColumn("comp_price_index", _ratio(F.col("price"), F.col("comp_median_price")))
    )
    # Stock: a day is a stock-out when that day's snapshot shows nothing left to sell before or
    # because of the day's sales: its demand is censored, not zero.
    df = (
        df.withColumn("_stock_day", F.when(F.col("on_hand").isNotNull(), F.col("date")))
        .withColumn(
            "stockout",
            F.when(
                F.col("on_hand").isNotNull(),
                (F.col("on_hand") <= 0) | (F.col("units_gross") >= F.col("on_hand")),
            ),
        )
        .withColumn("on_hand", _ffill("on_hand", recent))
        .withColumn("on_order", _ffill("on_order", recent))
        .withColumn("stock_obs_age_days", F.datediff("date", _ffill("_stock_day", recent)))
    )
    df = (
        history_features(df, cfg)
        .withColumn("view_to_cart_rate", _ratio(F.col("add_to_carts").cast("double"), F.col("views")))
        .withColumn("cart_to_purchase_rate", _ratio(F.col("purchases").cast("double"), F.col("add_to_carts")))
        .withColumn("unit_cost_assumed", F.col("_catalog_cost").isNull())
        .withColumn(
            "unit_cost",
            F.coalesce(F.col("_catalog_cost"), F.round(F.col("list_price") * (1 - default_margin), 4)),
        )
    )
    schema = sku_day_schema(cfg.lags, cfg.windows)
    return df.select([F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


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


def run_features(
    spark: SparkSession,
    cfg: PricingConfig,
    lakehouse_root: str | None = None,
    run_date: date | None = None,
    full: bool = False,
    run_id: str | None = None,
) -> FeatureReport:
    """Bring ``gold/sku_day`` up to ``run_date``: recompute only what new silver rows affect.

    Args:
        run_date: last day of the panel; default the latest transaction date in silver.
        full: rebuild every SKU and day from scratch (overwrites the panel).
        run_id: the id recorded in ``audit/feature_runs`` (default: a random one).
    """
    started = time.monotonic()
    root = io.qualify(spark, lakehouse_root or cfg.paths.lakehouse)
    lakehouse = Lakehouse(root)
    fcfg = cfg.features
    schema = sku_day_schema(fcfg.lags, fcfg.windows)
    silver = {name: lakehouse.read_if_exists(spark, SILVER[name]) for name in SOURCES}
    if (
        competitor_df := silver["competitor_prices"]
    ) is not None and "competitor_sku" in competitor_df.columns:
        # Listings count under the SKU they were matched to (pricing.matching); unmatched ones do not.
        silver["competitor_prices"] = resolve_listings(competitor_df, read_matches(spark, root))
    if silver["transactions"] is None or silver["catalog"] is None:
        raise RuntimeError("gold features need silver transactions and catalog: run `pricing ingest` first")
    # Silver rows up to the newest committed batch are what this run sees.
    latest = latest_batch_id(spark, lakehouse)
    watermark = -1 if latest is None else latest
    if run_date is None:
        run_date = io.first_value(silver["transactions"].agg(F.max("order_date")))
        if run_date is None:
            raise RuntimeError("silver transactions are empty: nothing to build features from")
    last = None if full or not lakehouse.exists(spark, SKU_DAY) else _last_run(spark, lakehouse)
    mode = "full" if last is None else "incremental"

    seen = F.col(BATCH_ID) <= watermark
    new_days: DataFrame | None = None
    if last is None:
        calendar_df = _first_dates(silver, seen)
        ranges_df = calendar_df.select("sku", F.col("first_date").alias("start"))
    else:
        since_batch, last_run_date = last
        known_df = lakehouse.read(spark, SKU_CALENDAR)
        new_rows = (F.col(BATCH_ID) > since_batch) & seen
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
            known_df.unionByName(new_firsts).groupBy("sku").agg(F.min("first_date").alias("first_date"))
        )
        ranges_df = _affected_ranges(
            silver,
            calendar_df,
            since_batch,
            watermark,
            last_run_date,
            run_date,
            fcfg.promo_reach_days,
            new_days.withColumnRenamed("day", "start"),
        )
    calendar_df = calendar_df.where(F.col("first_date") <= F.lit(run_date)).cache()
    # Recompute from `start`, reading `lookback_days` before it (never before the SKU's first day).
    ranges_df = (
        ranges_df.join(calendar_df, "sku")
        .where(F.col("start") <= F.lit(run_date))
        .select(
            "sku",
            F.greatest("start", "first_date").alias("keep_from"),
            F.greatest(F.date_sub("start", fcfg.lookback_days), F.col("first_date")).alias("start"),
            F.lit(run_date).cast("date").alias("end"),
        )
        .cache()
    )
    skus, earliest = ranges_df.agg(F.count("*"), F.min("start")).first() or (0, None)

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

    inputs = DailyInputs(
        sales=daily_sales(window_of(silver["transactions"], "order_date")),  # type: ignore[arg-type]
        clicks=daily_clicks(c) if (c := window_of(silver["clickstream"], "event_date")) is not None else None,
        competition=daily_competition(c)
        if (c := window_of(silver["competitor_prices"], "observed_date")) is not None
        else None,
        stock=daily_stock(s) if (s := window_of(silver["inventory"], "snapshot_date")) is not None else None,
        catalog=catalog_attributes(silver["catalog"].where(seen)),
    )
    panel_df = build_panel(daily_spine(ranges_df), inputs, fcfg, cfg.catalog.default_margin)
    keep = F.broadcast(ranges_df.select("sku", "keep_from"))
    update_df = panel_df.join(keep, "sku").where(F.col("date") >= F.col("keep_from")).drop("keep_from")

    metrics: dict[str, str] = {}
    rows_written = 0
    if mode == "full":
        lakehouse.overwrite(SKU_DAY, update_df, schema)
        metrics = io.last_operation_metrics(spark, lakehouse.path(SKU_DAY))
        rows_written = int(metrics.get("numOutputRows", 0))
        lakehouse.assert_unique(spark, SKU_DAY)
    elif skus:
        touched = f"date >= DATE'{earliest}'"
        lakehouse.merge(SKU_DAY, update_df, "true", schema, target_condition=f"t.{touched}")
        metrics = io.last_operation_metrics(spark, lakehouse.path(SKU_DAY))
        rows_written = int(metrics.get("numTargetRowsInserted", 0)) + int(
            metrics.get("numTargetRowsUpdated", 0)
        )
        lakehouse.assert_unique(spark, SKU_DAY, where=touched)

    lakehouse.overwrite(SKU_CALENDAR, calendar_df)
    calendar_df.unpersist()
    ranges_df.unpersist()
    if new_days is not None:
        new_days.unpersist()
    ensure_text_embeddings(spark, silver["catalog"], lakehouse, fcfg)
    report = FeatureReport(
        run_id=run_id or uuid.uuid4().hex,
        run_date=run_date,
        mode=mode,
        skus_recomputed=skus,
        rows_written=rows_written,
        rows_in_panel=lakehouse.read(spark, SKU_DAY).count(),
        metrics=metrics,
        seconds=time.monotonic() - started,
    )
    lakehouse.append(
        FEATURE_RUNS,
        spark.createDataFrame(
            [
                (
                    report.run_id,
                    run_date,
                    mode,
                    watermark,
                    skus,
                    rows_written,
                    datetime.now(timezone.utc).replace(tzinfo=None),
                )
            ],
            FEATURE_RUNS_SCHEMA,
        ),
    )
    log.info(report.render())
    return report


# A day not yet lived has no outcomes: what the panel would hold for it before it starts.
_UNKNOWN_OUTCOMES = {
    "units_sold": 0,
    "units_gross": 0,
    "units_returned": 0,
    "orders": 0,
    "revenue": 0.0,
    "avg_paid_price": None,
    "avg_list_price": None,
    "views": None,
    "add_to_carts": None,
    "purchases": None,
    "avg_price_shown": None,
    "stockout": None,
    "promo": False,  # prices are set for an ordinary day; promotions are priced by their campaign
}


def _next_day_rows(panel_df: DataFrame, price_date: date, cfg: FeaturesConfig) -> DataFrame:
    """Each SKU's panel-shaped row for ``price_date``, the day after the panel's days (pure).

    The row carries the last known prices, costs, competitor prices and stock forward, with lags,
    windows and calendar computed exactly as the panel computes them; the day's own outcomes are
    unknown. Rows are shaped like the panel.
    """
    history = panel_df.where(
        (F.col("date") < F.lit(price_date))
        & (F.col("date") >= F.date_sub(F.lit(price_date), cfg.lookback_days))
    )
    latest = Window.partitionBy("sku").orderBy(F.col("date").desc())
    stub = (
        history.withColumn("_n", F.row_number().over(latest))
        .where(F.col("_n") == 1)
        .drop("_n")
        .withColumn("date", F.lit(price_date).cast("date"))
    )
    for name, value in _UNKNOWN_OUTCOMES.items():
        if name in stub.columns:
            stub = stub.withColumn(name, F.lit(value).cast(dict(stub.dtypes)[name]))
    rows = history_features(history.unionByName(stub), cfg)
    return rows.where(F.col("date") == F.lit(price_date))


# Inputs of a day that the panel does not store: the previous day's traffic, known when the day's
# price is set (unlike the day's own).
TRAFFIC_LAGS = {"views_lag_1": "views", "add_to_carts_lag_1": "add_to_carts"}


def feature_rows(
    panel_df: DataFrame,
    cfg: FeaturesConfig,
    start: date | None = None,
    end: date | None = None,
    night: date | None = None,
) -> DataFrame:
    """The one way to build a model's rows from the gold panel (pure): training, drift and scoring.

    Without ``night``: the panel's rows dated ``start`` to ``end`` (either open), with every input
    the panel does not store (:data:`TRAFFIC_LAGS`, read from the day before ``start``). With
    ``night``: one row per SKU for that day after the panel's days, its lags, windows and calendar
    computed as the panel computes them and its own outcomes unknown (the row scoring prices).
    """
    if night is not None:
        if start is not None or end is not None:
            raise ValueError("feature_rows: give a night, or a start and end, not both")
        tonight = _next_day_rows(panel_df, night, cfg)
        yesterday = panel_df.where(F.col("date") == F.lit(night - timedelta(days=1)))
        return _with_traffic_lags(yesterday.select(tonight.columns).unionByName(tonight)).where(
            F.col("date") == F.lit(night)
        )
    rows = panel_df if start is None else panel_df.where(F.col("date") >= F.lit(start - timedelta(days=1)))
    if end is not None:
        rows = rows.where(F.col("date") <= F.lit(end))
    rows = _with_traffic_lags(rows)
    return rows if start is None else rows.where(F.col("date") >= F.lit(start))


def _with_traffic_lags(df: DataFrame) -> DataFrame:
    by_day = Window.partitionBy("sku").orderBy("date")
    return df.withColumns({lag: F.lag(source, 1).over(by_day) for lag, source in TRAFFIC_LAGS.items()})
