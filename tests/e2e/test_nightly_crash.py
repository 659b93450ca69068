"""kill -9 a nightly run at five points in turn, run it again: the tables equal an uninterrupted night's.

One night is killed again and again: each attempt starts ``pricing nightly`` as its own process
group, waits for a line it prints, SIGKILLs the whole group (driver, JVM, training processes) and
the next attempt resumes from what the killed ones left, until a sixth attempt finishes the night.
Each attempt gets past the point the one before it was killed at, so every kill point is reached
once, from a lakehouse that earlier kills left behind (a harder start than one kill alone, and one
night's work instead of five). Only clock readings (when a row was written) may differ; every other
column of every Delta table must match.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nightly_support import CRASH_NIGHT2 as NIGHT2
from nightly_support import Market, copy_state, crash_config, crash_overrides
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from pricing.lakehouse import io
from pricing.lakehouse.maintain import delta_tables
from pricing.nightly.job import run_nightly

pytestmark = pytest.mark.slow

# When a row was written: the only columns allowed to differ after a crash and a re-run.
CLOCK_COLUMNS = {"_ingested_at", "ingested_at", "created_at", "finished_at"}
CLOCK_COLUMNS_BY_TABLE = {"current_prices": {"updated_at"}}
# (line the run prints, seconds to wait after it, then kill -9), in the order a night reaches them
KILL_POINTS = {
    "inside_ingest": ("[ingest] transactions: ingesting", 2.0),
    "between_ingest_and_features": ("[nightly] features: started", 0.0),
    "inside_training": ("[nightly] train: retraining", 12.0),
    "inside_scoring": ("[nightly] score: started", 3.0),
    "inside_reconciliation": ("[nightly] reconcile: started", 0.5),
}


@pytest.fixture(scope="module")
def world(crash_world: Market) -> Path:
    """``base``: night 1 done in ``base/base/``, night 2 landed in ``base/landing2/``, ``base/reference/``."""
    assert crash_world.night2.status == "succeeded" and crash_world.night2.retrained
    return Path(crash_world.market).parent


def _kill_during(base: Path, name: str, trigger: str, delay: float) -> tuple[int, list[str]]:
    """Run the night, kill -9 its process group ``delay`` s after ``trigger``; (return code, output)."""
    command = [
        sys.executable, "-m", "pricing.cli", "nightly",
        "--landing", str(base / "landing2"), "--lakehouse", str(base / name / "lakehouse"),
        "--run-date", str(NIGHT2), *crash_overrides(base, name),
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
    printed = []
    for line in process.stdout:
        printed.append(line.rstrip("\n"))
        if trigger in line:
            time.sleep(delay)
            os.killpg(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=120)
    return process.returncode, printed


def _tables(spark: SparkSession, root: Path) -> dict[str, str]:
    return {"/".join(t.split("/")[-2:]): t for t in delta_tables(spark, str(root))}


def test_killed_again_and_again_then_rerun_equals_an_uninterrupted_night(
    spark: SparkSession, world: Path
) -> None:
    name = "killed"
    copy_state(world, name)
    runs_path = str(world / name / "lakehouse/audit/runs")
    for point, (trigger, delay) in KILL_POINTS.items():
        returncode, printed = _kill_during(world, name, trigger, delay)
        tail = "\n".join(printed[-30:])
        assert returncode == -signal.SIGKILL, f"{point}: the run ended by itself ({returncode}):\n{tail}"
        runs = io.read_table(spark, runs_path)
        assert runs.where(f"run_date = DATE'{NIGHT2}' AND status = 'succeeded'").count() == 0, point

    again = run_nightly(
        spark, crash_config(world, name), NIGHT2, str(world / "landing2"), str(world / name / "lakehouse")
    )
    assert (again.status, again.attempt) == ("succeeded", len(KILL_POINTS) + 1)

    expected, actual = (
        _tables(spark, world / "reference/lakehouse"),
        _tables(spark, world / name / "lakehouse"),
    )
    assert sorted(actual) == sorted(expected)
    for table, path in expected.items():
        if table == "audit/runs":
            continue  # timings and attempts: what happened, not what the night produced
        clock = CLOCK_COLUMNS | CLOCK_COLUMNS_BY_TABLE.get(table.split("/")[1], set())
        want = io.read_table(spark, path)
        got = io.read_table(spark, actual[table])
        keep = [c for c in want.columns if c not in clock]
        assertDataFrameEqual(got.select(keep), want.select(keep), checkRowOrder=False)
