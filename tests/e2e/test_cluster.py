"""The nightly job through spark-submit on a real Spark standalone cluster (master + worker)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from nightly_support import NIGHTLY_OVERRIDES
from pyspark.sql import SparkSession

from pricing.config import load_config
from pricing.lakehouse.tables import PRICE_RECOMMENDATIONS, RUNS, Lakehouse
from pricing.platform.spark import session_conf
from pricing.platform.standalone import spark_submit_command, standalone_cluster
from pricing.sim import simulate_market
from pricing.sim.deliver import deliver

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SKUS, DAYS, START = 8, 35, date(2026, 6, 1)
NIGHT = START + timedelta(days=DAYS - 1)


def test_nightly_job_on_a_standalone_cluster(spark: SparkSession, tmp_path: Path) -> None:
    cfg = load_config("local", overrides=[f"simulate.n_skus={SKUS}", f"simulate.n_days={DAYS}"])
    simulate_market(spark, cfg.simulate, str(tmp_path / "market"), str(tmp_path / "truth"))
    deliver(spark, str(tmp_path / "market"), str(tmp_path / "landing"), NIGHT)
    # The package travels as a zip (--py-files), as it would to a remote cluster.
    package = shutil.make_archive(str(tmp_path / "pricing"), "zip", REPO, "pricing")
    # Verbose: the scheduler's INFO line below is how the test sees executors on the worker.
    cluster_cfg = load_config("cluster", overrides=["spark.shuffle_partitions=2", "spark.verbose=true"])
    conf = [
        arg for key, value in session_conf(cluster_cfg.spark).items() for arg in ("--conf", f"{key}={value}")
    ]
    lakehouse = tmp_path / "lakehouse"
    job = [
        "--driver-memory", "1g", "--executor-memory", "1g", "--py-files", package, *conf,
        str(REPO / "jobs" / "nightly.py"), "--env", "cluster",
        "--landing", str(tmp_path / "landing"), "--lakehouse", str(lakehouse), "--run-date", str(NIGHT),
        *[o for o in NIGHTLY_OVERRIDES if not o.startswith("spark.master")],
        f"train.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        f"train.artifact_location={tmp_path}/mlartifacts",
    ]  # fmt: skip
    env = {
        **os.environ,
        "PRICING_PII_SALT": secrets.token_hex(24),
        "PRICING_CONF_DIR": str(REPO / "conf"),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }
    with standalone_cluster(workers=1, cores=2, memory="2g") as master:
        done = subprocess.run(
            spark_submit_command(master, job), env=env, capture_output=True, text=True, timeout=1200
        )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"from {package}" in done.stdout  # the driver ran the shipped package
    assert "Connected to Spark cluster with app ID" in done.stderr  # executors on the worker, not local

    runs = Lakehouse(str(lakehouse)).read(spark, RUNS).collect()
    assert [(r.run_date, r.status) for r in runs] == [(NIGHT, "succeeded")]
    prices = Lakehouse(str(lakehouse)).read(spark, PRICE_RECOMMENDATIONS)
    assert prices.where(f"price_date = DATE'{NIGHT + timedelta(days=1)}'").count() == SKUS
