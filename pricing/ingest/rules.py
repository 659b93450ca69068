"""Each source's cleaning rules, declared as data: what silver derives from a source's typed columns,
which values a row must hold (else it is quarantined with a reason), and what is judged per product
for outliers. :mod:`pricing.ingest.silver` applies them; a new rule is one entry here, testable on three rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column
from pyspark.sql import functions as F

# Quarantine reasons, in priority order (a row's `reason` is the first that applies).
UNPARSEABLE = "unparseable"
MISSING_FIELD = "missing_field"
BAD_TYPE = "bad_type"
UNKNOWN_CURRENCY = "unknown_currency"
INVALID_QUANTITY = "invalid_quantity"
INVALID_PRICE = "invalid_price"
INVALID_VALUE = "invalid_value"
PRICE_OUTLIER = "price_outlier"
QUANTITY_OUTLIER = "quantity_outlier"


@dataclass(frozen=True)
class Limits:
    """The configured bounds the value rules read (``ingest.anomaly``)."""

    max_abs_quantity: int
    max_price: float


@dataclass(frozen=True)
class ValueRule:
    """A row whose ``column`` breaks the rule (``violated`` holds) is quarantined with ``reason`` and
    ``detail``. Both are built per run from the configured :class:`Limits`."""

    column: str
    reason: str
    violated: Callable[[Limits], Column]
    detail: Callable[[Limits], Column | str]


@dataclass(frozen=True)
class Derived:
    """A silver column computed from the source's typed ones (a default, a normal form, a flag)."""

    column: str
    value: Callable[[], Column]


@dataclass(frozen=True)
class OutlierMeasure:
    """A value judged per product by its robust z-score against the product's recent rows.

    ``min_scale`` names the ``ingest.anomaly`` setting that floors the measure's spread."""

    name: str
    value: Callable[[], Column]
    reason: str
    min_scale: str


def price_rule(name: str, allow_zero: bool = False) -> ValueRule:
    """``name`` must be a price in (0, max_price] (or [0, max_price] with ``allow_zero``)."""

    def violated(limits: Limits) -> Column:
        value = F.col(name)
        return (value < 0 if allow_zero else value <= 0) | (value > limits.max_price)

    def detail(limits: Limits) -> Column:
        return F.concat(
            F.lit(f"{name}="), F.col(name).cast("string"), F.lit(f" outside (0, {limits.max_price:g}]")
        )

    return ValueRule(name, INVALID_PRICE, violated, detail)


VALUE_RULES: dict[str, tuple[ValueRule, ...]] = {
    "transactions": (
        ValueRule(
            "quantity",
            INVALID_QUANTITY,
            lambda limits: (F.col("quantity") == 0) | (F.abs(F.col("quantity")) > limits.max_abs_quantity),
            lambda _: F.concat(F.lit("quantity="), F.col("quantity").cast("string")),
        ),
        price_rule("unit_price"),
        price_rule("list_price"),
    ),
    "catalog": (
        price_rule("unit_cost", allow_zero=True),
        price_rule("map_price"),
        price_rule("min_price"),
        price_rule("max_price"),
        ValueRule(
            "min_price",
            INVALID_PRICE,
            lambda _: F.col("min_price") > F.col("max_price"),
            lambda _: "min_price > max_price",
        ),
    ),
    "clickstream": (price_rule("price_shown"),),
    "competitor_prices": (price_rule("price"),),
    "inventory": (
        ValueRule(
            "on_hand",
            INVALID_QUANTITY,
            lambda _: (F.col("on_hand") < 0) | (F.col("on_order") < 0),
            lambda _: F.concat(F.lit("on_hand="), F.col("on_hand").cast("string")),
        ),
    ),
    "fx_rates": (
        ValueRule("rate", INVALID_VALUE, lambda _: F.col("rate") <= 0, lambda _: "rate must be positive"),
    ),
}

DERIVED: dict[str, tuple[Derived, ...]] = {
    # A line without its own id is keyed by its SKU; a line without a list price was sold at it.
    "transactions": (
        Derived("line_key", lambda: F.coalesce(F.col("line_id"), F.col("sku"))),
        Derived("list_price", lambda: F.coalesce("list_price", "unit_price")),
    ),
    "clickstream": (Derived("event_type", lambda: F.lower("event_type")),),
    "fx_rates": (Derived("currency", lambda: F.upper("currency")),),
    "catalog": (Derived("unit_cost_missing", lambda: F.col("unit_cost").isNull()),),
}

OUTLIER_MEASURES: dict[str, tuple[OutlierMeasure, ...]] = {
    "transactions": (
        OutlierMeasure(
            "price", lambda: F.log(F.col("unit_price").cast("double")), PRICE_OUTLIER, "min_log_price_scale"
        ),
        OutlierMeasure(
            "quantity",
            lambda: F.abs(F.col("quantity")).cast("double"),
            QUANTITY_OUTLIER,
            "min_quantity_scale",
        ),
    ),
    "competitor_prices": (
        OutlierMeasure(
            "price", lambda: F.log(F.col("price").cast("double")), PRICE_OUTLIER, "min_log_price_scale"
        ),
    ),
}


def outlier_subject(source: str) -> Column:
    """What a source's outliers are judged per: our SKU, or for a competitor's listing its own id."""
    if source == "competitor_prices":
        return F.coalesce(F.col("sku"), F.concat_ws("|", F.lit("listing"), "competitor", "competitor_sku"))
    return F.col("sku")
