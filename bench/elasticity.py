"""Elasticity recovery: the naive and the debiased fit of the same network against the true elasticities.

For each seed: simulate a market, ingest it, build the panel, then train twice on the same panel,
side by side (``train.debias=false`` and ``true``), and compare each fit's per-SKU elasticities with
the simulator's. Writes ``bench/results/elasticity.json``.

``--sweep KEY=V1,V2,...`` trains both fits for each value of one setting on the same panels and plots
the MAE against it (``--out``'s name with ``.png``), as the network-capacity study does with
``train.hidden``.
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
from run_config import market_overrides, run_config, simulated_panel

from pricing.lakehouse.tables import Lakehouse
from pricing.model.train import run_train
from pricing.platform.spark import build_spark
from pricing.sim.truth import training_vs_truth

FITS = {"naive": "false", "debiased": "true"}
# The MAE split: category means vs per-SKU deviations (and those deviations estimated as 0).
SPLIT = ("category_mae", "within_mae", "within_floor_mae")


def fit_pair(
    spark: Any, base: Path, panel: tuple[str, str], market: list[str], settings: list[str]
) -> dict[str, Any]:
    """Train the naive and the debiased fit on one panel (``market``'s) with ``settings``; their errors."""
    lakehouse, truth = panel
    per_fit: dict[str, Any] = {}
    for fit, debias in FITS.items():
        cfg = run_config(base, *market, *settings, f"train.debias={debias}")
        report = run_train(spark, Lakehouse.at(spark, lakehouse), cfg.train, cfg.features)
        training_vs_truth(spark, report, lakehouse, truth, cfg.train.tracking_uri)
        print(f"{base.name} {settings}, {fit} fit:\n{report.render()}", flush=True)
        per_fit[fit] = {
            "elasticity_mae": report.elasticity_mae,
            "elasticity_bias": report.metrics.get("elasticity_bias"),
            "interval_coverage": report.metrics.get("elasticity_interval_coverage"),
            **{m: report.metrics.get(f"elasticity_{m}") for m in SPLIT},
            "holdout_wape": report.holdout_wape,
            "seasonal_naive_wape": report.seasonal_naive_wape,
            "seconds": report.seconds,
        }
    per_fit["mae_naive_over_debiased"] = (
        per_fit["naive"]["elasticity_mae"] / per_fit["debiased"]["elasticity_mae"]
    )
    return per_fit


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over seeds of each fit's figures, and every seed's naive/debiased MAE ratio."""
    means: dict[str, Any] = {
        fit: {
            metric: statistics.fmean(r[fit][metric] for r in runs)
            for metric in ("elasticity_mae", "elasticity_bias", "interval_coverage", "holdout_wape", *SPLIT)
        }
        for fit in FITS
    }
    means["mae_naive_over_debiased"] = [r["mae_naive_over_debiased"] for r in runs]
    return means


def plot_sweep(results: dict[str, Any], key: str, out: str) -> None:
    """Elasticity MAE of both fits against the swept setting (mean over seeds, each seed faint)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = list(results["summary"])
    fig, ax = plt.subplots(figsize=(6, 4))
    for fit, colour in zip(FITS, ("tab:blue", "tab:orange"), strict=True):
        ax.plot(
            values,
            [results["summary"][v][fit]["elasticity_mae"] for v in values],
            "o-",
            color=colour,
            label=fit,
        )
        for per_value in results["seeds"].values():
            ax.plot(values, [per_value[v][fit]["elasticity_mae"] for v in values], color=colour, alpha=0.25)
    ax.set_xlabel(key)
    ax.set_ylabel("elasticity MAE vs truth")
    ax.set_title(f"naive vs debiased fit by {key} ({len(results['seeds'])} markets)")
    ax.legend()
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="42,7,2027")
    parser.add_argument("--skus", type=int, default=200)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--workdir", default=None, help="default: a temporary folder, removed after")
    parser.add_argument("--out", default="bench/results/elasticity.json")
    parser.add_argument(
        "--sweep",
        default=None,
        help="KEY=V1,V2,...: both fits for each value on the same panels (and a plot)",
    )
    parser.add_argument("overrides", nargs="*", help="extra key=value configuration overrides")
    args = parser.parse_args()
    os.environ.setdefault("PRICING_PII_SALT", secrets.token_hex(24))
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-elasticity-"))
    results: dict[str, Any] = {"skus": args.skus, "days": args.days, "overrides": args.overrides, "seeds": {}}
    key, values = args.sweep.split("=", 1) if args.sweep else ("", "")
    sweep = values.split(",") if args.sweep else [None]
    spark = None
    for seed in [int(s) for s in args.seeds.split(",")]:
        base = workdir / f"seed-{seed}"
        shutil.rmtree(base, ignore_errors=True)
        market = market_overrides(args.skus, args.days, seed)
        cfg = run_config(base, *market, *args.overrides)
        spark = spark or build_spark(cfg.spark)
        panel = simulated_panel(spark, cfg, base)  # one panel per seed: every fit trains on it
        runs = {
            value: fit_pair(
                spark, base, panel, market, [*args.overrides, *([f"{key}={value}"] if value else [])]
            )
            for value in sweep
        }
        results["seeds"][str(seed)] = runs[None] if not args.sweep else runs
    if not args.sweep:
        results["summary"] = summary(list(results["seeds"].values()))
    else:
        results["sweep"] = key
        results["summary"] = {v: summary([s[v] for s in results["seeds"].values()]) for v in sweep}
        plot_sweep(results, key, str(Path(args.out).with_suffix(".png")))
    write_results(results, args.out, ["summary"])
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
