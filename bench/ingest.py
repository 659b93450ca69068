"""Intake wall time with sources one by one vs concurrently (``ingest.parallel_sources``), side by side.

Simulates one market, ingests a week of it once to warm the JVM, then ingests it into fresh lakehouses,
alternating the settings ``--repeats`` times on the same SparkSession: a backfill batch (all days but
the last) and then a one-day batch each.
Checks that both settings wrote the same silver row counts and writes ``bench/results/ingest.json``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from results_io import write_results
from run_config import market_overrides, run_config

from pricing.ingest import run_ingest
from pricing.lakehouse.tables import Lakehouse
from pricing.platform.spark import build_spark
from pricing.sim import simulate_market
from pricing.sim.deliver import deliver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skus", type=int, default=100)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--settings", default="1,4", help="ingest.parallel_sources values to compare")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workdir", default=None, help="default: a temporary folder, removed after")
    parser.add_argument("--out", default="bench/results/ingest.json")
    args = parser.parse_args()
    os.environ.setdefault("PRICING_PII_SALT", secrets.token_hex(24))
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-ingest-"))
    settings = [int(s) for s in args.settings.split(",")]
    market = market_overrides(args.skus, args.days, args.seed)
    cfg = run_config(workdir, *market)
    spark = build_spark(cfg.spark)
    market_dir = workdir / "market"
    if not market_dir.exists():
        simulate_market(spark, cfg.simulate, str(market_dir), str(workdir / "truth"))
    last_day = cfg.simulate.start_date + timedelta(days=args.days - 1)
    # A discarded first ingest, so that neither setting pays for the JVM's warm-up.
    warmup = workdir / "warmup"
    shutil.rmtree(warmup, ignore_errors=True)
    deliver(spark, str(market_dir), str(warmup / "landing"), cfg.simulate.start_date + timedelta(days=6))
    run_ingest(spark, Lakehouse.at(spark, str(warmup / "lakehouse")), cfg.ingest, str(warmup / "landing"))
    timings: dict[int, dict[str, list[float]]] = {s: {"backfill": [], "one_day": []} for s in settings}
    silver_rows: dict[int, int] = {}
    for repeat in range(args.repeats):
        for setting in settings:
            base = workdir / f"run-{setting}-{repeat}"
            shutil.rmtree(base, ignore_errors=True)
            landing, lakehouse = base / "landing", str(base / "lakehouse")
            run_cfg = run_config(workdir, *market, f"ingest.parallel_sources={setting}")
            silver_rows[setting] = 0
            for batch, through in (("backfill", last_day - timedelta(days=1)), ("one_day", last_day)):
                deliver(spark, str(market_dir), str(landing), through)
                started = time.perf_counter()
                report = run_ingest(spark, Lakehouse.at(spark, lakehouse), run_cfg.ingest, str(landing))
                timings[setting][batch].append(time.perf_counter() - started)
                assert report.balanced
                # Counted from the tables as written (the reconciliation's rows_silver).
                silver_rows[setting] += sum(r.rows_silver for r in report.results)
            print(f"[bench] parallel_sources={setting} repeat {repeat}: {timings[setting]}", flush=True)
    assert len(set(silver_rows.values())) == 1, f"settings wrote different silver rows: {silver_rows}"
    first, last = settings[0], settings[-1]
    median = {s: {b: statistics.median(t) for b, t in timings[s].items()} for s in settings}
    results: dict[str, Any] = {
        "skus": args.skus,
        "days": args.days,
        "silver_rows": silver_rows[first],
        "seconds": timings,
        "median_seconds": median,
        "speedup_backfill": median[first]["backfill"] / median[last]["backfill"],
        "speedup_one_day": median[first]["one_day"] / median[last]["one_day"],
    }
    write_results(results, args.out, ["median_seconds", "speedup_backfill", "speedup_one_day"])
    spark.stop()
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
