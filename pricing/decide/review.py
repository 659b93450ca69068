"""Review of a night's proposals: the queue, and approve / reject decisions kept as history.

A decision is appended to ``gold/price_decisions`` (who, when, what, the price it was about) and then
applied to ``gold/price_recommendations`` (``status``, ``final_price``) and ``gold/current_prices``
without re-scoring. The history is the source of truth: applying reads it, so a decision that a crash
left unapplied is applied by the next decision on that night or the next scoring of it, and re-scoring
a night keeps its decisions (score.apply_decisions).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from pricing.decide.approval import add_override, apply_decisions, apply_overrides, publish_current_prices
from pricing.lakehouse import io
from pricing.lakehouse.tables import PRICE_DECISIONS, PRICE_OVERRIDES, PRICE_RECOMMENDATIONS, Lakehouse
from pricing.platform.lock import LakehouseLock

log = logging.getLogger(__name__)

# Which statuses each decision may change: an override is a person's price already (remove it first);
# approving an auto-approved price or rejecting a rejected one would change nothing.
DECIDABLE = {
    "approved": ("needs_review", "rejected"),
    "rejected": ("needs_review", "auto_approved", "approved"),
}

# The queue's columns, in the order people read them.
QUEUE_COLUMNS = [
    "sku",
    "current_price",
    "recommended_price",
    "change",
    "expected_gain",
    "expected_gain_low",
    "expected_gain_high",
    "review_reason",
    "binding_constraint",
    "price_floor",
    "price_ceiling",
    "status",
]


class ReviewError(ValueError):
    """A decision that cannot be taken as asked; nothing was changed."""


@dataclass(frozen=True)
class Selection:
    """Which of the night's prices a decision is about: named SKUs, every decidable one whose change is at
    most ``max_change`` (a fraction), or every decidable one."""

    skus: tuple[str, ...] = ()
    max_change: float | None = None
    every: bool = False

    def __post_init__(self) -> None:
        chosen = sum([bool(self.skus), self.max_change is not None, self.every])
        if chosen != 1:
            raise ReviewError("choose the prices with exactly one of --sku, --max-change or --all")
        if self.max_change is not None and not self.max_change >= 0:
            raise ReviewError(f"--max-change is a fraction of the current price, >= 0; got {self.max_change}")

    def describe(self) -> str:
        if self.skus:
            return ", ".join(self.skus)
        if self.max_change is not None:
            return f"every change up to {self.max_change:.0%}"
        return "all"


@dataclass
class DecisionReport:
    """What one approve / reject command did."""

    decision: str
    price_date: date
    decision_id: str
    count: int
    first_skus: list[str]  # the first few, by SKU, for the console
    author: str

    def render(self) -> str:
        if not self.count:
            return f"nothing to mark {self.decision} for {self.price_date}"
        more = self.count - len(self.first_skus)
        shown = ", ".join(self.first_skus) + (f" and {more} more" if more else "")
        return (
            f"{self.count} price(s) for {self.price_date} {self.decision} by {self.author} "
            f"(decision {self.decision_id}): {shown}"
        )


def change(df: DataFrame) -> Column:
    """The recommended price's change over the current price, as a fraction."""
    return df["recommended_price"] / df["current_price"] - 1


# Prices are whole cents; the band's bounds are compared with this much slack for float rounding.
_SLACK = 1e-9


def _inside_band() -> Column:
    return (
        (F.col("band_note").isNull() | (F.col("band_note") != "infeasible"))
        & (F.col("recommended_price") >= F.col("price_floor") - _SLACK)
        & (F.col("recommended_price") <= F.col("price_ceiling") + _SLACK)
    )


def _in_band(row: Row, price: float) -> bool:
    """``price`` inside the band of the recommendation ``row`` (the driver-side twin of _inside_band)."""
    return bool(row.price_floor - _SLACK <= price <= row.price_ceiling + _SLACK)


def review_queue(recommendations_df: DataFrame, price_date: date) -> DataFrame:
    """The prices of ``price_date`` waiting for a person, largest expected gain first (pure)."""
    night = recommendations_df.where(
        (F.col("price_date") == F.lit(price_date)) & (F.col("status") == "needs_review")
    )
    return (
        night.withColumn("change", change(night))
        .select(QUEUE_COLUMNS)
        .orderBy(F.col("expected_gain").desc_nulls_last(), "sku")
    )


def decidable(night_df: DataFrame, decision: str) -> DataFrame:
    """The night's rows ``decision`` may change (pure): by status, and for an approval only a recommended
    price inside its band."""
    rows = night_df.where(F.col("status").isin(*DECIDABLE[decision]))
    return rows.where(_inside_band()) if decision == "approved" else rows


def latest_price_date(spark: SparkSession, lakehouse: Lakehouse) -> date:
    """The newest night with recommendations: the only one whose prices a decision may still change."""
    missing = f"{lakehouse.root} has no price recommendations yet: run `pricing nightly` first"
    if not lakehouse.exists(spark, PRICE_RECOMMENDATIONS):
        raise ReviewError(missing)
    latest = io.first_value(lakehouse.read(spark, PRICE_RECOMMENDATIONS).agg(F.max("price_date")))
    if latest is None:
        raise ReviewError(missing)
    return latest


def _night_to_decide(spark: SparkSession, lakehouse: Lakehouse, price_date: date | None) -> date:
    latest = latest_price_date(spark, lakehouse)
    if price_date is None or price_date == latest:
        return latest
    if price_date > latest:
        raise ReviewError(f"no prices for {price_date}: the latest priced night is {latest}")
    raise ReviewError(
        f"the night {price_date} is stale: prices for {latest} have replaced it, so only {latest} can be "
        "approved or rejected"
    )


def _chosen(night_df: DataFrame, decision: str, selection: Selection) -> DataFrame:
    """The rows the selection picks, or ReviewError naming every named SKU that cannot be decided."""
    candidates = decidable(night_df, decision)
    if selection.max_change is not None:
        return candidates.where(F.abs(change(candidates)) <= F.lit(selection.max_change) + _SLACK)
    if selection.every:
        return candidates
    named = night_df.where(F.col("sku").isin(*selection.skus))
    found = {
        r.sku: r
        for r in named.select(
            "sku", "status", "recommended_price", "price_floor", "price_ceiling", "band_note"
        ).collect()
    }
    allowed = DECIDABLE[decision]
    problems = []
    for sku in dict.fromkeys(selection.skus):
        row = found.get(sku)
        if row is None:
            problems.append(f"{sku} has no price for this night")
        elif row.status not in allowed:
            hint = "; remove its override first" if row.status == "overridden" else ""
            problems.append(f"{sku} is {row.status}, not {' or '.join(allowed)}{hint}")
        elif decision == "approved" and (
            row.band_note == "infeasible" or not _in_band(row, row.recommended_price)
        ):
            problems.append(
                f"{sku}'s recommended price {row.recommended_price:.2f} is outside its band "
                f"[{row.price_floor:.2f}, {row.price_ceiling:.2f}]"
            )
    if problems:
        raise ReviewError("nothing changed: " + "; ".join(problems))
    return candidates.where(F.col("sku").isin(*selection.skus))


def apply_night_decisions(spark: SparkSession, lakehouse: Lakehouse, price_date: date) -> int:
    """Bring the night's rows in ``gold/price_recommendations`` and ``gold/current_prices`` in line with
    its overrides and decision history; returns how many recommendations changed."""
    night = lakehouse.read(spark, PRICE_RECOMMENDATIONS).where(F.col("price_date") == F.lit(price_date))
    decisions = lakehouse.read_declared(spark, PRICE_DECISIONS)
    overrides = lakehouse.read_declared(spark, PRICE_OVERRIDES)
    before = night.select("sku", F.col("status").alias("_status"), F.col("final_price").alias("_final"))
    changed = (
        apply_decisions(apply_overrides(night, overrides, price_date), decisions, price_date)
        .join(before, "sku")
        .where((F.col("status") != F.col("_status")) | (F.col("final_price") != F.col("_final")))
        .drop("_status", "_final")
    ).cache()
    try:
        updated = changed.count()
        if updated:
            lakehouse.merge(
                PRICE_RECOMMENDATIONS, changed, "true", target_condition=f"t.price_date = DATE'{price_date}'"
            )
    finally:
        changed.unpersist()
    # Compared with the whole night, so a run that stopped between the two tables is completed here.
    publish_current_prices(
        lakehouse.read(spark, PRICE_RECOMMENDATIONS).where(F.col("price_date") == F.lit(price_date)),
        lakehouse,
        updated_at=F.current_timestamp(),
        only_changes=True,
    )
    return updated


def decide(
    spark: SparkSession,
    lakehouse: Lakehouse,
    decision: str,
    selection: Selection,
    author: str,
    note: str | None = None,
    price_date: date | None = None,
    lock_ttl_s: float = 3600.0,
) -> DecisionReport:
    """Approve or reject the selected prices of the latest night (``price_date`` must be it, if given).

    Approving puts the recommended price in force (``approved``); rejecting keeps the current price
    (``rejected``). Runs under the nightly lock, so it never interleaves with a night's scoring.

    Raises:
        ReviewError: bad input (no author, a stale night, a named SKU that cannot be decided); nothing
            is changed.
        LockHeld: a night is running on this lakehouse.
    """
    if decision not in DECIDABLE:
        raise ReviewError(f"a decision is one of {sorted(DECIDABLE)}, not {decision!r}")
    if not author.strip():
        raise ReviewError("a decision needs an --author")
    with LakehouseLock(spark, lakehouse.root, "nightly", lock_ttl_s, f"{decision} prices by {author}"):
        night_date = _night_to_decide(spark, lakehouse, price_date)
        night = lakehouse.read(spark, PRICE_RECOMMENDATIONS).where(F.col("price_date") == F.lit(night_date))
        decision_id = uuid.uuid4().hex
        rows = (
            _chosen(night, decision, selection)
            .select(
                F.lit(decision_id).alias("decision_id"),
                "sku",
                "price_date",
                F.lit(decision).alias("decision"),
                F.col("status").alias("status_before"),
                "current_price",
                "recommended_price",
                (F.col("recommended_price") if decision == "approved" else F.col("current_price")).alias(
                    "final_price"
                ),
                F.lit(author).alias("author"),
                F.lit(note).cast("string").alias("note"),
                F.current_timestamp().alias("decided_at"),
            )
            .cache()
        )
        try:
            count = rows.count()
            first = [r.sku for r in rows.select("sku").orderBy("sku").limit(10).collect()]
            if count:
                lakehouse.append(PRICE_DECISIONS, rows)
                apply_night_decisions(spark, lakehouse, night_date)
        finally:
            rows.unpersist()
    report = DecisionReport(decision, night_date, decision_id, count, first, author)
    log.info(report.render())
    return report


def override(
    spark: SparkSession,
    lakehouse: Lakehouse,
    sku: str,
    price: float,
    author: str,
    note: str | None = None,
    price_date: date | None = None,
    lock_ttl_s: float = 3600.0,
) -> DecisionReport:
    """Put a person's ``price`` in force for ``sku`` on the latest night, at once (``overridden``).

    The price must be whole cents inside the SKU's band for that night (the band holds the hard floor
    of cost and minimum margin, MAP and the change limits). It is recorded as a dated override in
    ``gold/price_overrides`` (so re-scoring the night keeps it) and in the decision history.

    Raises:
        ReviewError: bad input (see :func:`decide`, and a price outside the band); nothing is changed.
        LockHeld: a night is running on this lakehouse.
    """
    if not author.strip():
        raise ReviewError("a decision needs an --author")
    if not price > 0 or round(price, 2) != price:
        raise ReviewError(f"a price is positive whole cents, got {price}")
    with LakehouseLock(spark, lakehouse.root, "nightly", lock_ttl_s, f"override of {sku} by {author}"):
        night_date = _night_to_decide(spark, lakehouse, price_date)
        night = lakehouse.read(spark, PRICE_RECOMMENDATIONS).where(F.col("price_date") == F.lit(night_date))
        row = night.where(F.col("sku") == sku).first()
        if row is None:
            raise ReviewError(f"nothing changed: {sku} has no price for {night_date}")
        if row.band_note == "infeasible":
            raise ReviewError(f"nothing changed: {sku}'s band is infeasible tonight; fix its limits first")
        if not _in_band(row, price):
            raise ReviewError(
                f"nothing changed: {price:.2f} is outside {sku}'s band [{row.price_floor:.2f}, "
                f"{row.price_ceiling:.2f}] (floor: {row.floor_reason or '-'}, "
                f"ceiling: {row.ceiling_reason or '-'})"
            )
        decision_id = uuid.uuid4().hex
        reason = note or "set on review"
        add_override(spark, lakehouse, sku, float(price), reason, author, night_date)
        history = spark.createDataFrame(
            [
                (
                    decision_id,
                    sku,
                    night_date,
                    "overridden",
                    row.status,
                    float(row.current_price),
                    float(row.recommended_price),
                    float(price),
                    author,
                    note,
                )
            ],
            "decision_id string, sku string, price_date date, decision string, status_before string, "
            "current_price double, recommended_price double, final_price double, author string, note string",
        ).withColumn("decided_at", F.current_timestamp())
        lakehouse.append(PRICE_DECISIONS, history)
        apply_night_decisions(spark, lakehouse, night_date)
    report = DecisionReport("overridden", night_date, decision_id, 1, [sku], author)
    log.info(report.render())
    return report


def decision_history(spark: SparkSession, lakehouse: Lakehouse, price_date: date | None = None) -> DataFrame:
    """Every recorded decision (of ``price_date`` when given), newest first."""
    history = lakehouse.read_declared(spark, PRICE_DECISIONS)
    if price_date is not None:
        history = history.where(F.col("price_date") == F.lit(price_date))
    return history.orderBy(F.col("decided_at").desc(), "sku")
