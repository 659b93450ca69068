"""The configuration a benchmark run starts from (local, with its own MLflow store in the run's folder)
and the simulated market's panel it measures on."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

from pricing.config import PricingConfig, load_config
from pricing.features import run_features
from pricing.ingest import run_ingest
from pricing.lakehouse.tables import Lakehouse
from pricing.sim import simulate_market


def run_config(base: Path | str, *overrides: str) -> PricingConfig:
    """``conf/local.yaml`` with the MLflow store under ``base`` and then ``overrides`` (key=value)."""
    return load_config(
        "local",
        overrides=[
            f"train.tracking_uri=sqlite:///{base}/mlflow.db",
            f"train.artifact_location={base}/mlartifacts",
            *overrides,
        ],
    )


def market_overrides(skus: int, days: int, seed: int) -> list[str]:
    """The simulated market a benchmark measures on: its size and seed, as overrides."""
    return [f"simulate.n_skus={skus}", f"simulate.n_days={days}", f"simulate.seed={seed}"]


def simulated_panel(spark: SparkSession, cfg: PricingConfig, base: Path) -> tuple[str, str]:
    """Simulate ``cfg.simulate``'s market under ``base``, ingest it and build the gold panel.

    Returns the lakehouse and the ground-truth folders.
    """
    landing, lakehouse, truth = str(base / "landing"), str(base / "lakehouse"), str(base / "truth")
    simulate_market(spark, cfg.simulate, landing, truth)
    tables = Lakehouse.at(spark, lakehouse)
    run_ingest(spark, tables, cfg.ingest, landing)
    run_features(spark, tables, cfg.features, cfg.catalog)
    return lakehouse, truth
