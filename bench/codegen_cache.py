"""Spark's compiled-query cache, side by side: evaluation markets one after another in one process.

Each side is a fresh process that runs the same markets (``pricing evaluate``'s market step: generate,
deliver, the nightly job from scratch, judge) with ``spark.sql.codegen.cache.maxEntries`` at Spark's 100
or at the session's own value (:data:`pricing.platform.spark.CODEGEN_CACHE_ENTRIES`). The sides alternate, and
their order flips every round, so that the machine's drift falls on both. Per market: wall seconds, the
driver JVM's CPU seconds, how many query classes Spark compiled (``CodegenMetrics``) and the market's
profit against keeping prices (the same on both sides, or the cache changed a result).

    python bench/codegen_cache.py --rounds 2 --workdir /tmp/codegen

Writes ``bench/results/codegen_cache.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from results_io import write_results

REPO = Path(__file__).resolve().parents[1]
SPARK_DEFAULT = 100
RESULT = "RESULT "


def _worker(args: argparse.Namespace) -> None:
    import psutil

    from pricing.config import load_config
    from pricing.evaluation.robustness import EvaluationPlan, evaluate_market
    from pricing.platform.spark import build_spark

    cfg = load_config(
        overrides=[f"spark.extra_conf={{spark.sql.codegen.cache.maxEntries: '{args.entries}'}}"]
    )
    spark = build_spark(cfg.spark)
    metrics = spark._jvm.org.apache.spark.metrics.source.CodegenMetrics  # type: ignore[union-attr]

    def jvm_cpu() -> float:
        procs = [p for p in psutil.Process().children(recursive=True) if p.name() == "java"]
        return sum(p.cpu_times().user + p.cpu_times().system for p in procs)

    families = args.families.split(",")
    plan = EvaluationPlan(families=tuple(families), seeds=(args.seed,), n_skus=args.skus, n_days=args.days)
    markets = []
    for position, family in enumerate(families, 1):
        compiled, cpu, started = metrics.METRIC_COMPILATION_TIME().getCount(), jvm_cpu(), time.monotonic()
        rows = evaluate_market(spark, cfg, family, args.seed, Path(args.workdir) / family, plan)
        markets.append(
            {
                "position": position,
                "family": family,
                "seconds": round(time.monotonic() - started, 1),
                "jvm_cpu_seconds": round(jvm_cpu() - cpu, 1),
                "classes_compiled": int(metrics.METRIC_COMPILATION_TIME().getCount() - compiled),
                "nightly_seconds": rows[0]["nightly_seconds"],
                "profit_vs_keep": rows[0]["profit_vs_keep"],
            }
        )
    print(RESULT + json.dumps(markets), flush=True)


def _side(entries: int, workdir: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    shutil.rmtree(workdir, ignore_errors=True)
    command = [
        sys.executable, __file__, "--worker", "--entries", str(entries), "--workdir", str(workdir),
        "--families", args.families, "--seed", str(args.seed),
        "--skus", str(args.skus), "--days", str(args.days),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    (workdir.parent / f"{workdir.name}.log").write_text(done.stdout + done.stderr)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"the {entries}-entry side failed ({done.returncode}); see {workdir}.log")
    shutil.rmtree(workdir, ignore_errors=True)
    return list(json.loads(lines[-1][len(RESULT) :]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--families", default="simulator,semilog_stock,simulator")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skus", type=int, default=100)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--workdir", default="/tmp/pricing-codegen-bench")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "codegen_cache.json"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--entries", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    from pricing.platform.spark import CODEGEN_CACHE_ENTRIES

    sides = {"spark_default": SPARK_DEFAULT, "shipped": CODEGEN_CACHE_ENTRIES}
    runs: list[dict[str, Any]] = []
    for round_ in range(args.rounds):
        order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
        for side in order:
            markets = _side(sides[side], Path(args.workdir) / f"round{round_}-{side}", args)
            runs.append({"round": round_, "side": side, "entries": sides[side], "markets": markets})
            print(f"round {round_} {side}: " + ", ".join(f"{m['seconds']:.0f}s" for m in markets), flush=True)

    def median(side: str, position: int, key: str) -> float:
        return statistics.median(
            m[key] for r in runs if r["side"] == side for m in r["markets"] if m["position"] == position
        )

    positions = sorted({m["position"] for r in runs for m in r["markets"]})
    keys = ("seconds", "jvm_cpu_seconds", "classes_compiled")
    table = {
        f"market_{p}": {
            key: {side: median(side, p, key) for side in sides}
            | {"ratio": round(median("shipped", p, key) / max(median("spark_default", p, key), 1e-9), 3)}
            for key in keys
        }
        for p in positions
    }
    same_prices = all(
        len({round(m["profit_vs_keep"], 9) for r in runs for m in r["markets"] if m["position"] == p}) == 1
        for p in positions
    )
    results = {
        "families": args.families.split(","),
        "seed": args.seed,
        "skus": args.skus,
        "days": args.days,
        "rounds": args.rounds,
        "median": table,
        "same_profit_on_both_sides": same_prices,
        "runs": runs,
    }
    write_results(results, args.out, ["median", "same_profit_on_both_sides"])


if __name__ == "__main__":
    main()
