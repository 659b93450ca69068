"""`pricing train train.use_gpu=true` on a session that gives the driver GPUs (as Databricks does).

The driver's GPUs come from a discovery script; here it reports GPU 0 whether or not one exists, so
TorchDistributor's own GPU hand-out runs on any machine. Where CUDA sees no GPU the workers train on
the CPU with Gloo; where it sees one, on it with NCCL. Its own SparkSession: driver resources are
fixed when a session starts, so it runs as a separate `pricing` process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import torch
from conftest import TEST_OVERRIDES, gold_market
from pyspark.sql import SparkSession

from pricing.config import load_config

pytestmark = pytest.mark.slow

MARKET = ["simulate.n_skus=10", "simulate.n_days=35", "simulate.dirt.corrupt_files=false"]


def test_train_on_a_session_that_declares_driver_gpus(spark: SparkSession, tmp_path: Path) -> None:
    lakehouse = gold_market(spark, load_config("local", overrides=TEST_OVERRIDES + MARKET), tmp_path)

    discovery = tmp_path / "gpus.sh"
    discovery.write_text('#!/usr/bin/env bash\necho \'{"name": "gpu", "addresses": ["0"]}\'\n')
    discovery.chmod(0o755)
    driver_gpus = {
        "spark.driver.resource.gpu.amount": "1",
        "spark.driver.resource.gpu.discoveryScript": str(discovery),
    }
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    command = [
        sys.executable, "-m", "pricing.cli", "train", "--lakehouse", str(lakehouse),
        *TEST_OVERRIDES, f"spark.extra_conf={json.dumps(driver_gpus)}",
        "train.use_gpu=true", "train.num_processes=1", "train.epochs=2", "train.ensemble_size=1",
        "train.hidden=8", "train.holdout_days=7", f"train.tracking_uri={tracking}",
        f"train.artifact_location={tmp_path}/artifacts",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=dict(os.environ))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # Spark's GPUs were handed out (TorchDistributor's use_gpu), not bypassed by the driver's own check.
    assert "no GPU visible" not in done.stdout

    client = mlflow.MlflowClient(tracking)
    experiment = client.get_experiment_by_name("pricing-demand")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert [r.data.tags["train_device"] for r in runs] == ["cuda:0" if torch.cuda.is_available() else "cpu"]
