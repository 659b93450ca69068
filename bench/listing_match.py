"""Precision and recall of the listing matcher on simulated listings with the true mapping (issue 21).

For each seed, the simulator's catalogue (``--skus`` SKUs) and two competitors' listings of every SKU
(:func:`pricing.sim.market.sku_listings`: titles reordered, abbreviated, with typos, accents and units
written another way, sizes in the title, the size column or nowhere, 8 % without the model number) plus
look-alike *decoys* for ``--decoys`` of the SKUs (another model number or another pack size of the same
line, products we do not sell: the truth maps them to no SKU).

The production stage's parts score every listing (:func:`describe_texts`, :func:`score_pairs`): then
the decision rule (best pair passing the checks, at least ``threshold``, leading the runner-up by
``margin``) is swept over a grid. The threshold is **chosen on the calibration seeds** (the highest
recall whose precision is at least ``--target-precision``), then **judged on held-out seeds**, and the
production path (:func:`match_listings` with the chosen values) is run on them as a check that the
sweep and the stage agree. Precision = right matches / matches made; recall = right matches /
listings of our SKUs (decoys excluded); decoys taken = decoys matched to a SKU / decoys.

    python bench/listing_match.py --calibration 1,2,3 --held-out 11,12,13,14,15
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pricing.config import load_config
from pricing.matching import (
    brand_stop_words,
    describe_texts,
    listing_texts,
    match_listings,
    matching_encoder,
    score_pairs,
)
from pricing.platform.spark import build_spark
from pricing.schemas import SOURCES
from pricing.sim.market import catalog_size, sku_listings, sku_parameters

THRESHOLDS = [round(t, 2) for t in np.arange(0.2, 0.91, 0.05)]
MARGINS = [0.02, 0.05, 0.1]  # a tie (margin 0) is never decided by SKU order


def market(
    spark: SparkSession, cfg: Any, seed: int, skus: int, decoys: float
) -> tuple[DataFrame, DataFrame, pd.DataFrame]:
    """(silver-shaped catalogue, silver-shaped competitor rows, truth) of one simulated shop."""
    sim = cfg.simulate.model_copy(
        update={
            "seed": seed,
            "n_skus": skus,
            "n_competitors": 5,
            "listing_competitors": 2,
            "listing_decoy_share": decoys,
        }
    )
    params = sku_parameters(spark, sim).withColumn("size", catalog_size(sim))
    catalog = params.select(
        "sku",
        "title",
        "category",
        "brand",
        "size",
        F.lit("sim").alias("_source_file"),
        F.lit(0).cast("long").alias("_batch_id"),
    )
    for field in SOURCES["catalog"].silver_schema.fields:
        if field.name not in catalog.columns:
            catalog = catalog.withColumn(field.name, F.lit(None).cast(field.dataType))
    catalog = catalog.select(*SOURCES["catalog"].silver_schema.fieldNames()).cache()
    listings = sku_listings(spark, sim).cache()
    competitor = listings.select(
        F.to_timestamp(F.lit("2026-06-01 09:00:00")).alias("observed_ts"),
        "competitor",
        F.lit(None).cast("string").alias("sku"),
        "competitor_sku",
        "title",
        "brand",
        "size",
        F.lit(10).cast("decimal(18,4)").alias("price"),
        F.lit(True).alias("in_stock"),
        F.to_date(F.lit("2026-06-01")).alias("observed_date"),
        F.lit("sim").alias("_source_file"),
        F.lit(0).cast("long").alias("_batch_id"),
    )
    truth = listings.select("competitor", "competitor_sku", F.col("sku").alias("truth"), "decoy").toPandas()
    return catalog, competitor, truth


def candidates(catalog: DataFrame, competitor: DataFrame, cfg: Any) -> pd.DataFrame:
    """Per listing: the best and runner-up scores among pairs passing the checks (the production parts)."""
    mcfg, encoder = cfg.matching, matching_encoder(cfg.features, cfg.matching)
    texts = listing_texts(competitor)
    described_l = describe_texts(texts, encoder, mcfg.hashed_dim)
    described_c = describe_texts(
        catalog.select(F.col("sku").alias("_id"), "title", "brand", "size"), encoder, mcfg.hashed_dim
    )
    stop = brand_stop_words(described_c, mcfg)
    scored = score_pairs(described_l, described_c, stop, mcfg).where(F.col("failed").isNull()).toPandas()
    scored = scored.sort_values(["_id", "score"], ascending=[True, False])
    top = scored.groupby("_id").agg(best_sku=("sku", "first"), best=("score", "first"), n=("score", "size"))
    second = (
        scored.groupby("_id")["score"].apply(lambda s: s.iloc[1] if len(s) > 1 else np.nan).rename("second")
    )
    ids = texts.select("_id", "competitor", "competitor_sku").toPandas()
    return ids.merge(top.join(second), left_on="_id", right_index=True, how="left")


def rates(frame: pd.DataFrame, threshold: float, margin: float) -> dict[str, float]:
    lead = (frame["best"] - frame["second"]).fillna(np.inf)
    taken = frame["best_sku"].notna() & (frame["best"] >= threshold) & (lead >= margin)
    right = taken & (frame["best_sku"] == frame["truth"])
    ours = frame["truth"].notna()
    return {
        "threshold": threshold,
        "margin": margin,
        "matched": int(taken.sum()),
        "precision": float(right.sum() / max(taken.sum(), 1)),
        "recall": float(right.sum() / max(ours.sum(), 1)),
        "decoys_taken": float((taken & frame["decoy"]).sum() / max(frame["decoy"].sum(), 1)),
    }


def accuracy(matches: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    joined = truth.merge(
        matches[["competitor", "competitor_sku", "sku"]], on=["competitor", "competitor_sku"], how="left"
    )
    taken = joined["sku"].notna()
    right = taken & (joined["sku"] == joined["truth"])
    return {
        "precision": float(right.sum() / max(taken.sum(), 1)),
        "recall": float(right.sum() / max(joined["truth"].notna().sum(), 1)),
        "decoys_taken": float((taken & joined["decoy"]).sum() / max(joined["decoy"].sum(), 1)),
        "listings": len(joined),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calibration", default="1,2,3")
    parser.add_argument("--held-out", default="11,12,13,14,15")
    parser.add_argument("--skus", type=int, default=300)
    parser.add_argument("--decoys", type=float, default=0.15)
    parser.add_argument("--encoders", default="minilm,hashed")
    parser.add_argument("--target-precision", type=float, default=0.98)
    parser.add_argument("--out", default="bench/results/listing_match.json")
    args = parser.parse_args()
    started = time.monotonic()
    base = load_config("local", overrides=["spark.ui_enabled=false"])
    spark = build_spark(base.spark)
    calibration = [int(s) for s in args.calibration.split(",")]
    held_out = [int(s) for s in args.held_out.split(",")]
    shops = {seed: market(spark, base, seed, args.skus, args.decoys) for seed in calibration + held_out}
    result: dict[str, Any] = {
        "skus": args.skus,
        "decoy_share": args.decoys,
        "calibration_seeds": calibration,
        "held_out_seeds": held_out,
        "target_precision": args.target_precision,
        "encoders": {},
    }
    for encoder in args.encoders.split(","):
        cfg = load_config("local", overrides=["spark.ui_enabled=false", f"features.text_encoder={encoder}"])
        frames = {}
        for seed, (catalog, competitor, truth) in shops.items():
            frame = candidates(catalog, competitor, cfg).merge(truth, on=["competitor", "competitor_sku"])
            frames[seed] = frame
        cal = pd.concat([frames[s] for s in calibration])
        sweep = [rates(cal, t, m) for m in MARGINS for t in THRESHOLDS]
        good = [r for r in sweep if r["precision"] >= args.target_precision]
        chosen = (
            max(good, key=lambda r: (r["recall"], r["threshold"]))
            if good
            else max(sweep, key=lambda r: r["precision"])
        )
        held = pd.concat([frames[s] for s in held_out])
        judged = rates(held, chosen["threshold"], chosen["margin"])
        per_seed = {s: rates(frames[s], chosen["threshold"], chosen["margin"]) for s in held_out}
        # The production stage with the chosen values, on the held-out shops.
        stage_cfg = cfg.matching.model_copy(
            update={"threshold": chosen["threshold"], "min_margin": chosen["margin"]}
        )
        no_decisions = spark.createDataFrame(
            [], "competitor string, competitor_sku string, sku string, decided_at timestamp"
        )
        stage = []
        for seed in held_out:
            catalog, competitor, truth = shops[seed]
            matches, _ = match_listings(competitor, catalog, no_decisions, cfg.features, stage_cfg)
            stage.append(accuracy(matches.toPandas(), truth))
        result["encoders"][matching_encoder(cfg.features, cfg.matching)] = {
            "calibration_sweep": sweep,
            "chosen": {"threshold": chosen["threshold"], "margin": chosen["margin"], "calibration": chosen},
            "held_out": judged,
            "held_out_per_seed": per_seed,
            "held_out_stage": stage,
            "held_out_at_defaults": rates(held, cfg.matching.threshold, cfg.matching.min_margin),
        }
        print(
            f"{encoder}: chosen threshold {chosen['threshold']} margin {chosen['margin']} (calibration "
            f"precision {chosen['precision']:.3f} recall {chosen['recall']:.3f}); held out: precision "
            f"{judged['precision']:.3f} recall {judged['recall']:.3f} "
            f"decoys taken {judged['decoys_taken']:.3f}; "
            f"stage: {[round(s['precision'], 3) for s in stage]} / {[round(s['recall'], 3) for s in stage]}",
            flush=True,
        )
    result["seconds"] = round(time.monotonic() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {args.out} in {result['seconds']} s")


if __name__ == "__main__":
    main()
