"""Whether two lakehouses hold the same tables: every Delta table under both roots, row for row.

For a change meant to leave behaviour alone (issue 20's redesign): run ``make demo`` (or the same
nights) with the code before and after into two folders, then compare. Columns that differ between any
two runs (timestamps, durations, run ids, MLflow ids, file sizes and times) are left out; every other
value, including prices, statuses and reasons, must match, with each lakehouse's own folder written as
``<root>`` in text. Where a table differs, its rows are matched on the key the table catalog declares
(``pricing.lakehouse.tables``) and each column says how many rows differ and, if numeric, by how much
at most. Writes ``bench/results/compare_lakehouses.json``; exits 1 when a table differs.

    python bench/compare_lakehouses.py demo-before/lakehouse demo/lakehouse
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    DataType,
    DoubleType,
    FloatType,
    MapType,
    StringType,
    StructField,
    StructType,
)
from results_io import write_results

from pricing.config import load_config
from pricing.lakehouse.tables import TABLES, Lakehouse, Table
from pricing.platform.spark import build_spark

DECLARED = {t.label: t for t in TABLES}

# Differ between any two runs of the same code: when, how long, which run, which file version.
VOLATILE = re.compile(
    r"(_at$|^at$|_ts$|seconds|_s$|run_id|^created|^finished|^started|modification|mtime|"
    r"^size$|_bytes$|^bytes_|^version$|model_version|^timestamp$|^duration|^report_path$|^_ingested_at$)"
)


def delta_tables(root: Path) -> list[str]:
    """Tables (``layer/name``) under ``root``, the folders holding a ``_delta_log``."""
    return sorted(str(p.parent.relative_to(root)) for p in root.glob("*/*/_delta_log"))


def _volatile_fields(data_type: DataType) -> set[str]:
    """Names of volatile fields nested anywhere in ``data_type`` (a stage's seconds in audit/runs)."""
    if isinstance(data_type, ArrayType):
        return _volatile_fields(data_type.elementType)
    if isinstance(data_type, StructType):
        return {f.name for f in data_type.fields if VOLATILE.search(f.name)} | {
            n for f in data_type.fields for n in _volatile_fields(f.dataType)
        }
    return set()


def comparable(spark: SparkSession, root: Path, table: str, digits: int | None = 6) -> DataFrame:
    """The table without its volatile columns, nested ones too (complex columns compared as JSON
    without those fields), with the lakehouse's own folder written as ``<root>`` and floating-point
    values rounded to ``digits`` decimals (None: as written)."""
    df = Lakehouse(str(root)).read(spark, DECLARED[table])
    prefix = re.escape(str(root.parent.resolve()))

    def value(field: StructField) -> Column:
        column = F.col(field.name)
        if isinstance(field.dataType, (ArrayType, MapType, StructType)):
            # As JSON: set operations take no maps, and nested volatile fields drop out by name.
            column = F.to_json(column)
            nested = _volatile_fields(field.dataType)
            if nested:
                pattern = r'"(' + "|".join(map(re.escape, sorted(nested))) + r')":("[^"]*"|[^,}\]]*),?'
                column = F.regexp_replace(column, pattern, "")
        elif isinstance(field.dataType, (DoubleType, FloatType)) and digits is not None:
            # Spark's sums are not associative in floating point and the order of a shuffle's blocks
            # varies between runs: the last bits differ, not the values.
            return F.round(column, digits).alias(field.name)
        elif not isinstance(field.dataType, StringType):
            return column.alias(field.name)
        # The simulator names its landing files after each write's random id.
        column = F.regexp_replace(column, r"(part-\d+)-[0-9a-f]{8}-[0-9a-f-]{27}", "$1")
        return F.regexp_replace(column, prefix, "<root>").alias(field.name)

    return df.select(*[value(f) for f in df.schema.fields if not VOLATILE.search(f.name)])


def column_differences(a: DataFrame, b: DataFrame, table: Table) -> dict[str, Any]:
    """Per non-key column of two versions of ``table`` (comparable, unrounded), matched on its declared
    key: rows whose value differs at all (``rows``) and, for numbers, the largest absolute difference."""
    key = list(table.key)
    joined = a.alias("a").join(b.alias("b"), key, "full_outer")
    columns = [c for c in a.columns if c not in key]
    numeric = {
        f.name for f in a.schema.fields if f.dataType.typeName() in ("double", "float", "long", "integer")
    }
    aggregates = []
    for c in columns:
        left, right = F.col(f"a.`{c}`"), F.col(f"b.`{c}`")
        aggregates.append(F.count(F.when(~left.eqNullSafe(right), 1)).alias(f"{c}__rows"))
        if c in numeric:
            aggregates.append(F.max(F.abs(left - right)).alias(f"{c}__max_abs"))
    totals = joined.agg(*aggregates, F.count(F.lit(1)).alias("_joined")).first()
    assert totals is not None
    differing: dict[str, Any] = {}
    for c in columns:
        if totals[f"{c}__rows"]:
            differing[c] = {"rows": int(totals[f"{c}__rows"])}
            if c in numeric and totals[f"{c}__max_abs"] is not None:
                differing[c]["max_abs"] = float(totals[f"{c}__max_abs"])
    return {"key": key, "rows_joined": int(totals["_joined"]), "columns": differing}


def compare(spark: SparkSession, before: Path, after: Path) -> list[dict[str, Any]]:
    rows = []
    in_before, in_after = set(delta_tables(before)), set(delta_tables(after))
    for table in sorted(in_before | in_after):
        row: dict[str, Any] = {"table": table}
        if table not in in_before or table not in in_after:
            row.update(same=False, why="only in one lakehouse")
        elif table not in DECLARED:
            row.update(same=False, why="not declared in pricing.lakehouse.tables")
        else:
            a, b = comparable(spark, before, table), comparable(spark, after, table)
            row.update(rows_before=a.count(), rows_after=b.count())
            if a.columns != b.columns:
                row.update(same=False, why=f"columns differ: {sorted(set(a.columns) ^ set(b.columns))}")
            else:
                only_before, only_after = a.exceptAll(b).count(), b.exceptAll(a).count()
                row.update(
                    compared_columns=len(a.columns),
                    rows_only_before=only_before,
                    rows_only_after=only_after,
                    same=only_before == only_after == 0,
                )
                if not row["same"] and DECLARED[table].key:
                    row["by_key"] = column_differences(
                        comparable(spark, before, table, None),
                        comparable(spark, after, table, None),
                        DECLARED[table],
                    )
        rows.append(row)
        print(f"{table:40s} {'same' if row['same'] else 'DIFFERS'}  {row}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", help="a lakehouse root")
    parser.add_argument("after", help="another lakehouse root")
    parser.add_argument("--out", default="bench/results/compare_lakehouses.json")
    args = parser.parse_args()
    spark = build_spark(load_config("local").spark)
    rows = compare(spark, Path(args.before), Path(args.after))
    differing = [r["table"] for r in rows if not r["same"]]
    write_results(
        {
            "before": args.before,
            "after": args.after,
            "tables": len(rows),
            "differing": differing,
            "rows": rows,
        },
        args.out,
        ["tables", "differing"],
    )
    sys.exit(1 if differing else 0)


if __name__ == "__main__":
    main()
