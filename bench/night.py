"""One night of the demo market, before and after: `pricing nightly` under a git ref and this checkout.

The demo's market (``make demo``'s sizes: 200 SKUs x 90 days, its start date) is simulated once; all but
its last day are delivered and that backfill night (which trains the first model) runs with the ``--against``
ref's code. Then the last day is delivered and its night (no retraining) is measured: each run starts from
its own copy of that lakehouse, landing and MLflow store and is a fresh ``pricing nightly`` process, as
``make demo`` and spark-submit start it, with ``PYTHONPATH`` on the ref's worktree or on this checkout.
The two alternate (ref, checkout, ref, checkout, ...) so that the machine's drift falls on both. A lakehouse
written by the older code must also be one the newer code can carry on.

Writes ``bench/results/night.json``: each run's wall time (process start to exit, JVM start included) and
the stage times the night printed, the median of each side and after/before ratios.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import statistics
import tempfile
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from code_versions import REPO, ref_worktree, run_pricing, sha
from results_io import write_results

STAGE_LINE = re.compile(r"^\[nightly\] (\w+): (\w+) in ([0-9.]+)s")


def _pricing(code: Path, args: list[str], env: dict[str, str], log: Path) -> tuple[float, str]:
    """Run ``pricing ARGS`` with ``code`` first on the path; return the wall seconds and the output."""
    seconds, done = run_pricing(code, args, env, log)
    if done.returncode != 0:
        raise SystemExit(f"pricing {' '.join(args)} failed ({done.returncode}); see {log}")
    return seconds, done.stdout


def _nightly(base: Path, run_date: date) -> list[str]:
    """``pricing nightly`` over ``base``'s landing and lakehouse; its MLflow store in ``base`` named, for a
    ref whose default store is still relative to the working folder."""
    return [
        "nightly", "--landing", str(base / "landing"), "--lakehouse", str(base / "lakehouse"),
        "--run-date", str(run_date),
        f"train.tracking_uri=sqlite:///{base}/mlflow.db", f"train.artifact_location={base}/mlartifacts",
    ]  # fmt: skip


def _deliver(market: Path, base: Path, through: date) -> list[str]:
    return ["deliver", "--market", str(market), "--landing", str(base / "landing"), "--through", str(through)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="git ref of the 'before' code (e.g. a commit)")
    parser.add_argument("--skus", type=int, default=200)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--start", default="2026-06-01")
    parser.add_argument("--repeats", type=int, default=2, help="measured nights per side")
    parser.add_argument("--workdir", default=None, help="default: a temporary folder, removed after")
    parser.add_argument("--out", default="bench/results/night.json")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-night-")).resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    env = {**os.environ, "PRICING_PII_SALT": os.environ.get("PRICING_PII_SALT", secrets.token_hex(24))}
    before_sha, after_sha = sha(args.against), sha("HEAD")
    with ref_worktree(before_sha, workdir / "before-code") as before_code:
        start = date.fromisoformat(args.start)
        last = start + timedelta(days=args.days - 1)
        # Every night runs at the same paths (the file ledger knows files by path): the state after the
        # backfill is kept aside and put back before each measured night.
        base, pristine = workdir / "backfill", workdir / "backfill-pristine"
        market, truth = workdir / "market", workdir / "truth"
        logs = workdir / "logs"
        logs.mkdir()
        _pricing(
            before_code,
            [
                "simulate",
                "--skus",
                str(args.skus),
                "--days",
                str(args.days),
                f"simulate.start_date={start}",
                f"paths.landing={market}",
                f"paths.truth={truth}",
            ],
            env,
            logs / "simulate.log",
        )
        day_before = last - timedelta(days=1)
        _pricing(before_code, _deliver(market, base, day_before), env, logs / "deliver-backfill.log")
        backfill_seconds, _ = _pricing(before_code, _nightly(base, day_before), env, logs / "backfill.log")
        _pricing(before_code, _deliver(market, base, last), env, logs / "deliver-night.log")
        base.rename(pristine)
        runs: list[dict[str, Any]] = []
        for repeat in range(args.repeats):
            for side, code in (("before", before_code), ("after", REPO)):
                shutil.rmtree(base, ignore_errors=True)
                shutil.copytree(pristine, base, symlinks=True)  # copy2: modification times kept
                seconds, out = _pricing(code, _nightly(base, last), env, logs / f"{side}-{repeat}.log")
                stages = {m[1]: float(m[3]) for m in map(STAGE_LINE.match, out.splitlines()) if m}
                runs.append(
                    {
                        "side": side,
                        "repeat": repeat,
                        "wall_seconds": round(seconds, 2),
                        "stage_seconds": stages,
                        "stages_total": round(sum(stages.values()), 2),
                    }
                )
                print(f"{side} #{repeat}: {seconds:.1f} s wall, stages {stages}", flush=True)

    def median(side: str, value: Callable[[dict[str, Any]], float]) -> float:
        return round(statistics.median(value(r) for r in runs if r["side"] == side), 2)

    stages = list(runs[0]["stage_seconds"])
    summary = {
        side: {
            "wall_seconds": median(side, lambda r: r["wall_seconds"]),
            "stages_total": median(side, lambda r: r["stages_total"]),
            "stage_seconds": {s: median(side, lambda r, s=s: r["stage_seconds"].get(s, 0.0)) for s in stages},
        }
        for side in ("before", "after")
    }
    results: dict[str, Any] = {
        "market": {"skus": args.skus, "days": args.days, "start": args.start},
        "before": before_sha,
        "after": after_sha,
        "backfill_seconds": round(backfill_seconds, 2),
        "runs": runs,
        "median": summary,
        "ratio_after_over_before": {
            "wall_seconds": round(summary["after"]["wall_seconds"] / summary["before"]["wall_seconds"], 3),
            "stages_total": round(summary["after"]["stages_total"] / summary["before"]["stages_total"], 3),
            **{
                s: round(summary["after"]["stage_seconds"][s] / summary["before"]["stage_seconds"][s], 3)
                for s in stages
                if summary["before"]["stage_seconds"][s]
            },
        },
    }
    write_results(results, args.out, ["median", "ratio_after_over_before"])
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
