"""Shared by the nightly tests and the notebook tests: a small market run for two nights."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from conftest import TEST_OVERRIDES
from pyspark.sql import SparkSession

from pricing.config import PricingConfig, load_config
from pricing.nightly import NightlyReport, run_nightly
from pricing.sim import simulate_market
from pricing.sim.deliver import deliver

NIGHTLY_OVERRIDES = [
    *TEST_OVERRIDES,
    "train.epochs=3",
    "train.ensemble_size=2",
    "train.hidden=16",
    "train.holdout_days=7",
]

SKUS, DAYS, START = 8, 70, date(2026, 6, 1)
FIRST_NIGHT = START + timedelta(days=DAYS - 3)


@dataclass
class Market:
    cfg: PricingConfig
    market: str
    landing: str
    lakehouse: str
    night1: NightlyReport
    night2: NightlyReport


def two_nights(spark: SparkSession, base: Path) -> Market:
    """Simulate a market, deliver and run its night FIRST_NIGHT, then the next one."""
    cfg = load_config(
        "local",
        overrides=[
            *NIGHTLY_OVERRIDES,
            f"train.tracking_uri=sqlite:///{base}/mlflow.db",
            f"train.artifact_location={base}/mlartifacts",
            f"simulate.n_skus={SKUS}",
            f"simulate.n_days={DAYS}",
            f"simulate.start_date={START}",
            # Night 2 also compacts and vacuums every table, which must not change what they hold.
            "nightly.optimize_every_days=1",
            "nightly.vacuum_every_days=1",
        ],
    )
    paths = {name: str(base / name) for name in ("market", "truth", "landing", "lakehouse")}
    simulate_market(spark, cfg.simulate, paths["market"], paths["truth"])
    deliver(spark, paths["market"], paths["landing"], FIRST_NIGHT)
    night1 = run_nightly(spark, cfg, FIRST_NIGHT, paths["landing"], paths["lakehouse"])
    deliver(spark, paths["market"], paths["landing"], FIRST_NIGHT + timedelta(days=1))
    night2 = run_nightly(spark, cfg, FIRST_NIGHT + timedelta(days=1), paths["landing"], paths["lakehouse"])
    return Market(cfg, paths["market"], paths["landing"], paths["lakehouse"], night1, night2)
