"""Is the elastic shop's bias the optimiser's? One-category markets whose true elasticity is far from the
prior's centre, fitted with the shipped optimiser for more and more epochs.

Each market has one category, five SKUs and 4,600 rows (about an evaluation market's training rows),
prices cut when an observed signal is weak (which also lowers demand) plus random depth. The fit is
the product's ``fit_ensemble`` in one process at the shipped learning rate, batch and decay, prior
centre -2, with ``--epochs`` epochs (25 is the shipped number). After each fit, the same model's
elasticity level is also re-fitted on its own with every other weight held (a few Newton steps on the
head's output bias, the Poisson likelihood of the whole market): if that moves the estimate, the fit
ended short of where the base it learned lets the elasticity go.

Writes ``bench/results/elasticity_steps.json``.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import replace
from typing import Any

import torch
from results_io import write_results

from pricing.model.distributed import LocalComm, WorkerSpec, fit_ensemble
from pricing.model.network import Ensemble, NetSpec, poisson_loss

NET = NetSpec(n_skus=5, n_categories=2, n_brands=3, text_dim=4, n_numeric=3, hidden=16, elasticity_prior=-2.0)
SPEC = WorkerSpec(
    train_dir="", net=NET.to_dict(), epochs=25, nuisance_epochs=25, batch_size=512, learning_rate=0.01,
    weight_decay=1e-4, ensemble_size=1, debias=False, seed=0, backend="local", use_gpu=False,
)  # fmt: skip


def market(rows: int, elasticity: float, seed: int) -> dict[str, torch.Tensor]:
    """Markdowns on weak-signal days (the signal also moves demand) plus random price depth."""
    g = torch.Generator().manual_seed(seed)
    signal = torch.randn(rows, generator=g)
    log_price = torch.where(signal < -0.3, -0.15, 0.0) + 0.08 * torch.randn(rows, generator=g)
    mean = torch.exp(1.0 + 0.6 * signal + elasticity * log_price)
    return {
        "sku": torch.randint(1, 6, (rows,), generator=g),
        "category": torch.ones(rows, dtype=torch.long),
        "brand": torch.ones(rows, dtype=torch.long),
        "text": torch.zeros(rows, 4),
        "numeric": torch.stack([signal, torch.zeros(rows), torch.zeros(rows)], 1),
        "log_price_ratio": log_price,
        "units": torch.poisson(mean, generator=g),
        "weight": torch.ones(rows),
        "fold": torch.randint(0, 2, (rows,), generator=g),
    }


def mean_elasticity(ensemble: Ensemble, data: dict[str, torch.Tensor]) -> float:
    with torch.no_grad():
        return float(ensemble(data, None)[1].mean())


def refit_level(ensemble: Ensemble, data: dict[str, torch.Tensor], steps: int = 8) -> None:
    """Newton steps on each member's elasticity-head output bias, every other weight held."""
    for member in ensemble.members:
        bias = member.elasticity_head[-1].bias  # type: ignore[index]
        inputs = {k: data[k] for k in ("sku", "category", "brand", "text", "numeric", "log_price_ratio")}
        for _ in range(steps):
            log_mean, _ = member(**inputs)
            loss = poisson_loss(log_mean, data["units"], data["weight"]) * data["weight"].sum()
            (grad,) = torch.autograd.grad(loss, bias, create_graph=True)
            (hess,) = torch.autograd.grad(grad.sum(), bias)
            with torch.no_grad():
                bias -= (grad / hess.clamp_min(1e-3)).clamp(-0.5, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--truths", default="-4,-2,-0.8", help="true elasticities, one market each")
    parser.add_argument("--epochs", default="25,75,200")
    parser.add_argument("--seeds", default="0,1", help="training seeds (initial weights, bootstrap)")
    parser.add_argument("--out", default="bench/results/elasticity_steps.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    runs: list[dict[str, Any]] = []
    for truth in (float(t) for t in args.truths.split(",")):
        data = market(4600, truth, seed=1)
        for epochs in (int(e) for e in args.epochs.split(",")):
            for seed in seeds:
                torch.manual_seed(seed)
                ensemble, losses, _ = fit_ensemble(LocalComm(), dict(data), NET, replace(SPEC, epochs=epochs))
                fitted = mean_elasticity(ensemble, data)
                refit_level(ensemble, data)
                run = {
                    "truth": truth,
                    "epochs": epochs,
                    "seed": seed,
                    "estimate": round(fitted, 3),
                    "level_refit": round(mean_elasticity(ensemble, data), 3),
                    "final_loss": round(losses[-1], 4),
                }
                runs.append(run)
                print(f"[bench] {run}", flush=True)
    bias: dict[str, float] = defaultdict(float)  # over the seeds, per truth and epochs
    for run in runs:
        bias[f"truth {run['truth']}, {run['epochs']} epochs"] += (run["estimate"] - run["truth"]) / len(seeds)
    write_results(
        {"runs": runs, "mean_bias": {k: round(v, 3) for k, v in bias.items()}}, args.out, ["mean_bias"]
    )


if __name__ == "__main__":
    main()
