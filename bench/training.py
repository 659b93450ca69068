"""Training throughput: samples/s with 1 vs 2 processes, for each backend, side by side in one run.

Trains on the demo lakehouse's panel (``make demo`` first) with a throwaway MLflow store, so the
demo's registry is untouched. samples/s counts every row any process trained on in the demand fit,
over the slowest process's time (``train_samples_per_s`` in MLflow). Writes
``bench/results/training.json``.
"""

from __future__ import annotations

import argparse
import tempfile
from typing import Any

import torch
from results_io import write_results
from run_config import run_config

from pricing.lakehouse.tables import Lakehouse
from pricing.model.train import run_train
from pricing.platform.spark import build_spark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lakehouse", default="demo/lakehouse")
    parser.add_argument("--backends", default="torch_distributor,horovod")
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--gpu", action="store_true", help="train.use_gpu=true (CUDA + NCCL)")
    parser.add_argument("--out", default="bench/results/training.json")
    args = parser.parse_args()
    results: dict[str, Any] = {"runs": {}}
    with tempfile.TemporaryDirectory(prefix="bench-training-") as scratch:
        spark = None
        for backend in args.backends.split(","):
            for processes in [int(p) for p in args.processes.split(",")]:
                cfg = run_config(
                    scratch,
                    f"paths.lakehouse={args.lakehouse}",
                    f"train.backend={backend}",
                    f"train.num_processes={processes}",
                    f"train.epochs={args.epochs}",
                    f"train.use_gpu={str(args.gpu).lower()}",
                )
                spark = spark or build_spark(cfg.spark)
                report = run_train(spark, Lakehouse.at(spark, args.lakehouse), cfg.train, cfg.features)
                rate = report.metrics["train_samples_per_s"]
                results["runs"][f"{backend}/{processes}"] = {"samples_per_s": rate, "seconds": report.seconds}
                print(
                    f"{backend:>17} x {processes}: {rate:>10,.0f} samples/s ({report.seconds:.0f}s)",
                    flush=True,
                )
    runs = results["runs"]
    results["ratios_2_over_1"] = {
        backend: runs[f"{backend}/2"]["samples_per_s"] / runs[f"{backend}/1"]["samples_per_s"]
        for backend in args.backends.split(",")
        if f"{backend}/1" in runs and f"{backend}/2" in runs
    }
    gpu = torch.cuda.get_device_name(0) if args.gpu and torch.cuda.is_available() else None
    write_results(results, args.out, ["ratios_2_over_1"], torch=torch.__version__, gpu=gpu)


if __name__ == "__main__":
    main()
