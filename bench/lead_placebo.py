"""Can a shop's own history say that its prices followed demand it did not record? A lead placebo.

A price cannot change the day before's sales. If tomorrow's price still "predicts" today's sales once
what the shop records is accounted for, prices followed demand: the history's price response is
confounded. For each evaluation family (held-out ones included) the bench generates a market (as
``pricing evaluate`` does, no nightly job) and regresses, over its uncensored SKU-days, today's log
sales on today's, tomorrow's and yesterday's log price, with SKU x weekday effects, today's and
tomorrow's promotion, yesterday's traffic, yesterday's sales and the stock on hand (standard errors
clustered by SKU). Only observed columns enter; the hidden demand shock is read only to report how
closely tomorrow's price follows it. Figures beside each market's judged elasticity bias when the
results of a ``pricing evaluate`` run are given.

    python bench/lead_placebo.py --seeds 1 --judged bench/results/robustness.json \\
        --judged bench/results/robustness_held_out.json

Writes ``bench/results/lead_placebo.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from results_io import write_results

from pricing.config import load_config
from pricing.evaluation.families import ALL_FAMILIES, generate_market
from pricing.platform.spark import build_spark

REGRESSORS = [
    "log_price",
    "log_price_lead",
    "log_price_lag",
    "promo",
    "promo_lead",
    "views_lag",
    "sales_lag",
    "stock",
]


def placebo(days: pd.DataFrame) -> dict[str, Any]:
    """The regression's coefficients and SKU-clustered standard errors (within SKU x weekday)."""
    df = days.sort_values(["sku", "date"]).copy()
    by_sku = df.groupby("sku")
    df["log_price"] = np.log(df["price"])
    df["log_price_lead"] = by_sku["log_price"].shift(-1)
    df["log_price_lag"] = by_sku["log_price"].shift(1)
    df["log_sales"] = np.log(df["units_sold"] + 0.5)
    df["sales_lag"] = by_sku["log_sales"].shift(1)
    df["views_lag"] = np.log1p(by_sku["views"].shift(1))
    df["promo"] = df["promo_scheduled"].astype(float)
    df["promo_lead"] = by_sku["promo"].shift(-1)
    df["stock"] = np.log1p(df["on_hand_start"])
    df = df.dropna(subset=REGRESSORS)
    df = df[~df["censored"]]
    group = df["sku"].astype(str) + "-" + pd.to_datetime(df["date"]).dt.dayofweek.astype(str)
    columns = [*REGRESSORS, "log_sales", "shock"]
    within = df[columns] - df.groupby(group)[columns].transform("mean")
    x, y = within[REGRESSORS].to_numpy(), within["log_sales"].to_numpy()
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    residual = y - x @ beta
    bread = np.linalg.pinv(x.T @ x)
    meat = sum(
        np.outer(x[i].T @ residual[i], x[i].T @ residual[i]) for i in df.groupby("sku").indices.values()
    )
    se = np.sqrt(np.clip(np.diag(bread @ meat @ bread), 0, None))
    return {
        "rows": len(df),
        "own_price": float(beta[0]),
        "own_price_se": float(se[0]),
        "lead_price": float(beta[1]),
        "lead_price_se": float(se[1]),
        "lead_price_t": float(beta[1] / se[1]),
        "lead_price_follows_hidden_shock": float(
            np.corrcoef(within["log_price_lead"], within["shock"])[0, 1]
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(ALL_FAMILIES))
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--skus", type=int, default=100)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--judged", action="append", default=[], help="pricing evaluate results (repeatable)")
    parser.add_argument("--workdir", default=None, help="default: a temporary folder")
    parser.add_argument("--out", default="bench/results/lead_placebo.json")
    args = parser.parse_args()
    judged = {
        (row["family"], row["seed"]): row
        for path in args.judged
        for row in json.loads(Path(path).read_text())["rows"]
        if row.get("decision", "posterior") == "posterior"
    }
    cfg = load_config("local")
    spark = build_spark(cfg.spark)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-placebo-"))
    rows = []
    for family in args.families.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            folder = workdir / f"{family}-{seed}"
            if not (folder / "truth" / "sku_day").exists():
                sim = cfg.simulate.model_copy(update={"n_skus": args.skus, "n_days": args.days, "seed": seed})
                generate_market(
                    spark, ALL_FAMILIES[family], sim, str(folder / "market"), str(folder / "truth")
                )
            row = {"family": family, "seed": seed, **placebo(pd.read_parquet(folder / "truth" / "sku_day"))}
            if (family, seed) in judged:
                row["judged_elasticity_bias"] = judged[(family, seed)]["elasticity_bias"]
                row["judged_interval_coverage"] = judged[(family, seed)]["interval_coverage"]
            rows.append(row)
            print(
                f"{family} seed {seed}: tomorrow's price {row['lead_price']:+.2f} "
                f"± {row['lead_price_se']:.2f} (t {row['lead_price_t']:+.1f}), today's "
                f"{row['own_price']:+.2f}; judged bias "
                f"{row.get('judged_elasticity_bias', float('nan')):+.2f}",
                flush=True,
            )
    write_results({"rows": rows, "workdir": str(workdir)}, args.out, [])


if __name__ == "__main__":
    main()
