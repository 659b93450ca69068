"""All Delta reads and writes of the lakehouse, with explicit keys and idempotent batch writes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType


def table_path(lakehouse: str, layer: str, name: str) -> str:
    """``<lakehouse>/<layer>/<name>``, the one naming rule for lakehouse tables."""
    return f"{lakehouse.rstrip('/')}/{layer}/{name}"


def jvm(spark: SparkSession) -> Any:
    """The driver JVM (py4j), for Hadoop FileSystem calls Spark's Python API does not expose."""
    gateway = spark.sparkContext._jvm
    if gateway is None:
        raise RuntimeError("no JVM behind this SparkSession (Spark Connect is not supported here)")
    return gateway


def hadoop_fs(spark: SparkSession, path: str) -> tuple[Any, Any]:
    """(Hadoop FileSystem, Hadoop Path) for ``path``: works for file:, hdfs:, s3a:, abfss:, dbfs:."""
    hadoop_path = jvm(spark).org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path


def qualify(spark: SparkSession, path: str) -> str:
    """Fully qualified URI of ``path`` (``demo/x`` -> ``file:/work/demo/x``), as Delta's builders need."""
    fs, hadoop_path = hadoop_fs(spark, path)
    return str(fs.makeQualified(hadoop_path).toString())


# Written once into every lakehouse: its identity, which tags the models trained on it.
LAKEHOUSE_ID_FILE = "_lakehouse_id"


def lakehouse_id(spark: SparkSession, root: str) -> str:
    """The lakehouse's id, written once into ``<root>/_lakehouse_id`` (the first writer wins) and read
    from there after; a copied lakehouse keeps it, a new one gets its own."""
    fs, path = hadoop_fs(spark, f"{root.rstrip('/')}/{LAKEHOUSE_ID_FILE}")
    if not fs.exists(path):
        try:
            stream = fs.create(path, False)
        except Exception as error:  # py4j wraps FileAlreadyExistsException: another writer was first
            if not fs.exists(path):
                raise RuntimeError(f"cannot write the lakehouse id at {path}: {error}") from error
        else:
            try:
                stream.write(bytearray(uuid.uuid4().hex.encode()))
            finally:
                stream.close()
    stream = fs.open(path)
    try:
        text = bytes(jvm(spark).org.apache.commons.io.IOUtils.toByteArray(stream)).decode().strip()
    finally:
        stream.close()
    if not text:
        raise RuntimeError(f"{path} is empty: delete it to give the lakehouse a new id")
    return text


def is_delta_table(spark: SparkSession, path: str) -> bool:
    return DeltaTable.isDeltaTable(spark, path)


def ensure_table(
    spark: SparkSession,
    path: str,
    schema: StructType,
    cluster_by: Sequence[str] = (),
    partition_by: Sequence[str] = (),
) -> DeltaTable:
    """Create the Delta table at ``path`` with ``schema`` unless it exists; return it.

    A table created by an earlier release gets the schema's new nullable columns added (an additive
    change, so old rows read them as null) and loses NOT NULL where the schema now allows null; any
    other difference is left to the write to reject.
    """
    builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(schema)
    if partition_by:
        builder = builder.partitionedBy(*partition_by)
    if cluster_by:
        builder = builder.clusterBy(*cluster_by)
    table = builder.execute()
    current = {f.name.lower(): f for f in table.toDF().schema.fields}
    added = [f for f in schema.fields if f.name.lower() not in current and f.nullable]
    # A column this release lets be empty that an earlier one required (also additive: old rows hold).
    relaxed = [
        f
        for f in schema.fields
        if f.nullable and f.name.lower() in current and not current[f.name.lower()].nullable
    ]
    escaped = path.replace("`", "``")
    if added:
        columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in added)
        spark.sql(f"ALTER TABLE delta.`{escaped}` ADD COLUMNS ({columns})")
    for f in relaxed:
        spark.sql(f"ALTER TABLE delta.`{escaped}` ALTER COLUMN `{f.name}` DROP NOT NULL")
    if added or relaxed:
        table = DeltaTable.forPath(spark, path)
    return table


def read_table(
    spark: SparkSession, path: str, schema: StructType | None = None, version: int | None = None
) -> DataFrame:
    """Read a Delta table (as of commit ``version``, else its newest); with ``schema``, an absent table
    reads as empty and a table an earlier release wrote reads with the schema's newer nullable columns
    as nulls (until a write adds them)."""
    if schema is not None and not is_delta_table(spark, path):
        return spark.createDataFrame([], schema)
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    df = reader.load(path)
    if schema is None:
        return df
    newer = [f for f in schema.fields if f.nullable and f.name not in df.columns]
    return df.select("*", *[F.lit(None).cast(f.dataType).alias(f.name) for f in newer]) if newer else df


def check_schema(df: DataFrame, schema: StructType, what: str) -> DataFrame:
    """Select ``schema``'s columns in order and fail loudly if any is missing or mistyped."""
    actual = {f.name: f.dataType for f in df.schema.fields}
    problems = [
        f"{f.name}: expected {f.dataType.simpleString()}, got "
        f"{actual[f.name].simpleString() if f.name in actual else 'missing'}"
        for f in schema.fields
        if actual.get(f.name) != f.dataType
    ]
    if problems:
        raise ValueError(f"{what} does not match its declared schema: " + "; ".join(problems))
    return df.select([f.name for f in schema.fields])


def _write(
    df: DataFrame,
    path: str,
    schema: StructType,
    what: str,
    mode: str,
    *,
    cluster_by: Sequence[str] = (),
    partition_by: Sequence[str] = (),
    options: dict[str, str] | None = None,
) -> None:
    checked = check_schema(df, schema, what)
    ensure_table(df.sparkSession, path, schema, cluster_by=cluster_by, partition_by=partition_by)
    writer = checked.write.format("delta").mode(mode)
    for key, value in (options or {}).items():
        writer = writer.option(key, value)
    writer.save(path)


def replace_where(
    df: DataFrame,
    path: str,
    schema: StructType,
    condition: str,
    what: str,
    partition_by: Sequence[str] = (),
) -> None:
    """Atomically replace the rows matching ``condition`` with ``df`` (idempotent batch write).

    Re-running a batch after a crash replaces that batch's rows instead of appending them twice.
    """
    _write(
        df, path, schema, what, "overwrite", partition_by=partition_by, options={"replaceWhere": condition}
    )


def append(df: DataFrame, path: str, schema: StructType, what: str, cluster_by: Sequence[str] = ()) -> None:
    """Append ``df`` (checked against ``schema``) to the Delta table at ``path``."""
    _write(df, path, schema, what, "append", cluster_by=cluster_by)


def overwrite(
    df: DataFrame, path: str, schema: StructType, what: str, cluster_by: Sequence[str] = ()
) -> None:
    """Replace the whole table at ``path`` with ``df`` (one atomic Delta commit; history is kept)."""
    _write(df, path, schema, what, "overwrite", cluster_by=cluster_by)


def assert_unique(
    spark: SparkSession, path: str, key: Sequence[str], what: str, where: str | None = None
) -> None:
    """Fail if any key occurs twice in the table, or in its rows matching ``where`` (SQL).

    Delta has no unique constraints; ``where`` limits the check to what a write could have touched.
    """
    table = read_table(spark, path)
    if where:
        table = table.where(where)
    duplicates = table.groupBy(*key).count().where("count > 1").limit(5).collect()
    if duplicates:
        raise ValueError(f"{what} has duplicate keys {list(key)}, e.g. {[tuple(r)[:-1] for r in duplicates]}")


def merge_by_key(
    source_df: DataFrame,
    path: str,
    schema: StructType,
    key: Sequence[str],
    update_condition: str | None,
    what: str,
    cluster_by: Sequence[str] = (),
    target_condition: str | None = None,
) -> None:
    """MERGE ``source_df`` into the table at ``path`` on ``key``.

    Unmatched rows are inserted; matched rows are updated only when ``update_condition`` (SQL over
    aliases ``t`` and ``s``) holds, never when it is None. ``target_condition`` (SQL over ``t``, true
    of every row the source can match) lets Delta skip the target's other files.
    """
    checked = check_schema(source_df, schema, what)
    spark = source_df.sparkSession
    target = ensure_table(spark, path, schema, cluster_by)
    on = " AND ".join(
        [f"t.`{k}` <=> s.`{k}`" for k in key] + ([f"({target_condition})"] if target_condition else [])
    )
    merge = target.alias("t").merge(checked.alias("s"), on)
    if update_condition is not None:
        merge = merge.whenMatchedUpdateAll(condition=update_condition)
    merge.whenNotMatchedInsertAll().execute()


def delete_where(spark: SparkSession, path: str, condition: Any) -> int:
    """DELETE the rows of the table at ``path`` matching ``condition`` (a Column or SQL); returns how many."""
    DeltaTable.forPath(spark, path).delete(condition)
    return int(last_operation_metrics(spark, path).get("numDeletedRows", 0))


def write_files(df: DataFrame, path: str, partition_by: str | None = None) -> None:
    """``df`` as plain Parquet files at ``path`` (not a Delta table: files that processes outside
    Spark read, such as a training run's shards); the folder must not exist yet. ``partition_by``: one
    folder per value of that column (``<column>=<value>``)."""
    writer = df.write.partitionBy(partition_by) if partition_by else df.write
    writer.parquet(path)


def files_exist(spark: SparkSession, path: str) -> bool:
    """Whether :func:`write_files` wrote anything at ``path``."""
    fs, hadoop_path = hadoop_fs(spark, path)
    return bool(fs.exists(hadoop_path))


def count_partitions(spark: SparkSession, path: str, column: str) -> int:
    """How many ``column=<value>`` folders :func:`write_files` wrote at ``path``: a listing, without the
    Spark job that reading them (partition discovery, schema inference) would start."""
    fs, hadoop_path = hadoop_fs(spark, path)
    return sum(
        1 for status in fs.listStatus(hadoop_path) if status.getPath().getName().startswith(f"{column}=")
    )


def read_files(spark: SparkSession, path: str) -> DataFrame:
    """The Parquet files :func:`write_files` wrote at ``path``."""
    return spark.read.parquet(path)


def history(spark: SparkSession, path: str) -> DataFrame:
    """The Delta commits of the table at ``path``, newest first."""
    return DeltaTable.forPath(spark, path).history()


def detail(spark: SparkSession, path: str) -> Row:
    """The table's Delta detail: its size in bytes, number of files, clustering and properties."""
    row = DeltaTable.forPath(spark, path).detail().first()
    assert row is not None  # detail() has one row for any Delta table
    return row


def last_operation_metrics(spark: SparkSession, path: str) -> dict[str, str]:
    """operationMetrics of the table's latest commit (rows read, written, files added...)."""
    row = DeltaTable.forPath(spark, path).history(1).select("operationMetrics").first()
    return dict(row["operationMetrics"] or {}) if row else {}


def latest_version(spark: SparkSession, path: str) -> int | None:
    """The table's newest commit version, or None where no Delta table is (from the log's history)."""
    if not is_delta_table(spark, path):
        return None
    row = DeltaTable.forPath(spark, path).history(1).select("version").first()
    return None if row is None else int(row["version"])


# Commits ensure_table makes before a write: they carry no rows.
_SCHEMA_OPERATIONS = frozenset({"CREATE TABLE", "ADD COLUMNS"})


def commit_metrics(spark: SparkSession, path: str, after: int | None) -> dict[str, str] | None:
    """operationMetrics of the one write committed since version ``after`` (None: there was no table),
    or None when it cannot be told apart: nothing written, or more than one write since."""
    rows = (
        DeltaTable.forPath(spark, path)
        .history(4)
        .select("version", "operation", "operationMetrics")
        .collect()
    )
    newer = [r for r in rows if after is None or int(r["version"]) > after]
    writes = [r for r in newer if r["operation"] not in _SCHEMA_OPERATIONS]
    # history(4) holds everything since `after` only when something older than `after` is in it too.
    complete = (after is None and len(rows) < 4) or len(newer) < len(rows)
    if not complete or len(writes) != 1:
        return None
    return dict(writes[0]["operationMetrics"] or {})


def first_value(df: DataFrame) -> Any:
    """The first column of the first row (e.g. of an aggregate), or None for no rows."""
    row = df.first()
    return None if row is None else row[0]


def count_where(spark: SparkSession, path: str, condition: str) -> int:
    if not is_delta_table(spark, path):
        return 0
    return read_table(spark, path).where(condition).count()
