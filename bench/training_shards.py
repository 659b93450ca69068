"""Training shards with the text vector in every row (before) vs. named by hash, vectors once (after).

What ``pricing train``'s prepare phase and each training process's read do with a panel's text, at a
large panel's shape (default 2,000 SKUs x 300 days, 384-float vectors, 24 numeric inputs), without
building the panel: synthetic rows with the shards' columns, written by Spark the way ``run_train``
writes them (``training_shards``: a folder per shard of the (sku, date) hash), then read back by
``read_shard`` for each of the 2 training processes. Sides alternate, "after" first. Writes
``bench/results/training_shards.json``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType
from results_io import write_results

from pricing.config import load_config
from pricing.lakehouse import io
from pricing.model.distributed import SHARD_COLUMN, read_shard
from pricing.model.train import training_shards
from pricing.platform.spark import build_spark


def _tables(spark: SparkSession, skus: int, days: int, dim: int, numeric: int) -> tuple[DataFrame, DataFrame]:
    rng = np.random.default_rng(0)
    texts = pd.DataFrame(
        {
            "text_hash": [f"h{i:06d}" for i in range(skus)],
            "text": list(rng.normal(size=(skus, dim)).astype(np.float32)),
        }
    )
    texts_df = spark.createDataFrame(texts, "text_hash string, text array<float>")
    rows = spark.range(skus * days).select(
        (F.col("id") % skus).cast("int").alias("sku_idx"),
        (F.col("id") / skus).cast("int").alias("day"),
    )
    rows_df = rows.select(
        F.concat(F.lit("sku-"), F.col("sku_idx").cast("string")).alias("sku"),
        F.date_add(F.lit("2026-06-01").cast("date"), F.col("day")).alias("date"),
        (F.col("sku_idx") + 1).alias("sku_idx"),
        (F.col("sku_idx") % 20 + 1).alias("category_idx"),
        (F.col("sku_idx") % 50 + 1).alias("brand_idx"),
        F.array(*[F.randn(seed=k).cast("float") for k in range(numeric)]).alias("numeric"),
        F.format_string("h%06d", F.col("sku_idx")).alias("text_hash"),
        (F.randn(seed=99) * 0.1).cast("float").alias("log_price_ratio"),
        F.floor(F.rand(seed=98) * 5).cast("float").alias("units"),
        F.lit(1.0).cast("float").alias("weight"),
        F.lit(0.0).cast("float").alias("censored"),
        F.pmod(F.xxhash64("sku_idx", "day"), F.lit(2)).cast("int").alias("fold"),
    )
    return rows_df, texts_df


def _side(side: str, rows_df: DataFrame, texts_df: DataFrame, out: Path, shards: int) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    started = time.monotonic()
    if side == "before":
        zeros = F.array_repeat(F.lit(0.0).cast("float"), len(texts_df.first()["text"]))
        with_text = rows_df.join(texts_df, "text_hash", "left").select(
            *[c for c in rows_df.columns if c != "text_hash"],
            F.coalesce(F.col("text"), zeros).cast(ArrayType(FloatType())).alias("text"),
        )
        io.write_files(training_shards(with_text, shards), str(out / "train"), SHARD_COLUMN)
        texts_dir = None
    else:
        io.write_files(training_shards(rows_df, shards), str(out / "train"), SHARD_COLUMN)
        texts_df.coalesce(1).write.parquet(str(out / "texts"))
        texts_dir = str(out / "texts")
    written = time.monotonic() - started
    reads = []
    for rank in range(2):  # the two training processes, one after the other
        started = time.monotonic()
        data = read_shard(str(out / "train"), rank, 2, texts_dir=texts_dir)
        reads.append(time.monotonic() - started)
        assert data["text"].shape[1] > 0
    size = sum(f.stat().st_size for f in out.rglob("*.parquet"))
    return {"write_s": round(written, 2), "read_s": [round(r, 2) for r in reads], "bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skus", type=int, default=2000)
    parser.add_argument("--days", type=int, default=300)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--numeric", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default="bench/results/training_shards.json")
    args = parser.parse_args()
    spark = build_spark(load_config("local").spark)
    rows_df, texts_df = _tables(spark, args.skus, args.days, args.dim, args.numeric)
    rows_df = rows_df.cache()
    rows_df.count()
    work = Path(tempfile.mkdtemp(prefix="bench-shards-"))
    runs: list[dict[str, Any]] = []
    try:
        for repeat in range(args.repeats):
            order = ["after", "before"] if repeat % 2 == 0 else ["before", "after"]
            for side in order:
                run = {"side": side, "repeat": repeat, **_side(side, rows_df, texts_df, work / side, 4)}
                runs.append(run)
                print(f"{side:>6} #{repeat}: {run}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def median(side: str, key: str) -> float:
        values = [r[key] if key != "read_s" else max(r["read_s"]) for r in runs if r["side"] == side]
        return statistics.median(values)

    summary = {
        side: {"write_s": median(side, "write_s"), "read_s_slowest_process": median(side, "read_s"),
               "megabytes": round(median(side, "bytes") / 1e6, 1)}
        for side in ("before", "after")
    }  # fmt: skip
    results = {
        "rows": args.skus * args.days,
        "skus": args.skus,
        "text_dim": args.dim,
        "runs": runs,
        "median": summary,
        "ratio_after_over_before": {
            key: round(summary["after"][key] / summary["before"][key], 3) for key in summary["before"]
        },
    }
    write_results(results, args.out, ["median", "ratio_after_over_before"])


if __name__ == "__main__":
    main()
