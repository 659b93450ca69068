"""Judge one night's prices against an evaluation market's true demand curve.

Reads only what the product wrote (``gold/price_recommendations``, ``gold/sku_day``) and the market's
truth (``sku_day`` with the curve of :mod:`pricing.evaluation.families`, ``sku_params``). Per SKU:
true expected units and profit at the current, recommended and final price, and at the best price of
the same band (a fine grid of the band, with the price endings, plus the current price); the true
elasticity at the current price against the model's and its interval; the model's expected units at
the current price against the true ones (and the seasonal naive forecast's); guardrail violations.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StringType, StructField, StructType

from pricing.config import PolicyConfig, SimulateConfig
from pricing.decide.choose import candidate_grid
from pricing.evaluation.families import CURVE_COLUMNS, log_units, true_elasticity
from pricing.evaluation.guardrails import guardrail_violations
from pricing.lakehouse.tables import PRICE_RECOMMENDATIONS, SKU_DAY, Lakehouse
from pricing.sim.market import catalog_cost_missing

JUDGED_SCHEMA = StructType(
    [
        StructField("sku", StringType(), False),
        *[
            StructField(name, DoubleType(), True)
            for name in (
                "true_profit_current",
                "true_profit_recommended",
                "true_profit_final",
                "true_profit_best",
                "true_best_price",
                "true_units_current",
                "true_elasticity",
                "violation",
            )
        ],
    ]
)
BEST_GRID_POINTS = 101
ELASTICITY_FLOOR = -6.0


def _judge_batches(policy: PolicyConfig) -> Any:
    def judge(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for f in frames:
            f = f.reset_index(drop=True)
            cost = f["true_cost"].to_numpy(float)

            def profit(price: np.ndarray, curve: pd.DataFrame = f, cost: np.ndarray = cost) -> np.ndarray:
                return np.asarray(np.exp(log_units(curve, price)) * (price - cost[curve.index]), float)

            current = f["current_price"].to_numpy(float)
            band = f[["price_floor", "price_ceiling"]]
            grid = candidate_grid(band, BEST_GRID_POINTS, policy.price_endings)
            grid = pd.concat(
                [grid, pd.DataFrame({"row": np.arange(len(f)), "candidate_price": current})],
                ignore_index=True,
            )
            rows = grid["row"].to_numpy()
            # The current price always competes: keeping it is always possible.
            candidate_profit = profit(grid["candidate_price"].to_numpy(float), f.iloc[rows].set_index(rows))
            by_row = pd.Series(candidate_profit).groupby(rows)
            best = by_row.max().reindex(range(len(f))).to_numpy()
            best_price = grid["candidate_price"].to_numpy(float)[
                by_row.idxmax().reindex(range(len(f))).to_numpy()
            ]
            recommended = f["recommended_price"].to_numpy(float)
            violation = guardrail_violations(f.assign(price=recommended, previous_price=current), policy)
            yield pd.DataFrame(
                {
                    "sku": f["sku"],
                    "true_profit_current": profit(current),
                    "true_profit_recommended": profit(recommended),
                    "true_profit_final": profit(f["final_price"].to_numpy(float)),
                    "true_profit_best": best,
                    "true_best_price": best_price,
                    "true_units_current": np.exp(log_units(f, current)),
                    "true_elasticity": true_elasticity(f, current),
                    "violation": violation.astype(float),
                }
            )

    return judge


def judged_skus(
    spark: SparkSession,
    lakehouse: str,
    truth: str,
    price_date: date,
    policy: PolicyConfig,
    sim: SimulateConfig,
) -> DataFrame:
    """One row per priced SKU: what the night recommended, beside what its prices truly earn."""
    recs = (
        Lakehouse(lakehouse)
        .read(spark, PRICE_RECOMMENDATIONS)
        .where(F.col("price_date") == F.lit(price_date))
    )
    curve = (
        spark.read.parquet(f"{truth}/sku_day")
        .where(F.col("date") == F.lit(price_date))
        .select("sku", *CURVE_COLUMNS)
    )
    params = spark.read.parquet(f"{truth}/sku_params").select(
        "sku",
        F.col("unit_cost").alias("true_cost"),
        "min_price",
        "max_price",
        "map_price",
        (~catalog_cost_missing(sim)).alias("cost_known"),
    )
    joined = recs.join(curve, "sku").join(params, "sku")
    judged = joined.mapInPandas(_judge_batches(policy), JUDGED_SCHEMA)
    panel = Lakehouse(lakehouse).read(spark, SKU_DAY)
    week_ago = panel.where(F.col("date") == F.lit(price_date - timedelta(days=7))).select(
        "sku", F.col("units_gross").cast("double").alias("seasonal_naive_units")
    )
    return recs.join(judged, "sku").join(week_ago, "sku", "left")


def summarise(judged_df: DataFrame) -> dict[str, Any]:
    """The night's figures over every SKU (sums of profit, means over SKUs; see docs/benchmarks.md)."""
    moved = F.abs(F.col("recommended_price") - F.col("current_price")) > 1e-9
    raised = F.col("recommended_price") > F.col("current_price") + 1e-9
    # Where the best price in the band lies: a family whose best prices are all raises rewards a model
    # that under-reads elasticities, so the share of moves in the right direction is reported beside it.
    best_raised = F.col("true_best_price") > F.col("current_price") + 1e-9
    best_side = F.signum(F.col("true_best_price") - F.col("current_price"))
    right_way = F.signum(F.col("recommended_price") - F.col("current_price")) == best_side
    # Near a linear curve's choke price the true elasticity runs off to -infinity: it counts as
    # ELASTICITY_FLOOR in the error, so one SKU cannot decide a market's MAE.
    error = F.col("elasticity") - F.greatest(F.col("true_elasticity"), F.lit(ELASTICITY_FLOOR))
    inside = F.col("true_elasticity").between(F.col("elasticity_low"), F.col("elasticity_high"))
    truth_units = F.col("true_units_current")
    row = judged_df.agg(
        F.count("*").alias("skus"),
        *[F.sum(f"true_profit_{c}").alias(c) for c in ("current", "recommended", "final", "best")],
        F.sum("expected_profit_current").alias("model_profit_current"),
        F.sum("expected_profit_recommended").alias("model_profit_recommended"),
        F.avg(F.abs(error)).alias("elasticity_mae"),
        F.avg(error).alias("elasticity_bias"),
        F.avg(inside.cast("double")).alias("interval_coverage"),
        F.avg(F.col("elasticity_high") - F.col("elasticity_low")).alias("interval_width"),
        # Null, not an error, where either side does not vary.
        F.try_divide(
            F.covar_pop("elasticity", "true_elasticity"),
            F.stddev_pop("elasticity") * F.stddev_pop("true_elasticity"),
        ).alias("elasticity_corr"),
        F.avg("true_elasticity").alias("true_elasticity_mean"),
        (F.sum(F.abs(F.col("expected_units_current") - truth_units)) / F.sum(truth_units)).alias("wape"),
        (
            F.sum(
                F.when(
                    F.col("seasonal_naive_units").isNotNull(),
                    F.abs(F.col("seasonal_naive_units") - truth_units),
                )
            )
            / F.sum(F.when(F.col("seasonal_naive_units").isNotNull(), truth_units))
        ).alias("seasonal_naive_wape"),
        F.avg(moved.cast("double")).alias("moved_share"),
        F.avg(raised.cast("double")).alias("raised_share"),
        F.avg(best_raised.cast("double")).alias("best_raised_share"),
        F.avg(F.when(moved, right_way.cast("double"))).alias("right_direction_share"),
        F.sum("violation").alias("violations"),
    ).first()
    assert row is not None
    r = row.asDict()
    current, recommended, best = r["current"] or 0.0, r["recommended"] or 0.0, r["best"] or 0.0
    achievable = best - current
    binding = {x[0]: int(x[1]) for x in judged_df.groupBy("binding_constraint").count().collect()}
    return {
        "skus": int(r["skus"]),
        "profit_vs_keep": recommended / current - 1 if current else None,
        "final_vs_keep": (r["final"] or 0.0) / current - 1 if current else None,
        "best_vs_keep": best / current - 1 if current else None,
        # Below 1e-4 of the profit there is nothing to win inside the bands: the share is undefined.
        "uplift_share": (recommended - current) / achievable if achievable > 1e-4 * abs(current) else None,
        "model_expected_vs_keep": (
            r["model_profit_recommended"] / r["model_profit_current"] - 1
            if r["model_profit_current"]
            else None
        ),
        **{
            k: (float(r[k]) if r[k] is not None else None)
            for k in (
                "elasticity_mae",
                "elasticity_bias",
                "elasticity_corr",
                "true_elasticity_mean",
                "interval_coverage",
                "interval_width",
                "wape",
                "seasonal_naive_wape",
                "moved_share",
                "raised_share",
                "best_raised_share",
                "right_direction_share",
            )
        },
        "violations": int(r["violations"] or 0),
        "binding": binding,
    }
