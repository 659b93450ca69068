"""Table maintenance (OPTIMIZE + VACUUM of every table) one table at a time vs several at once.

A small market (``--skus`` x ``--days``) runs two nightly jobs with maintenance off, which leaves
every table of a lakehouse with a few commits. Then, alternating, each side maintains its own fresh
copy of that lakehouse with ``pricing.lakehouse.maintain.maintain_tables`` (``nightly.parallel_maintenance`` 1
vs ``--parallel``), ``--rounds`` times, in one warm session. Both sides must leave every table with the
rows as before it (count and a hash of every row, checked). Prints the ratio of the medians and writes
``bench/results/maintain.json``.

    PRICING_PII_SALT=... python bench/maintain.py
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from results_io import write_results

from pricing.config import load_config
from pricing.lakehouse import io
from pricing.lakehouse.maintain import delta_tables, maintain_tables
from pricing.nightly.job import run_nightly
from pricing.platform.spark import build_spark
from pricing.sim import simulate_market
from pricing.sim.deliver import deliver

START = date(2026, 6, 1)


def _fingerprint(spark: SparkSession, root: Path) -> dict[str, tuple[int, int]]:
    """Per table (relative path): its rows and the sum of a hash of each row."""
    out = {}
    for location in delta_tables(spark, str(root)):
        df = io.read_table(spark, location)
        row = df.agg(
            F.count("*"),
            F.coalesce(F.sum(F.xxhash64(F.to_json(F.struct(*df.columns))).cast("decimal(38,0)")), F.lit(0)),
        ).first()
        assert row is not None
        out[location.split(str(root), 1)[-1]] = (int(row[0]), int(row[1]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skus", type=int, default=50)
    parser.add_argument("--days", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--out", default="bench/results/maintain.json")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="maintain_bench_"))
    overrides = [
        "spark.master=local[2]",
        "spark.shuffle_partitions=2",
        "spark.ui_enabled=false",
        f"simulate.n_skus={args.skus}",
        f"simulate.n_days={args.days}",
        f"simulate.start_date={START}",
        f"train.tracking_uri=sqlite:///{base}/mlflow.db",
        f"train.artifact_location={base}/mlartifacts",
        "train.epochs=3",
        "train.ensemble_size=2",
        "nightly.optimize_every_days=0",
        "nightly.vacuum_every_days=0",
        "nightly.report=false",
    ]
    cfg = load_config("local", overrides=overrides)
    spark = build_spark(cfg.spark)
    market, landing, lakehouse = base / "market", base / "landing", base / "lakehouse"
    simulate_market(spark, cfg.simulate, str(market), str(base / "truth"))
    first = START + timedelta(days=args.days - 3)
    for night in (first, first + timedelta(days=1)):
        deliver(spark, str(market), str(landing), night)
        run_nightly(spark, cfg, night, str(landing), str(lakehouse))
    tables = len(delta_tables(spark, str(lakehouse)))
    before = _fingerprint(spark, lakehouse)

    sides = {"one_by_one": 1, "concurrent": args.parallel}
    runs: list[dict[str, Any]] = []
    prints: dict[str, dict[str, tuple[int, int]]] = {}
    for i in range(args.rounds):
        for side, parallel in sides.items():
            copy = base / f"{side}{i}"
            shutil.copytree(lakehouse, copy)
            side_overrides = [*overrides, f"nightly.parallel_maintenance={parallel}"]
            ncfg = load_config("local", overrides=side_overrides).nightly
            started = time.perf_counter()
            maintain_tables(spark, str(copy), ["optimize", "vacuum"], ncfg)
            seconds = time.perf_counter() - started
            runs.append({"side": side, "round": i, "parallel": parallel, "seconds": round(seconds, 2)})
            print(f"round {i} {side} ({parallel} at a time): {seconds:.1f} s", flush=True)
            prints.setdefault(side, _fingerprint(spark, copy))
    if any(p != before for p in prints.values()):
        raise SystemExit("maintenance changed what a table holds")

    median = {s: statistics.median(r["seconds"] for r in runs if r["side"] == s) for s in sides}
    results = {
        "market": {"skus": args.skus, "days": args.days, "nights": 2, "tables": tables},
        "jobs": ["optimize", "vacuum"],
        "vacuum_mode": cfg.nightly.vacuum_mode,
        "runs": runs,
        "median_seconds": median,
        "ratio_concurrent_over_one_by_one": round(median["concurrent"] / median["one_by_one"], 3),
        "tables_unchanged": True,
    }
    write_results(results, args.out, ["market", "median_seconds", "ratio_concurrent_over_one_by_one"])
    spark.stop()
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
