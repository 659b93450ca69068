"""The one way to build a model's rows from the gold panel: training, the drift check and scoring."""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from pricing.config import FeaturesConfig
from pricing.features.panel import history_features

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
