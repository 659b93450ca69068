"""Table maintenance: OPTIMIZE and VACUUM of every Delta table under a lakehouse root."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from pricing.config import NightlyConfig
from pricing.lakehouse import io


def delta_tables(spark: SparkSession, root: str) -> list[str]:
    """Every Delta table under the lakehouse root (``<layer>/<name>`` with a ``_delta_log``)."""
    fs, path = io.hadoop_fs(spark, root)
    found = []
    for layer in fs.listStatus(path):
        if not layer.isDirectory() or layer.getPath().getName().startswith(("_", ".")):
            continue
        for table in fs.listStatus(layer.getPath()):
            location = str(table.getPath().toString())
            if table.isDirectory() and io.is_delta_table(spark, location):
                found.append(location)
    return sorted(found)


def _vacuum(spark: SparkSession, location: str, retain_hours: int, mode: str) -> None:
    """VACUUM LITE (files the log removed) or FULL (also never-committed files, e.g. of killed writers).

    LITE falls back to FULL when the log no longer covers everything since the last VACUUM.
    """
    statement = f"VACUUM delta.`{location}` RETAIN {retain_hours} HOURS"
    if mode == "lite":
        try:
            spark.sql(f"{statement} LITE")
            return
        except Exception as error:  # DELTA_CANNOT_VACUUM_LITE
            if "LITE" not in str(error):
                raise
    spark.sql(statement)


def compact(spark: SparkSession, location: str) -> None:
    """OPTIMIZE the Delta table at ``location``: its small files rewritten into fewer, larger ones."""
    DeltaTable.forPath(spark, location).optimize().executeCompaction()


def maintain_tables(spark: SparkSession, root: str, jobs: list[str], ncfg: NightlyConfig) -> list[str]:
    """OPTIMIZE and/or VACUUM (``jobs``) every Delta table under ``root``, ``ncfg.parallel_maintenance``
    tables at a time; returns the tables."""
    tables = delta_tables(spark, root)
    check = "spark.databricks.delta.retentionDurationCheck.enabled"

    def tidy(location: str) -> None:
        if "optimize" in jobs:
            compact(spark, location)
        if "vacuum" in jobs:
            _vacuum(spark, location, ncfg.vacuum_retain_hours, ncfg.vacuum_mode)

    # Delta refuses to keep less than 7 days unless told; a shorter retention is a choice made in
    # config. Set once for the whole pass: the threads below share the session's conf.
    if "vacuum" in jobs:
        spark.conf.set(check, str(ncfg.vacuum_retain_hours >= 168).lower())
    try:
        # Tables are independent, and each operation is mostly small jobs and commits, so several at
        # a time keep both cores busy (docs/benchmarks.md, "Table maintenance").
        with ThreadPoolExecutor(ncfg.parallel_maintenance, thread_name_prefix="maintain") as pool:
            for _ in pool.map(tidy, tables):
                pass
    finally:
        if "vacuum" in jobs:
            spark.conf.unset(check)
    return tables
