"""What puts a price in force: approval of a scored night, reviewers' decisions, manual overrides,
and the price table that publishes the result (pure DataFrame functions, plus the override writes)."""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from pricing.config import ScoreConfig
from pricing.lakehouse.tables import CURRENT_PRICES, PRICE_OVERRIDES, Lakehouse


def active_overrides(overrides_df: DataFrame, price_date: date) -> DataFrame:
    """Per SKU, the override in force on ``price_date``: one for that night beats an open-ended one;
    among equals the newest wins."""
    applicable = overrides_df.where(F.col("price_date").isNull() | (F.col("price_date") == F.lit(price_date)))
    order = Window.partitionBy("sku").orderBy(F.col("price_date").isNull().asc(), F.col("created_at").desc())
    return (
        applicable.withColumn("_n", F.row_number().over(order))
        .where(F.col("_n") == 1)
        .select(
            "sku",
            F.col("price").alias("override_price"),
            F.col("reason").alias("override_reason"),
            F.col("author").alias("override_author"),
        )
    )


def approve(scored_df: DataFrame, overrides_df: DataFrame, scfg: ScoreConfig, price_date: date) -> DataFrame:
    """Status, review reason and the final price of each scored SKU (pure).

    An override wins (``overridden``). Otherwise a change beyond ``auto_approve_max_change``, a flagged
    or never-seen SKU that would change, an infeasible band or a kept price outside its band needs a
    person (``needs_review``, the current price stays in force); everything else is ``auto_approved``.
    """
    change = F.abs(F.col("recommended_price") / F.col("current_price") - 1)
    moves = F.col("recommended_price") != F.col("current_price")
    reasons = F.concat_ws(
        ",",
        F.when(change > F.lit(scfg.auto_approve_max_change) + F.lit(1e-9), F.lit("large_change")),
        F.when(F.col("sku").isin(*scfg.review_skus) & moves, F.lit("flagged_sku"))
        if scfg.review_skus
        else F.lit(None),
        F.when(~F.col("known_sku") & moves, F.lit("unknown_sku"))
        if scfg.review_unknown_skus
        else F.lit(None),
        F.when(F.col("band_note") == "infeasible", F.lit("infeasible_band")),
        F.when(
            (F.col("recommended_price") < F.col("price_floor") - 1e-9)
            | (F.col("recommended_price") > F.col("price_ceiling") + 1e-9),
            F.lit("outside_band"),
        ),
    )
    overridden = F.col("override_price").isNotNull()
    return (
        scored_df.join(active_overrides(overrides_df, price_date), "sku", "left")
        .withColumn("review_reason", F.when(reasons != "", reasons))
        .withColumn(
            "status",
            F.when(overridden, "overridden")
            .when(F.col("review_reason").isNotNull(), "needs_review")
            .otherwise("auto_approved"),
        )
        .withColumn(
            "final_price",
            F.when(overridden, F.col("override_price"))
            .when(F.col("status") == "needs_review", F.col("current_price"))
            .otherwise(F.col("recommended_price")),
        )
    )


def apply_overrides(night_df: DataFrame, overrides_df: DataFrame, price_date: date) -> DataFrame:
    """The night's rows with the overrides in force on ``price_date`` applied (pure): ``overridden`` at
    the override's price, as scoring would have set them."""
    active = active_overrides(overrides_df, price_date).select(
        "sku", *[F.col(c).alias(f"_{c}") for c in ("override_price", "override_reason", "override_author")]
    )
    found = F.col("_override_price").isNotNull()
    rows = night_df.join(active, "sku", "left")
    for name in ("override_price", "override_reason", "override_author"):
        rows = rows.withColumn(name, F.when(found, F.col(f"_{name}")).otherwise(F.col(name)))
    return (
        rows.withColumn(
            "final_price", F.when(found, F.col("_override_price")).otherwise(F.col("final_price"))
        )
        .withColumn("status", F.when(found, F.lit("overridden")).otherwise(F.col("status")))
        .drop("_override_price", "_override_reason", "_override_author")
    )


def publish_current_prices(
    night_df: DataFrame, lakehouse: Lakehouse, updated_at: Column | None = None, only_changes: bool = False
) -> None:
    """MERGE a night's final prices into ``lakehouse``'s ``gold/current_prices`` (key sku).

    A later night's price is never replaced by re-running an earlier night; ``updated_at`` (a Column)
    defaults to the rows' ``created_at``; ``only_changes`` leaves rows whose price and status hold.
    """
    condition = "s.effective_date >= t.effective_date"
    if only_changes:
        condition += " AND (s.price <> t.price OR s.status <> t.status)"
    rows = night_df.select(
        "sku",
        F.col("final_price").alias("price"),
        F.col("price_date").alias("effective_date"),
        "status",
        "model_version",
        "run_id",
        (F.col("created_at") if updated_at is None else updated_at).alias("updated_at"),
    )
    lakehouse.merge(CURRENT_PRICES, rows, condition)


def latest_decisions(decisions_df: DataFrame, price_date: date) -> DataFrame:
    """(sku, decision, decided_price): each SKU's newest reviewer decision for ``price_date``, with the
    recommended price it was about."""
    newest = Window.partitionBy("sku").orderBy(F.col("decided_at").desc(), F.col("decision_id").desc())
    return (
        decisions_df.where(F.col("price_date") == F.lit(price_date))
        .withColumn("_n", F.row_number().over(newest))
        .where(F.col("_n") == 1)
        .select("sku", "decision", F.col("recommended_price").alias("decided_price"))
    )


def apply_decisions(night_df: DataFrame, decisions_df: DataFrame, price_date: date) -> DataFrame:
    """The night's rows with reviewers' decisions applied (pure): ``approved`` puts the recommended price
    in force, ``rejected`` keeps the current price.

    An override still wins, and an approval holds only while the recommendation is the price that was
    approved (re-scoring to another price asks again); a rejection holds whatever the new proposal.
    """
    decided = latest_decisions(decisions_df, price_date)
    holds = (
        F.col("decision").isin("approved", "rejected")
        & (F.col("status") != "overridden")
        & (
            (F.col("decision") == "rejected")
            | (F.abs(F.col("recommended_price") - F.col("decided_price")) < 0.005)
        )
    )
    return (
        night_df.join(decided, "sku", "left")
        .withColumn(
            "final_price",
            F.when(holds & (F.col("decision") == "approved"), F.col("recommended_price"))
            .when(holds, F.col("current_price"))
            .otherwise(F.col("final_price")),
        )
        .withColumn("status", F.when(holds, F.col("decision")).otherwise(F.col("status")))
        .drop("decision", "decided_price")
    )


def prices_in_force(recommendations_df: DataFrame, price_date: date) -> DataFrame:
    """(sku, price_in_force): each SKU's final price of the latest night before ``price_date``."""
    latest = Window.partitionBy("sku").orderBy(F.col("price_date").desc())
    return (
        recommendations_df.where(F.col("price_date") < F.lit(price_date))
        .withColumn("_n", F.row_number().over(latest))
        .where(F.col("_n") == 1)
        .select("sku", F.col("final_price").alias("price_in_force"))
    )


def add_override(
    spark: SparkSession,
    lakehouse: Lakehouse,
    sku: str,
    price: float,
    reason: str,
    author: str,
    price_date: date | None = None,
) -> None:
    """Record a manual price for ``sku`` on ``price_date`` (None: every night until removed).

    It wins over the model from the next scoring of that night on.
    """
    if price <= 0 or round(price, 2) != price:
        raise ValueError(f"an override price must be positive whole cents, got {price}")
    if not reason.strip() or not author.strip():
        raise ValueError("an override needs a reason and an author")
    row = spark.createDataFrame(
        [(sku, price_date, float(price), reason, author)],
        "sku string, price_date date, price double, reason string, author string",
    ).withColumn("created_at", F.current_timestamp())
    lakehouse.append(PRICE_OVERRIDES, row)


def remove_overrides(
    spark: SparkSession, lakehouse: Lakehouse, sku: str, price_date: date | None = None
) -> int:
    """Delete ``sku``'s overrides for ``price_date`` (None: its open-ended ones); returns rows removed."""
    when = F.col("price_date").isNull() if price_date is None else F.col("price_date") == F.lit(price_date)
    return lakehouse.delete(spark, PRICE_OVERRIDES, (F.col("sku") == sku) & when)
