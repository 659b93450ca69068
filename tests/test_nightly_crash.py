"""kill -9 a nightly run at several points, run it again: the tables equal an uninterrupted night's.

Each scenario starts ``pricing nightly`` as its own process group, waits for a line it prints,
SIGKILLs the whole group (driver, JVM, training processes) and runs the night again. Only clock
readings (when a row was written) may differ; every other column of every Delta table must match.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from nightly_support import NIGHTLY_OVERRIDES
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from pricing.config import PricingConfig, load_config
from pricing.nightly import delta_tables, run_nightly
from pricing.sim import simulate_market
from pricing.sim.deliver import deliver

pytestmark = pytest.mark.slow

SKUS, DAYS, START = 8, 40, date(2026, 6, 1)
NIGHT1, NIGHT2 = START + timedelta(days=DAYS - 3), START + timedelta(days=DAYS - 2)
# When a row was written: the only columns allowed to differ after a crash and a re-run.
CLOCK_COLUMNS = {"_ingested_at", "ingested_at", "created_at", "finished_at"}
CLOCK_COLUMNS_BY_TABLE = {"current_prices": {"updated_at"}}
# (line the run prints, seconds to wait after it, then kill -9)
KILL_POINTS = {
    "inside_ingest": ("[ingest] transactions: ingesting", 2.0),
    "between_ingest_and_features": ("[nightly] features: started", 0.0),
    "inside_training": ("[nightly] train: retraining", 12.0),
    "inside_scoring": ("[nightly] score: started", 3.0),
    "inside_reconciliation": ("[nightly] reconcile: started", 0.5),
}


def _config(base: Path, name: str) -> PricingConfig:
    return load_config("local", overrides=_overrides(base, name))


def _overrides(base: Path, name: str) -> list[str]:
    return [
        *NIGHTLY_OVERRIDES,
        f"train.tracking_uri=sqlite:///{base / name}/mlflow.db",
        f"train.artifact_location={base}/mlartifacts",
        f"simulate.n_skus={SKUS}",
        f"simulate.n_days={DAYS}",
        f"simulate.start_date={START}",
        "nightly.retrain_every_days=1",  # night 2 retrains too, so a kill can land inside training
    ]


@pytest.fixture(scope="module")
def world(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Night 1 done in ``base/``; landing with night 2's files in ``landing2/``; ``reference/``."""
    base = tmp_path_factory.mktemp("crash")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PRICING_PII_SALT", secrets.token_hex(24))
        cfg = _config(base, "base")
        simulate_market(spark, cfg.simulate, str(base / "market"), str(base / "truth"))
        deliver(spark, str(base / "market"), str(base / "landing1"), NIGHT1)
        (base / "base").mkdir()
        run_nightly(spark, cfg, NIGHT1, str(base / "landing1"), str(base / "base" / "lakehouse"))
        shutil.copytree(base / "landing1", base / "landing2")
        deliver(spark, str(base / "market"), str(base / "landing2"), NIGHT2)
        _copy_state(base, "reference")
        reference = run_nightly(
            spark,
            _config(base, "reference"),
            NIGHT2,
            str(base / "landing2"),
            str(base / "reference/lakehouse"),
        )
        assert reference.status == "succeeded" and reference.retrained
        yield base


def _copy_state(base: Path, name: str) -> None:
    """The lakehouse and MLflow store as night 1 left them."""
    shutil.copytree(base / "base", base / name)


def _kill_during(base: Path, name: str, trigger: str, delay: float) -> int:
    command = [
        sys.executable, "-m", "pricing.cli", "nightly",
        "--landing", str(base / "landing2"), "--lakehouse", str(base / name / "lakehouse"),
        "--run-date", str(NIGHT2), *_overrides(base, name),
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        env={**os.environ},
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith(trigger):
            time.sleep(delay)
            os.killpg(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=120)
    return process.returncode


def _tables(spark: SparkSession, root: Path) -> dict[str, str]:
    return {"/".join(t.split("/")[-2:]): t for t in delta_tables(spark, str(root))}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_killed_run_then_rerun_equals_an_uninterrupted_night(
    spark: SparkSession, world: Path, point: str
) -> None:
    name = f"killed_{point}"
    _copy_state(world, name)
    trigger, delay = KILL_POINTS[point]
    returncode = _kill_during(world, name, trigger, delay)
    assert returncode == -signal.SIGKILL, f"the run ended by itself ({returncode}) before the kill"
    runs = spark.read.format("delta").load(str(world / name / "lakehouse/audit/runs"))
    assert runs.where(f"run_date = DATE'{NIGHT2}' AND status = 'succeeded'").count() == 0

    again = run_nightly(
        spark, _config(world, name), NIGHT2, str(world / "landing2"), str(world / name / "lakehouse")
    )
    assert (again.status, again.attempt) == ("succeeded", 2)

    expected, actual = (
        _tables(spark, world / "reference/lakehouse"),
        _tables(spark, world / name / "lakehouse"),
    )
    assert sorted(actual) == sorted(expected)
    for table, path in expected.items():
        if table == "audit/runs":
            continue  # timings and attempts: what happened, not what the night produced
        clock = CLOCK_COLUMNS | CLOCK_COLUMNS_BY_TABLE.get(table.split("/")[1], set())
        want = spark.read.format("delta").load(path)
        got = spark.read.format("delta").load(actual[table])
        keep = [c for c in want.columns if c not in clock]
        assertDataFrameEqual(got.select(keep), want.select(keep), checkRowOrder=False)
