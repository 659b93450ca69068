"""What interval coverage a market would show if its elasticity intervals were exactly calibrated, on a
``pricing evaluate`` workdir, beside what it shows.

A SKU's Laplace interval has two parts (``LoadedModel.interval_parts``): its own deviation's
uncertainty, independent from SKU to SKU, and the share of its category's uncertainty that it borrows,
common to every SKU of the category. Where prices say little, the shared part dominates, and a market
of 100 SKUs in 8 categories is closer to 8 draws than to 100: even intervals exactly right in the
model's own terms cover all of a category or little of it. This bench draws, for every market, the
errors its intervals describe (one normal draw per category for the shared part, one per SKU for the
rest, each SKU's sds as the night's interval states them) and reports the distribution of the coverage
such calibrated intervals would give: the chance it lands inside 0.85-0.95, its 5th and 95th
percentiles and where the observed coverage falls among them. Observed coverage outside that band is
what calibration cannot explain (a bias); inside it, no interval rule can do better on that market.
The same for each family's three seeds pooled. Writes ``bench/results/interval_calibration.json``.

    python bench/interval_calibration.py --workdir demo-robustness
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from interval_refit import _latest
from price_response import judged_intervals
from results_io import write_results

from pricing.config import PricingConfig
from pricing.model.predict import LoadedModel, softplus_argument
from pricing.platform.spark import build_spark

BAND = (0.85, 0.95)
DRAWS = 20_000


def _argument(elasticity: pd.Series) -> np.ndarray:
    """The softplus argument of each elasticity, as predict maps it."""
    return softplus_argument(torch.as_tensor(elasticity.to_numpy(float))).numpy()


def market_skus(spark: Any, cfg: PricingConfig, market: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """Per priced SKU of ``market``: its category, the night's interval as centre and sd in the softplus
    argument, the shared part's share of its variance (from the champion, on the SKU's last holdout
    row) and its standardised error against the truth."""
    found, judged = judged_intervals(spark, cfg, market)
    config_path = Path(_latest(f"{market}/mlartifacts/**/config.json"))
    model = LoadedModel(config_path.with_name("weights.pt").read_bytes(), json.loads(config_path.read_text()))
    holdout = pd.read_parquet(_latest(f"{market}/lakehouse/model_data/*/holdout"))
    last = holdout.sort_values("date").groupby("sku").tail(1).reset_index(drop=True)
    parts = pd.concat([last[["sku", "category_idx"]], model.interval_parts(last)], axis=1)
    parts["shared_share"] = parts["shared_sd"] ** 2 / (parts["own_sd"] ** 2 + parts["shared_sd"] ** 2)
    frame = judged.merge(parts[["sku", "category_idx", "shared_share"]], on="sku", how="inner")
    if len(frame) != len(judged):
        raise ValueError(f"{market}: {len(judged) - len(frame)} priced SKUs have no holdout row")
    # The night's bounds are -softplus(centre ± z sd): both recovered from them exactly.
    low, high = _argument(frame["elasticity_low"]), _argument(frame["elasticity_high"])
    frame["centre"], frame["sd"] = (low + high) / 2, (low - high) / (2 * model.z)
    frame["z_error"] = (_argument(frame["true_elasticity"]) - frame["centre"]) / frame["sd"].clip(lower=1e-9)
    frame["inside"] = frame["true_elasticity"].between(frame["elasticity_low"], frame["elasticity_high"])
    frame["z"] = model.z
    return found, frame


def calibrated_coverage(frames: list[pd.DataFrame], rng: np.random.Generator) -> np.ndarray:
    """``DRAWS`` coverages of intervals exactly calibrated in the model's terms, pooled over ``frames``
    (markets drawn independently): per category one shared normal draw, per SKU one of its own."""
    covered = np.zeros(DRAWS)
    total = 0
    for frame in frames:
        categories = frame["category_idx"].to_numpy()
        _, category = np.unique(categories, return_inverse=True)
        share = frame["shared_share"].to_numpy()
        shared = rng.standard_normal((DRAWS, category.max() + 1))[:, category] * np.sqrt(share)
        own = rng.standard_normal((DRAWS, len(frame))) * np.sqrt(1 - share)
        covered += (np.abs(shared + own) <= frame["z"].to_numpy()).sum(axis=1)
        total += len(frame)
    return covered / total


def _intraclass(frame: pd.DataFrame) -> float:
    """The share of the standardised errors' variance that lies between categories (one-way ANOVA
    estimate, 0 where the categories differ no more than chance)."""
    groups = frame.groupby("category_idx")["z_error"]
    k, n = groups.ngroups, len(frame)
    n0 = (n - (groups.size() ** 2).sum() / n) / (k - 1)
    between = (groups.size() * (groups.mean() - frame["z_error"].mean()) ** 2).sum() / (k - 1)
    within = ((frame["z_error"] - groups.transform("mean")) ** 2).sum() / (n - k)
    return float(max(0.0, (between - within) / (between + (n0 - 1) * within)))


def judged_row(frames: list[pd.DataFrame], rng: np.random.Generator) -> dict[str, Any]:
    """Observed coverage of ``frames`` pooled, beside the distribution calibrated intervals would give."""
    coverage = calibrated_coverage(frames, rng)
    pooled = pd.concat(frames)
    observed = float(pooled["inside"].mean())
    q05, q95 = np.quantile(coverage, [0.05, 0.95])
    return {
        "skus": len(pooled),
        "coverage": round(observed, 3),
        "inside_band": BAND[0] <= observed <= BAND[1],
        "shared_variance_share": round(float(pooled["shared_share"].mean()), 3),
        "calibrated_p_inside_band": round(float(((coverage >= BAND[0]) & (coverage <= BAND[1])).mean()), 3),
        "calibrated_q05": round(float(q05), 3),
        "calibrated_q95": round(float(q95), 3),
        # Where the observed coverage falls among calibrated ones (ties split): near 0, too narrow.
        "calibrated_percentile": round(
            float((coverage < observed).mean() + 0.5 * (coverage == observed).mean()), 3
        ),
        "explained_by_calibration": bool(q05 <= observed <= q95),
        "mean_z_error": round(float(pooled["z_error"].mean()), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="demo-robustness", help="a `pricing evaluate` workdir")
    parser.add_argument("--seed", type=int, default=0, help="of the calibrated draws")
    parser.add_argument("--out", default="bench/results/interval_calibration.json")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    cfg = PricingConfig.model_validate_json((workdir / "_config.json").read_text())
    spark = build_spark(cfg.spark)
    rng = np.random.default_rng(args.seed)
    markets: dict[str, list[tuple[int, pd.DataFrame]]] = {}
    rows = []
    for market in sorted(workdir.glob("*/seed*")):
        if not (market / "nightly.json").exists():
            continue  # a market whose night did not finish
        found, frame = market_skus(spark, cfg, market)
        markets.setdefault(found["name"], []).append((found["seed"], frame))
        row = {"family": found["name"], "seed": found["seed"], **judged_row([frame], rng)}
        row["errors_intraclass"] = round(_intraclass(frame), 3)
        rows.append(row)
        print(
            f"{row['family']:18s} {row['seed']}  coverage {row['coverage']:.2f}  calibrated "
            f"{row['calibrated_q05']:.2f}-{row['calibrated_q95']:.2f} (inside band p "
            f"{row['calibrated_p_inside_band']:.2f})  shared {row['shared_variance_share']:.2f}  "
            f"errors between categories {row['errors_intraclass']:.2f}  "
            + ("explained" if row["explained_by_calibration"] else "NOT explained"),
            flush=True,
        )
    families = [
        {"family": name, "seeds": [seed for seed, _ in found], **judged_row([f for _, f in found], rng)}
        for name, found in markets.items()
    ]
    every = [frame for found in markets.values() for _, frame in found]
    summary = {
        "markets": len(rows),
        "markets_inside_band": sum(r["inside_band"] for r in rows),
        # What exactly calibrated intervals would give on these markets, in expectation.
        "calibrated_expected_inside_band": round(sum(r["calibrated_p_inside_band"] for r in rows), 1),
        "markets_explained_by_calibration": sum(r["explained_by_calibration"] for r in rows),
        "not_explained": [
            f"{r['family']} {r['seed']} ({r['coverage']:.2f})"
            for r in rows
            if not r["explained_by_calibration"]
        ],
        "families_inside_band": sum(f["inside_band"] for f in families),
        "families_calibrated_expected_inside_band": round(
            sum(f["calibrated_p_inside_band"] for f in families), 1
        ),
        "all_markets": judged_row(every, rng),
    }
    write_results(
        {
            "workdir": args.workdir,
            "band": BAND,
            "draws": DRAWS,
            "summary": summary,
            "rows": rows,
            "families": families,
        },
        args.out,
        ["summary"],
    )


if __name__ == "__main__":
    main()
