"""Silver -> gold, the pure part: daily aggregates of each source in, the SKU x day panel out.

``build_panel`` computes every window feature with Spark window functions over a contiguous daily
spine. A day's features depend only on the ``FeaturesConfig.lookback_days`` days before it (forward
fills are bounded too), which is what lets the stage (:mod:`pricing.features.stage`) recompute just
the affected (SKU, date) ranges each night and MERGE them, with a result equal to a rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.window import WindowSpec

from pricing.config import FeaturesConfig
from pricing.schemas import sku_day_schema
from pricing.text import text_hash


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


# A day's price differs from the SKU's previous priced day by more than this (in log price): a change.
PRICE_CHANGE = 0.01


def price_changes(panel_df: DataFrame) -> DataFrame:
    """``(sku, price_changes)``: per SKU, how many times its price moved (by more than 1 %) from one
    priced day of the panel to the next; days without a price are skipped, and a SKU priced on a
    single day has 0. What a SKU's own history says about its price response rests on these."""
    priced = panel_df.where(F.col("price") > 0).select("sku", "date", "price")
    step = F.abs(F.log(F.col("price") / F.lag("price").over(Window.partitionBy("sku").orderBy("date"))))
    return (
        priced.select("sku", (step > PRICE_CHANGE).alias("moved"))
        .groupBy("sku")
        .agg(F.count(F.when(F.col("moved"), True)).cast("int").alias("price_changes"))
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
