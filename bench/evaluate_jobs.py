"""``pricing evaluate`` with one process against ``--jobs 2``, side by side on the same markets.

Each side is a fresh ``pricing evaluate`` command (its JVMs start cold, as ``make robustness``'s do)
over the same families and seeds; the order of the sides flips every round so that the machine's drift
falls on both. Per side: wall seconds from the command's start to its exit, the machine's CPU idle
share over the run (``/proc/stat``), and the rows it judged, which must be the same on both sides
(the workers change where a market runs, not what it computes).

    python bench/evaluate_jobs.py --rounds 1 --workdir /tmp/evaluate-jobs

Writes ``bench/results/evaluate_jobs.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from proc_cpu import machine_cpu_times
from results_io import write_results

REPO = Path(__file__).resolve().parents[1]
# What the judge says of a market; timings and versions are left out of the comparison.
JUDGED = (
    "family", "seed", "decision", "profit_vs_keep", "uplift_share", "interval_coverage", "elasticity_mae",
)  # fmt: skip


def _side(jobs: int, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    shutil.rmtree(workdir, ignore_errors=True)
    out = workdir.parent / f"{workdir.name}.json"
    command = [
        str(Path(sys.executable).with_name("pricing")), "evaluate", "--workdir", str(workdir),
        "--families", args.families, "--seeds", args.seeds, "--skus", str(args.skus),
        "--days", str(args.days), "--jobs", str(jobs), "--out", str(out),
    ]  # fmt: skip
    idle, total = machine_cpu_times()
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=os.environ)
    seconds = time.monotonic() - started
    idle_after, total_after = machine_cpu_times()
    (workdir.parent / f"{workdir.name}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"the {jobs}-job side failed ({done.returncode}); see {workdir}.log")
    rows = json.loads(out.read_text())["rows"]
    shutil.rmtree(workdir, ignore_errors=True)
    return {
        "jobs": jobs,
        "seconds": round(seconds, 1),
        "cpu_idle_share": round((idle_after - idle) / max(total_after - total, 1), 3),
        "rows": [{key: row[key] for key in JUDGED} for row in rows],
        "nightly_seconds": [row["nightly_seconds"] for row in rows],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--families", default="simulator,linear_costplus")
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--skus", type=int, default=100)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--workdir", default="/tmp/pricing-evaluate-jobs")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "evaluate_jobs.json"))
    args = parser.parse_args()
    if "PRICING_PII_SALT" not in os.environ:
        raise SystemExit("set PRICING_PII_SALT (make robustness reads it from .cache/pii-salt)")
    runs: list[dict[str, Any]] = []
    for round_ in range(args.rounds):
        for jobs in (1, 2) if round_ % 2 == 0 else (2, 1):
            run = _side(jobs, Path(args.workdir) / f"round{round_}-jobs{jobs}", args)
            runs.append({"round": round_, **run})
            idle = run["cpu_idle_share"]
            print(f"round {round_}, {jobs} job(s): {run['seconds']:.0f} s, CPU idle {idle:.0%}", flush=True)

    def median(jobs: int, key: str) -> float:
        return statistics.median(r[key] for r in runs if r["jobs"] == jobs)

    one, two = median(1, "seconds"), median(2, "seconds")
    results = {
        "families": args.families.split(","),
        "seeds": [int(s) for s in args.seeds.split(",")],
        "skus": args.skus,
        "days": args.days,
        "rounds": args.rounds,
        "seconds": {"jobs_1": one, "jobs_2": two, "ratio": round(two / one, 3)},
        "cpu_idle_share": {"jobs_1": median(1, "cpu_idle_share"), "jobs_2": median(2, "cpu_idle_share")},
        "same_rows_on_both_sides": len({json.dumps(r["rows"]) for r in runs}) == 1,
        "runs": runs,
    }
    write_results(results, args.out, ["seconds", "cpu_idle_share", "same_rows_on_both_sides"])


if __name__ == "__main__":
    main()
