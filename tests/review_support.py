"""A hand-built night of price recommendations (five SKUs, two nights) for the review and report tests."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from conftest import copy_shop
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pricing.decide.approval import publish_current_prices
from pricing.lakehouse import io
from pricing.lakehouse.tables import PRICE_RECOMMENDATIONS, Lakehouse
from pricing.schemas import PRICE_RECOMMENDATIONS_SCHEMA

YESTERDAY, NIGHT = date(2026, 3, 1), date(2026, 3, 2)


def rec_row(
    sku: str, day: date, current: float, recommended: float, status: str, **more: Any
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(PRICE_RECOMMENDATIONS_SCHEMA.fieldNames())
    final = recommended if status == "auto_approved" else more.pop("final_price", current)
    row.update(
        sku=sku,
        price_date=day,
        current_price=current,
        recommended_price=recommended,
        final_price=final,
        price_floor=more.pop("price_floor", 0.8 * current),
        price_ceiling=more.pop("price_ceiling", 1.2 * current),
        binding_constraint=more.pop("binding_constraint", "none"),
        status=status,
        review_reason="large_change" if status == "needs_review" else None,
        expected_gain=more.pop("expected_gain", 1.0),
        model_version="3",
        run_id=f"run-{day}",
        created_at=datetime(2026, 3, 1, 23, 0),
        **more,
    )
    return row


# A: a large rise waiting; B: a small cut waiting; C: auto-approved; D: waiting, but its recommendation
# sits outside its band; E: overridden by a person.
ROWS = [
    rec_row("A", NIGHT, 10.0, 11.5, "needs_review", expected_gain=5.0),
    rec_row("B", NIGHT, 20.0, 19.0, "needs_review", expected_gain=2.0),
    rec_row("C", NIGHT, 30.0, 30.9, "auto_approved"),
    rec_row("D", NIGHT, 40.0, 60.0, "needs_review", price_ceiling=48.0, expected_gain=9.0),
    rec_row("E", NIGHT, 50.0, 55.0, "overridden", final_price=52.0, override_price=52.0),
    rec_row("A", YESTERDAY, 10.0, 10.0, "auto_approved"),
]


def build_price_lakehouse(spark: SparkSession, folder: Path) -> None:
    """``ROWS`` as ``gold/price_recommendations``; the night's final prices as ``gold/current_prices``."""
    tables = Lakehouse(io.qualify(spark, str(folder)))
    night = spark.createDataFrame(ROWS, PRICE_RECOMMENDATIONS_SCHEMA)
    tables.append(PRICE_RECOMMENDATIONS, night)
    publish_current_prices(night.where(F.col("price_date") == F.lit(NIGHT)), tables)


def price_lakehouse(spark: SparkSession, template: Path, tmp_path: Path) -> str:
    """A copy of the session's :func:`build_price_lakehouse` (conftest ``price_template``, a folder
    holding ``lakehouse/``) under ``tmp_path``; returns its root. Copied, not built: building took
    about 3 s a test."""
    return io.qualify(spark, str(copy_shop(template, tmp_path)))
