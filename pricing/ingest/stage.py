"""The intake stage: landing files -> bronze -> silver, with quarantine, a file ledger and reconciliation.

Tables written under ``<lakehouse>``:

- ``bronze/<source>``: raw rows as delivered plus ingestion metadata, append-only by batch.
- ``silver/<source>``: typed, deduplicated, cleaned rows (PII pseudonymised).
- ``audit/quarantine``: rejected rows with source, reason, raw record (PII hashed) and file.
- ``audit/ingested_files``: the ledger that makes every file ingested exactly once.
- ``audit/reconciliation``: per source and batch, rows read = silver + quarantined + duplicates.

Every write of a batch is keyed on its ``_batch_id`` (replaceWhere or MERGE), so writing a batch again
replaces it instead of adding to it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import reduce
from urllib.parse import unquote

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

from pricing.config import IngestConfig
from pricing.ingest.landing import FileError, LandingFile, failed_read, list_landing_files, read_new_files
from pricing.ingest.rules import OUTLIER_MEASURES
from pricing.ingest.silver import (
    REASONS,
    ROW_STATUS,
    classify_against_silver,
    flag_outliers,
    fx_daily_rates,
    judged_columns,
    parse_bronze,
    quarantine_rows,
)
from pricing.lakehouse import io
from pricing.lakehouse.tables import BRONZE, INGESTED_FILES, QUARANTINE, RECONCILIATION, SILVER, Lakehouse
from pricing.schemas import (
    BATCH_ID,
    FX_RATES,
    INGESTED_FILES_SCHEMA,
    QUARANTINE_SCHEMA,
    RECONCILIATION_SCHEMA,
    SOURCES,
    SourceContract,
)

log = logging.getLogger(__name__)


class IngestError(RuntimeError):
    """The intake cannot run (missing required source, missing secret)."""


class ReconciliationError(RuntimeError):
    """Rows were read that ended nowhere: the run must not be trusted."""


@dataclass
class SourceResult:
    """What one source's part of a batch did."""

    source: str
    files_ingested: int = 0
    files_failed: list[FileError] = field(default_factory=list)
    rows_read: int = 0
    rows_silver: int = 0
    rows_quarantined: int = 0
    rows_duplicate: int = 0
    ledger_rows: list[tuple] = field(default_factory=list, repr=False)
    # The rejected rows, cached until the batch's one audit/quarantine commit.
    quarantine_df: DataFrame | None = field(default=None, repr=False)

    @property
    def rows_unaccounted(self) -> int:
        return self.rows_read - self.rows_silver - self.rows_quarantined - self.rows_duplicate


@dataclass
class IngestReport:
    batch_id: int
    ingested_at: datetime
    results: list[SourceResult]

    @property
    def balanced(self) -> bool:
        return all(r.rows_unaccounted == 0 for r in self.results)

    def render(self) -> str:
        """The reconciliation as a fixed-width table, as printed after every run."""
        header = (
            f"{'source':<18}{'files':>6}{'failed':>7}{'read':>10}{'silver':>10}"
            f"{'quarantine':>11}{'duplicate':>10}{'unaccounted':>12}"
        )
        lines = [f"batch {self.batch_id} ingested at {self.ingested_at:%Y-%m-%d %H:%M:%S} UTC", header]
        for r in self.results:
            lines.append(
                f"{r.source:<18}{r.files_ingested:>6}{len(r.files_failed):>7}{r.rows_read:>10}"
                f"{r.rows_silver:>10}{r.rows_quarantined:>11}{r.rows_duplicate:>10}{r.rows_unaccounted:>12}"
            )
        for r in self.results:
            for failure in r.files_failed:
                lines.append(f"FAILED FILE [{r.source}] {failure.file.path}: {failure.error}")
        lines.append("reconciliation: " + ("balanced" if self.balanced else "NOT BALANCED"))
        return "\n".join(lines)


def pii_salt(cfg: IngestConfig) -> str:
    """The pseudonymisation secret, only ever from the environment.

    Raises:
        IngestError: the variable is unset or too short to be a secret.
    """
    salt = os.environ.get(cfg.pii_salt_env, "")
    if len(salt) < cfg.min_pii_salt_length:
        raise IngestError(
            f"environment variable {cfg.pii_salt_env} must hold a secret of at least "
            f"{cfg.min_pii_salt_length} characters to pseudonymise customer ids "
            f"(e.g. export {cfg.pii_salt_env}=$(python -c 'import secrets; print(secrets.token_hex(32))'))"
        )
    return salt


def _file_key(path: str) -> str:
    # Hadoop listings say file:/x, Spark's _metadata says file:///x and percent-encodes.
    path = unquote(path)
    return "file:/" + path[len("file:///") :] if path.startswith("file:///") else path


def latest_batch_id(spark: SparkSession, lakehouse: Lakehouse) -> int | None:
    """The newest batch the ledger has committed, or None before the first ingest."""
    ledger = lakehouse.read_declared(spark, INGESTED_FILES)
    latest = io.first_value(ledger.agg(F.max(BATCH_ID)))
    return None if latest is None else int(latest)


def next_batch_id(spark: SparkSession, lakehouse: Lakehouse) -> int:
    latest = latest_batch_id(spark, lakehouse)
    return 0 if latest is None else latest + 1


def _known_files(spark: SparkSession, lakehouse: Lakehouse) -> set[tuple[str, str, int, int]]:
    """(source, path, size, mtime) of every file in the ledger: file metadata, not data."""
    ledger = lakehouse.read_declared(spark, INGESTED_FILES)
    rows = ledger.select("source", "path", "size_bytes", "modification_time").collect()
    return {(r.source, r.path, r.size_bytes, r.modification_time) for r in rows}


def _history(
    spark: SparkSession, lakehouse: Lakehouse, contract: SourceContract, days: int
) -> DataFrame | None:
    """The source's last ``days`` days in silver, which the outlier checks judge a batch against; None
    for a source without outlier checks (its latest day would cost a Spark job for nothing)."""
    silver = SILVER[contract.name]
    if (
        not OUTLIER_MEASURES.get(contract.name)
        or not contract.date_column
        or not lakehouse.exists(spark, silver)
    ):
        return None
    # With the declared schema: a table an earlier release wrote lacks the newer columns the checks use.
    silver_df = lakehouse.read_declared(spark, silver)
    latest = io.first_value(silver_df.agg(F.max(contract.date_column)))
    if latest is None:
        return None
    return silver_df.where(F.col(contract.date_column) >= F.date_sub(F.lit(latest), days))


# A batch's intermediates (its rows as judged, classified, rejected) are kept on local disk, not in
# the heap. A first backfill is larger than the driver's memory, and the heap is shared with what Spark's
# memory manager does not count, such as Parquet writers' row groups. Cached in memory, 1.2 GB of
# clickstream JSON ran a 1 GB driver out of heap every time and a 4 GB one once in two runs
# (docs/benchmarks.md, bench/results/backfill_1g.json).
SPILLED = StorageLevel.DISK_ONLY


def ingest_source(
    spark: SparkSession,
    cfg: IngestConfig,
    lakehouse: Lakehouse,
    contract: SourceContract,
    files: list[LandingFile],
    batch_id: int,
    ingested_at: datetime,
    salt: str,
) -> SourceResult:
    """Ingest one source's new files as part of batch ``batch_id`` and reconcile the rows."""
    result = SourceResult(contract.name)
    batch_filter = f"{BATCH_ID} = {batch_id}"
    damaged: list[FileError] = []
    while True:
        bronze_df, covered, failed = read_new_files(
            spark,
            contract,
            files,
            batch_id,
            ingested_at,
            csv_multiline=contract.name in cfg.csv_multiline_sources,
        )
        if bronze_df is None:
            break
        bronze_df = io.check_schema(bronze_df, contract.bronze_schema, BRONZE[contract.name].label)
        try:
            lakehouse.replace_where(BRONZE[contract.name], bronze_df, batch_filter)
            break
        except Exception as error:  # noqa: BLE001 - only a file Spark names as unreadable is retried
            bad = failed_read(error, covered)
            if bad is None:
                raise
            # The write committed nothing: the batch is read again without the damaged file.
            log.warning("%s: %s; ingesting the other files", bad.file.path, bad.error)
            damaged.append(bad)
            files = [f for f in files if f != bad.file]
    result.files_failed = failed + damaged
    result.files_ingested = len(covered)
    rows_per_file: dict[str, int] = {}
    if bronze_df is not None:
        # The files are read once: what is counted and parsed is the batch as bronze now holds it, read
        # back from the version just written (columnar, only the columns each step needs). Keeping the
        # rows as read on disk instead cost more than this read (docs/benchmarks.md).
        written = io.latest_version(spark, lakehouse.path(BRONZE[contract.name]))
        bronze_df = lakehouse.read(spark, BRONZE[contract.name], version=written).where(batch_filter)
        per_file = bronze_df.groupBy("_source_file").count().collect()
        rows_per_file = {_file_key(r["_source_file"]): int(r["count"]) for r in per_file}
        result.rows_read = sum(rows_per_file.values())
        _to_silver(spark, cfg, lakehouse, contract, bronze_df, batch_id, salt, result)

    result.ledger_rows = [
        (
            contract.name,
            f.path,
            f.size_bytes,
            f.modification_time,
            batch_id,
            "ingested",
            None,
            rows_per_file.get(_file_key(f.path), 0),
            ingested_at,
        )
        for f in covered
    ] + [
        (
            contract.name,
            e.file.path,
            e.file.size_bytes,
            e.file.modification_time,
            batch_id,
            "failed",
            e.error,
            None,
            ingested_at,
        )
        for e in result.files_failed
    ]
    return result


def _to_silver(
    spark: SparkSession,
    cfg: IngestConfig,
    lakehouse: Lakehouse,
    contract: SourceContract,
    batch_df: DataFrame,
    batch_id: int,
    salt: str,
    result: SourceResult,
) -> None:
    batch_filter = f"{BATCH_ID} = {batch_id}"
    fx_daily_df = None
    if contract.has_currency and lakehouse.exists(spark, SILVER[FX_RATES.name]):
        fx_daily_df = fx_daily_rates(lakehouse.read(spark, SILVER[FX_RATES.name]), cfg.fx_max_staleness_days)
    parsed_df = parse_bronze(
        batch_df,
        contract,
        base_currency=cfg.base_currency,
        fx_daily_df=fx_daily_df,
        pii_salt=salt,
        max_abs_quantity=cfg.anomaly.max_abs_quantity,
        max_price=cfg.anomaly.max_price,
    )
    history_df = _history(spark, lakehouse, contract, cfg.anomaly.history_days)
    # Judge against history written by earlier batches only, so a re-run sees what the first run saw.
    if history_df is not None:
        history_df = history_df.where(F.col(BATCH_ID) != batch_id)
    flagged_df = judged_columns(
        flag_outliers(parsed_df, history_df, contract, cfg.anomaly), contract
    ).persist(SPILLED)
    silver = SILVER[contract.name]
    silver_path = lakehouse.path(silver)
    quarantine_df = quarantine_rows(flagged_df, contract).persist(SPILLED)
    try:
        result.rows_quarantined = quarantine_df.count()
        silver_df = lakehouse.read_declared(spark, silver)
        classified_df = classify_against_silver(
            flagged_df.where(F.size(REASONS) == 0), silver_df, contract, batch_id
        ).persist(SPILLED)
        try:
            status_counts: dict[str, int] = dict(classified_df.groupBy(ROW_STATUS).count().collect())
            changes_df = classified_df.where(F.col(ROW_STATUS).isin("new", "update"))
            before = io.latest_version(spark, silver_path)
            if contract.upsert:
                lakehouse.merge(silver, changes_df, "true")
            else:
                # Classification already removed every key silver holds, so an append is exact.
                lakehouse.append(silver, changes_df)
            written = _written_rows(spark, silver_path, before)
        finally:
            classified_df.unpersist()
    except BaseException:
        quarantine_df.unpersist()
        raise
    finally:
        flagged_df.unpersist()
    result.quarantine_df = quarantine_df
    result.rows_duplicate = int(status_counts.get("duplicate", 0))
    # Counted from the commit as written, not from what was meant to be written; a re-run of a batch
    # (rows it already owns) or a commit that cannot be told apart is counted from the table itself.
    own = int(status_counts.get("own", 0))
    result.rows_silver = (
        written if written is not None and own == 0 else io.count_where(spark, silver_path, batch_filter)
    )


def _write_quarantine(
    spark: SparkSession, lakehouse: Lakehouse, batch_id: int, results: list[SourceResult]
) -> None:
    """Every source's rejected rows in one commit that replaces the batch's (a re-run's included).

    The per-source counts taken before the write stand only if the commit wrote as many rows;
    otherwise they are counted again from the table.
    """
    parts = [r.quarantine_df for r in results if r.quarantine_df is not None]
    try:
        quarantine = lakehouse.path(QUARANTINE)
        if not parts and not lakehouse.exists(spark, QUARANTINE):
            return
        rows_df = (
            reduce(DataFrame.unionByName, parts) if parts else spark.createDataFrame([], QUARANTINE_SCHEMA)
        )
        batch_filter = f"{BATCH_ID} = {batch_id}"
        before = io.latest_version(spark, quarantine)
        lakehouse.replace_where(QUARANTINE, rows_df, batch_filter)
        if _written_rows(spark, quarantine, before) != sum(r.rows_quarantined for r in results):
            table = lakehouse.read(spark, QUARANTINE).where(batch_filter)
            counted: dict[str, int] = {
                r["source"]: r["count"] for r in table.groupBy("source").count().collect()
            }
            for r in results:
                r.rows_quarantined = int(counted.get(r.source, 0))
    finally:
        for part in parts:
            part.unpersist()
        for r in results:
            r.quarantine_df = None


def _written_rows(spark: SparkSession, path: str, before: int | None) -> int | None:
    """Rows the one commit since version ``before`` left in the table: a WRITE's output rows, a
    MERGE's inserted plus updated rows; None when that commit cannot be identified."""
    metrics = io.commit_metrics(spark, path, before)
    if metrics is None:
        return None
    if "numTargetRowsInserted" in metrics:
        return int(metrics["numTargetRowsInserted"]) + int(metrics.get("numTargetRowsUpdated", 0))
    return int(metrics["numOutputRows"]) if "numOutputRows" in metrics else None


def stale_sources(
    spark: SparkSession, lakehouse: Lakehouse, cfg: IngestConfig, run_date: date
) -> list[tuple[str, date | None]]:
    """Required sources with dated rows that have none in the ``max_staleness_days`` days up to
    ``run_date``: (source, last day silver holds up to then, None when it holds none)."""
    days = cfg.max_staleness_days
    if not days:
        return []
    stale = []
    for name in cfg.required_sources:
        contract = SOURCES[name]
        if not contract.date_column:
            continue  # a dimension (the catalog) is delivered when it changes, not every day
        day = F.col(contract.date_column)
        silver_df = lakehouse.read_declared(spark, SILVER[name])
        last = io.first_value(silver_df.where(day <= F.lit(run_date)).agg(F.max(day)))
        if last is None or last <= run_date - timedelta(days=days):
            stale.append((name, last))
    return stale


def pending_files(
    spark: SparkSession, landing: str, lakehouse: Lakehouse, icfg: IngestConfig
) -> dict[str, list[LandingFile]]:
    """Per source, the landing files no batch has ingested yet (a file is its path, size and time).

    Raises:
        IngestError: a required source has no files at all and never had any.
    """
    known = _known_files(spark, lakehouse)
    known_sources = {source for source, *_ in known}
    pending: dict[str, list[LandingFile]] = {}
    for name in SOURCES:
        files = list_landing_files(spark, landing, name)
        if name in icfg.required_sources and not files and name not in known_sources:
            raise IngestError(f"required source {name!r} has no files under {landing}/{name}/")
        new_files = [f for f in files if (name, f.path, f.size_bytes, f.modification_time) not in known]
        if new_files:
            pending[name] = new_files
        else:
            _progress(f"{name}: no new files")
    return pending


def _ingest_concurrently(
    pending: dict[str, list[LandingFile]], ingest: Callable[[str], SourceResult], workers: int
) -> dict[str, SourceResult]:
    """Run ``ingest`` for every pending source, ``workers`` at a time, FX first for the priced ones."""
    # Priced sources convert with silver fx_rates, so they start once FX is in; the others start with it
    # (each writes only its own tables; the batch's quarantine is written after all). A failing source
    # lets the others finish (a re-run replaces the whole batch); without FX the priced ones do not start.
    priced = [name for name in pending if SOURCES[name].has_currency and name != FX_RATES.name]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ingest") as pool:
        futures = {name: pool.submit(ingest, name) for name in pending if name not in priced}
        fx = futures.get(FX_RATES.name)
        if fx is None or fx.exception() is None:
            futures.update({name: pool.submit(ingest, name) for name in priced})
    try:
        return {name: future.result() for name, future in futures.items()}
    except BaseException:
        for future in futures.values():  # the sources that finished hold cached rejected rows
            rejected = future.result().quarantine_df if future.exception() is None else None
            if rejected is not None:
                rejected.unpersist()
        raise


def run_ingest(spark: SparkSession, lakehouse: Lakehouse, cfg: IngestConfig, landing: str) -> IngestReport:
    """Ingest every new file under the ``landing`` root, every source as part of one batch, then reconcile.

    Raises:
        IngestError: a required source has no files at all, or the PII secret is missing.
        ReconciliationError: some source's rows do not add up (the report is printed first).
    """
    landing = io.qualify(spark, landing)
    salt = pii_salt(cfg)
    batch_id = next_batch_id(spark, lakehouse)
    ingested_at = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None)
    pending = pending_files(spark, landing, lakehouse, cfg)

    def ingest(name: str) -> SourceResult:
        started = time.monotonic()
        _progress(f"{name}: ingesting {len(pending[name])} new files")
        result = ingest_source(
            spark, cfg, lakehouse, SOURCES[name], pending[name], batch_id, ingested_at, salt
        )
        _progress(
            f"{name}: {result.rows_read} rows read, {result.rows_silver} to silver, "
            f"{result.rows_quarantined} quarantined, {result.rows_duplicate} duplicates "
            f"({time.monotonic() - started:.1f}s)"
        )
        return result

    done = _ingest_concurrently(pending, ingest, cfg.parallel_sources)
    results = [done[name] for name in SOURCES if name in done]
    _write_quarantine(spark, lakehouse, batch_id, results)
    report = IngestReport(batch_id, ingested_at, results)
    _write_audit(spark, lakehouse, report)
    log.info(report.render())
    if not report.balanced:
        raise ReconciliationError(f"batch {batch_id} does not reconcile:\n{report.render()}")
    return report


def _progress(message: str) -> None:
    # Sources ingest in threads; a logging handler writes each record whole under its own lock.
    log.info("[ingest] %s", message)


def _write_audit(spark: SparkSession, lakehouse: Lakehouse, report: IngestReport) -> None:
    """Record the batch's files and reconciliation; the ledger commit is what marks files done.

    Until it lands, a re-run gets the same batch id and every earlier write of the batch is replaced.
    """
    if not report.results:
        return
    batch_filter = f"{BATCH_ID} = {report.batch_id}"
    reconciliation_rows = [
        (
            report.batch_id,
            r.source,
            r.files_ingested,
            len(r.files_failed),
            r.rows_read,
            r.rows_silver,
            r.rows_quarantined,
            r.rows_duplicate,
            r.rows_unaccounted,
            r.rows_unaccounted == 0,
            report.ingested_at,
        )
        for r in report.results
    ]
    lakehouse.replace_where(
        RECONCILIATION, spark.createDataFrame(reconciliation_rows, RECONCILIATION_SCHEMA), batch_filter
    )
    lakehouse.replace_where(
        INGESTED_FILES,
        spark.createDataFrame([row for r in report.results for row in r.ledger_rows], INGESTED_FILES_SCHEMA),
        batch_filter,
    )
