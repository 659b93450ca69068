"""Deliver a simulated market's landing files night by night, as upstream systems would.

``pricing simulate`` writes every day of a market at once. A nightly run must instead find only the
files delivered so far: :func:`deliver` copies the files of day folders ``day=D`` with ``D <= through``
(and files outside day folders, such as the catalog and FX rates, with the first delivery) from the
market into the landing area, skipping those already there. Each file is copied under a hidden name
and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import re
from datetime import date

from pyspark.sql import SparkSession

from pricing.lakehouse import io

_DAY_FOLDER = re.compile(r"(?:^|/)day=(\d{4}-\d{2}-\d{2})(?:/|$)")


def _hidden(relative: str) -> bool:
    return any(part.startswith((".", "_")) for part in relative.split("/"))


def deliver(spark: SparkSession, market: str, landing: str, through: date) -> int:
    """Copy the market's files for days up to ``through`` into ``landing``; return how many were new."""
    jvm = io.jvm(spark)
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    target_root = io.qualify(spark, landing).rstrip("/")
    source_fs, source_path = io.hadoop_fs(spark, io.qualify(spark, market))
    target_fs, _ = io.hadoop_fs(spark, target_root)
    base = str(source_path.toUri().getPath()).rstrip("/")
    files = source_fs.listFiles(source_path, True)
    copied = 0
    while files.hasNext():
        status = files.next()
        relative = str(status.getPath().toUri().getPath())[len(base) :].lstrip("/")
        if _hidden(relative):
            continue
        day = _DAY_FOLDER.search(relative)
        if day and date.fromisoformat(day.group(1)) > through:
            continue
        target = jvm.org.apache.hadoop.fs.Path(f"{target_root}/{relative}")
        if target_fs.exists(target):
            continue
        partial = jvm.org.apache.hadoop.fs.Path(target.getParent(), f".{target.getName()}.partial")
        jvm.org.apache.hadoop.fs.FileUtil.copy(
            source_fs, status.getPath(), target_fs, partial, False, True, conf
        )
        if not target_fs.rename(partial, target):
            raise RuntimeError(f"could not move {partial} into place as {target}")
        copied += 1
    return copied
