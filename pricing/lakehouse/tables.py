"""Every table of a lakehouse, declared once: layer, name, schema, key and how it is written; and
:class:`Lakehouse`, the one way to reach them under a root.

Stages read and write through a ``Lakehouse``: each write is checked against the table's declared
schema and merged on its declared key, so a table's shape and identity are stated here and nowhere
else. ``docs/data-contract.md`` lists the same tables for users.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql.types import StructType

from pricing.lakehouse import io
from pricing.schemas import (
    BATCH_ID,
    COMPETITOR_MATCHES_SCHEMA,
    CURRENT_PRICES_SCHEMA,
    ELASTICITIES_SCHEMA,
    EXPERIMENT_ASSIGNMENTS_SCHEMA,
    EXPERIMENT_READOUTS_SCHEMA,
    EXPERIMENTS_SCHEMA,
    FEATURE_RUNS_SCHEMA,
    INGESTED_FILES_SCHEMA,
    LISTING_OVERRIDES_SCHEMA,
    LISTING_QUARANTINE_SCHEMA,
    MATCH_RUNS_SCHEMA,
    PRICE_DECISIONS_SCHEMA,
    PRICE_OVERRIDES_SCHEMA,
    PRICE_RECOMMENDATIONS_SCHEMA,
    QUARANTINE_SCHEMA,
    RECONCILIATION_SCHEMA,
    RUNS_SCHEMA,
    SKU_CALENDAR_SCHEMA,
    SOURCES,
    TEXT_EMBEDDINGS_SCHEMA,
)


@dataclass(frozen=True)
class Table:
    """One lakehouse table. ``schema`` None: set by configuration (``gold/sku_day``'s lags and
    windows), given with each read and write. ``key``: what identifies a row (MERGEs match on it,
    uniqueness checks count it); empty where nothing does (appended logs, rejected rows)."""

    layer: str
    name: str
    schema: StructType | None
    key: tuple[str, ...] = ()
    written: str = "append"  # merge | append | batch (replaceWhere) | overwrite
    cluster_by: tuple[str, ...] = ()
    partition_by: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``<layer>/<name>``, as messages and docs name it."""
        return f"{self.layer}/{self.name}"


BRONZE = {
    name: Table("bronze", name, c.bronze_schema, written="batch", partition_by=(BATCH_ID,))
    for name, c in SOURCES.items()
}
SILVER = {
    name: Table(
        "silver",
        name,
        c.silver_schema,
        c.key,
        written="merge" if c.upsert else "append",
        cluster_by=(c.date_column,) if c.date_column and not c.upsert else (),
    )
    for name, c in SOURCES.items()
}
QUARANTINE = Table("audit", "quarantine", QUARANTINE_SCHEMA, written="batch")
INGESTED_FILES = Table("audit", "ingested_files", INGESTED_FILES_SCHEMA, written="batch")
RECONCILIATION = Table("audit", "reconciliation", RECONCILIATION_SCHEMA, (BATCH_ID, "source"), "batch")

SKU_DAY = Table("gold", "sku_day", None, ("sku", "date"), "merge", cluster_by=("date",))
SKU_CALENDAR = Table("gold", "sku_calendar", SKU_CALENDAR_SCHEMA, ("sku",), "overwrite")
TEXT_EMBEDDINGS = Table("gold", "text_embeddings", TEXT_EMBEDDINGS_SCHEMA, ("text_hash", "encoder"))
FEATURE_RUNS = Table("audit", "feature_runs", FEATURE_RUNS_SCHEMA, ("run_id",))

ELASTICITIES = Table("gold", "elasticities", ELASTICITIES_SCHEMA, ("sku",), "overwrite")

PRICE_RECOMMENDATIONS = Table(
    "gold",
    "price_recommendations",
    PRICE_RECOMMENDATIONS_SCHEMA,
    ("sku", "price_date"),
    "merge",
    ("price_date",),
)
CURRENT_PRICES = Table("gold", "current_prices", CURRENT_PRICES_SCHEMA, ("sku",), "merge")
PRICE_OVERRIDES = Table("gold", "price_overrides", PRICE_OVERRIDES_SCHEMA)
PRICE_DECISIONS = Table("gold", "price_decisions", PRICE_DECISIONS_SCHEMA, ("decision_id", "sku"))

COMPETITOR_MATCHES = Table(
    "silver", "competitor_matches", COMPETITOR_MATCHES_SCHEMA, ("competitor", "competitor_sku"), "overwrite"
)
COMPETITOR_MATCH_OVERRIDES = Table("silver", "competitor_match_overrides", LISTING_OVERRIDES_SCHEMA)
LISTING_QUARANTINE = Table(
    "audit", "listing_quarantine", LISTING_QUARANTINE_SCHEMA, ("competitor", "competitor_sku"), "overwrite"
)
MATCH_RUNS = Table("audit", "match_runs", MATCH_RUNS_SCHEMA)

EXPERIMENTS = Table("gold", "experiments", EXPERIMENTS_SCHEMA, ("name",))
EXPERIMENT_ASSIGNMENTS = Table(
    "gold", "experiment_assignments", EXPERIMENT_ASSIGNMENTS_SCHEMA, ("experiment", "sku"), "batch"
)
EXPERIMENT_READOUTS = Table("gold", "experiment_readouts", EXPERIMENT_READOUTS_SCHEMA)

RUNS = Table("audit", "runs", RUNS_SCHEMA, ("run_date",), "batch")

TABLES: tuple[Table, ...] = (
    *BRONZE.values(),
    *SILVER.values(),
    QUARANTINE,
    INGESTED_FILES,
    RECONCILIATION,
    SKU_DAY,
    SKU_CALENDAR,
    TEXT_EMBEDDINGS,
    FEATURE_RUNS,
    ELASTICITIES,
    PRICE_RECOMMENDATIONS,
    CURRENT_PRICES,
    PRICE_OVERRIDES,
    PRICE_DECISIONS,
    COMPETITOR_MATCHES,
    COMPETITOR_MATCH_OVERRIDES,
    LISTING_QUARANTINE,
    MATCH_RUNS,
    EXPERIMENTS,
    EXPERIMENT_ASSIGNMENTS,
    EXPERIMENT_READOUTS,
    RUNS,
)


@dataclass(frozen=True)
class Lakehouse:
    """The tables under one lakehouse root (a path or URI): where each lives, and its reads and writes
    checked against its declaration."""

    root: str

    @classmethod
    def at(cls, spark: SparkSession, root: str) -> Lakehouse:
        """The lakehouse under ``root`` (a path or URI), qualified (``demo/x`` -> ``file:/work/demo/x``)
        as Delta's builders need."""
        return cls(io.qualify(spark, root))

    def identity(self, spark: SparkSession) -> str:
        """The lakehouse's id (``io.lakehouse_id``), which tags the models trained on it."""
        return io.lakehouse_id(spark, self.root)

    def path(self, table: Table) -> str:
        return io.table_path(self.root, table.layer, table.name)

    def model_data(self, run_id: str, part: str = "") -> str:
        """A training run's shards (Parquet, not a Delta table): ``<root>/model_data/<run_id>``, or
        its ``part`` (``train`` or ``holdout``) below it."""
        folder = io.table_path(self.root, "model_data", run_id)
        return f"{folder}/{part}" if part else folder

    def write_model_data(
        self, run_id: str, part: str, df: DataFrame, partition_by: str | None = None
    ) -> None:
        """Write a training run's ``part`` rows as Parquet files (a folder per ``partition_by`` value)."""
        io.write_files(df, self.model_data(run_id, part), partition_by)

    def read_model_data(self, spark: SparkSession, run_id: str, part: str) -> DataFrame:
        """A training run's ``part`` rows, as :meth:`write_model_data` wrote them."""
        return io.read_files(spark, self.model_data(run_id, part))

    def model_data_partitions(self, spark: SparkSession, run_id: str, part: str, column: str) -> int:
        """How many ``column`` folders :meth:`write_model_data` wrote for run ``run_id``'s ``part`` rows."""
        return io.count_partitions(spark, self.model_data(run_id, part), column)

    def has_model_data(self, spark: SparkSession, run_id: str, part: str) -> bool:
        """Whether training run ``run_id`` wrote its ``part`` rows."""
        return io.files_exist(spark, self.model_data(run_id, part))

    def exists(self, spark: SparkSession, table: Table) -> bool:
        return io.is_delta_table(spark, self.path(table))

    def read(self, spark: SparkSession, table: Table, version: int | None = None) -> DataFrame:
        """The table as written (as of commit ``version``, else its newest)."""
        return io.read_table(spark, self.path(table), None, version)

    def history(self, spark: SparkSession, table: Table) -> DataFrame:
        """The table's Delta commits (version, timestamp, operation, metrics ...), newest first."""
        return io.history(spark, self.path(table))

    def detail(self, spark: SparkSession, table: Table) -> Row:
        """The table's Delta detail (``sizeInBytes``, ``numFiles``, clustering, properties)."""
        return io.detail(spark, self.path(table))

    def read_if_exists(self, spark: SparkSession, table: Table) -> DataFrame | None:
        """The table as written, or None where nothing has written it yet."""
        return self.read(spark, table) if self.exists(spark, table) else None

    def read_declared(self, spark: SparkSession, table: Table, schema: StructType | None = None) -> DataFrame:
        """The table with every column declared (``schema`` where configuration sets it): one not
        written yet reads as empty, one an earlier release wrote reads this release's newer nullable
        columns as nulls."""
        return io.read_table(spark, self.path(table), _schema(table, schema))

    def append(self, table: Table, df: DataFrame, schema: StructType | None = None) -> None:
        io.append(df, self.path(table), _schema(table, schema), table.label, table.cluster_by)

    def overwrite(self, table: Table, df: DataFrame, schema: StructType | None = None) -> None:
        io.overwrite(df, self.path(table), _schema(table, schema), table.label, table.cluster_by)

    def replace_where(self, table: Table, df: DataFrame, condition: str) -> None:
        """Replace the rows matching ``condition`` with ``df`` in one commit (a batch, rewritten whole
        when a crashed run is re-run)."""
        io.replace_where(
            df, self.path(table), _schema(table, None), condition, table.label, table.partition_by
        )

    def merge(
        self,
        table: Table,
        df: DataFrame,
        update_condition: str | None,
        schema: StructType | None = None,
        target_condition: str | None = None,
    ) -> None:
        """MERGE ``df`` on the table's key (see :func:`pricing.lakehouse.io.merge_by_key`)."""
        io.merge_by_key(
            df,
            self.path(table),
            _schema(table, schema),
            table.key,
            update_condition,
            table.label,
            table.cluster_by,
            target_condition,
        )

    def delete(self, spark: SparkSession, table: Table, condition: Column) -> int:
        """Delete the rows matching ``condition``; returns how many (0 where the table is absent)."""
        if not self.exists(spark, table):
            return 0
        return io.delete_where(spark, self.path(table), condition)

    def assert_unique(self, spark: SparkSession, table: Table, where: str | None = None) -> None:
        """Fail if the table's key occurs twice (in the rows matching ``where``)."""
        io.assert_unique(spark, self.path(table), table.key, table.label, where)


def _schema(table: Table, schema: StructType | None) -> StructType:
    if schema is not None:
        return schema
    if table.schema is None:
        raise ValueError(f"{table.label}'s schema comes from configuration: pass it")
    return table.schema


def bronze_silver(sources: Sequence[str]) -> list[Table]:
    """The bronze and silver tables of ``sources``."""
    return [t for name in sources for t in (BRONZE[name], SILVER[name])]
