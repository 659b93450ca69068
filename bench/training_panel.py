"""A first training on a large panel: batch 256 throughout (before) vs the shipped step plan (after).

Issue 18 asks for a first training on a 2,000-SKU x 300-day panel within 5 minutes on 2 cores, with
forecast and elasticity quality no worse. Both sides run ``pricing train``'s ``run_train`` on the same
gold panel in one process, each into its own throwaway MLflow store (so each is a first training: no
champion to gate against), alternating which side goes first ("after" on the first repeat, so the
session's warm-up counts against it). "Before" is ``train.max_steps_per_epoch`` set so
high that the batch never grows, which is how every panel trained until this bench's change.
``--before KEY=VALUE`` replaces that (``--before train.max_steps_per_epoch=200`` is the shipped plan),
and ``--after KEY=VALUE`` adds to the after side: two settings of the same code side by side.

With ``--against REF`` the two sides are two versions of the code instead, both with their shipped
plan: "before" runs this bench (``--sides after``) from a worktree of REF, "after" from this checkout,
each a fresh process (its own JVM), alternating which goes first.

Quality comes from the simulated market's ground truth (elasticity MAE, bias, interval coverage) and
the holdout (WAPE against seasonal naive). Writes ``bench/results/training_panel.json``.

Build the panel once (50 minutes on 2 cores for 2,000 x 300), then point ``--lakehouse`` at it:

    pricing simulate --skus 2000 --days 300 paths.landing=P/market paths.truth=P/truth
    pricing deliver --market P/market --landing P/landing --through <last day>
    pricing ingest --landing P/landing --lakehouse P/lakehouse
    pricing features --lakehouse P/lakehouse
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from code_versions import REPO, ref_worktree, sha
from results_io import write_results
from run_config import run_config

from pricing.lakehouse.tables import Lakehouse
from pricing.model.train import run_train
from pricing.platform.spark import build_spark
from pricing.sim.truth import training_vs_truth

SIDES = {"before": ["train.max_steps_per_epoch=1000000000"], "after": []}
QUALITY = [
    "holdout_wape",
    "seasonal_naive_wape",
    "elasticity_mae",
    "elasticity_bias",
    "elasticity_interval_coverage",
    "final_train_poisson_loss",
]
PHASES = ["seconds_prepare", "seconds_fit", "seconds_evaluate", "seconds_register"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lakehouse", required=True, help="a lakehouse with a built gold panel")
    parser.add_argument("--truth", required=True, help="the simulated market's ground truth folder")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", default="bench/results/training_panel.json")
    parser.add_argument("--after", action="append", default=[], metavar="KEY=VALUE", help="after side only")
    parser.add_argument(
        "--before",
        action="append",
        metavar="KEY=VALUE",
        help="before side only, instead of batch 256 throughout (e.g. train.max_steps_per_epoch=200)",
    )
    parser.add_argument("--sides", default="after,before", help="which sides to run (default: both)")
    parser.add_argument("--against", help="git ref: before = that code, after = this checkout")
    parser.add_argument("overrides", nargs="*", help="key=value applied to both sides")
    args = parser.parse_args()
    if args.against:
        runs = _against(args)
        _summarise(runs, {"before": [f"code {sha(args.against)}"], "after": [f"code {sha('HEAD')}"]}, args)
        return
    sides = {"before": args.before or SIDES["before"], "after": [*SIDES["after"], *args.after]}
    runs: list[dict[str, Any]] = []
    spark = None
    for repeat in range(args.repeats):
        # The first run of a session pays Spark's warm-up: "after" takes it on even repeats.
        order = ["after", "before"] if repeat % 2 == 0 else ["before", "after"]
        for side in [s for s in order if s in args.sides.split(",")]:
            side_overrides = sides[side]
            with tempfile.TemporaryDirectory(prefix="bench-training-panel-") as scratch:
                cfg = run_config(
                    scratch, f"paths.lakehouse={args.lakehouse}", *args.overrides, *side_overrides
                )
                spark = spark or build_spark(cfg.spark)
                started = time.monotonic()
                try:
                    report = run_train(spark, Lakehouse.at(spark, args.lakehouse), cfg.train, cfg.features)
                    training_vs_truth(spark, report, args.lakehouse, args.truth, cfg.train.tracking_uri)
                except Exception as error:  # noqa: BLE001 - a side that cannot train is a result too
                    run = {
                        "side": side,
                        "repeat": repeat,
                        "failed": f"{type(error).__name__}: {error}"[:500],
                        "seconds": round(time.monotonic() - started, 1),
                        **_last_run(cfg.train.tracking_uri),
                    }
                    runs.append(run)
                    print(
                        f"{side:>6} #{repeat}: FAILED after {run['seconds']:.0f}s: {run['failed']}",
                        flush=True,
                    )
                    continue
                client_params = _params(cfg.train.tracking_uri, report.run_id)
            run = {
                "side": side,
                "repeat": repeat,
                "seconds": round(report.seconds, 1),
                **{k: round(report.metrics[k], 1) for k in PHASES},
                **{k: report.metrics.get(k) for k in QUALITY},
                "batch_size": int(client_params["train_poisson_batch_size"]),
                "learning_rate": float(client_params["train_poisson_learning_rate"]),
                "samples_per_s": round(report.metrics["train_samples_per_s"]),
            }
            runs.append(run)
            print(
                f"{side:>6} #{repeat}: {run['seconds']:.0f}s (fit {run['seconds_fit']:.0f}s) batch "
                f"{run['batch_size']}, WAPE {run['holdout_wape']:.3f}, elasticity MAE "
                f"{run['elasticity_mae']:.3f}, coverage {run['elasticity_interval_coverage']:.2f}",
                flush=True,
            )
    _summarise(runs, sides, args)


def _summarise(runs: list[dict[str, Any]], sides: dict[str, list[str]], args: argparse.Namespace) -> None:
    ok = [r for r in runs if "failed" not in r]
    median = {
        side: {
            key: statistics.median(r[key] for r in ok if r["side"] == side)
            for key in ["seconds", *PHASES, *QUALITY]
        }
        for side in SIDES
        if any(r["side"] == side for r in ok)
    }
    results = {
        "lakehouse": args.lakehouse,
        "overrides": args.overrides,
        "sides": sides,
        "runs": runs,
        "median": median,
        "ratio_after_over_before": {
            key: round(median["after"][key] / median["before"][key], 3)
            for key in ["seconds", "seconds_prepare", "seconds_fit", "holdout_wape", "elasticity_mae"]
            if len(median) == 2
        },
    }
    write_results(results, args.out, ["median", "ratio_after_over_before"], torch=torch.__version__)


def _against(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each side a fresh process of this bench (its shipped plan) under its own code, alternating."""
    work = Path(tempfile.mkdtemp(prefix="bench-training-panel-ref-"))
    runs: list[dict[str, Any]] = []
    with ref_worktree(args.against, work / "code") as before_code:
        for repeat in range(args.repeats):
            order = [("after", REPO), ("before", before_code)]
            for side, code in order if repeat % 2 == 0 else order[::-1]:
                out = work / f"{side}-{repeat}.json"
                command = [
                    sys.executable, "bench/training_panel.py", "--lakehouse", args.lakehouse,
                    "--truth", args.truth, "--sides", "after", "--out", str(out), *args.overrides,
                ]  # fmt: skip
                done = subprocess.run(command, cwd=code, env={**os.environ, "PYTHONPATH": str(code)})
                run = (
                    json.loads(out.read_text())["runs"][0]
                    if done.returncode == 0 and out.exists()
                    else {"failed": f"exit {done.returncode}"}
                )
                runs.append({**run, "side": side, "repeat": repeat})
                print(f"{side:>6} #{repeat}: {run.get('seconds')} s", flush=True)
    return runs


def _last_run(tracking_uri: str) -> dict[str, Any]:
    """The per-epoch losses and batch of the newest run in a store (a run that failed after fitting)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], order_by=["start_time DESC"], max_results=1
    )
    if not runs:
        return {}
    run = runs[0]
    history = client.get_metric_history(run.info.run_id, "train_poisson_loss")
    return {
        "losses": [m.value for m in sorted(history, key=lambda m: m.step)],
        "batch_size": run.data.params.get("train_poisson_batch_size"),
    }


def _params(tracking_uri: str, run_id: str) -> dict[str, str]:
    import mlflow

    return dict(mlflow.MlflowClient(tracking_uri).get_run(run_id).data.params)


if __name__ == "__main__":
    main()
