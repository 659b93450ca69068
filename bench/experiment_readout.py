"""Judge the experiment readout where the true effect is known: evaluation markets (issue 21).

For each family (and seed) one market of ``--skus`` SKUs is generated with ``--pre-days`` + ``--days``
days beyond its first 32 (:func:`pricing.evaluation.families.generate_market`). Its realised history is
the pre-period. From the start, every SKU has two prices: the one in force the day before (kept:
control) and the most profitable price of its ±10 % band over the experiment's days under the true
demand curve (treatment; one price per SKU, at most 10 % from the kept one, never below cost + 5 % nor
outside its min/max). Then ``--reps`` experiments: the production split (:func:`assign_arms` on the
production strata, :func:`experiment_units`, ``--share`` of the SKUs, the rep's number as its seed), the
post- period sales drawn from the family's true demand at each SKU's assigned price with the family's
noise (Poisson or negative binomial; no stock-outs), and the production readout (:func:`unit_outcomes`,
:func:`experiment_effects`). The truth of each experiment is the mean over its SKUs of the expected
difference per day between the two prices. Figures: the share of 90 % intervals that cover it, the mean
error against the mean standard error, per family, metric and estimator, in
``bench/results/experiment_readout.json``.

    python bench/experiment_readout.py --families simulator,loglog_weekday --reps 100 --share 0.5
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import timedelta
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pricing.config import load_config
from pricing.decide.experiment import assign_arms, experiment_effects, experiment_units, unit_outcomes
from pricing.evaluation.families import FAMILIES, generate_market, log_units
from pricing.platform.spark import build_spark

WARM_UP_DAYS = 32  # days of the market before the pre-period (its history policy settles in)
METRICS = ("profit", "revenue", "units")


def _treatment_prices(post: pd.DataFrame, params: pd.DataFrame, kept: pd.Series) -> pd.Series:
    """Per SKU, the price of its ±10 % band that earns most over the post days under the true curve."""
    cost = params.set_index("sku")["unit_cost"]
    low = np.maximum.reduce(
        [kept * 0.9, params.set_index("sku")["min_price"].reindex(kept.index), cost * 1.05]
    )
    high = np.minimum(kept * 1.1, params.set_index("sku")["max_price"].reindex(kept.index))
    high = np.maximum(high, low)
    best = {}
    for share in np.linspace(0, 1, 21):
        price = (low + share * (high - low)).round(2)
        at = post["sku"].map(price).to_numpy()
        profit = np.exp(log_units(post, at)) * (at - post["sku"].map(cost).to_numpy())
        total = pd.Series(profit).groupby(post["sku"].to_numpy()).sum()
        best[share] = (total, price)
    totals = pd.DataFrame({s: t for s, (t, _) in best.items()})
    choice = totals.idxmax(axis=1)
    return pd.Series({sku: best[choice[sku]][1][sku] for sku in totals.index})


def judge_family(spark: Any, cfg: Any, family: str, seed: int, args: argparse.Namespace, work: Path) -> dict:
    started = time.monotonic()
    sim = cfg.simulate.model_copy(
        update={"n_skus": args.skus, "n_days": WARM_UP_DAYS + args.pre_days + args.days - 1, "seed": seed}
    )
    market = generate_market(spark, FAMILIES[family], sim, str(work / "market"), str(work / "truth"))
    days = pd.read_parquet(f"{market.truth}/sku_day")
    params = pd.read_parquet(f"{market.truth}/sku_params")[
        ["sku", "category", "unit_cost", "min_price", "max_price"]
    ]
    days["date"] = pd.to_datetime(days["date"]).dt.date
    start = sim.start_date + timedelta(days=WARM_UP_DAYS + args.pre_days)
    end = start + timedelta(days=args.days - 1)
    pre = days[(days["date"] >= start - timedelta(days=args.pre_days)) & (days["date"] < start)]
    post = days[(days["date"] >= start) & (days["date"] <= end)].reset_index(drop=True)
    kept = days[days["date"] == start - timedelta(days=1)].set_index("sku")["price"]
    treated_price = _treatment_prices(post, params, kept)
    cost = params.set_index("sku")["unit_cost"]
    prices = {
        "control": post["sku"].map(kept).to_numpy(),
        "treatment": post["sku"].map(treated_price).to_numpy(),
    }
    mu = {arm: np.exp(log_units(post, p)) for arm, p in prices.items()}
    unit_cost = post["sku"].map(cost).to_numpy()
    expected = {
        arm: pd.DataFrame(
            {
                "units": mu[arm],
                "revenue": mu[arm] * prices[arm],
                "profit": mu[arm] * (prices[arm] - unit_cost),
            }
        )
        .groupby(post["sku"].to_numpy())
        .mean()
        for arm in prices
    }
    per_sku_effect = expected["treatment"] - expected["control"]

    # The production strata from the realised pre-period.
    pre = pre.merge(params[["sku", "category"]], on="sku")
    pre_rows = pre.assign(revenue=pre["price"] * pre["units_sold"], unit_cost=pre["sku"].map(cost))[
        ["sku", "date", "category", "units_sold", "revenue", "unit_cost"]
    ]
    strata = experiment_units(
        spark.createDataFrame(pre_rows[["sku", "date", "category", "units_sold"]]), "sku"
    )
    strata = strata.toPandas()
    # Each experiment is the production split with its own seed (batches of reps in one Spark job).
    units_df = spark.createDataFrame(strata[["unit", "stratum"]]).cache()
    parts = []
    for first in range(0, args.reps, 25):
        batch = [
            assign_arms(units_df, f"{family}-{seed}", r, args.share).withColumn("rep", F.lit(r))
            for r in range(first, min(first + 25, args.reps))
        ]
        parts.append(reduce(DataFrame.unionByName, batch).toPandas())
    arms = pd.concat(parts, ignore_index=True)
    arms["sku"] = arms["unit"]
    arms["unit"] = arms["rep"].astype(str) + "/" + arms["sku"]

    # Post-period sales at each rep's assigned prices, with the family's noise.
    rng = np.random.default_rng([seed, 21])
    fam = FAMILIES[family]
    post_rows, pre_all = [], []
    for r, split in arms.groupby("rep"):
        arm_of = split.set_index("sku")["arm"]
        rows = post[post["sku"].isin(arm_of.index)]
        is_treated = rows["sku"].map(arm_of).eq("treatment").to_numpy()
        index = rows.index.to_numpy()
        price = np.where(is_treated, prices["treatment"][index], prices["control"][index])
        mean = np.where(is_treated, mu["treatment"][index], mu["control"][index])
        if fam.noise == "negbin":
            units = rng.negative_binomial(fam.dispersion, fam.dispersion / (fam.dispersion + mean))
        else:
            units = rng.poisson(mean)
        post_rows.append(
            pd.DataFrame(
                {
                    "sku": f"{r}/" + rows["sku"].to_numpy(),
                    "date": rows["date"].to_numpy(),
                    "category": rows["sku"].map(params.set_index("sku")["category"]).to_numpy(),
                    "units_sold": units.astype(np.int32),
                    "revenue": units * price,
                    "unit_cost": unit_cost[index],
                }
            )
        )
        chosen = pre_rows[pre_rows["sku"].isin(arm_of.index)]
        pre_all.append(chosen.assign(sku=f"{r}/" + chosen["sku"]))
    panel = pd.concat(pre_all + post_rows, ignore_index=True)
    panel_df = spark.createDataFrame(
        panel.astype({"units_sold": "int32"}),
        "sku string, date date, category string, units_sold int, revenue double, unit_cost double",
    )
    assignments = spark.createDataFrame(arms.assign(sku=arms["unit"])[["sku", "unit", "arm"]])
    outcomes = unit_outcomes(panel_df, assignments, start, end, args.pre_days).withColumn(
        "segment", F.split("unit", "/").getItem(0)
    )
    effects = experiment_effects(outcomes, level=args.level, by_segment=True)
    effects = effects[effects["segment"] != "all"].assign(rep=lambda f: f["segment"].astype(int))

    truth = (
        arms.merge(per_sku_effect, left_on="sku", right_index=True)
        .groupby("rep")[list(METRICS)]
        .mean()
        .stack()
        .rename("truth")
        .rename_axis(["rep", "metric"])
        .reset_index()
    )
    judged = effects.merge(truth, on=["rep", "metric"])
    judged["covered"] = (judged["ci_low"] <= judged["truth"]) & (judged["truth"] <= judged["ci_high"])
    rows = []
    for (metric, estimator), g in judged.groupby(["metric", "estimator"]):
        base = {"family": family, "seed": seed, "metric": metric, "estimator": estimator, "reps": len(g)}
        if estimator == "pre_period_balance":
            rows.append({**base, "rejected_at_0_1": round(float((g["p_value"] < 0.1).mean()), 3)})
            continue
        error = g["effect"] - g["truth"]
        rows.append(
            {
                **base,
                "coverage": round(float(g["covered"].mean()), 3),
                "true_effect": round(float(g["truth"].mean()), 4),
                "mean_estimate": round(float(g["effect"].mean()), 4),
                "bias_over_se": round(float(error.mean() / g["se"].mean()), 3),
                "mean_se": round(float(g["se"].mean()), 4),
                "error_sd_over_se": round(float(error.std() / g["se"].mean()), 3),
            }
        )
    print(
        f"{family} seed {seed}: {args.reps} experiments, {len(arms) // args.reps} SKUs each, "
        f"{time.monotonic() - started:.0f} s; "
        + ", ".join(
            f"{r['metric']}/{r['estimator']} {r['coverage']:.2f}"
            for r in rows
            if r["estimator"] != "pre_period_balance"
        ),
        flush=True,
    )
    return {"rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--skus", type=int, default=100)
    parser.add_argument("--pre-days", type=int, default=28)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--share", type=float, default=0.5)
    parser.add_argument("--level", type=float, default=0.9)
    parser.add_argument(
        "--workdir", default=str(Path.home() / ".cache" / "pricing-lakehouse" / "bench-experiment")
    )
    parser.add_argument("--out", default="bench/results/experiment_readout.json")
    args = parser.parse_args()
    cfg = load_config("local", overrides=["spark.shuffle_partitions=4"])
    spark = build_spark(cfg.spark)
    started = time.monotonic()
    rows: list[dict] = []
    for family in args.families.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            rows += judge_family(spark, cfg, family, seed, args, Path(args.workdir) / family / f"seed{seed}")[
                "rows"
            ]
    table = pd.DataFrame(rows)
    judged = table[table["estimator"] != "pre_period_balance"]
    summary = (
        judged.groupby(["metric", "estimator"])
        .agg(
            coverage=("coverage", "mean"),
            min_coverage=("coverage", "min"),
            max_coverage=("coverage", "max"),
            bias_over_se=("bias_over_se", "mean"),
        )
        .round(3)
        .reset_index()
    )
    print(summary.to_string(index=False))
    result = {
        "what": "experiment readout judged on evaluation markets with a known effect",
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "workdir")},
        "seconds": round(time.monotonic() - started, 1),
        "summary": summary.to_dict(orient="records"),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
