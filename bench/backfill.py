"""A first backfill's `pricing ingest` in a bounded driver heap, before and after: does it finish, how fast.

A new user's first night ingests months of landing files in one batch. This runs that ingest as a fresh
``pricing ingest`` process (its own JVM, ``spark.driver_memory`` as given) over one landing folder, once with
the ``--against`` ref's code and once with this checkout, for each heap size given, each into its own new
lakehouse. The landing is either ``--landing`` (kept as it is) or a market simulated here (``--skus`` x
``--days``, delivered whole).

Writes ``bench/results/backfill.json``: per run the exit code, whether the JVM ran out of memory, the wall
seconds and the rows each source wrote to silver; per heap size the after/before wall ratio where both
finished.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from results_io import write_results

REPO = Path(__file__).resolve().parents[1]
SOURCE_LINE = re.compile(r"^\[ingest\] (\w+): (\d+) rows read, (\d+) to silver, (\d+) quarantined")
OUT_OF_MEMORY = ("java.lang.OutOfMemoryError", "UNABLE_TO_ACQUIRE_MEMORY")


def _run(code: Path, args: list[str], env: dict[str, str], log: Path) -> tuple[int, float, str]:
    """Run ``pricing ARGS`` with ``code`` first on the path; return exit code, wall seconds, output."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pricing.cli", *args],
        env={**env, "PYTHONPATH": str(code)},
        cwd=code,
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - started
    log.write_text(done.stdout + done.stderr)
    return done.returncode, seconds, done.stdout + done.stderr


def _sha(ref: str) -> str:
    done = subprocess.run(["git", "rev-parse", ref], cwd=REPO, check=True, capture_output=True, text=True)
    return done.stdout.strip()


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
    parser.add_argument("--workdir", default=None, help="default: a temporary folder, removed after")
    parser.add_argument("--out", default="bench/results/backfill.json")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-backfill-")).resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    logs = workdir / "logs"
    logs.mkdir()
    env = {**os.environ, "PRICING_PII_SALT": os.environ.get("PRICING_PII_SALT", secrets.token_hex(24))}
    before_sha, after_sha = _sha(args.against), _sha("HEAD")
    before_code = workdir / "before-code"
    subprocess.run(["git", "worktree", "add", "--detach", str(before_code), before_sha], cwd=REPO, check=True)
    (before_code / ".cache").symlink_to(REPO / ".cache")
    runs: list[dict[str, Any]] = []
    try:
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
                rc, _, _ = _run(REPO, command, env, logs / f"{step}.log")
                if rc != 0:
                    raise SystemExit(f"{step} failed ({rc}); see {logs / f'{step}.log'}")
        for memory in args.memory.split(","):
            for side, code in (("before", before_code), ("after", REPO)):
                lakehouse = workdir / f"lakehouse-{side}-{memory}"
                command = [
                    "ingest", "--landing", str(landing), "--lakehouse", str(lakehouse),
                    f"spark.driver_memory={memory}",
                ]  # fmt: skip
                rc, seconds, out = _run(code, command, env, logs / f"{side}-{memory}.log")
                silver = {m[1]: int(m[3]) for m in map(SOURCE_LINE.match, out.splitlines()) if m}
                run = {
                    "side": side,
                    "driver_memory": memory,
                    "exit_code": rc,
                    "out_of_memory": any(marker in out for marker in OUT_OF_MEMORY),
                    "wall_seconds": round(seconds, 1),
                    "rows_to_silver": silver,
                }
                runs.append(run)
                print(f"{side} @ {memory}: exit {rc}, {seconds:.0f} s, out of memory {run['out_of_memory']}")
                shutil.rmtree(lakehouse, ignore_errors=True)
        landing_bytes = _landing_bytes(landing)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(before_code)], cwd=REPO, check=False)

    ratios: dict[str, float | None] = {}
    for memory in args.memory.split(","):
        pair = {r["side"]: r for r in runs if r["driver_memory"] == memory}
        finished = all(pair[s]["exit_code"] == 0 for s in ("before", "after"))
        ratios[memory] = (
            round(pair["after"]["wall_seconds"] / pair["before"]["wall_seconds"], 3) if finished else None
        )
    results: dict[str, Any] = {
        "landing": str(args.landing)
        if args.landing
        else {"skus": args.skus, "days": args.days, "start": args.start},
        "landing_bytes": landing_bytes,
        "before": before_sha,
        "after": after_sha,
        "runs": runs,
        "finished": {f"{r['side']}@{r['driver_memory']}": r["exit_code"] == 0 for r in runs},
        "wall_ratio_after_over_before": ratios,
    }
    write_results(results, args.out, ["finished", "wall_ratio_after_over_before"])
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
