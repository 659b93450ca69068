"""Whether the holdout's price moves can tell a market's elasticity bias, on a ``pricing evaluate`` workdir.

For every market of the workdir (``make robustness`` leaves one per family x seed), rebuilds the
champion's holdout as its training run did (the last ``train.holdout_days`` of the panel, the same
inputs), predicts it with the champion and computes the training run's price-change metrics
(``pricing.model.train.price_change_metrics``): ``price_change_slope``, the actual day-over-day change
in log units regressed on the predicted one, and ``price_response_slope``, the same change regressed on
the prediction's price part (elasticity x change in log price) and its rest. Neither needs ground
truth. Beside them, from the judge's table (true elasticities), the market's elasticity bias and the
interval's coverage, and the coverage of each interval stretched by the price response slope where
the slope is clear of 1 by ``--z`` standard errors: ``[min(low, b low), max(high, b high)]``; and
shifted instead, both bounds times b with the point estimate kept inside; and stretched by the slope's
bound nearest 1 (``b - z se`` above 1), only as far as the evidence clearly reaches. Per market also
the 90th percentile of error over half-width, which says how much narrower its intervals could be.
Writes ``bench/results/price_response.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from interval_prior import coverage_summary
from results_io import write_results

from pricing.config import PricingConfig
from pricing.evaluation.judge import ELASTICITY_FLOOR
from pricing.evaluation.robustness import judged_market
from pricing.lakehouse.tables import Lakehouse
from pricing.model.dataset import model_inputs
from pricing.model.predict import stretch_interval
from pricing.model.train import (
    MIN_PRICE_CHANGE_ROWS,
    evaluate,
    interval_stretch,
    model_panels,
    price_change_metrics,
)
from pricing.platform.spark import build_spark


def holdout_metrics(spark: Any, cfg: PricingConfig, market: Path) -> dict[str, float]:
    """The price-change metrics of ``market``'s champion on the holdout its training run used."""
    panels = model_panels(spark, Lakehouse.at(spark, str(market / "lakehouse")), cfg.train, cfg.features)
    holdout = model_inputs(panels.holdout, panels.embeddings, panels.spec)
    uri, name = f"sqlite:///{(market / 'mlflow.db').resolve()}", cfg.train.model_name

    def load() -> Any:
        mlflow.set_tracking_uri(uri)  # in the executors' Python workers too
        return mlflow.pyfunc.load_model(f"models:/{name}@champion")

    return price_change_metrics(evaluate(holdout, load))


def judged_intervals(spark: Any, cfg: PricingConfig, market: Path) -> tuple[dict[str, Any], Any]:
    """``market``'s family record and, per priced SKU, the night's elasticity, its interval and the
    true elasticity, as the judge reads them (pandas)."""
    found, judged = judged_market(spark, cfg, market)
    judged = judged.select("sku", "elasticity", "elasticity_low", "elasticity_high", "true_elasticity")
    return found, judged.toPandas().sort_values("sku", ignore_index=True)


def market_row(
    spark: Any, cfg: PricingConfig, market: Path, zs: list[float], arrays: dict[str, np.ndarray]
) -> dict[str, Any]:
    found, frame = judged_intervals(spark, cfg, market)
    frame = frame.drop(columns="sku")
    metrics = holdout_metrics(spark, cfg, market)
    low, high, truth = (frame[c].to_numpy() for c in ("elasticity_low", "elasticity_high", "true_elasticity"))
    row: dict[str, Any] = {
        "family": found["name"],
        "seed": found["seed"],
        "skus": len(frame),
        **{k: round(v, 4) for k, v in metrics.items()},
        # As the judge counts it: a true elasticity beyond the floor (near a choke price) at the floor.
        "elasticity_bias": round(
            float((frame["elasticity"] - np.maximum(truth, ELASTICITY_FLOOR)).mean()), 3
        ),
        "mean_elasticity": round(float(frame["elasticity"].mean()), 3),
    }
    row["coverage"], row["width"] = _coverage_width(low, high, truth)
    estimate = frame["elasticity"].to_numpy()
    # How wide the intervals are for the errors they must hold: the 90th percentile of each SKU's
    # error over its interval's half-width on the error's side (1: exactly 90 % inside; 0.6: the
    # intervals could be 40 % narrower and still hold 90 %). No widening helps a market below 1.
    side = np.where(truth < estimate, estimate - low, high - estimate)
    row["error_to_halfwidth_q90"] = round(
        float(np.quantile(np.abs(truth - estimate) / np.maximum(side, 1e-9), 0.9)), 3
    )
    key = f"{found['name']}/{found['seed']}"
    arrays.update({f"{key}/{c}": frame[c].to_numpy() for c in frame.columns})
    for z in zs:
        stretch = interval_stretch(metrics, z)
        row[f"stretched@{z}"] = stretch != 1.0
        row[f"coverage@{z}"], row[f"width@{z}"] = _coverage_width(
            *stretch_interval(low, high, stretch), truth
        )
        # Shifted instead: both bounds times the slope, the point estimate kept inside (at 1, as is).
        row[f"coverage_shifted@{z}"], row[f"width_shifted@{z}"] = _coverage_width(
            np.minimum(stretch * low, estimate), np.maximum(stretch * high, estimate), truth
        )
        # Stretched by the slope's bound nearest 1 instead (s - z se above 1, s + z se below).
        bound = interval_stretch(metrics, z, to_bound=True)
        row[f"coverage_bound@{z}"], row[f"width_bound@{z}"] = _coverage_width(
            *stretch_interval(low, high, bound), truth
        )
    return row


def _coverage_width(low: np.ndarray, high: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Coverage of ``truth`` by the intervals ``[low, high]`` and their mean width."""
    return round(float(((truth >= low) & (truth <= high)).mean()), 3), round(float((high - low).mean()), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="demo-robustness", help="a `pricing evaluate` workdir")
    parser.add_argument(
        "--z", default="1,2", help="standard errors the slope must be from 1 to stretch by it"
    )
    parser.add_argument("--out", default="bench/results/price_response.json")
    parser.add_argument(
        "--arrays",
        help="also save each market's per-SKU intervals and true elasticities here (.npz), to try "
        "other interval rules without rebuilding the holdouts",
    )
    args = parser.parse_args()
    workdir = Path(args.workdir)
    zs = [float(z) for z in args.z.split(",")]
    # The settings the workdir's nights ran with (`pricing evaluate` records them).
    cfg = PricingConfig.model_validate_json((workdir / "_config.json").read_text())
    spark = build_spark(cfg.spark)
    rows, arrays = [], {}
    for market in sorted(workdir.glob("*/seed*")):
        if not (market / "nightly.json").exists():
            continue  # a market whose night did not finish
        rows.append(market_row(spark, cfg, market, zs, arrays))
        r = rows[-1]
        print(
            f"{r['family']:18s} {r['seed']}  moved {r['price_change_rows']:4.0f}  slope "
            f"{r['price_change_slope']:5.2f}  price response {r['price_response_slope']:5.2f} "
            f"± {r['price_response_slope_se']:.2f}  bias {r['elasticity_bias']:+.2f}  coverage "
            f"{r['coverage']:.2f} -> "
            + ", ".join(f"{r[f'coverage@{z}']:.2f}" for z in zs)
            + " (bound "
            + ", ".join(f"{r[f'coverage_bound@{z}']:.2f}" for z in zs)
            + ")",
            flush=True,
        )
    informative = [
        r
        for r in rows
        if r["price_change_rows"] >= MIN_PRICE_CHANGE_ROWS and r["price_response_slope_se"] < 0.3
    ]

    def corr(rows_: list[dict[str, Any]], a: str, b: str) -> float | None:
        if len(rows_) < 3:
            return None
        return round(float(np.corrcoef([r[a] for r in rows_], [r[b] for r in rows_])[0, 1]), 3)

    summary: dict[str, Any] = {
        "markets": len(rows),
        "informative_markets (moved >= 30, se < 0.3)": len(informative),
        "corr_bias_price_response_slope (informative)": corr(
            informative, "elasticity_bias", "price_response_slope"
        ),
        "corr_bias_price_change_slope (informative)": corr(
            informative, "elasticity_bias", "price_change_slope"
        ),
        **coverage_summary(rows, "coverage", "width"),
        # Markets whose intervals are wider than their errors need (over 0.95 inside): only a narrower
        # interval brings them in, which the holdout's slope cannot tell.
        "markets_over_0.95": sum(r["coverage"] > 0.95 for r in rows),
        "markets_under_0.85": sum(r["coverage"] < 0.85 for r in rows),
    }
    for z in zs:
        summary[f"stretched@{z}"] = {
            "markets_stretched": sum(r[f"stretched@{z}"] for r in rows),
            **coverage_summary(rows, f"coverage@{z}", f"width@{z}"),
        }
        summary[f"shifted@{z}"] = coverage_summary(rows, f"coverage_shifted@{z}", f"width_shifted@{z}")
        summary[f"bound@{z}"] = coverage_summary(rows, f"coverage_bound@{z}", f"width_bound@{z}")
    if args.arrays:
        np.savez_compressed(args.arrays, **arrays)
    write_results(
        {"workdir": args.workdir, "z": args.z, "summary": summary, "rows": rows}, args.out, ["summary"]
    )


if __name__ == "__main__":
    main()
