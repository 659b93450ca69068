"""The one place that builds SparkSessions and configures Delta Lake.

Delta's JARs come from Maven Central through Spark's Ivy resolution (``spark.jars.packages``).
``make setup`` runs :func:`prefetch_delta_jars` once; afterwards sessions load the cached JARs with
``spark.jars`` and start without touching the network.
"""

from __future__ import annotations

import os
import re
import sys
from importlib import metadata
from pathlib import Path

from pyspark.sql import SparkSession

from pricing.config import SparkConfig

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
QUIET_LOG4J = Path(__file__).parents[1] / "log4j2-quiet.properties"
# The session's own log level, kept in its conf so code that silences Spark for a while can restore it.
LOG_LEVEL_CONF = "spark.pricing.logLevel"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
SCALA_BINARY_VERSION = "2.13"

_VERSIONED_JAR = re.compile(r"^(?P<artifact>.+?)-(?P<version>\d[\w.\-]*)\.jar$")


def delta_version(cfg: SparkConfig) -> str:
    """The Delta version to load: configured, else the installed ``delta-spark`` package's."""
    return cfg.delta_version or metadata.version("delta-spark")


def delta_maven_coordinate(cfg: SparkConfig) -> str:
    """``io.delta:delta-spark_<spark major.minor>_2.13:<version>`` for the installed pyspark."""
    import pyspark

    spark_major_minor = ".".join(pyspark.__version__.split(".")[:2])
    return f"io.delta:delta-spark_{spark_major_minor}_{SCALA_BINARY_VERSION}:{delta_version(cfg)}"


def jar_cache_dir(cfg: SparkConfig) -> Path:
    """Where Ivy keeps Delta's JARs: ``spark.jar_cache_dir``, by default in the user's cache folder
    (``$XDG_CACHE_HOME``, else ``~/.cache``), so a command finds them from any working folder."""
    if cfg.jar_cache_dir:
        return Path(cfg.jar_cache_dir).expanduser().resolve()
    return user_cache_dir() / "ivy"


def user_cache_dir() -> Path:
    """The product's folder in the user's cache (``$XDG_CACHE_HOME``, else ``~/.cache``)."""
    user_cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(user_cache).expanduser().resolve() / "pricing-lakehouse"


def _spark_bundled_artifacts() -> set[str]:
    import pyspark

    jars_dir = Path(pyspark.__file__).parent / "jars"
    names = set()
    for jar in jars_dir.glob("*.jar"):
        match = _VERSIONED_JAR.match(jar.name)
        names.add(match.group("artifact") if match else jar.stem)
    return names


def cached_delta_jars(cfg: SparkConfig) -> list[str]:
    """Delta JARs already resolved into the cache, minus artifacts Spark itself ships.

    Ivy also resolves Delta's transitive Hadoop, Parquet and Jackson JARs, older than Spark's own;
    putting those on the classpath would shadow Spark's versions, so they are left out.

    Returns:
        Absolute JAR paths, or an empty list when the Delta JAR for this version is not cached.
    """
    jars_dir = jar_cache_dir(cfg) / "jars"
    coordinate = delta_maven_coordinate(cfg)
    _, artifact, version = coordinate.split(":")
    if not (jars_dir / f"io.delta_{artifact}-{version}.jar").is_file():
        return []
    bundled = _spark_bundled_artifacts()
    selected = []
    for jar in sorted(jars_dir.glob("*.jar")):
        ivy_name = jar.name.split("_", 1)[1] if "_" in jar.name else jar.name
        match = _VERSIONED_JAR.match(ivy_name)
        artifact_name = match.group("artifact") if match else ivy_name
        # Other Delta versions left in a shared cache must not load beside this one.
        if jar.name.startswith("io.delta_") and not jar.name.endswith(f"-{version}.jar"):
            continue
        if artifact_name not in bundled:
            selected.append(str(jar))
    return selected


# Generated classes kept for reuse: a first evaluation market (a backfill night) compiled about 1,000.
CODEGEN_CACHE_ENTRIES = 4096


def session_conf(cfg: SparkConfig, use_packages: bool = False) -> dict[str, str]:
    """Every Spark setting a pricing session gets, as one dict (also used to write spark-defaults)."""
    conf: dict[str, str] = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(cfg.shuffle_partitions),
        "spark.ui.enabled": str(cfg.ui_enabled).lower(),
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Delta rebuilds table state with 50 tasks by default; as many as shuffles is plenty here.
        "spark.databricks.delta.snapshotPartitions": str(max(1, cfg.shuffle_partitions)),
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        # A JSON record with one key in two cases ("sku", "SKU") keeps the last, as JSON parsers do.
        "spark.sql.mapKeyDedupPolicy": "LAST_WIN",
        # Spark keeps 100 compiled query classes by default; a night compiles about 1,000 and a second
        # market in the same process recompiled 1,327 of them (36 with this cache; docs/benchmarks.md).
        "spark.sql.codegen.cache.maxEntries": str(CODEGEN_CACHE_ENTRIES),
    }
    if cfg.driver_memory:
        conf["spark.driver.memory"] = cfg.driver_memory
    conf[LOG_LEVEL_CONF] = "WARN" if cfg.verbose else "ERROR"
    if not cfg.verbose:
        conf["spark.ui.showConsoleProgress"] = "false"
        # Applies where this process starts the driver JVM (local mode); spark-submit's JVM keeps its own.
        conf["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile={QUIET_LOG4J.as_uri()}"
    if cfg.configure_delta:
        conf["spark.sql.extensions"] = DELTA_EXTENSION
        conf["spark.sql.catalog.spark_catalog"] = DELTA_CATALOG
        jars = [] if use_packages else cached_delta_jars(cfg)
        if jars:
            conf["spark.jars"] = ",".join(jars)
        else:
            conf["spark.jars.packages"] = delta_maven_coordinate(cfg)
            conf["spark.jars.ivy"] = str(jar_cache_dir(cfg))
    for key, value in cfg.extra_conf.items():
        if key == "spark.driver.extraJavaOptions" and key in conf:
            value = f"{conf[key]} {value}"  # the user's options come last, so they win
        conf[key] = value
    return conf


def build_spark(cfg: SparkConfig, use_packages: bool = False) -> SparkSession:
    """Get or create the SparkSession for a run, with Delta, UTC and the configured defaults.

    Under ``spark-submit`` the master given there wins; ``cfg.master`` is used only when the
    session is started from plain Python (tests, notebooks, the ``pricing`` CLI).
    """
    # Workers must run the same interpreter as the driver (the project's venv), not the system one.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(cfg.app_name)
    if cfg.master and "spark.master" not in _submitted_conf():
        builder = builder.master(cfg.master)
        if cfg.master.startswith("local"):
            # The product reads and writes tables by path, but Spark still creates its (empty)
            # warehouse folder, by default under the folder the command started from. A cluster's
            # own warehouse is left alone; spark.extra_conf, set after, still wins.
            builder = builder.config("spark.sql.warehouse.dir", str(user_cache_dir() / "spark-warehouse"))
    for key, value in session_conf(cfg, use_packages=use_packages).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(log_level(spark))
    return spark


def log_level(spark: SparkSession) -> str:
    """The session's Spark log level: ERROR, or WARN with ``spark.verbose`` (``--verbose``)."""
    return spark.conf.get(LOG_LEVEL_CONF, "WARN") or "WARN"


def _submitted_conf() -> set[str]:
    # Under spark-submit the Python driver attaches to a JVM that already holds the submitted
    # settings (PYSPARK_GATEWAY_PORT is set); setting master again would override --master.
    if "PYSPARK_GATEWAY_PORT" in os.environ or "--master" in os.environ.get("PYSPARK_SUBMIT_ARGS", ""):
        return {"spark.master"}
    return set()


def prefetch_delta_jars(cfg: SparkConfig) -> list[str]:
    """Resolve Delta through Ivy into :func:`jar_cache_dir` and prove a Delta round trip works.

    Returns:
        The cached JARs later sessions will load.
    """
    import tempfile

    from pricing.lakehouse import io

    if cached_delta_jars(cfg):
        return cached_delta_jars(cfg)
    spark = build_spark(cfg, use_packages=True)
    with tempfile.TemporaryDirectory() as tmp:
        probe = spark.range(3)
        io.append(probe, f"{tmp}/probe", probe.schema, "the Delta probe")
        rows = io.read_table(spark, f"{tmp}/probe").count()
    spark.stop()
    if rows != 3:
        raise RuntimeError(f"Delta probe table read back {rows} rows, expected 3")
    jars = cached_delta_jars(cfg)
    if not jars:
        raise RuntimeError(f"Ivy finished but no Delta JAR is in {jar_cache_dir(cfg) / 'jars'}")
    return jars
