"""Elasticity recovery: the naive and the debiased fit of the same network against the true elasticities.

For each seed: simulate a market, ingest it, build the panel, then train twice on the same panel,
side by side (``train.debias=false`` and ``true``), and compare each fit's per-SKU elasticities with
the simulator's. Writes ``bench/results/elasticity.json``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

from results_io import write_results
from run_config import run_config, simulated_panel

from pricing.model.train import run_train
from pricing.spark import build_spark

FITS = {"naive": "false", "debiased": "true"}
# The MAE split: category means vs per-SKU deviations (and those deviations estimated as 0).
SPLIT = ("category_mae", "within_mae", "within_floor_mae")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="42,7,2027")
    parser.add_argument("--skus", type=int, default=200)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--workdir", default=None, help="default: a temporary folder, removed after")
    parser.add_argument("--out", default="bench/results/elasticity.json")
    parser.add_argument("overrides", nargs="*", help="extra key=value configuration overrides")
    args = parser.parse_args()
    os.environ.setdefault("PRICING_PII_SALT", secrets.token_hex(24))
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-elasticity-"))
    results: dict[str, Any] = {"skus": args.skus, "days": args.days, "overrides": args.overrides, "seeds": {}}
    spark = None
    for seed in [int(s) for s in args.seeds.split(",")]:
        base = workdir / f"seed-{seed}"
        shutil.rmtree(base, ignore_errors=True)
        per_fit: dict[str, Any] = {}
        for fit, debias in FITS.items():
            cfg = run_config(
                base,
                f"simulate.n_skus={args.skus}",
                f"simulate.n_days={args.days}",
                f"simulate.seed={seed}",
                f"train.debias={debias}",
                *args.overrides,
            )
            spark = spark or build_spark(cfg.spark)
            if not per_fit:  # one panel per seed: both fits train on it
                lakehouse, truth = simulated_panel(spark, cfg, base)
            report = run_train(spark, cfg, lakehouse, truth_dir=truth)
            print(f"seed {seed}, {fit} fit:\n{report.render()}", flush=True)
            per_fit[fit] = {
                "elasticity_mae": report.elasticity_mae,
                "elasticity_bias": report.metrics.get("elasticity_bias"),
                "interval_coverage": report.metrics.get("elasticity_interval_coverage"),
                **{m: report.metrics.get(f"elasticity_{m}") for m in SPLIT},
                "holdout_wape": report.holdout_wape,
                "seasonal_naive_wape": report.seasonal_naive_wape,
                "seconds": report.seconds,
            }
        naive, debiased = per_fit["naive"]["elasticity_mae"], per_fit["debiased"]["elasticity_mae"]
        per_fit["mae_naive_over_debiased"] = naive / debiased
        results["seeds"][str(seed)] = per_fit
    seeds = results["seeds"].values()
    results["summary"] = {
        fit: {
            metric: statistics.fmean(s[fit][metric] for s in seeds)
            for metric in ("elasticity_mae", "elasticity_bias", "interval_coverage", "holdout_wape", *SPLIT)
        }
        for fit in FITS
    }
    results["summary"]["mae_naive_over_debiased"] = [s["mae_naive_over_debiased"] for s in seeds]
    write_results(results, args.out, ["summary"])
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
