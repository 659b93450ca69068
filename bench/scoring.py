"""Scoring throughput: SKU x price evaluations per second, measured side by side in one run.

- ``pandas_udf``: ``mapInPandas`` over Arrow batches, as ``pricing score`` runs it, for several
  ``score.arrow_batch_size`` values;
- ``row_udf``: a row-at-a-time Python UDF doing the same scoring for one SKU per call (model cached
  per worker, so only the per-row overhead differs);
- ``direct``: the same scoring function on one pandas DataFrame in this process, no Spark.

Inputs are the demo lakehouse's scoring rows for its next night (``make demo`` first), replicated to
``--skus`` rows. One evaluation is one (SKU, candidate price) pair: ``grid_points`` + 1 per SKU.
Writes ``bench/results/scoring.json``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import pandas as pd
from pyspark.sql import functions as F
from results_io import write_results

from pricing.config import load_config
from pricing.decide.stage import SCORED_SCHEMA, load_champion, next_night, score_batches, scoring_inputs
from pricing.lakehouse.tables import Lakehouse
from pricing.platform.spark import build_spark


def _best_of(repeats: int, work: Any) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lakehouse", default="demo/lakehouse")
    parser.add_argument("--tracking-uri", default="sqlite:///demo/mlflow.db")
    parser.add_argument("--skus", type=int, default=20_000)
    parser.add_argument("--row-udf-skus", type=int, default=2_000, help="the row UDF is slow: fewer rows")
    parser.add_argument("--batch-sizes", default="100,500,2000,10000")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default="bench/results/scoring.json")
    args = parser.parse_args()

    cfg = load_config("local", overrides=[f"train.tracking_uri={args.tracking_uri}"])
    spark = build_spark(cfg.spark)
    lakehouse = Lakehouse.at(spark, args.lakehouse)
    champion = load_champion(cfg.train, cfg.score.model_alias)
    if champion is None:
        raise SystemExit("no champion model: run `make demo` first")
    base = scoring_inputs(spark, lakehouse, cfg.features, next_night(spark, lakehouse), champion.input_spec)
    copies = -(-args.skus // base.count())
    replicated = (
        base.crossJoin(spark.range(copies).withColumnRenamed("id", "_copy"))
        .withColumn("sku", F.concat_ws("-", "sku", F.col("_copy").cast("string")))
        .drop("_copy")
        .limit(args.skus)
        .repartition(spark.sparkContext.defaultParallelism)
        .cache()
    )
    skus = replicated.count()
    evaluations_per_sku = cfg.score.grid_points + 1
    shipped = spark.sparkContext.broadcast(champion)
    cache: dict[str, Any] = {}

    def loader() -> Any:
        if "model" not in cache:  # once per Python worker
            cache["model"] = shipped.value.load()
        return cache["model"]

    scorer = score_batches(loader, cfg.policy, cfg.score)
    results: dict[str, Any] = {"skus": skus, "evaluations_per_sku": evaluations_per_sku, "pandas_udf": {}}
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    for size in [int(s) for s in args.batch_sizes.split(",")]:
        spark.conf.set(key, str(size))

        def run_udf() -> None:
            replicated.mapInPandas(scorer, SCORED_SCHEMA).write.format("noop").mode("overwrite").save()

        run_udf()  # warm-up: Python workers and the model
        seconds = _best_of(args.repeats, run_udf)
        rate = skus * evaluations_per_sku / seconds
        results["pandas_udf"][str(size)] = {"seconds": seconds, "evaluations_per_s": rate}
        print(f"pandas UDF, Arrow batch {size:>6}: {seconds:7.2f}s  {rate:>12,.0f} evaluations/s", flush=True)

    columns = replicated.columns
    few = replicated.limit(args.row_udf_skus).cache()
    few_skus = few.count()

    @F.udf("double")
    def score_one(*values: Any) -> float:
        frame = pd.DataFrame([dict(zip(columns, values, strict=True))])
        return float(next(scorer(iter([frame])))["recommended_price"].iloc[0])

    def run_rows() -> None:
        few.select(score_one(*[F.col(c) for c in columns]).alias("p")).write.format("noop").mode(
            "overwrite"
        ).save()

    run_rows()
    seconds = _best_of(args.repeats, run_rows)
    results["row_udf"] = {
        "skus": few_skus,
        "seconds": seconds,
        "evaluations_per_s": few_skus * evaluations_per_sku / seconds,
    }
    print(
        f"row-at-a-time UDF ({few_skus} SKUs): {seconds:7.2f}s  "
        f"{results['row_udf']['evaluations_per_s']:>12,.0f} evaluations/s"
    )

    frame = replicated.toPandas()

    def run_direct() -> None:
        pd.concat(list(scorer(iter([frame]))))

    run_direct()
    seconds = _best_of(args.repeats, run_direct)
    results["direct"] = {"seconds": seconds, "evaluations_per_s": skus * evaluations_per_sku / seconds}
    print(
        f"direct, one process: {seconds:7.2f}s  "
        f"{results['direct']['evaluations_per_s']:>12,.0f} evaluations/s"
    )

    best_udf = max(v["evaluations_per_s"] for v in results["pandas_udf"].values())
    results["ratios"] = {
        "pandas_udf_best_over_row_udf": best_udf / results["row_udf"]["evaluations_per_s"],
        "pandas_udf_best_over_direct": best_udf / results["direct"]["evaluations_per_s"],
    }
    write_results(results, args.out, ["ratios"], spark_master=cfg.spark.master)


if __name__ == "__main__":
    main()
