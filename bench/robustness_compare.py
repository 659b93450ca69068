"""Two `pricing evaluate` results side by side: the issue's bars per run, and every market's pair.

    python bench/robustness_compare.py bench/results/robustness.json bench/results/robustness_text32.json

Both runs must hold the same markets (family x seed). Only the default decision's rows are compared.
Prints the summary and a Markdown table per market; ``--out`` writes both as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from results_io import write_results

from pricing.evaluation.robustness import ROW_KEYS

BAND = (0.85, 0.95)
# Every figure a result row is required to carry, after the keys that name the market and rule.
PER_MARKET = [k for k in ROW_KEYS if k not in ("family", "seed", "decision")]


def _rows(path: str) -> dict[tuple[str, int], dict[str, Any]]:
    result = json.loads(Path(path).read_text())
    default = result["defaults"]["score.decision"]
    return {(r["family"], r["seed"]): r for r in result["rows"] if r["decision"] == default}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's bars over one run's markets."""
    worst = min(rows, key=lambda r: r["profit_vs_keep"])
    shares = [r["uplift_share"] for r in rows if r["uplift_share"] is not None]
    simulator = [
        r["uplift_share"] for r in rows if r["family"] == "simulator" and r["uplift_share"] is not None
    ]
    coverage = [r["interval_coverage"] for r in rows]
    return {
        "markets": len(rows),
        "worst_profit_vs_keep": worst["profit_vs_keep"],
        "worst_market": f"{worst['family']} seed {worst['seed']}",
        "mean_uplift_share": statistics.mean(shares),
        "simulator_uplift_share": statistics.mean(simulator) if simulator else None,
        "coverage_inside_band": sum(BAND[0] <= c <= BAND[1] for c in coverage),
        "mean_coverage": statistics.mean(coverage),
        "mean_elasticity_mae": statistics.mean(r["elasticity_mae"] for r in rows),
        "mean_wape": statistics.mean(r["wape"] for r in rows),
        "violations": sum(r["violations"] for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--out", help="write the comparison here as JSON")
    args = parser.parse_args()
    before, after = _rows(args.before), _rows(args.after)
    if before.keys() != after.keys():
        raise SystemExit(f"different markets: {sorted(before.keys() ^ after.keys())}")
    markets = sorted(before)
    print("| family | seed | " + " | ".join(f"{k} before → after" for k in PER_MARKET) + " |")
    print("|---|---|" + "---|" * len(PER_MARKET))
    for market in markets:
        cells = [f"{before[market][k]:.3f} → {after[market][k]:.3f}" for k in PER_MARKET]
        print(f"| {market[0]} | {market[1]} | " + " | ".join(cells) + " |")
    results = {
        "before": args.before,
        "after": args.after,
        "summary": {
            "before": summary([before[m] for m in markets]),
            "after": summary([after[m] for m in markets]),
        },
        "markets": [
            {
                "family": m[0],
                "seed": m[1],
                **{
                    f"{k}_{side}": rows[m][k]
                    for k in PER_MARKET
                    for side, rows in (("before", before), ("after", after))
                },
            }
            for m in markets
        ],
    }
    if args.out:
        write_results(results, args.out, ["summary"])
    else:
        print(json.dumps(results["summary"], indent=2))


if __name__ == "__main__":
    main()
