"""A first backfill's `pricing ingest` in a bounded driver heap, before and after: does it finish, how fast.

A new user's first night ingests months of landing files in one batch. This runs that ingest as a fresh
``pricing ingest`` process (its own JVM, ``spark.driver_memory`` as given) over one landing folder, once with
the ``--against`` ref's code and once with this checkout, for each heap size given, each into its own new
lakehouse. The landing is either ``--landing`` (kept as it is) or a market simulated here (``--skus`` x
``--days``, delivered whole).

Writes ``bench/results/backfill.json``: per run the exit code, whether the JVM ran out of memory, the wall
seconds and the rows each source wrote to silver; per heap size the median wall seconds of each side
(``--repeats`` runs a side, alternating) and the after/before ratio of the medians where every run finished.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import statistics
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from code_versions import REPO, ref_worktree, run_pricing, sha
from results_io import write_results

SOURCE_LINE = re.compile(r"^\[ingest\] (\w+): (\d+) rows read, (\d+) to silver, (\d+) quarantined")
OUT_OF_MEMORY = ("java.lang.OutOfMemoryError", "UNABLE_TO_ACQUIRE_MEMORY")


def _landing_bytes(landing: Path) -> dict[str, int]:
    return {
        source.name: sum(
            f.stat().st_size for f in source.rglob("*") if f.is_file() and not f.name.startswith(".")
        )
        for source in sorted(landing.iterdir())
        if source.is_dir()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="git ref of the 'before' code (e.g. a commit)")
    parser.add_argument("--landing", default=None, help="an existing landing root (default: simulate one)")
    parser.add_argument("--skus", type=int, default=2000)
    parser.add_argument("--days", type=int, default=80)
    parser.add_argument("--start", default="2026-06-01")
    parser.add_argument("--memory", default="4g", help="driver heap sizes to try, comma-separated")
    parser.add_argument("--repeats", type=int, default=1, help="runs a side per heap size, alternating")
    parser.add_argument("--workdir", default=None, help="default: a temporary folder, removed after")
    parser.add_argument("--out", default="bench/results/backfill.json")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-backfill-")).resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    logs = workdir / "logs"
    logs.mkdir()
    env = {**os.environ, "PRICING_PII_SALT": os.environ.get("PRICING_PII_SALT", secrets.token_hex(24))}
    before_sha, after_sha = sha(args.against), sha("HEAD")
    runs: list[dict[str, Any]] = []
    with ref_worktree(before_sha, workdir / "before-code") as before_code:
        if args.landing:
            landing = Path(args.landing).resolve()
        else:
            landing, market = workdir / "landing", workdir / "market"
            last = date.fromisoformat(args.start) + timedelta(days=args.days - 1)
            simulate = ["simulate", "--skus", str(args.skus), "--days", str(args.days)]
            paths = [
                f"simulate.start_date={args.start}",
                f"paths.landing={market}",
                f"paths.truth={workdir / 'truth'}",
            ]
            deliver = ["deliver", "--market", str(market), "--landing", str(landing), "--through", str(last)]
            for step, command in (("simulate", [*simulate, *paths]), ("deliver", deliver)):
                _, done = run_pricing(REPO, command, env, logs / f"{step}.log")
                if done.returncode != 0:
                    raise SystemExit(f"{step} failed ({done.returncode}); see {logs / f'{step}.log'}")
        for memory, repeat in ((m, r) for m in args.memory.split(",") for r in range(args.repeats)):
            for side, code in (("before", before_code), ("after", REPO)):
                lakehouse = workdir / f"lakehouse-{side}-{memory}"
                command = [
                    "ingest", "--landing", str(landing), "--lakehouse", str(lakehouse),
                    f"spark.driver_memory={memory}",
                ]  # fmt: skip
                seconds, done = run_pricing(code, command, env, logs / f"{side}-{memory}-{repeat}.log")
                oom = any(marker in done.stdout + done.stderr for marker in OUT_OF_MEMORY)
                silver = {m[1]: int(m[3]) for m in map(SOURCE_LINE.match, done.stdout.splitlines()) if m}
                run = {
                    "side": side,
                    "driver_memory": memory,
                    "repeat": repeat,
                    "exit_code": done.returncode,
                    "out_of_memory": oom,
                    "wall_seconds": round(seconds, 1),
                    "rows_to_silver": silver,
                }
                runs.append(run)
                print(f"{side} @ {memory}: exit {done.returncode}, {seconds:.0f} s, out of memory {oom}")
                shutil.rmtree(lakehouse, ignore_errors=True)
        landing_bytes = _landing_bytes(landing)

    ratios: dict[str, float | None] = {}
    medians: dict[str, dict[str, float | None]] = {}
    for memory in args.memory.split(","):
        sides = {
            side: [r for r in runs if r["driver_memory"] == memory and r["side"] == side]
            for side in ("before", "after")
        }
        finished = all(r["exit_code"] == 0 for side_runs in sides.values() for r in side_runs)
        medians[memory] = {
            side: round(statistics.median(r["wall_seconds"] for r in side_runs), 1) if finished else None
            for side, side_runs in sides.items()
        }
        before_s, after_s = medians[memory]["before"], medians[memory]["after"]
        ratios[memory] = round(after_s / before_s, 3) if before_s and after_s else None
    results: dict[str, Any] = {
        "landing": str(args.landing)
        if args.landing
        else {"skus": args.skus, "days": args.days, "start": args.start},
        "landing_bytes": landing_bytes,
        "before": before_sha,
        "after": after_sha,
        "runs": runs,
        "finished": {f"{r['side']}@{r['driver_memory']}#{r['repeat']}": r["exit_code"] == 0 for r in runs},
        "median_wall_seconds": medians,
        # Every finished run, either side, wrote the same rows to each silver table.
        "same_silver_rows": len(
            {str(sorted(r["rows_to_silver"].items())) for r in runs if r["exit_code"] == 0}
        )
        == 1,
        "wall_ratio_after_over_before": ratios,
    }
    write_results(
        results, args.out, ["median_wall_seconds", "wall_ratio_after_over_before", "same_silver_rows"]
    )
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
