"""How much of the debiased fit's error is its learned price nuisance? Three fits on the same rows.

For each seed: simulate a market, ingest it, build the panel and train the product's naive fit
(``pricing train``'s own path, 2 processes) to write the training shards. Then, in this process
(:class:`~pricing.model.distributed.LocalComm`), fit side by side for each training seed:

- ``naive``: the naive fit;
- ``debiased``: double ML with both nuisances learned (``train.debias=true``);
- ``debiased_true_price_rule``: the same, but m̂(x) replaced by the simulator's own pricing rule in
  expectation (:func:`pricing.sim.market.expected_log_price_multiplier`): the best price nuisance
  there can be, which no real retailer's data gives.

Also reports how the price variation splits: the part the rule predicts, the part nothing predicts
(markdown depth, test prices: what the debiased fit learns from) and the learned m̂'s error. Writes
``bench/results/elasticity_nuisance.json``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import torch
from results_io import write_results
from run_config import market_overrides, run_config, simulated_panel

from pricing.lakehouse.tables import Lakehouse
from pricing.model.distributed import (
    LocalComm,
    cross_fit_nuisances,
    fit_ensemble,
    model_state,
    read_shard,
)
from pricing.model.network import NetSpec, Nuisance
from pricing.model.predict import LoadedModel
from pricing.model.train import (
    evaluate,
    model_config,
    run_train,
    sku_elasticities,
    worker_spec,
)
from pricing.platform.spark import build_spark
from pricing.sim.market import expected_log_price_multiplier
from pricing.sim.truth import elasticity_error, training_vs_truth

FITS = ("naive", "debiased", "debiased_true_price_rule")
METRICS = ("elasticity_mae", "elasticity_bias", "elasticity_category_mae", "elasticity_within_mae")


def with_true_price_rule(train_dir: str, truth_dir: str, out_dir: str) -> None:
    """Copy the training shards (same files, same row order) with ``true_m``: the rule's E[log(p/p_ref)]."""
    days = ds.dataset(f"{truth_dir}/sku_day").to_table(
        columns=["sku", "date", "price", "ref_price", "markdown_triggered", "promo_scheduled", "price_test"]
    )
    truth = days.to_pandas().merge(
        pd.read_parquet(f"{truth_dir}/sku_params")[["sku", "price_tested"]], "left"
    )
    truth["log_multiplier"] = np.log(truth.price / truth.ref_price)
    # A SKU's promotions all share one depth (drawn once per SKU): the retailer knows it.
    depth = truth.log_multiplier.where(truth.promo_scheduled & ~truth.price_test)
    truth["promo_depth"] = depth.groupby(truth.sku).transform("median").fillna(0.0)
    truth["rule"] = expected_log_price_multiplier(
        truth.markdown_triggered, np.where(truth.promo_scheduled, truth.promo_depth, 0.0), truth.price_tested
    )
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for fragment in sorted(ds.dataset(train_dir, format="parquet").get_fragments(), key=lambda f: f.path):
        rows = fragment.to_table().to_pandas()
        joined = rows.merge(truth[["sku", "date", "log_multiplier", "rule"]], on=["sku", "date"], how="left")
        assert len(joined) == len(rows) and joined.rule.notna().all(), "training rows missing from the truth"
        # The model's log(p / p_ref) uses its own reference price (the SKU's median): shift the rule to it.
        shift = (joined.log_price_ratio - joined.log_multiplier).groupby(joined.sku).transform("median")
        rows["true_m"] = (joined.rule + shift).astype("float32")
        pq.write_table(
            pa.Table.from_pandas(rows, preserve_index=False), f"{out_dir}/{Path(fragment.path).name}"
        )


def network_sizes(data: dict[str, torch.Tensor], cfg: Any) -> dict[str, Any]:
    """The network's sizes as ``pricing train`` sets them (vocabularies index from 1; 0 is unseen)."""
    return NetSpec(
        n_skus=int(data["sku"].max()),
        n_categories=int(data["category"].max()),
        n_brands=int(data["brand"].max()),
        text_dim=data["text"].shape[1],
        n_numeric=data["numeric"].shape[1],
        embedding_dim=cfg.train.embedding_dim,
        hidden=cfg.train.hidden,
        elasticity_inputs=list(cfg.train.elasticity_inputs),
        elasticity_prior=cfg.train.elasticity_prior,
    ).to_dict()


def fit(
    fit_name: str, data: dict[str, torch.Tensor], net: dict[str, Any], cfg: Any, seed: int
) -> tuple[bytes, dict[str, float]]:
    """Train one fit in this process; return its weights and how its price residual splits."""
    # The product's settings, in this process, with this fit's debias and seed.
    spec = replace(worker_spec(cfg.train, net, ""), debias=fit_name != "naive", seed=seed)
    torch.manual_seed(seed)
    rows = dict(data)
    comm, net_spec = LocalComm(), NetSpec(**net)
    split: dict[str, float] = {}
    if not spec.debias:
        nuisance = Nuisance(net_spec)  # stored with the model, unused by a naive fit
    else:
        nuisance, _ = cross_fit_nuisances(comm, rows, net_spec, spec)
        treatment, true_m = rows["log_price_ratio"], rows["true_m"]
        split = {
            "var_unpredictable": float((treatment - true_m).var()),
            "var_learned_m_error": float((true_m - rows["offset"]).var()),
        }
        if fit_name == "debiased_true_price_rule":
            rows["offset"] = true_m
    ensemble, _, _ = fit_ensemble(comm, rows, net_spec, spec)
    return model_state(comm, ensemble, nuisance, rows, net_spec, spec), split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="42,7,2027")
    parser.add_argument("--train-seeds", default="7,11", help="training seeds per panel")
    parser.add_argument("--skus", type=int, default=200)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--workdir", default=None, help="default: a temporary folder, removed after")
    parser.add_argument("--out", default="bench/results/elasticity_nuisance.json")
    parser.add_argument("overrides", nargs="*", help="extra key=value configuration overrides")
    args = parser.parse_args()
    os.environ.setdefault("PRICING_PII_SALT", secrets.token_hex(24))
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-nuisance-"))
    train_seeds = [int(s) for s in args.train_seeds.split(",")]
    results: dict[str, Any] = {
        "skus": args.skus,
        "days": args.days,
        "train_seeds": train_seeds,
        "overrides": args.overrides,
        "seeds": {},
    }
    spark = None
    for seed in [int(s) for s in args.seeds.split(",")]:
        base = workdir / f"seed-{seed}"
        shutil.rmtree(base, ignore_errors=True)
        cfg = run_config(
            base, *market_overrides(args.skus, args.days, seed), "train.debias=false", *args.overrides
        )
        spark = spark or build_spark(cfg.spark)
        lakehouse, truth = simulated_panel(spark, cfg, base)
        report = run_train(spark, Lakehouse.at(spark, lakehouse), cfg.train, cfg.features)
        training_vs_truth(spark, report, lakehouse, truth, cfg.train.tracking_uri)
        data_dir = f"{lakehouse}/model_data/{report.run_id}"
        with_true_price_rule(f"{data_dir}/train", truth, str(base / "train_true_m"))
        data = read_shard(str(base / "train_true_m"), 0, 1, extra_columns=("true_m",))
        treatment = data["log_price_ratio"]
        per_seed: dict[str, Any] = {
            "product_naive_2_processes": {m: report.metrics.get(m) for m in METRICS},
            "var_price": float(treatment.var()),
            "var_predicted_by_rule": float(data["true_m"].var()),
        }
        net = network_sizes(data, cfg)
        holdout = spark.read.parquet(f"{data_dir}/holdout")
        params = spark.read.parquet(f"{truth}/sku_params")
        for train_seed in train_seeds:
            for name in FITS:
                state, split = fit(name, data, net, cfg, train_seed)
                config = {**model_config(cfg.train, net), "debias": name != "naive"}
                errors = elasticity_error(
                    sku_elasticities(evaluate(holdout, lambda s=state, c=config: LoadedModel(s, c))), params
                )
                assert errors is not None
                row = {**{m: errors[m] for m in METRICS}, **split}
                per_seed.setdefault(name, {})[str(train_seed)] = row
                print(f"seed {seed}, training seed {train_seed}, {name}: {row}", flush=True)
        results["seeds"][str(seed)] = per_seed
    results["summary"] = {
        name: {
            metric: statistics.fmean(r[metric] for s in results["seeds"].values() for r in s[name].values())
            for metric in METRICS
        }
        for name in FITS
    }
    results["summary"]["share_of_price_variance_unpredictable"] = statistics.fmean(
        r["var_unpredictable"] / s["var_price"]
        for s in results["seeds"].values()
        for r in s["debiased"].values()
    )
    results["summary"]["learned_m_error_over_unpredictable"] = statistics.fmean(
        r["var_learned_m_error"] / r["var_unpredictable"]
        for s in results["seeds"].values()
        for r in s["debiased"].values()
    )
    write_results(results, args.out, ["summary"])
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
