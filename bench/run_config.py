"""The configuration a benchmark run starts from: local, with its own MLflow store in the run's folder."""

from __future__ import annotations

from pathlib import Path

from pricing.config import PricingConfig, load_config


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
