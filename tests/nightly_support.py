"""Small markets run for two nights: one for the nightly tests, one for the kill -9 and notebook tests."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from conftest import TEST_OVERRIDES
from pyspark.sql import SparkSession

from pricing.config import PricingConfig, load_config
from pricing.nightly.job import NightlyReport, run_nightly
from pricing.sim import simulate_market
from pricing.sim.deliver import deliver

NIGHTLY_OVERRIDES = [
    *TEST_OVERRIDES,
    "train.epochs=3",
    "train.ensemble_size=2",
    "train.hidden=16",
    "train.holdout_days=7",
]

SKUS, DAYS, START = 8, 40, date(2026, 6, 1)
FIRST_NIGHT = START + timedelta(days=DAYS - 3)


@dataclass
class Market:
    cfg: PricingConfig
    market: str
    landing: str
    lakehouse: str
    night1: NightlyReport
    night2: NightlyReport


def market_overrides(mlflow_dir: Path, artifacts: Path, days: int) -> list[str]:
    """A small market of SKUS SKUs and ``days`` days from START, its MLflow store in ``mlflow_dir``."""
    return [
        *NIGHTLY_OVERRIDES,
        f"train.tracking_uri=sqlite:///{mlflow_dir}/mlflow.db",
        f"train.artifact_location={artifacts}",
        f"simulate.n_skus={SKUS}",
        f"simulate.n_days={days}",
        f"simulate.start_date={START}",
    ]


def two_nights(spark: SparkSession, base: Path) -> Market:
    """Simulate a market, deliver and run its night FIRST_NIGHT, then the next one."""
    cfg = load_config(
        "local",
        overrides=[
            *market_overrides(base, base / "mlartifacts", DAYS),
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


# The kill -9 world: night 2 retrains too, so a kill can land inside training.
CRASH_DAYS = 40
CRASH_NIGHT1 = START + timedelta(days=CRASH_DAYS - 3)
CRASH_NIGHT2 = CRASH_NIGHT1 + timedelta(days=1)


def crash_overrides(base: Path, name: str) -> list[str]:
    """Settings of the lakehouse ``base/name`` (its own MLflow store; artifacts shared)."""
    return [*market_overrides(base / name, base / "mlartifacts", CRASH_DAYS), "nightly.retrain_every_days=1"]


def crash_config(base: Path, name: str) -> PricingConfig:
    return load_config("local", overrides=crash_overrides(base, name))


def copy_state(base: Path, name: str) -> None:
    """The lakehouse and MLflow store as night 1 left them (``base/base``), copied to ``base/name``."""
    shutil.copytree(base / "base", base / name)


def crash_world(spark: SparkSession, base: Path) -> Market:
    """Night 1 done in ``base/base/``, night 2's landing in ``base/landing2/``, and ``base/reference/``:
    a copy of night 1's state that then ran night 2 uninterrupted (returned, with both nights)."""
    cfg = crash_config(base, "base")
    simulate_market(spark, cfg.simulate, str(base / "market"), str(base / "truth"))
    deliver(spark, str(base / "market"), str(base / "landing1"), CRASH_NIGHT1)
    (base / "base").mkdir()
    night1 = run_nightly(spark, cfg, CRASH_NIGHT1, str(base / "landing1"), str(base / "base" / "lakehouse"))
    shutil.copytree(base / "landing1", base / "landing2")
    deliver(spark, str(base / "market"), str(base / "landing2"), CRASH_NIGHT2)
    copy_state(base, "reference")
    reference = crash_config(base, "reference")
    lakehouse = str(base / "reference" / "lakehouse")
    night2 = run_nightly(spark, reference, CRASH_NIGHT2, str(base / "landing2"), lakehouse)
    return Market(reference, str(base / "market"), str(base / "landing2"), lakehouse, night1, night2)
