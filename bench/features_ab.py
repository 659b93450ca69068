"""One incremental features run, timed in a warm session: run it under two checkouts to compare them.

Builds the incremental test's market (8 SKUs x 36 days), ingests and builds its panel through day 35,
ingests day 36, then runs ``run_features`` on ``--copies`` copies of that lakehouse and prints, per
run, its seconds and Spark jobs (``statusTracker``; the status store keeps 1,000 jobs, so only the
first runs' counts are whole). Run it alternately under each side's code (``git stash`` or a worktree)
and collect the lines: ``bench/results/features_new_days_ab.json`` and
``features_calendar_ab.json`` were made so, two processes a side.

    PRICING_PII_SALT=... python bench/features_ab.py after
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from pricing.config import load_config
from pricing.features import run_features
from pricing.ingest import run_ingest
from pricing.lakehouse.tables import Lakehouse
from pricing.platform.spark import build_spark
from pricing.sim import simulate_market
from pricing.sim.deliver import deliver

START = date(2026, 6, 1)
MARKET = [
    "spark.master=local[2]",
    "spark.shuffle_partitions=2",
    "spark.driver_memory=2g",
    "spark.ui_enabled=false",
    "simulate.n_skus=8",
    "simulate.n_days=36",
    f"simulate.start_date={START}",
    "simulate.dirt.duplicate_rate=0",
    "simulate.dirt.corrupt_files=false",
    "simulate.dirt.unparseable_rows=0",
]


def main() -> None:
    label = sys.argv[1] if len(sys.argv) > 1 else "checkout"
    copies = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    cfg = load_config("local", overrides=MARKET)
    spark = build_spark(cfg.spark)
    tracker = spark.sparkContext.statusTracker()
    base = Path(tempfile.mkdtemp(prefix="features_ab_"))
    staging, landing, lakehouse = base / "staging", base / "landing", base / "lakehouse"
    days = [START + timedelta(days=i) for i in range(36)]
    simulate_market(spark, cfg.simulate, str(staging), str(base / "truth"))
    deliver(spark, str(staging), str(landing), days[34])
    run_ingest(spark, Lakehouse.at(spark, str(lakehouse)), cfg.ingest, str(landing))
    run_features(spark, Lakehouse.at(spark, str(lakehouse)), cfg.features, cfg.catalog, run_date=days[34])
    deliver(spark, str(staging), str(landing), days[35])
    run_ingest(spark, Lakehouse.at(spark, str(lakehouse)), cfg.ingest, str(landing))
    runs = []
    for i in range(copies):
        copy = base / f"copy{i}"
        shutil.copytree(lakehouse, copy)
        jobs = len(tracker.getJobIdsForGroup(None))
        started = time.perf_counter()
        report = run_features(
            spark, Lakehouse.at(spark, str(copy)), cfg.features, cfg.catalog, run_date=days[35]
        )
        runs.append(
            {
                "seconds": round(time.perf_counter() - started, 2),
                "spark_jobs": len(tracker.getJobIdsForGroup(None)) - jobs,
                "rows_written": report.rows_written,
            }
        )
    print(json.dumps({"side": label, "runs": runs}), flush=True)
    spark.stop()
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
