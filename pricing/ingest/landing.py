"""Landing zone -> bronze: find files not yet ingested and read them as delivered.

Every file under ``<landing>/<source>/`` (any depth; names starting with ``.`` or ``_`` are hidden, as
in Spark) is a delivery. A file is new when its (path, size, modification time) is not in the
``audit/ingested_files`` ledger, so a late file for an old date is picked up like any other, and a
second run with no new files reads nothing. Files that cannot be read are reported per file and never
stop the others.
"""

from __future__ import annotations

import csv
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import reduce
from typing import Any
from urllib.parse import unquote

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from pricing.config import local_path
from pricing.lakehouse.io import hadoop_fs, jvm
from pricing.platform.spark import log_level
from pricing.schemas import (
    BATCH_ID,
    CORRUPT_RECORD,
    EXTRA,
    INGESTED_AT,
    SOURCE_FILE,
    SourceContract,
)

log = logging.getLogger(__name__)

FORMATS_BY_SUFFIX = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".json.gz": "json",
    ".jsonl.gz": "json",
    ".parquet": "parquet",
}
_SNIFF_BYTES = 4096
_BOM = "\ufeff"
# Landing files are read through Hadoop's raw local filesystem: the checksummed one looks for a
# ".<name>.crc" beside each file, and builds that name as a relative Hadoop path, which fails for a
# name with a colon (export_2026-06-30T23:59:59.csv: "Relative path in absolute URI"). Deliveries
# never have such checksum files. Options of a read reach its Hadoop configuration; uncached, so
# this read gets its own raw instance and every other use of file: paths keeps the shared one.
RAW_LOCAL_READ = {
    "fs.file.impl": "org.apache.hadoop.fs.RawLocalFileSystem",
    "fs.file.impl.disable.cache": "true",
}


@dataclass(frozen=True)
class LandingFile:
    """One delivered file, identified by path, size and modification time."""

    source: str
    path: str
    size_bytes: int
    modification_time: int

    @property
    def file_format(self) -> str | None:
        name = self.path.lower()
        for suffix, fmt in sorted(FORMATS_BY_SUFFIX.items(), key=lambda item: -len(item[0])):
            if name.endswith(suffix):
                return fmt
        return None


@dataclass(frozen=True)
class FileError:
    """A file that could not be ingested, and why."""

    file: LandingFile
    error: str


def _hidden(relative: str) -> bool:
    return any(part.startswith((".", "_")) for part in relative.split("/") if part)


def list_landing_files(spark: SparkSession, landing_root: str, source: str) -> list[LandingFile]:
    """All visible files under ``<landing_root>/<source>/``, recursively, through Hadoop's FileSystem.

    Works for any filesystem Spark can reach (local, HDFS, S3A, ABFS, DBFS). A local landing is walked
    in Python, with the paths, sizes and times Hadoop gives: Hadoop's listing costs six py4j calls a
    file (11 s for the demo's 1,800 files).
    """
    fs, root = hadoop_fs(spark, f"{landing_root.rstrip('/')}/{source}")
    root_uri = fs.makeQualified(root).toString().rstrip("/")
    if root_uri.startswith("file:/"):
        local = _list_local(source, root_uri)
        if local is not None:
            return local
    return _list_hadoop(fs, root, root_uri, source)


def _list_hadoop(fs: Any, root: Any, root_uri: str, source: str) -> list[LandingFile]:
    if not fs.exists(root):
        return []
    files = []
    iterator = fs.listFiles(root, True)
    while iterator.hasNext():
        status = iterator.next()
        path = status.getPath().toString()
        if _hidden(path[len(root_uri) :]):
            continue
        files.append(LandingFile(source, path, int(status.getLen()), int(status.getModificationTime())))
    return sorted(files, key=lambda f: f.path)


def _list_local(source: str, root_uri: str) -> list[LandingFile] | None:
    """Hadoop's listing of a local folder (``file:<absolute path>``, size, mtime in ms, symlinks
    followed); None when a name is not UTF-8, which Java decodes differently, so Hadoop lists it."""
    base = local_path(root_uri)
    if base is None or not os.path.isdir(base):
        return []
    files = []
    for folder, folders, names in os.walk(base, followlinks=True):
        folders[:] = [name for name in folders if not _hidden(name)]  # Hadoop's rule, one name at a time
        for name in names:
            if _hidden(name):
                continue
            path = os.path.join(folder, name)
            try:
                path.encode("utf-8")
            except UnicodeEncodeError:
                return None
            stat = os.stat(path)
            files.append(LandingFile(source, f"file:{path}", stat.st_size, stat.st_mtime_ns // 1_000_000))
    return sorted(files, key=lambda f: f.path)


def _head(spark: SparkSession, path: str, limit: int = _SNIFF_BYTES) -> bytes:
    """The first ``limit`` bytes of a file, decompressed when its codec is known (e.g. .gz)."""
    fs, hadoop_path = hadoop_fs(spark, path)
    if jvm(spark).java.lang.Class.forName("org.apache.hadoop.fs.ChecksumFileSystem").isInstance(fs):
        fs = fs.getRawFileSystem()  # see RAW_LOCAL_READ
    codec = (
        jvm(spark)
        .org.apache.hadoop.io.compress.CompressionCodecFactory(spark.sparkContext._jsc.hadoopConfiguration())
        .getCodec(hadoop_path)
    )
    stream = fs.open(hadoop_path)
    try:
        if codec is not None:
            stream = codec.createInputStream(stream)
        # readNBytes returns a byte[], which py4j hands over as bytes in one call.
        return bytes(stream.readNBytes(limit))
    finally:
        stream.close()


def sniff_text(spark: SparkSession, file: LandingFile) -> str:
    """First bytes of a text file as UTF-8; raises ValueError for binary or undecodable content."""
    try:
        head = _head(spark, file.path)
    except Exception as error:  # noqa: BLE001 - any I/O or codec error makes the file unreadable
        raise ValueError(f"cannot open: {_short(error)}") from error
    if b"\x00" in head:
        raise ValueError("binary content (NUL bytes) in a text file")
    try:
        # A multi-byte character cut at the sniff boundary is not an error.
        return head.decode("utf-8") if len(head) < _SNIFF_BYTES else head[:-4].decode("utf-8", "strict")
    except UnicodeDecodeError as error:
        raise ValueError(f"not UTF-8 text: {error.reason} at byte {error.start}") from error


def _short(error: BaseException) -> str:
    """One line saying why: the innermost Java cause when there is one, else the first line."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    causes = [line.removeprefix("Caused by:").strip() for line in lines if line.startswith("Caused by:")]
    text = causes[-1] if causes else (lines[0] if lines else type(error).__name__)
    return text[:300]


def failed_read(error: BaseException, files: list[LandingFile]) -> FileError | None:
    """The file a Spark job could not read (``FAILED_READ_FILE``), when it is one of ``files``.

    Some damage shows only past the bytes sniffed before a batch is written (a gzip stream cut off
    after its first 4 KB): the write fails naming the file, which is then reported on its own.
    """
    text = str(error)
    if "FAILED_READ_FILE" not in text:
        return None
    named = unquote(text)
    # The longest match: "a.csv" is also inside a message that names "a.csv.gz".
    matches = [f for f in files if unquote(f.path).removeprefix("file:") in named]
    if not matches:
        return None
    file = max(matches, key=lambda f: len(f.path))
    return FileError(file, f"unreadable {file.file_format}: {_short(error)}")


def _csv_header(text: str, contract: SourceContract) -> tuple[str, ...]:
    """The header of a CSV file whose first bytes (byte-order mark dropped) are ``text``."""
    first_line = text.splitlines()[0] if text else ""
    header = tuple(next(csv.reader([first_line]), []))
    if not any(name.strip() for name in header):
        raise ValueError("no CSV header on the first line")
    normalised = [name.strip().lower() for name in header]
    if len(set(normalised)) != len(normalised):
        raise ValueError(f"duplicate column names in CSV header {list(header)}")
    missing = [c for c in contract.required if c not in normalised]
    if missing:
        raise ValueError(f"CSV header lacks required columns {missing}: got {list(header)}")
    return header


def _read_csv(spark: SparkSession, paths: list[str], header: tuple[str, ...], multiline: bool) -> DataFrame:
    # All columns as strings: types are checked in silver, where a bad value is quarantined with
    # its reason instead of failing the file. Files are grouped by header because a CSV schema is
    # positional. multiLine (ingest.csv_multiline_sources): a quoted field may hold line breaks.
    schema = StructType(
        [StructField(name, StringType()) for name in header] + [StructField(CORRUPT_RECORD, StringType())]
    )
    return (
        spark.read.format("csv")
        .options(**RAW_LOCAL_READ)
        .schema(schema)
        .option("header", True)
        .option("multiLine", multiline)
        # RFC 4180, as spreadsheets write it: a quote inside a quoted field is doubled ("").
        .option("escape", '"')
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT_RECORD)
        .option("recursiveFileLookup", True)
        .load(paths)
    )


def _read_json(spark: SparkSession, paths: list[str]) -> DataFrame:
    # Read as text and parse each line to a map: JSON keys differ in case between files (and
    # Spark's schema inference refuses case-variant duplicates); every value keeps its JSON text.
    reader = spark.read.format("text").options(**RAW_LOCAL_READ)
    lines = reader.option("recursiveFileLookup", True).load(paths)
    return (
        # A byte-order mark can only open a file's first line, which it would make unparseable.
        lines.select(F.regexp_replace("value", f"^{_BOM}", "").alias("value"), "_metadata")
        .where(F.trim("value") != "")
        .select("value", F.col("_metadata.file_path").alias("_file_path"))
    )


def json_to_bronze_rows(
    lines_df: DataFrame,
    contract: SourceContract,
    batch_id: int,
    ingested_at: datetime,
) -> DataFrame:
    """JSON lines -> the bronze schema; a line that is not a JSON object is kept as corrupt."""
    fields = F.from_json("value", "map<string,string>", {"mode": "PERMISSIVE"})
    parsed = lines_df.select("value", "_file_path", fields.alias("_fields"))
    lowered = F.map_from_entries(
        F.transform(F.map_entries("_fields"), lambda e: F.struct(F.lower(F.trim(e["key"])), e["value"]))
    )
    contract_names = F.array(*[F.lit(c) for c in contract.columns])
    extra = F.map_filter("_fields", lambda k, _: ~F.array_contains(contract_names, F.lower(F.trim(k))))
    empty = F.create_map().cast("map<string,string>")
    # Most lines spell only contract columns, as the contract does: then lowering changes nothing and
    # there are no extras, so plain map look-ups give the same values without the per-row lambdas
    # (half the cost of turning clickstream JSON into bronze rows; docs/benchmarks.md).
    plain = F.size(F.array_except(F.map_keys("_fields"), contract_names)) == 0
    return parsed.select(
        *[F.when(plain, F.col("_fields")[c]).otherwise(lowered[c]).alias(c) for c in contract.columns],
        F.when(plain, empty).otherwise(F.coalesce(extra, empty)).alias(EXTRA),
        F.when(F.col("_fields").isNull(), F.col("value")).alias(CORRUPT_RECORD),
        F.col("_file_path").alias(SOURCE_FILE),
        F.lit(ingested_at).cast("timestamp").alias(INGESTED_AT),
        F.lit(batch_id).cast("long").alias(BATCH_ID),
    )


def _read_parquet(spark: SparkSession, paths: list[str]) -> DataFrame:
    return (
        spark.read.format("parquet")
        .options(**RAW_LOCAL_READ)
        .option("mergeSchema", True)
        .option("recursiveFileLookup", True)
        .load(paths)
    )


def to_bronze_rows(
    raw_df: DataFrame,
    contract: SourceContract,
    batch_id: int,
    ingested_at: datetime,
) -> DataFrame:
    """Raw rows of one format group -> the bronze schema.

    Column names match the contract case-insensitively; values become strings exactly as delivered
    (nested values as JSON); columns outside the contract are kept in ``_extra``.
    """
    by_lower: dict[str, str] = {}
    for name in raw_df.columns:
        if name == CORRUPT_RECORD:
            continue
        by_lower.setdefault(name.strip().lower(), name)
    types = dict(raw_df.dtypes)

    def as_string(name: str) -> Any:
        column = F.col(f"`{name}`")
        if types[name].startswith(("struct", "array", "map")):
            return F.to_json(column)
        return column.cast("string")

    contract_cols = [
        (as_string(by_lower[c]) if c in by_lower else F.lit(None).cast("string")).alias(c)
        for c in contract.columns
    ]
    extra_names = [original for lower, original in by_lower.items() if lower not in contract.types]
    extra = (
        F.create_map(*[part for n in extra_names for part in (F.lit(n), as_string(n))])
        if extra_names
        else F.create_map().cast("map<string,string>")
    )
    corrupt = F.col(CORRUPT_RECORD) if CORRUPT_RECORD in raw_df.columns else F.lit(None).cast("string")
    return raw_df.select(
        *contract_cols,
        extra.alias(EXTRA),
        corrupt.alias(CORRUPT_RECORD),
        F.col("_metadata.file_path").alias(SOURCE_FILE),
        F.lit(ingested_at).cast("timestamp").alias(INGESTED_AT),
        F.lit(batch_id).cast("long").alias(BATCH_ID),
    )


def _try_groups(
    spark: SparkSession,
    files: list[LandingFile],
    reader: Any,
) -> tuple[list[tuple[list[LandingFile], DataFrame]], list[FileError]]:
    """Read files together; when that fails, read them one by one to isolate the bad ones.

    A corrupt file makes Spark log a full stack trace per attempt; the reason is reported per file
    instead, so executor logging is quietened while probing.
    """
    with _quiet_spark(spark):
        return _probe_groups(files, reader)


_quiet_lock = threading.Lock()
_quiet_depth = 0


@contextmanager
def _quiet_spark(spark: SparkSession) -> Iterator[None]:
    """Spark's logging off while any thread probes (sources are ingested concurrently)."""
    global _quiet_depth
    with _quiet_lock:
        _quiet_depth += 1
        if _quiet_depth == 1:
            spark.sparkContext.setLogLevel("OFF")
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                spark.sparkContext.setLogLevel(log_level(spark))


def _probe_groups(
    files: list[LandingFile],
    reader: Any,
) -> tuple[list[tuple[list[LandingFile], DataFrame]], list[FileError]]:
    paths = [f.path for f in files]
    try:
        df = reader(paths)
        df.schema  # noqa: B018 - forces footer/schema reads so a corrupt file fails here
        return [(files, df)], []
    except Exception as group_error:  # noqa: BLE001
        log.warning("reading %d files together failed (%s); isolating", len(files), _short(group_error))
    readable, failed = [], []
    for file in files:
        try:
            df = reader([file.path])
            df.schema  # noqa: B018
            readable.append(file)
        except Exception as error:  # noqa: BLE001
            failed.append(FileError(file, f"unreadable {file.file_format}: {_short(error)}"))
    if not readable:
        return [], failed
    return [(readable, reader([f.path for f in readable]))], failed


def read_new_files(
    spark: SparkSession,
    contract: SourceContract,
    files: list[LandingFile],
    batch_id: int,
    ingested_at: datetime,
    csv_multiline: bool = False,
) -> tuple[DataFrame | None, list[LandingFile], list[FileError]]:
    """Read ``files`` of one source into bronze rows (``csv_multiline``: quoted CSV fields may span lines).

    Returns:
        The bronze DataFrame (None when nothing was readable), the files it covers (empty ones
        included: a delivery of nothing is ingested with 0 rows), and the files that could not be
        read with the reason for each.
    """
    failed: list[FileError] = []
    empty: list[LandingFile] = []
    groups: list[tuple[list[LandingFile], DataFrame]] = []
    csv_by_header: dict[tuple[str, ...], list[LandingFile]] = {}
    json_files: list[LandingFile] = []
    parquet_files: list[LandingFile] = []
    for file in files:
        fmt = file.file_format
        try:
            # A delivery of nothing: zero bytes, or (compressed or not) only blank lines.
            if fmt is not None and file.size_bytes == 0:
                empty.append(file)
            elif fmt in ("csv", "json"):
                # Sniffed once: the first bytes say whether it is text, empty, and its CSV header.
                # Excel's "CSV UTF-8" starts with a byte-order mark; Spark skips the header line itself.
                text = sniff_text(spark, file).removeprefix(_BOM)
                if not text.strip():
                    empty.append(file)
                elif fmt == "csv":
                    csv_by_header.setdefault(_csv_header(text, contract), []).append(file)
                else:
                    json_files.append(file)
            elif fmt == "parquet":
                parquet_files.append(file)
            else:
                supported = ", ".join(sorted(FORMATS_BY_SUFFIX))
                raise ValueError(f"unsupported file type (supported: {supported})")
        except ValueError as error:
            failed.append(FileError(file, str(error)))
    for header, header_files in csv_by_header.items():
        found, errors = _try_groups(
            spark, header_files, lambda p, h=header: _read_csv(spark, p, h, csv_multiline)
        )
        groups += found
        failed += errors
    if json_files:
        found, errors = _try_groups(spark, json_files, lambda p: _read_json(spark, p))
        json_groups = found
        failed += errors
    else:
        json_groups = []
    if parquet_files:
        found, errors = _try_groups(spark, parquet_files, lambda p: _read_parquet(spark, p))
        groups += found
        failed += errors
    if not groups and not json_groups:
        return None, empty, failed
    bronze_parts = [to_bronze_rows(df, contract, batch_id, ingested_at) for _, df in groups]
    bronze_parts += [json_to_bronze_rows(df, contract, batch_id, ingested_at) for _, df in json_groups]
    bronze_df = reduce(DataFrame.unionByName, bronze_parts)
    covered = [file for group_files, _ in groups + json_groups for file in group_files]
    return bronze_df, covered + empty, failed
