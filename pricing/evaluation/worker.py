"""One worker of ``pricing evaluate --jobs N``: claims markets in the plan's order and evaluates them.

Started by :func:`pricing.evaluation.robustness.run_evaluation` as
``python -m pricing.evaluation.worker <workdir> <index> <rows.json>``; it reads the plan and the
validated configuration the parent wrote into ``<workdir>``, starts its own SparkSession, and after
every market rewrites ``<rows.json>`` with all the rows it has judged.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from pricing.config import PricingConfig
from pricing.evaluation.robustness import (
    EvaluationPlan,
    claim_market,
    evaluate_market,
    progress_rows,
    write_json,
)
from pricing.platform.console import configure_console

# Named, not __name__: run with -m this module is __main__, outside the "pricing" loggers shown.
log = logging.getLogger("pricing.evaluation.worker")


def main(argv: list[str]) -> int:
    root, index, out = Path(argv[0]), int(argv[1]), Path(argv[2])
    plan = EvaluationPlan.from_json((root / "_plan.json").read_text())
    cfg = PricingConfig.model_validate_json((root / "_config.json").read_text())
    # The same console as the parent's `pricing evaluate`: each market's stage lines included.
    configure_console(verbose=cfg.spark.verbose)
    from pricing.platform.spark import build_spark

    spark = build_spark(cfg.spark)
    rows: list[dict] = []
    total = len(plan.markets)
    for k, (family, seed) in enumerate(plan.markets, 1):
        if not claim_market(root, family, seed):
            continue
        log.info(f"[evaluate w{index}] {k}/{total}: {family} seed {seed}")
        market_rows = evaluate_market(spark, cfg, family, seed, root / family / f"seed{seed}", plan)
        progress_rows(market_rows, log.info, f" w{index}")
        rows += market_rows
        write_json(out, rows)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
