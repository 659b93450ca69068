"""Scale: per-row cost of the full nightly pipeline (ingest -> features -> train -> score) as data grows.

For each size (raw transaction lines), a market of ``size / (lines per SKU-day * days)`` SKUs over a
fixed history is simulated: the shop grows by products, each with the same history, so a flat cost
per row is what a linear pipeline shows. Everything is delivered, then one backfill night runs the
whole job: it ingests every landing file (transactions, clickstream, competitors, inventory,
catalog), builds the panel, trains the first model and prices every SKU. Each stage's seconds and
bytes are divided by the transaction lines the night ingested. All sizes run in this process on the
same SparkSession, side by side; the ratios are each size's cost per row over the smallest size's.
Writes ``bench/results/scale.json``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from results_io import write_results
from run_config import run_config

from pricing.lakehouse.tables import BRONZE, Lakehouse
from pricing.nightly.job import run_nightly
from pricing.platform.spark import build_spark
from pricing.sim import simulate_market
from pricing.sim.deliver import deliver

# Transaction lines per SKU-day the simulator writes with its default demand (measured: 103,044 lines
# for 200 SKUs x 90 days); only used to size the market, the figures use the lines actually ingested.
LINES_PER_SKU_DAY = 5.7


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.name.endswith(".crc"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="300000,1000000,3000000", help="transaction lines, comma-separated"
    )
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--workdir", default=None, help="default: a temporary folder, removed after")
    parser.add_argument(
        "--warmup", type=int, default=5000, help="lines of an unreported first night; 0: none"
    )
    parser.add_argument("--out", default="bench/results/scale.json")
    parser.add_argument("overrides", nargs="*", help="extra key=value configuration overrides")
    args = parser.parse_args()
    os.environ.setdefault("PRICING_PII_SALT", secrets.token_hex(24))
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-scale-"))
    results: dict[str, Any] = {"days": args.days, "overrides": args.overrides, "sizes": {}}
    spark = None
    sizes = [int(s) for s in args.sizes.split(",")]
    # A small first night warms the JVM and Python workers, so the smallest size is not charged for it.
    for size in ([args.warmup] if args.warmup else []) + sizes:
        skus = max(10, round(size / (LINES_PER_SKU_DAY * args.days)))
        base = workdir / f"size-{size}"
        shutil.rmtree(base, ignore_errors=True)
        cfg = run_config(base, f"simulate.n_skus={skus}", f"simulate.n_days={args.days}", *args.overrides)
        spark = spark or build_spark(cfg.spark)
        market, landing, lakehouse = base / "market", str(base / "landing"), str(base / "lakehouse")
        print(f"[scale] {size:,} lines: simulating {skus:,} SKUs x {args.days} days", flush=True)
        started = time.monotonic()
        simulate_market(spark, cfg.simulate, str(market), str(base / "truth"))
        simulate_seconds = time.monotonic() - started
        night = cfg.simulate.start_date + timedelta(days=args.days - 1)
        landing_bytes = _dir_bytes(market)
        deliver(spark, str(market), landing, night)
        report = run_nightly(spark, cfg, night, landing, lakehouse)
        if report.status != "succeeded":
            raise RuntimeError(f"the night at {size:,} lines ended {report.status}: {report.error}")
        shutil.rmtree(market, ignore_errors=True)  # the landing copy is what the night read
        if size not in sizes:
            continue
        lines = Lakehouse(lakehouse).read(spark, BRONZE["transactions"]).count()
        clicks = Lakehouse(lakehouse).read(spark, BRONZE["clickstream"]).count()
        stages = {
            s.stage: {
                "seconds": s.seconds,
                "bytes_read": s.bytes_read,
                "bytes_written": s.bytes_written,
                "us_per_line": 1e6 * s.seconds / lines,
            }
            for s in report.stages
        }
        total = sum(s["seconds"] for s in stages.values())
        results["sizes"][str(size)] = {
            "skus": skus,
            "transaction_lines": lines,
            "click_events": clicks,
            "landing_bytes": landing_bytes,
            "simulate_seconds": simulate_seconds,
            "pipeline_seconds": total,
            "us_per_line": 1e6 * total / lines,
            "stages": stages,
        }
        print(f"[scale] {lines:,} lines: {total:.0f} s, {1e6 * total / lines:.1f} us per line", flush=True)
    measured = list(results["sizes"].values())
    smallest = measured[0]
    results["cost_per_line_over_smallest"] = {
        str(s["transaction_lines"]): {
            "pipeline": s["us_per_line"] / smallest["us_per_line"],
            **{
                stage: s["stages"][stage]["us_per_line"] / smallest["stages"][stage]["us_per_line"]
                for stage in s["stages"]
                if smallest["stages"].get(stage, {}).get("us_per_line")
            },
        }
        for s in measured
    }
    write_results(results, args.out, ["cost_per_line_over_smallest"])
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
