"""Where each evaluated market's profit change came from: its moves split by the direction the night
moved each price (raised, cut, kept) and the direction the best price inside the band lay.

A market's `profit_vs_keep` is one sum. A model that reads elasticities too close to 0 raises prices,
and on a shop whose prices sit below their best that is right for the wrong reason; on one whose
prices sit above, the same raises lose. This split shows which: per market, the SKUs and the true
profit change (as a share of keeping every price) of each cell, and the totals of the moves that went
the best price's way and of those that did not. Reads a ``pricing evaluate`` workdir (the judge's own
rows, from the written tables); writes ``bench/results/move_directions.json``.

    python bench/move_directions.py --workdir demo-robustness
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from results_io import write_results

from pricing.config import PricingConfig
from pricing.evaluation.robustness import judged_market
from pricing.platform.spark import build_spark

EPS = 1e-9


def _direction(delta: np.ndarray, up: str, down: str, still: str) -> np.ndarray:
    return np.where(delta > EPS, up, np.where(delta < -EPS, down, still))


def market_split(judged: Any) -> dict[str, Any]:
    """One market's cells (moved × best direction) and the right and wrong moves' totals, from the
    judge's rows (pandas)."""
    current = judged["current_price"].to_numpy(float)
    moved = _direction(judged["recommended_price"].to_numpy(float) - current, "raised", "cut", "kept")
    best = _direction(judged["true_best_price"].to_numpy(float) - current, "raise", "cut", "keep")
    gain = (judged["true_profit_recommended"] - judged["true_profit_current"]).to_numpy(float)
    keep = float(judged["true_profit_current"].sum())
    cells = []
    for m in ("raised", "cut", "kept"):
        for b in ("raise", "cut", "keep"):
            mask = (moved == m) & (best == b)
            if mask.any():
                share = float(gain[mask].sum()) / keep
                cells.append(
                    {"moved": m, "best": b, "skus": int(mask.sum()), "profit_vs_keep": round(share, 5)}
                )
    right = ((moved == "raised") & (best == "raise")) | ((moved == "cut") & (best == "cut"))
    wrong = (moved != "kept") & ~right
    return {
        "skus": len(judged),
        "profit_vs_keep": round(float(gain.sum()) / keep, 5),
        "best_is_cut_share": round(float((best == "cut").mean()), 3),
        "right_moves": int(right.sum()),
        "right_moves_profit_vs_keep": round(float(gain[right].sum()) / keep, 5),
        "wrong_moves": int(wrong.sum()),
        "wrong_moves_profit_vs_keep": round(float(gain[wrong].sum()) / keep, 5),
        "cells": cells,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="demo-robustness", help="a `pricing evaluate` workdir")
    parser.add_argument("--out", default="bench/results/move_directions.json")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    cfg = PricingConfig.model_validate_json((workdir / "_config.json").read_text())
    spark = build_spark(cfg.spark)
    rows = []
    for market in sorted(workdir.glob("*/seed*")):
        if not (market / "nightly.json").exists():
            continue  # a market whose night did not finish
        found, judged = judged_market(spark, cfg, market)
        row = {"family": found["family"], "seed": found["seed"], **market_split(judged.toPandas())}
        rows.append(row)
        print(
            f"{row['family']:28s} {row['seed']}  profit vs keep {row['profit_vs_keep']:+.2%}: "
            f"{row['right_moves']} moves the best price's way {row['right_moves_profit_vs_keep']:+.2%}, "
            f"{row['wrong_moves']} against it {row['wrong_moves_profit_vs_keep']:+.2%} "
            f"(best is a cut for {row['best_is_cut_share']:.0%})",
            flush=True,
        )
    write_results({"workdir": str(workdir), "rows": rows}, args.out, headline=["workdir"])


if __name__ == "__main__":
    main()
