"""Incremental cost: one night's wall time and bytes read/written with 30 vs 365 days of history.

For each history length: simulate a market, deliver all but its last day and run that backfill night
(which trains the first model), compact every table (OPTIMIZE, as the nightly cadence would have),
then deliver the last day and time the night that ingests it. Both nights run in this process, on
the same SparkSession, side by side. Writes ``bench/results/incremental.json``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from results_io import write_results
from run_config import run_config

from pricing.lakehouse.maintain import compact, delta_tables
from pricing.nightly.job import run_nightly
from pricing.platform.spark import build_spark
from pricing.sim import simulate_market
from pricing.sim.deliver import deliver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skus", type=int, default=50)
    parser.add_argument("--histories", default="30,365")
    parser.add_argument("--workdir", default=None, help="default: a temporary folder, removed after")
    parser.add_argument("--out", default="bench/results/incremental.json")
    args = parser.parse_args()
    os.environ.setdefault("PRICING_PII_SALT", secrets.token_hex(24))
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-incremental-"))
    results: dict[str, Any] = {"skus": args.skus, "histories": {}}
    spark = None
    for days in [int(d) for d in args.histories.split(",")]:
        base = workdir / f"history-{days}"
        shutil.rmtree(base, ignore_errors=True)
        cfg = run_config(
            base,
            f"simulate.n_skus={args.skus}",
            f"simulate.n_days={days + 1}",
            "train.epochs=3",
            "train.ensemble_size=2",
            "nightly.retrain_every_days=10000",  # the measured night must not retrain
            "nightly.optimize_every_days=0",
            "nightly.vacuum_every_days=0",
        )
        spark = spark or build_spark(cfg.spark)
        market, landing, lakehouse = str(base / "market"), str(base / "landing"), str(base / "lakehouse")
        simulate_market(spark, cfg.simulate, market, str(base / "truth"))
        backfill = cfg.simulate.start_date + timedelta(days=days - 1)
        deliver(spark, market, landing, backfill)
        run_nightly(spark, cfg, backfill, landing, lakehouse)
        for table in delta_tables(spark, lakehouse):
            compact(spark, table)
        deliver(spark, market, landing, backfill + timedelta(days=1))
        night = run_nightly(spark, cfg, backfill + timedelta(days=1), landing, lakehouse)
        results["histories"][str(days)] = {
            "seconds": night.seconds,
            "bytes_read": sum(s.bytes_read for s in night.stages),
            "bytes_written": sum(s.bytes_written for s in night.stages),
            "stages": {
                s.stage: {"seconds": s.seconds, "bytes_read": s.bytes_read, "bytes_written": s.bytes_written}
                for s in night.stages
            },
        }
    short, long = (results["histories"][d] for d in args.histories.split(","))
    results["ratios_long_over_short"] = {
        metric: long[metric] / short[metric] if short[metric] else None
        for metric in ("seconds", "bytes_read", "bytes_written")
    }
    results["ratios_by_stage"] = {
        stage: {
            metric: long["stages"][stage][metric] / short["stages"][stage][metric]
            if short["stages"][stage][metric]
            else None
            for metric in ("seconds", "bytes_read", "bytes_written")
        }
        for stage in short["stages"]
    }
    write_results(results, args.out, ["ratios_long_over_short", "ratios_by_stage"])
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
