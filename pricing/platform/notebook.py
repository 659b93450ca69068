"""What every notebook starts with: the configuration, the SparkSession and the lakehouse.

Set ``PRICING_ENV`` (conf overlay), ``LAKEHOUSE`` (root; default ``paths.lakehouse``) and
``PRICING_OVERRIDES`` (space-separated ``key=value``, e.g. the MLflow tracking URI) before starting
the notebook; on Databricks the existing ``spark`` session is reused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pyspark.sql import SparkSession

from pricing.config import PricingConfig, load_config
from pricing.lakehouse.tables import Lakehouse
from pricing.platform.console import show_progress
from pricing.platform.spark import build_spark


@dataclass(frozen=True)
class NotebookContext:
    cfg: PricingConfig
    spark: SparkSession
    lakehouse: Lakehouse


def notebook_context() -> NotebookContext:
    """Configuration from the environment, the session, and the lakehouse (its root qualified)."""
    show_progress()  # the stages' progress lines under each cell, as on the console
    # LAKEHOUSE as paths.lakehouse, so what follows the lakehouse (its own MLflow store) follows it too.
    lakehouse = [f"paths.lakehouse={os.environ['LAKEHOUSE']}"] if os.environ.get("LAKEHOUSE") else []
    cfg = load_config(
        os.environ.get("PRICING_ENV", "local"),
        overrides=[*lakehouse, *os.environ.get("PRICING_OVERRIDES", "").split()],
    )
    spark = build_spark(cfg.spark)
    return NotebookContext(cfg, spark, Lakehouse.at(spark, cfg.paths.lakehouse))
