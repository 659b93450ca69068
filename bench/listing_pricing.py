"""What matching listings costs the prices: one market priced with matched vs true competitor prices.

For each seed, today's simulator writes the same market twice (``simulate`` family of
:mod:`pricing.evaluation.families`): once with every competitor carrying our SKU (the true mapping),
once with ``--listing-competitors`` of them delivering listings (their own id, a rewritten title,
brand, size, and decoys of products we do not sell) that the nightly job must match by text. The
prices, promotions and demand are identical; only how competitor prices reach the panel differs. The
nightly job runs from scratch on both (:func:`pricing.evaluation.robustness.evaluate_market`) and each
night's prices are judged under the true demand. Figures per seed, side by side: profit vs keeping
the prices, share of the achievable uplift, the share of SKUs whose recommended price differs, the
mean absolute difference of the panel's lowest competitor price on the night, and the matcher's
precision and recall, in ``bench/results/listing_pricing.json``.

    python bench/listing_pricing.py --seeds 1,2 --skus 120 --days 60
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from pyspark.sql import functions as F

from pricing.config import PricingConfig, load_config
from pricing.evaluation.robustness import EvaluationPlan, evaluate_market
from pricing.lakehouse.tables import COMPETITOR_MATCHES, PRICE_RECOMMENDATIONS, SKU_DAY, Lakehouse
from pricing.platform.spark import build_spark

KEEP = ("profit_vs_keep", "uplift_share", "elasticity_mae", "interval_coverage", "wape", "nightly_seconds")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--skus", type=int, default=120)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--listing-competitors", type=int, default=1)
    parser.add_argument("--workdir", default="/tmp/listing-pricing")
    parser.add_argument("--out", default="bench/results/listing_pricing.json")
    args = parser.parse_args()
    started = time.monotonic()
    base = load_config("local", overrides=["spark.ui_enabled=false"])
    spark = build_spark(base.spark)
    plan = EvaluationPlan(families=("simulator",), seeds=(), n_skus=args.skus, n_days=args.days)
    rows: list[dict[str, Any]] = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        runs: dict[str, dict[str, Any]] = {}
        for name, listing in (("true_mapping", 0), ("matched", args.listing_competitors)):
            cfg = PricingConfig.model_validate(
                {
                    **base.model_dump(),
                    "simulate": {**base.simulate.model_dump(), "listing_competitors": listing},
                }
            )
            work = Path(args.workdir) / f"seed{seed}-{name}"
            judged = evaluate_market(spark, cfg, "simulator", seed, work, plan)[0]
            runs[name] = {
                "judged": judged,
                "lakehouse": str(work / "lakehouse"),
                "truth": str(work / "truth"),
            }
            print(f"seed {seed} {name}: " + ", ".join(f"{k} {judged.get(k)}" for k in KEEP), flush=True)
        true_lh, matched_lh = runs["true_mapping"]["lakehouse"], runs["matched"]["lakehouse"]
        recs = [
            Lakehouse(lh).read(spark, PRICE_RECOMMENDATIONS).select("sku", "price_date", "recommended_price")
            for lh in (true_lh, matched_lh)
        ]
        price_date = recs[0].agg(F.max("price_date")).first()[0]
        both = (
            recs[0]
            .where(F.col("price_date") == price_date)
            .alias("t")
            .join(recs[1].where(F.col("price_date") == price_date).alias("m"), "sku")
        )
        differ = both.agg(
            F.avg((F.col("t.recommended_price") != F.col("m.recommended_price")).cast("double")).alias(
                "share"
            ),
            F.avg(F.abs(F.col("m.recommended_price") / F.col("t.recommended_price") - 1)).alias(
                "mean_abs_rel"
            ),
        ).first()
        panels = [
            Lakehouse(lh).read(spark, SKU_DAY).where(F.col("date") == F.date_sub(F.lit(price_date), 1))
            for lh in (true_lh, matched_lh)
        ]
        comp = (
            panels[0]
            .select("sku", F.col("comp_min_price").alias("t"), F.col("n_competitors").alias("tn"))
            .join(
                panels[1].select(
                    "sku", F.col("comp_min_price").alias("m"), F.col("n_competitors").alias("mn")
                ),
                "sku",
            )
            .agg(
                F.avg(F.abs(F.col("m") / F.col("t") - 1)).alias("comp_min_abs_rel"),
                F.avg((F.coalesce("tn", F.lit(0)) - F.coalesce("mn", F.lit(0))).cast("double")).alias(
                    "competitors_lost"
                ),
            )
            .first()
        )
        truth = spark.read.parquet(f"{runs['matched']['truth']}/_simulator/listing_map")
        matches = Lakehouse(matched_lh).read(spark, COMPETITOR_MATCHES)
        joined = truth.join(
            matches.select("competitor", "competitor_sku", F.col("sku").alias("got")),
            ["competitor", "competitor_sku"],
            "left",
        )
        counts = joined.agg(
            F.count(F.when(F.col("got").isNotNull(), 1)).alias("taken"),
            F.count(F.when(F.col("got") == F.col("sku"), 1)).alias("right"),
            F.count(F.when(F.col("sku").isNotNull(), 1)).alias("ours"),
        ).first()
        row = {
            "seed": seed,
            "skus": args.skus,
            "days": args.days,
            "listing_competitors": args.listing_competitors,
            "true_mapping": {k: runs["true_mapping"]["judged"].get(k) for k in KEEP},
            "matched": {k: runs["matched"]["judged"].get(k) for k in KEEP},
            "share_recommended_price_differs": differ["share"],
            "mean_abs_rel_recommended_price_difference": differ["mean_abs_rel"],
            "comp_min_price_mean_abs_rel_difference": comp["comp_min_abs_rel"],
            "competitors_lost_per_sku": comp["competitors_lost"],
            "match_precision": counts["right"] / max(counts["taken"], 1),
            "match_recall": counts["right"] / max(counts["ours"], 1),
        }
        rows.append(row)
        print(json.dumps(row, default=str), flush=True)
    result = {"rows": rows, "seconds": round(time.monotonic() - started, 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {args.out} in {result['seconds']} s")


if __name__ == "__main__":
    main()
