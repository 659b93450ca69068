"""What the elasticity interval's category prior does to its coverage, on a ``pricing evaluate`` workdir.

For every market of the workdir (``make robustness`` leaves one per family x seed), reads the night's
intervals and true elasticities (the judge's table), the champion's per-category posterior sds
(``elasticity_category_sd`` in its weights) and recomputes each SKU's interval with another prior sd
of the category's elasticity (``train.category_elasticity_sd``), without retraining: a category's
price information is ``1/sd² - 1/prior²`` of the stored sd, and only that term of the interval's
variance changes (exact up to the clamp that keeps the point estimate inside its interval). With
``--allowances``, also each interval widened by a constant sd in the softplus's argument that does not
shrink with the data (an allowance for the estimator's bias), at the trained prior. Also
reads the training run's holdout response slope (``price_change_slope``), the one calibration check
that works without ground truth, to see whether it tracks the interval's misses.
Writes ``bench/results/interval_prior.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import NormalDist
from typing import Any

import mlflow
import numpy as np
import torch
from results_io import write_results

from pricing.config import load_config
from pricing.evaluation.robustness import judged_market
from pricing.lakehouse.tables import SILVER, Lakehouse
from pricing.platform.spark import build_spark


# The interval is Gaussian in the softplus's argument: elasticity = -softplus(argument).
def _argument(elasticity: np.ndarray) -> np.ndarray:
    return np.log(np.expm1(np.clip(-elasticity, 1e-9, None)))


def _elasticity(argument: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, argument)


def market_coverage(
    spark: Any, cfg: Any, market: Path, priors: list[float], allowances: tuple[float, ...] = ()
) -> dict[str, Any]:
    """Coverage and mean width of the 90 % interval at each prior sd (and each bias allowance), for one
    evaluated market."""
    found, judged = judged_market(spark, cfg, market)
    lakehouse = str(market / "lakehouse")
    catalog = Lakehouse(lakehouse).read(spark, SILVER["catalog"]).select("sku", "category")
    frame = (
        judged.select("sku", "elasticity_low", "elasticity_high", "true_elasticity")
        .join(catalog.dropDuplicates(["sku"]), "sku", "left")
        .toPandas()
    )
    (model,) = (market / "mlartifacts").glob("models/*/artifacts/artifacts")
    categories = json.loads((model / "input_spec.json").read_text())["categories"]
    stored = torch.load(model / "weights.pt", weights_only=True)["elasticity_category_sd"].double().numpy()
    config = json.loads((model / "config.json").read_text())
    # The prior the night trained with: the workdir's models were trained with this configuration.
    trained_prior = cfg.train.category_elasticity_sd
    z = float(NormalDist().inv_cdf(0.5 + float(config.get("interval_level", 0.9)) / 2))
    index = np.array([categories.index(c) + 1 if c in categories else 0 for c in frame["category"]])
    category_sd = stored[:, index]  # members x SKUs
    information = 1.0 / category_sd**2 - 1.0 / trained_prior**2
    high_arg, low_arg = (
        _argument(frame["elasticity_high"].to_numpy()),
        _argument(frame["elasticity_low"].to_numpy()),
    )
    centre, sd = (low_arg + high_arg) / 2, (low_arg - high_arg) / (2 * z)
    truth = frame["true_elasticity"].to_numpy()
    runs = mlflow.search_runs(search_all_experiments=True, order_by=["start_time DESC"], max_results=1)
    slope = runs["metrics.price_change_slope"].iloc[0] if "metrics.price_change_slope" in runs else None
    row: dict[str, Any] = {
        "family": found["name"],
        "seed": found["seed"],
        "skus": len(frame),
        "holdout_price_change_slope": None if slope is None or np.isnan(slope) else round(float(slope), 3),
    }
    for prior in priors:
        variance = sd**2 - (category_sd**2).mean(0) + (1.0 / (1.0 / prior**2 + information)).mean(0)
        spread = np.sqrt(np.clip(variance, 1e-12, None))
        row[f"coverage@{prior}"], row[f"width@{prior}"] = _coverage_width(centre, z * spread, truth)
    for allowance in allowances:
        half = z * np.sqrt(sd**2 + allowance**2)
        row[f"coverage+{allowance}"], row[f"width+{allowance}"] = _coverage_width(centre, half, truth)
    return row


def _coverage_width(centre: np.ndarray, half: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Coverage of ``truth`` and mean width of the intervals ``centre +- half`` (in the argument)."""
    low, high = _elasticity(centre + half), _elasticity(centre - half)
    return round(float(((truth >= low) & (truth <= high)).mean()), 3), round(float((high - low).mean()), 3)


def coverage_summary(rows: list[dict[str, Any]], coverage: str, width: str) -> dict[str, Any]:
    """Over the markets: how many have ``coverage`` inside 0.85-0.95, pooled coverage, mean ``width``."""
    skus = max(1, sum(r["skus"] for r in rows))
    return {
        "markets_in_0.85_0.95": sum(0.85 <= r[coverage] <= 0.95 for r in rows),
        "pooled_coverage": round(sum(r[coverage] * r["skus"] for r in rows) / skus, 3),
        "mean_width": round(float(np.mean([r[width] for r in rows])), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="demo-robustness", help="a `pricing evaluate` workdir")
    parser.add_argument("--priors", default="3.0,2.0,1.65,1.2,1.0,0.8")
    parser.add_argument(
        "--allowances", default="", help="constant sds added to the interval's argument, e.g. 0.2,0.4"
    )
    parser.add_argument("--out", default="bench/results/interval_prior.json")
    args = parser.parse_args()
    priors = [float(p) for p in args.priors.split(",")]
    allowances = tuple(float(a) for a in args.allowances.split(",") if a)
    cfg = load_config()
    spark = build_spark(cfg.spark)
    rows = []
    for market in sorted(Path(args.workdir).glob("*/seed*")):
        if not (market / "nightly.json").exists():
            continue  # a market whose night did not finish
        mlflow.set_tracking_uri(f"sqlite:///{(market / 'mlflow.db').resolve()}")
        rows.append(market_coverage(spark, cfg, market, priors, allowances))
        cells = "  ".join(
            f"{p}: {rows[-1][f'coverage@{p}']:.2f}/{rows[-1][f'width@{p}']:.1f}" for p in priors
        )
        print(f"{market.parent.name:18s} {market.name}  coverage/width  {cells}", flush=True)
    summary = {str(prior): coverage_summary(rows, f"coverage@{prior}", f"width@{prior}") for prior in priors}
    by_allowance = {str(a): coverage_summary(rows, f"coverage+{a}", f"width+{a}") for a in allowances}
    for prior, figures in summary.items():
        print(f"prior sd {prior}: {figures}")
    for allowance, figures in by_allowance.items():
        print(f"bias allowance {allowance}: {figures}")
    results = {"workdir": args.workdir, "markets": len(rows), "by_prior": summary, "rows": rows}
    if allowances:
        results["by_allowance"] = by_allowance
    write_results(results, args.out, ["by_prior"])


if __name__ == "__main__":
    main()
