"""Which way the best price in the band lies, and whether the night moved that way, per evaluated market.

    python bench/best_direction.py --workdir shipped=/work/rob_now --workdir other=/work/rob_units

For every market of each ``pricing evaluate`` workdir (one per family x seed), judges the written
night again (``pricing.evaluation.judge``: no re-scoring) and reports the share of SKUs whose best
price inside its band is a raise (``best_raised_share``), the share the night raised, and of the
SKUs it moved, the share moved towards the best price (``right_direction_share``). A family whose best
prices are nearly all raises rewards a model that reads demand as less price-sensitive than it is;
the direction share says whether a night's gain comes from knowing which way to move.

With ``--by-information``, for the first workdir: each moved SKU's 90 % interval measured in the
softplus's argument (where the Laplace interval is Gaussian) against the prior's own width (category
and SKU prior sds of the configuration), binned, with the share moved the right way and the true
gain; and what holding every move whose interval is wider than a share of the prior's would have
earned (the SKU keeps its price; other SKUs are unaffected, as each SKU's demand is its own).
Writes ``bench/results/best_direction.json``.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
from results_io import write_results

from pricing.config import load_config
from pricing.evaluation.judge import summarise
from pricing.evaluation.robustness import judged_market
from pricing.platform.spark import build_spark

FIGURES = (
    "profit_vs_keep",
    "uplift_share",
    "moved_share",
    "raised_share",
    "best_raised_share",
    "right_direction_share",
    "elasticity_bias",
)


# What --by-information reads of each judged SKU.
_SKU_COLUMNS = (
    "current_price",
    "recommended_price",
    "elasticity_low",
    "elasticity_high",
    "true_profit_current",
    "true_profit_recommended",
    "true_profit_best",
    "true_best_price",
)


def judge_market(spark: Any, cfg: Any, market: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """One evaluated market's written night, judged once: the judge's figures and every SKU's row."""
    found, judged = judged_market(spark, cfg, market)
    judged = judged.cache()
    try:
        result = summarise(judged)
        frame = judged.select(*_SKU_COLUMNS).toPandas()
    finally:
        judged.unpersist()
    row = {"family": found["name"], "seed": found["seed"], **{k: result[k] for k in FIGURES}}
    return row, frame.assign(family=found["name"], seed=found["seed"])


def _argument(elasticity: np.ndarray) -> np.ndarray:
    # elasticity = -softplus(argument)
    return np.log(np.expm1(np.clip(-elasticity, 1e-9, None)))


def by_information(frame: pd.DataFrame, cfg: Any) -> dict[str, Any]:
    """Moves binned by how much of the prior's interval width is left, and holds by that share."""
    z = NormalDist().inv_cdf(0.5 + cfg.train.interval_level / 2)
    prior = 2 * z * float(np.hypot(cfg.train.category_elasticity_sd, cfg.train.sku_elasticity_sd))
    width = _argument(frame["elasticity_low"].to_numpy()) - _argument(frame["elasticity_high"].to_numpy())
    change = frame["recommended_price"] - frame["current_price"]
    frame = frame.assign(
        left=width / prior,
        moved=change.abs() > 1e-9,
        right=np.sign(change) == np.sign(frame["true_best_price"] - frame["current_price"]),
    )
    moved = frame[frame["moved"]]
    bins = moved.groupby(
        pd.cut(moved["left"], [0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 9]), observed=True
    )
    table = [
        {
            "prior_width_left": str(interval),
            "moves": len(rows),
            "right_direction_share": float(rows["right"].mean()),
            "true_gain": float(rows["true_profit_recommended"].sum() / rows["true_profit_current"].sum() - 1),
        }
        for interval, rows in bins
    ]
    holds = []
    for limit in (None, 1.0, 0.9, 0.8, 0.7, 0.6):
        held = frame["moved"] & (frame["left"] > limit) if limit is not None else frame["moved"] & False
        profit = frame["true_profit_current"].where(held, frame["true_profit_recommended"])
        markets = frame.assign(profit=profit).groupby(["family", "seed"])
        sums = markets[["true_profit_current", "profit", "true_profit_best"]].sum()
        keep, best = sums["true_profit_current"], sums["true_profit_best"]
        share = (sums["profit"] - keep) / (best - keep)
        holds.append(
            {
                "hold_where_left_above": limit,
                "held": int(held.sum()),
                "worst_profit_vs_keep": float((sums["profit"] / keep - 1).min()),
                "mean_uplift_share": float(share.mean()),
                "by_family_share": share.groupby(level="family").mean().round(3).to_dict(),
            }
        )
    return {"prior_width": prior, "moves_by_width_left": table, "holds": holds}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workdir", action="append", required=True, help="name=folder of a pricing evaluate run"
    )
    parser.add_argument("--out", default="bench/results/best_direction.json")
    parser.add_argument(
        "--by-information", action="store_true", help="the first workdir's moves by interval width"
    )
    args = parser.parse_args()
    cfg = load_config()
    spark = build_spark(cfg.spark)
    runs: dict[str, list[dict[str, Any]]] = {}
    skus: dict[str, pd.DataFrame] = {}
    for spec in args.workdir:
        name, _, folder = spec.partition("=")
        judged = [judge_market(spark, cfg, m) for m in sorted(Path(folder).glob("*/seed*"))]
        runs[name] = [row for row, _ in judged]
        skus[name] = pd.concat([frame for _, frame in judged])
    families = sorted({r["family"] for rows in runs.values() for r in rows})
    print(
        "| family | "
        + " | ".join(f"{n}: best is a raise / raised / moved the right way / share" for n in runs)
        + " |"
    )
    print("|---|" + "---|" * len(runs))
    summary: dict[str, dict[str, dict[str, float | None]]] = {}
    for family in families:
        cells = []
        for name, rows in runs.items():
            mine = [r for r in rows if r["family"] == family]

            def mean(key: str, rows: list[dict[str, Any]] = mine) -> float | None:
                values = [r[key] for r in rows if r[key] is not None]
                return statistics.fmean(values) if values else None

            figures = {k: mean(k) for k in FIGURES}
            summary.setdefault(family, {})[name] = figures

            def fmt(value: float | None, pattern: str) -> str:
                return "-" if value is None else format(value, pattern)

            cells.append(
                f"{fmt(figures['best_raised_share'], '.0%')} / {fmt(figures['raised_share'], '.0%')} / "
                f"{fmt(figures['right_direction_share'], '.0%')} / {fmt(figures['uplift_share'], '.2f')}"
            )
        print(f"| {family} | " + " | ".join(cells) + " |")
    information = None
    if args.by_information:
        information = by_information(next(iter(skus.values())), cfg)
        print(pd.DataFrame(information["moves_by_width_left"]).to_string(index=False))
        print(pd.DataFrame(information["holds"]).drop(columns="by_family_share").to_string(index=False))
    write_results(
        {
            "workdirs": dict(s.partition("=")[::2] for s in args.workdir),
            "by_family": summary,
            "by_information": information,
            "rows": runs,
        },
        args.out,
        headline=["workdirs"],
    )


if __name__ == "__main__":
    main()
