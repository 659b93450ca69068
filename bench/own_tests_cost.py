"""What ``train.own_test_z`` costs a training where the shop never explored, side by side in one run.

With the option on (the default), every training joins ``gold/price_recommendations`` into its
rows to mark the system's own price tests, then scans the written shards for marked rows
(``mark_own_tests``, ``own_test_level`` in pricing/model/train.py). A shop that never explored has
none, so that work is all cost. On the demo lakehouse (``make demo`` first), in one warm session,
alternating, this times writing the training run's inputs without and with the marks, and the scan
for marked rows. Writes ``bench/results/own_tests_cost.json``.

    python bench/own_tests_cost.py --lakehouse demo/lakehouse --rounds 5
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from typing import Any

from results_io import write_results
from run_config import run_config

from pricing.lakehouse.tables import Lakehouse
from pricing.model.train import model_panels, own_test_level, shard_count, write_inputs
from pricing.platform.spark import build_spark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lakehouse", default="demo/lakehouse")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default="bench/results/own_tests_cost.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-own-tests-") as scratch:
        cfg = run_config(scratch, f"paths.lakehouse={args.lakehouse}")
        spark = build_spark(cfg.spark)
        source = Lakehouse.at(spark, args.lakehouse)
        panels = model_panels(spark, source, cfg.train, cfg.features)
        shards = shard_count(cfg.train)
        times: dict[str, list[float]] = {"without": [], "with": [], "scan": []}
        tracker = spark.sparkContext.statusTracker()
        jobs: dict[str, int] = {}
        for i in range(args.rounds + 1):  # the first round warms the session and is not counted
            for side in ("without", "with") if i % 2 else ("with", "without"):
                run_id = f"{side}-{i}"
                before = len(tracker.getJobIdsForGroup(None))
                started = time.perf_counter()
                write_inputs(panels, source, run_id, shards, own_tests=side == "with")
                seconds = time.perf_counter() - started
                jobs[side] = len(tracker.getJobIdsForGroup(None)) - before
                if side == "with":
                    before = len(tracker.getJobIdsForGroup(None))
                    started = time.perf_counter()
                    found = own_test_level(
                        source.read_model_data(spark, run_id, "train"), b"", {}, cfg.train.own_test_z
                    )
                    scan = time.perf_counter() - started
                    jobs["scan"] = len(tracker.getJobIdsForGroup(None)) - before
                    assert found == {}, f"the demo shop has own price tests: {found}"
                # The shards land in the demo's model_data/: each round's go again.
                shutil.rmtree(source.model_data(run_id).removeprefix("file:"))
                if i:
                    times[side].append(seconds)
                    if side == "with":
                        times["scan"].append(scan)
                print(f"round {i} {side}: {seconds:.2f} s", flush=True)
        spark.stop()
    median = {side: statistics.median(values) for side, values in times.items()}
    results: dict[str, Any] = {
        "lakehouse": args.lakehouse,
        "rounds": args.rounds,
        "seconds": times,
        "median_seconds": median,
        "spark_jobs": jobs,
        "extra_seconds_per_training": median["with"] + median["scan"] - median["without"],
        "with_over_without": (median["with"] + median["scan"]) / median["without"],
    }
    write_results(results, args.out, ["median_seconds", "extra_seconds_per_training", "with_over_without"])


if __name__ == "__main__":
    main()
