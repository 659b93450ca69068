"""Refit the demand ensemble of evaluation markets already run, under training settings to compare, and
judge each SKU's elasticity interval against the truth (seconds a variant instead of a nightly job).

Reads what `pricing evaluate --workdir W` left: each market's training shards (the night's
``model_data/<run>/train``), its holdout rows (the last one per SKU is where the elasticity is read),
the model's ``config.json`` and the truth. One process, no Spark: the estimator alone (no nuisances;
the shipped fit is the naive one). The truth is each SKU's curve on the priced night at its last price,
as the judge reads it. Figures side by side in one run: ``bench/results/interval_refit.json``.

    python bench/interval_refit.py --workdir demo-robustness --variants "fixed:fit_sku_elasticity_sd=0" \
        "eb:fit_sku_elasticity_sd=1"

Besides WorkerSpec fields, a variant may set ``promo=drop_days`` (train without the promotion days) or
``promo=blank_input`` (every row read as no promotion): whether the promotion input, which moves with
the deepest price cuts, is where an elasticity's error comes from; and ``blank=a+b`` (numeric inputs
of ``NUMERIC_FEATURES`` set to their training mean, in training and in the holdout), e.g. the units
lags, which carry yesterday's price response into today's base.

Besides coverage and error, each row gives ``within_category_slope``: the estimates' deviations from
their category's mean regressed on the true ones (1: every SKU's own price response is read; 0: every
SKU is its category).
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pricing.config import load_config
from pricing.evaluation.families import true_elasticity
from pricing.evaluation.judge import ELASTICITY_FLOOR
from pricing.model.dataset import NUMERIC_FEATURES
from pricing.model.distributed import LocalComm, WorkerSpec, fit_ensemble, model_state, read_shard
from pricing.model.network import NetSpec, Nuisance
from pricing.model.predict import LoadedModel
from pricing.model.train import model_config, worker_spec


def _latest(pattern: str) -> str:
    found = sorted(glob.glob(pattern, recursive=True), key=os.path.getmtime)
    if not found:
        raise FileNotFoundError(pattern)
    return found[-1]


def _with(spec: WorkerSpec, settings: dict[str, str]) -> WorkerSpec:
    for key, text in settings.items():
        current = getattr(spec, key)
        value: Any = text in ("1", "true") if isinstance(current, bool) else type(current)(text)
        spec = replace(spec, **{key: value})
    return spec


def _promo_rows(data: dict[str, torch.Tensor], how: str | None) -> dict[str, torch.Tensor]:
    """The training rows with the promotion days dropped or the promotion input blanked."""
    if how is None:
        return data
    column = data["numeric"][:, NUMERIC_FEATURES.index("promo")]
    off = column.min()  # the standardised value of "no promotion"
    if how == "drop_days":
        keep = column <= off + 1e-6
        return {name: tensor[keep] for name, tensor in data.items()}
    if how == "blank_input":
        numeric = data["numeric"].clone()
        numeric[:, NUMERIC_FEATURES.index("promo")] = off
        return {**data, "numeric": numeric}
    raise ValueError(f"promo={how!r}: drop_days or blank_input")


def _blank(data: dict[str, torch.Tensor], columns: list[int]) -> dict[str, torch.Tensor]:
    """The training rows with ``columns`` of the numeric input at 0 (their standardised mean)."""
    if not columns:
        return data
    numeric = data["numeric"].clone()
    numeric[:, columns] = 0.0
    return {**data, "numeric": numeric}


def _zeroed(row: Any, columns: list[int]) -> np.ndarray:
    values = np.array(row, dtype=np.float32)
    values[columns] = 0.0
    return values


def _within_category_slope(judged: pd.DataFrame) -> float:
    """Slope of the estimates' deviations from their category mean on the true deviations."""
    by = judged.groupby("category")
    estimate = judged["elasticity"] - by["elasticity"].transform("mean")
    true = judged["true"] - by["true"].transform("mean")
    return float((estimate * true).sum() / (true**2).sum())


def refit(market: Path, settings: dict[str, str]) -> dict[str, Any]:
    """One market under one variant: the interval's coverage, width and the elasticity's error."""
    cfg = load_config(overrides=[])
    train_dir = _latest(f"{market}/lakehouse/model_data/*/train")
    config_path = Path(_latest(f"{market}/mlartifacts/**/config.json"))
    saved = json.loads(config_path.read_text())
    # A model trained with train.text_components saw the titles through its saved projection.
    basis = torch.load(config_path.with_name("weights.pt"), weights_only=True).get("text_basis")
    settings = dict(settings)
    promo = settings.pop("promo", None)
    blank = [NUMERIC_FEATURES.index(name) for name in settings.pop("blank", "").split("+") if name]
    text_basis = basis.tolist() if basis is not None else None
    spec = _with(worker_spec(cfg.train, saved["net"], train_dir, text_basis=text_basis), settings)
    torch.manual_seed(spec.seed)
    data = _blank(_promo_rows(read_shard(train_dir, 0, 1), promo), blank)
    if basis is not None:
        data["text"] = data["text"] @ basis
    net = NetSpec(**saved["net"])
    started = time.perf_counter()
    ensemble, _, _ = fit_ensemble(LocalComm(), data, net, spec)
    state = model_state(LocalComm(), ensemble, Nuisance(net), data, net, spec)
    seconds = time.perf_counter() - started
    config = {
        **model_config(cfg.train, saved["net"]),
        "elasticity_interval": spec.elasticity_interval,
        "ensemble_size": spec.ensemble_size,
    }
    holdout = pd.read_parquet(train_dir.removesuffix("/train") + "/holdout")
    last = holdout.sort_values("date").groupby("sku").tail(1).reset_index(drop=True)
    if blank:
        last["numeric"] = [_zeroed(row, blank) for row in last["numeric"]]
    predicted = pd.concat([last[["sku"]], LoadedModel(state, config).predict(last)], axis=1)
    truth = pd.read_parquet(f"{market}/truth/sku_day")
    night = truth["date"].max()
    price = truth[truth["date"] < night].sort_values("date").groupby("sku").tail(1)[["sku", "price"]]
    curve = truth[truth["date"] == night].drop(columns=["price"]).merge(price, on="sku")
    curve["true"] = true_elasticity(curve, curve["price"].to_numpy(float))
    categories = pd.read_parquet(f"{market}/truth/sku_params")[["sku", "category"]]
    judged = predicted.merge(curve[["sku", "true"]], on="sku").merge(categories, on="sku")
    error = judged["elasticity"] - judged["true"].clip(lower=ELASTICITY_FLOOR)
    inside = judged["true"].between(judged["elasticity_low"], judged["elasticity_high"])
    weights = torch.load(io.BytesIO(state), weights_only=True)
    prior_sd = weights.get("elasticity_sku_prior_sd")
    return {
        "skus": len(judged),
        "seconds_fit": round(seconds, 1),
        "elasticity_mae": round(float(error.abs().mean()), 4),
        "elasticity_bias": round(float(error.mean()), 4),
        "interval_coverage": round(float(inside.mean()), 4),
        "interval_width": round(float((judged["elasticity_high"] - judged["elasticity_low"]).mean()), 4),
        "sku_elasticity_sd": round(float(prior_sd[0]), 4) if prior_sd is not None else None,
        "within_category_slope": round(_within_category_slope(judged), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", required=True, help="a `pricing evaluate --workdir` folder")
    parser.add_argument("--variants", nargs="+", required=True, help="name:key=value,key=value (WorkerSpec)")
    parser.add_argument("--families", help="comma-separated families to refit (default: every one)")
    parser.add_argument("--out", default="bench/results/interval_refit.json")
    args = parser.parse_args()
    variants = {}
    for text in args.variants:
        name, _, body = text.partition(":")
        variants[name] = dict(pair.split("=", 1) for pair in body.split(",") if pair)
    markets = sorted(p.parent.parent for p in Path(args.workdir).glob("*/seed*/truth/family.json"))
    if args.families:
        markets = [m for m in markets if m.parent.name in args.families.split(",")]
    rows = []
    for market in markets:
        for name, settings in variants.items():
            row = {
                "family": market.parent.name,
                "seed": int(market.name.removeprefix("seed")),
                "variant": name,
            }
            row |= refit(market, settings)
            print(json.dumps(row), flush=True)
            rows.append(row)
    summary = (
        pd.DataFrame(rows)
        .groupby("variant")[["elasticity_mae", "interval_coverage", "interval_width"]]
        .mean()
        .round(4)
    )
    print(summary.to_string())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {"variants": variants, "rows": rows, "mean": summary.reset_index().to_dict("records")}, indent=2
        )
    )


if __name__ == "__main__":
    main()
