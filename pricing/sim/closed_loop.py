"""The simulated market's next day at prices someone else set (the backtest's closed loop).

A market simulated over history + backtest days fixes everything our prices cannot move: demand
shocks, traffic, competitor prices, catalog, FX. :func:`realise_day` replays one backtest day at the
prices a policy set: expected demand follows the true demand curve at those prices, and the draws
(demand, lines of two, returns, other events) use common random numbers, uniforms hashed from
(seed, SKU, day), so two policies that set the same price see the same sales. Stock carries over
from the policy's own previous day (replenished to ``order_up_to`` at the start of each cycle).
Backtest days have no promotions, markdowns or simulator price tests: the policy owns the price.

An evaluation market (:mod:`pricing.evaluation.families`) carries its true demand curve per day in
``sku_day`` (:data:`CURVE_COLUMNS`); its days are realised from that curve at the policy's price (its
level holds everything exogenous; a reference-price market's remembered price is the one of its
planned history, not the policy's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from scipy import stats

from pricing.config import SimulateConfig
from pricing.sim.market import DEMAND_PARAMS, SKU_DAY_SCHEMA, _uniform, log_expected_demand

# The plan rows carry ref_price; the stock policy comes with the demand curve's parameters.
_PARAMS = [*DEMAND_PARAMS, "cycle_days", "order_up_to"]
_DRAWS = ("u_demand", "u_pairs", "u_returns", "u_other")
CURVE_COLUMNS = ("form", "log_level", "curve_ref", "c1", "c2", "c3", "c4")


def true_units(frame: pd.DataFrame, price: np.ndarray) -> np.ndarray:
    """True expected units at ``price`` for rows of a market's day (with its truth or curve columns)."""
    if "form" in frame.columns:
        from pricing.evaluation.families import log_units

        return np.exp(log_units(frame, price))
    dates = pd.to_datetime(frame["date"])
    return np.asarray(
        np.exp(
            log_expected_demand(
                frame,
                dates.dt.dayofweek.to_numpy(),
                dates.dt.dayofyear.to_numpy(),
                frame["shock"].to_numpy(float),
                price,
                frame["competitor_median"].to_numpy(float),
                0.0,
            )
        ),
        float,
    )


# The planned day's columns that depend on our price (or are the price): drawn again at the policy's.
_REDRAWN = (
    "price",
    "discounted",
    "promo",
    "price_test",
    "expected_demand",
    "demand",
    "units_sold",
    "lines_of_two",
    "units_returned",
    "on_hand_start",
    "on_order",
    "censored",
    "other_events",
)


def _draw(cfg: SimulateConfig) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    def realise(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for f in frames:
            price = f["policy_price"].to_numpy(float)
            expected = true_units(f, price)
            demand = stats.poisson.ppf(f["u_demand"], expected).astype(np.int64)
            cap = f["order_up_to"].to_numpy(np.int64)
            restock = (f["day_idx"].to_numpy() % f["cycle_days"].to_numpy()) == 0
            carried = np.maximum(f["prev_on_hand"].to_numpy(np.int64) - f["prev_sold"].to_numpy(np.int64), 0)
            on_hand = np.where(restock, cap, carried)
            sold = np.minimum(demand, on_hand)
            pairs = stats.binom.ppf(f["u_pairs"], sold // 2, 0.15).astype(np.int64)
            returned = stats.binom.ppf(f["u_returns"], f["sold_3_days_ago"], cfg.return_rate).astype(np.int64)
            other = stats.poisson.ppf(f["u_other"], expected * 0.1).astype(np.int64)
            yield f.assign(
                price=price,
                discounted=False,
                promo=False,
                price_test=False,
                expected_demand=expected,
                demand=demand.astype(np.int32),
                units_sold=sold.astype(np.int32),
                lines_of_two=pairs.astype(np.int32),
                units_returned=returned.astype(np.int32),
                on_hand_start=on_hand.astype(np.int32),
                on_order=np.where(on_hand < cap / 2, cap - on_hand, 0).astype(np.int32),
                censored=demand > sold,
                other_events=other.astype(np.int32),
            )[SKU_DAY_SCHEMA.fieldNames()]

    return realise


def realise_day(
    planned_df: DataFrame,
    params_df: DataFrame,
    history_df: DataFrame,
    prices_df: DataFrame,
    day: date,
    cfg: SimulateConfig,
) -> DataFrame:
    """Day ``day`` of the market at the policy's prices (pure; rows shaped like ``SKU_DAY_SCHEMA``).

    Args:
        planned_df: the simulated market's ``sku_day`` (its exogenous paths: shocks, traffic,
            competitor prices); only ``day``'s rows are used.
        params_df: the market's ``sku_params``.
        history_df: what really happened before ``day`` under this policy (``sku_day`` rows); the
            previous day's stock and sales and the sales of 3 days before are read from it.
        prices_df: ``sku``, ``price``: the policy's price for ``day``; every SKU needs one.
    """
    s = cfg.seed
    plan = planned_df.where(F.col("date") == F.lit(day)).drop(*_REDRAWN)
    previous = history_df.where(F.col("date") == F.date_sub(F.lit(day), 1)).select(
        "sku", F.col("on_hand_start").alias("prev_on_hand"), F.col("units_sold").alias("prev_sold")
    )
    three_back = history_df.where(F.col("date") == F.date_sub(F.lit(day), 3)).select(
        "sku", F.col("units_sold").alias("sold_3_days_ago")
    )
    key = [F.col("sku_idx"), F.col("day_idx")]
    joined = (
        plan.join(params_df.select("sku", *_PARAMS), "sku")
        .join(prices_df.select("sku", F.col("price").cast("double").alias("policy_price")), "sku")
        .join(previous, "sku", "left")
        .join(three_back, "sku", "left")
        .fillna({"prev_on_hand": 0, "prev_sold": 0, "sold_3_days_ago": 0})
        .select("*", *[_uniform(s, f"closed_loop_{name}", *key).alias(name) for name in _DRAWS])
    )
    missing = plan.join(prices_df, "sku", "left_anti").limit(1).count()
    if missing:
        raise ValueError(f"{day}: some SKUs have no price from the policy")
    return joined.mapInPandas(_draw(cfg), SKU_DAY_SCHEMA)
