"""What a simulated market's ground truth says about what the product wrote (``--truth DIR``).

The product's stages never read ground truth: ``pricing train``, ``score`` and ``nightly`` write their
tables, and the command, given ``--truth``, then judges them here. A training run's elasticities
(kept beside its holdout) against the true ones, logged into that run; a night's prices
(``gold/price_recommendations``) by their expected profit under the true demand.
"""

from __future__ import annotations

import time
from datetime import date, timedelta

from mlflow import MlflowClient
from mlflow.entities import Metric
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from pricing.config import SimulateConfig
from pricing.lakehouse import io
from pricing.lakehouse.tables import PRICE_RECOMMENDATIONS, Lakehouse
from pricing.model.train import TrainReport, run_elasticities
from pricing.sim.market import true_profit


def elasticity_error(elasticities_df: DataFrame, truth_params_df: DataFrame) -> dict[str, float] | None:
    """Per-SKU elasticities vs the simulator's (``sku_params``); None when no SKU matches.

    Returns the MAE, the mean signed error (bias), the share of true values inside the interval, and
    the MAE split in two (both averaged over SKUs):

    - ``elasticity_category_mae``: error of each category's mean elasticity (what pooling must get right);
    - ``elasticity_within_mae``: error of each SKU's deviation from its category's mean (what only the
      SKU's own price history can tell), next to ``elasticity_within_floor_mae``, the same error for
      deviations estimated as 0. Below the floor, the per-SKU estimates carry information; above it,
      they add more noise than signal.
    """
    truth = truth_params_df.select("sku", "category", F.col("elasticity").alias("true"))
    by_category = Window.partitionBy("category")
    joined = (
        elasticities_df.join(truth, "sku")
        .withColumn("_cat_est", F.avg("elasticity").over(by_category))
        .withColumn("_cat_true", F.avg("true").over(by_category))
    )
    error = F.col("elasticity") - F.col("true")
    inside = F.col("true").between(F.col("elasticity_low"), F.col("elasticity_high")).cast("double")
    true_deviation = F.col("true") - F.col("_cat_true")
    within = F.col("elasticity") - F.col("_cat_est") - true_deviation
    row = joined.agg(
        F.avg(F.abs(error)),
        F.avg(error),
        F.avg(inside),
        F.avg(F.abs(F.col("_cat_est") - F.col("_cat_true"))),
        F.avg(F.abs(within)),
        F.avg(F.abs(true_deviation)),
    ).first()
    if row is None or row[0] is None:
        return None
    return {
        "elasticity_mae": float(row[0]),
        "elasticity_bias": float(row[1]),
        "elasticity_interval_coverage": float(row[2]),
        "elasticity_category_mae": float(row[3]),
        "elasticity_within_mae": float(row[4]),
        "elasticity_within_floor_mae": float(row[5]),
    }


def training_vs_truth(
    spark: SparkSession, report: TrainReport, lakehouse_root: str, truth_dir: str, tracking_uri: str
) -> dict[str, float]:
    """The elasticities of the training run of ``report`` (champion or not) against the truth's:
    logged into that MLflow run as metrics and added to ``report`` (nothing when no SKU matches)."""
    elasticities = run_elasticities(spark, Lakehouse.at(spark, lakehouse_root), report.run_id)
    errors = elasticity_error(elasticities, spark.read.parquet(f"{truth_dir}/sku_params")) or {}
    if errors:
        now = int(time.time() * 1000)
        MlflowClient(tracking_uri).log_batch(report.run_id, [Metric(k, v, now, 0) for k, v in errors.items()])
        report.metrics.update(errors)
    return errors


def priced_day(spark: SparkSession, truth_dir: str) -> date | None:
    """The day the truth's expected profit is for: the one after its last simulated day."""
    last = io.first_value(spark.read.parquet(f"{truth_dir}/sku_day").agg(F.max("date")))
    return last + timedelta(days=1) if last is not None else None


def night_vs_truth(
    spark: SparkSession, lakehouse_root: str, price_date: date, truth_dir: str, cfg: SimulateConfig
) -> dict[str, float]:
    """Expected profit of the night ``price_date``'s current, recommended and final prices (as
    ``gold/price_recommendations`` holds them) under the true demand (:func:`true_profit`)."""
    night = (
        Lakehouse.at(spark, lakehouse_root)
        .read(spark, PRICE_RECOMMENDATIONS)
        .where(F.col("price_date") == F.lit(price_date))
    )
    return true_profit(night, truth_dir, cfg)


def render_night(truth: dict[str, float]) -> str:
    """The line ``pricing score --truth`` prints."""
    return (
        f"expected profit under true demand: current {truth['true_profit_current']:,.0f}, "
        f"recommended {truth['true_profit_recommended']:,.0f} ({truth['true_uplift']:+.1%}), "
        f"final {truth['true_profit_final']:,.0f}"
    )
