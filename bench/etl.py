"""ETL throughput: the same bronze -> gold SQL in Spark (local[2]) and DuckDB (2 threads), side by side.

For each size, a Parquet file set of raw transaction lines (with the dirt the intake handles: invalid
quantities, missing keys, re-delivered duplicates, foreign currencies) is generated once; then both
engines run one query over it: validate, de-duplicate on (order_id, sku), convert to USD, aggregate
per SKU and day, lay the rows on a daily spine (zero-sale days included) and compute lags and trailing
means, writing the panel as Parquet. DuckDB runs it as one SQL text. Spark runs it twice, alternating:
planned as a Spark user would (the same steps, the lines shuffled once by SKU, the day aggregate used
twice computed once, as DuckDB does by itself) and as the one SQL text. Both engines run the
de-duplication in two forms (``--dedup``): a sorted window (ROW_NUMBER) and a hash aggregate (MIN_BY);
each engine's faster form is the one compared, and every run's output is checked to agree with
DuckDB's (rows, units, revenue) before any time is reported. Writes ``bench/results/etl.json``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from results_io import write_results

from pricing.config import load_config
from pricing.platform.spark import build_spark

DAYS = 365
START = date(2026, 1, 1)
FX = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27}

# The query in pieces, so that Spark's planned run can compute `daily` once (below); SQL_BY_DEDUP holds
# the whole text, which DuckDB runs and Spark's one-statement run runs. Both de-duplication forms
# validate the lines and aggregate the days with the same text; only the de-duplication differs.
VALID_LINES = """WHERE order_id IS NOT NULL AND sku IS NOT NULL AND quantity <> 0 AND ABS(quantity) <= 500
      AND unit_price > 0"""
DAILY = """daily AS (
    SELECT sku, day, SUM(quantity) AS units, SUM(quantity * unit_price) AS revenue,
           SUM(CASE WHEN quantity > 0 THEN quantity * unit_price END)
             / SUM(CASE WHEN quantity > 0 THEN quantity END) AS avg_price
    FROM valid{first} GROUP BY sku, day
)"""
VALID_DAILY = f"""
valid AS (
    SELECT order_id, sku, CAST(order_ts AS DATE) AS day, quantity, unit_price * rate AS unit_price,
           ROW_NUMBER() OVER (PARTITION BY order_id, sku ORDER BY order_ts) AS copy
    FROM {{lines}}
    {VALID_LINES}
),
{DAILY.format(first=" WHERE copy = 1")}"""
# The same de-duplication as a hash aggregate instead of a sorted window: each (order, SKU) keeps its
# first line's day, quantity and price (MIN_BY on the order time, which both engines have), and the
# day aggregate reads one row per pair. Both engines run both forms; each engine's faster one counts.
VALID_DAILY_AGGREGATE = f"""
valid AS (
    SELECT sku, CAST(MIN(order_ts) AS DATE) AS day, MIN_BY(quantity, order_ts) AS quantity,
           MIN_BY(unit_price * rate, order_ts) AS unit_price
    FROM {{lines}}
    {VALID_LINES}
    GROUP BY order_id, sku
),
{DAILY.format(first="")}"""
DEDUP = {"window": VALID_DAILY, "aggregate": VALID_DAILY_AGGREGATE}
PANEL = """
spans AS (SELECT sku, MIN(day) AS first_day, MAX(day) AS last_day FROM daily GROUP BY sku),
spine AS (
    SELECT s.sku, c.day FROM spans s JOIN calendar c ON c.day BETWEEN s.first_day AND s.last_day
),
panel AS (
    SELECT sp.sku, sp.day, COALESCE(d.units, 0) AS units, COALESCE(d.revenue, 0.0) AS revenue, d.avg_price
    FROM spine sp LEFT JOIN daily d ON d.sku = sp.sku AND d.day = sp.day
)
SELECT sku, day, units, revenue, avg_price,
       LAG(units, 1) OVER w AS units_lag_1,
       LAG(units, 7) OVER w AS units_lag_7,
       AVG(units) OVER (PARTITION BY sku ORDER BY day ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING)
         AS units_mean_7d,
       AVG(units) OVER (PARTITION BY sku ORDER BY day ROWS BETWEEN 28 PRECEDING AND 1 PRECEDING)
         AS units_mean_28d
FROM panel
WINDOW w AS (PARTITION BY sku ORDER BY day)
"""
LINES = "transactions t JOIN fx ON t.currency = fx.currency"
SQL_BY_DEDUP = {name: f"WITH {text.format(lines=LINES)},{PANEL}" for name, text in DEDUP.items()}
# Spark's planned run: the validated lines shuffled once, by SKU (a hint), which the de-duplication
# (by order and SKU), the day aggregate, the spans, the spine's join and the lags all accept once a
# join may be co-partitioned on part of its keys (SPARK_SESSION below). Without it each of them
# shuffles again.
LINES_BY_SKU = f"(SELECT /*+ REPARTITION(sku) */ t.*, fx.rate FROM {LINES}) t"
SPARK_SESSION = {"spark.sql.requireAllClusterKeysForCoPartition": "false"}


def generate(folder: Path, rows: int, files: int = 8, seed: int = 0) -> None:
    """``rows`` raw transaction lines over ``DAYS`` days in ``files`` Parquet files."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    skus = max(rows // 2000, 50)
    per_file = rows // files
    for f in range(files):
        n = per_file if f < files - 1 else rows - per_file * (files - 1)
        first = f * per_file
        order = np.arange(first, first + n)
        # 1% re-delivered duplicates: a line with an earlier line's order id and SKU.
        dup = rng.random(n) < 0.01
        order = np.where(dup, np.maximum(order - rng.integers(1, 50, n), 0), order)
        sku_idx = rng.integers(0, skus, n)
        sku_idx = np.where(dup, (order * 7919) % skus, sku_idx)
        ts = np.datetime64(START) + (rng.random(n) * DAYS * 86400).astype("timedelta64[s]")
        quantity = rng.integers(1, 4, n)
        quantity = np.where(rng.random(n) < 0.02, -1, quantity)  # returns
        quantity = np.where(rng.random(n) < 0.001, 99999, quantity)  # absurd
        currency = rng.choice(list(FX), n, p=[0.98, 0.01, 0.01])
        price = np.round(10 + (sku_idx % 200) * 0.75 * rng.uniform(0.9, 1.1, n), 2)
        order_ids = np.char.add("O", order.astype(str))
        order_ids = np.where(rng.random(n) < 0.001, None, order_ids)  # missing keys
        table = pa.table(
            {
                "order_id": pa.array(order_ids, pa.string()),
                "sku": pa.array(np.char.add("SKU-", sku_idx.astype(str)), pa.string()),
                "order_ts": pa.array(ts.astype("datetime64[us]")),
                "quantity": pa.array(quantity.astype(np.int32)),
                "unit_price": pa.array(price),
                "currency": pa.array(currency, pa.string()),
            }
        )
        pq.write_table(table, folder / f"part-{f:03d}.parquet")


def _calendar() -> list[date]:
    return [START + timedelta(days=d) for d in range(DAYS + 1)]


def run_spark(
    spark: Any, source: Path, out: Path, planned: bool = True, dedup: str = "window"
) -> dict[str, float]:
    """Spark's run: ``planned`` as a Spark user would run this query, else SQL as one statement;
    ``dedup`` names the de-duplication's form (:data:`DEDUP`)."""
    started = time.monotonic()
    spark.read.parquet(str(source)).createOrReplaceTempView("transactions")
    # The two lookup tables as SQL literals, so the planner knows they are a few rows and broadcasts
    # them. Made with createDataFrame from Python rows they were RDD scans of unknown size: fx took a
    # sort-merge join that shuffled every transaction line, and the calendar a cartesian product.
    rates = ", ".join(f"('{currency}', CAST({rate} AS DOUBLE))" for currency, rate in FX.items())
    spark.sql(f"SELECT * FROM VALUES {rates} AS fx(currency, rate)").createOrReplaceTempView("fx")
    days = _calendar()
    calendar = f"SELECT explode(sequence(DATE'{days[0]}', DATE'{days[-1]}')) AS day"
    spark.sql(calendar).createOrReplaceTempView("calendar")
    daily = None
    if planned:
        for key, value in SPARK_SESSION.items():
            spark.conf.set(key, value)
        # `daily` feeds both the spans and the panel. DuckDB computes a step used twice once; Spark
        # inlines it into both, so it is computed once here, kept with its partitioning by SKU.
        daily = spark.sql(f"WITH {DEDUP[dedup].format(lines=LINES_BY_SKU)} SELECT * FROM daily")
        daily = daily.localCheckpoint(eager=True)
        daily.createOrReplaceTempView("daily")
        query = f"WITH {PANEL}"
    else:
        query = SQL_BY_DEDUP[dedup]
    try:
        spark.sql(query).write.mode("overwrite").parquet(str(out))
    finally:
        for key in SPARK_SESSION:
            spark.conf.unset(key)
        if daily is not None:
            spark.catalog.dropTempView("daily")
    seconds = time.monotonic() - started
    check = spark.read.parquet(str(out)).selectExpr("count(*)", "sum(units)", "sum(revenue)").first()
    return {"seconds": seconds, "rows": check[0], "units": check[1], "revenue": check[2]}


def run_duckdb(source: Path, out: Path, threads: int, dedup: str = "window") -> dict[str, float]:
    out.unlink(missing_ok=True)
    started = time.monotonic()
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute(f"CREATE VIEW transactions AS SELECT * FROM read_parquet('{source}/*.parquet')")
    con.execute("CREATE TABLE fx (currency VARCHAR, rate DOUBLE)")
    con.executemany("INSERT INTO fx VALUES (?, ?)", list(FX.items()))
    con.execute("CREATE TABLE calendar (day DATE)")
    con.executemany("INSERT INTO calendar VALUES (?)", [(d,) for d in _calendar()])
    con.execute(f"COPY ({SQL_BY_DEDUP[dedup]}) TO '{out}' (FORMAT parquet)")
    seconds = time.monotonic() - started
    rows, units, revenue = con.execute(
        f"SELECT count(*), sum(units), sum(revenue) FROM read_parquet('{out}')"
    ).fetchone()
    con.close()
    return {"seconds": seconds, "rows": rows, "units": units, "revenue": revenue}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="transaction rows, comma-separated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="runs per engine and size; the best counts")
    parser.add_argument("--workdir", default=None, help="default: a temporary folder, removed after")
    parser.add_argument("--out", default="bench/results/etl.json")
    parser.add_argument(
        "--dedup", default="window,aggregate", help=f"de-duplication forms to run: {', '.join(DEDUP)}"
    )
    parser.add_argument(
        "--planned-only", action="store_true", help="skip Spark's one-statement run (minutes at 100M)"
    )
    args = parser.parse_args()
    forms = args.dedup.split(",")
    unknown = set(forms) - set(DEDUP)
    if unknown:
        parser.error(f"unknown --dedup {', '.join(sorted(unknown))}: use {', '.join(DEDUP)}")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-etl-"))
    cfg = load_config("local", overrides=[f"spark.master=local[{args.threads}]"])
    spark = build_spark(cfg.spark)
    results: dict[str, Any] = {
        "threads": args.threads,
        "repeat": args.repeat,
        # DuckDB's own speed moves between releases: the ratio means little without both versions.
        "versions": {"spark": spark.version, "duckdb": duckdb.__version__},
        "sizes": {},
    }
    for rows in [int(s) for s in args.sizes.split(",")]:
        source = workdir / f"transactions-{rows}"
        if not source.exists():
            print(f"generating {rows:,} rows", flush=True)
            generate(source, rows)
        spark_out, duck_out = workdir / f"spark-{rows}", workdir / f"duckdb-{rows}.parquet"
        # Best of --repeat runs each, the engines' runs alternating: the first Spark query of a session
        # also pays JVM warm-up. Each engine runs every de-duplication form; its fastest counts.
        runs: dict[str, list[dict[str, Any]]] = {"spark": [], "spark_one_statement": [], "duckdb": []}
        for _ in range(args.repeat):
            for dedup in forms:
                runs["spark"].append({**run_spark(spark, source, spark_out, dedup=dedup), "dedup": dedup})
                if not args.planned_only:
                    one = run_spark(spark, source, spark_out, planned=False, dedup=dedup)
                    runs["spark_one_statement"].append({**one, "dedup": dedup})
                runs["duckdb"].append({**run_duckdb(source, duck_out, args.threads, dedup), "dedup": dedup})
        best = {engine: min(done, key=lambda r: r["seconds"]) for engine, done in runs.items() if done}
        duck_run = best["duckdb"]
        for engine, done in runs.items():
            for run in done:
                for key in ("rows", "units"):
                    assert run[key] == duck_run[key], (
                        f"{rows} {engine} {run['dedup']}: {key} differ from DuckDB's"
                    )
                assert abs(run["revenue"] - duck_run["revenue"]) <= 1e-6 * abs(duck_run["revenue"])
        entry: dict[str, Any] = {
            engine: {**run, "rows_per_s": rows / run["seconds"]} for engine, run in best.items()
        }
        entry["by_dedup"] = {
            dedup: {
                engine: min(r["seconds"] for r in done if r["dedup"] == dedup)
                for engine, done in runs.items()
                if done
            }
            for dedup in forms
        }
        entry["spark_seconds_over_duckdb"] = best["spark"]["seconds"] / duck_run["seconds"]
        if (one := best.get("spark_one_statement")) is not None:
            entry["one_statement_over_duckdb"] = one["seconds"] / duck_run["seconds"]
            entry["planned_over_one_statement"] = best["spark"]["seconds"] / one["seconds"]
        entry["panel_rows"] = best["spark"]["rows"]
        results["sizes"][str(rows)] = entry
        print(
            f"{rows:,} rows: "
            + ", ".join(f"{engine} {run['seconds']:.1f}s ({run['dedup']})" for engine, run in best.items())
            + f" (spark/duckdb time {entry['spark_seconds_over_duckdb']:.2f})",
            flush=True,
        )
    results["ratios_spark_over_duckdb"] = {
        size: entry["spark_seconds_over_duckdb"] for size, entry in results["sizes"].items()
    }
    write_results(results, args.out, ["ratios_spark_over_duckdb"], spark_master=cfg.spark.master)
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
