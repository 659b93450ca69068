"""`pricing nightly`: one night of the pipeline, locked, idempotent and crash-safe.

The night of ``run_date`` (whose data has landed) runs ingest -> match (competitor listings, when a
competitor delivers them) -> features -> train (when due) ->
score (prices for ``run_date + 1``) -> reconcile -> maintain -> report (pricing.nightly.report), and
records every stage in ``audit/runs`` (one row per night, written when it starts and when it ends).
The night's run id is ``nightly-<run_date>``, so every write of a night is keyed on the same id however
often it runs.

Why running a night again (after a crash, or by mistake) is safe, stage by stage:

- A night that succeeded is skipped outright: nothing is written.
- ingest: files are marked done only by the ledger commit; a batch killed before it is redone under
  the same batch id, and each of its writes replaces that batch's rows.
- match: rewrites the matches and the review queue whole from silver and the people's decisions; an
  unchanged match keeps its batch, so a re-run changes nothing.
- features: the panel is MERGEd on (sku, date) from the last committed feature run's watermark; the
  stage is done once ``audit/feature_runs`` holds the night's run id.
- train: the MLflow run carries the night's run id as a tag. A finished run is reused; one that
  registered its model but died before gating is gated; one that died earlier is marked FAILED and
  training starts again (deterministic for a seed, so the model is the same).
- score: MERGEs keyed on (sku, price_date) and sku, stamped with the night's run id.
- reconcile and maintain only read, or rewrite files without changing table contents; report
  overwrites the night's one HTML file.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import mlflow
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

import pricing
from pricing.config import PricingConfig
from pricing.decide.stage import run_score
from pricing.features import run_features
from pricing.ingest import run_ingest, stale_sources
from pricing.lakehouse import io
from pricing.lakehouse.maintain import maintain_tables
from pricing.lakehouse.tables import (
    CURRENT_PRICES,
    FEATURE_RUNS,
    PRICE_RECOMMENDATIONS,
    RECONCILIATION,
    RUNS,
    SKU_CALENDAR,
    SKU_DAY,
    Lakehouse,
)
from pricing.matching import run_matching
from pricing.model.train import promote, run_train
from pricing.nightly.report import write_night_report
from pricing.nightly.retrain import retrain_reason
from pricing.platform.lock import LakehouseLock
from pricing.schemas import RUNS_SCHEMA

log = logging.getLogger(__name__)

RUN_TAG = "nightly_run_id"


class NightlyError(RuntimeError):
    """The night cannot run (e.g. a later night already ran) or a reconciliation check failed."""


def night_run_id(run_date: date) -> str:
    return f"nightly-{run_date.isoformat()}"


@dataclass
class Stage:
    stage: str
    status: str  # done | skipped
    seconds: float
    rows_written: int | None
    bytes_read: int
    bytes_written: int
    detail: str | None


@dataclass
class NightlyReport:
    """The ``audit/runs`` row of a night, as the job last wrote it."""

    run_date: date
    run_id: str
    price_date: date
    status: str = "running"
    attempt: int = 1
    stages: list[Stage] = field(default_factory=list)
    model_version: str | None = None
    retrained: bool = False
    retrain_reason: str | None = None
    skus_priced: int | None = None
    checks: list[tuple[str, bool, str | None]] = field(default_factory=list)
    maintenance: list[str] = field(default_factory=list)
    error: str | None = None
    host: str = field(default_factory=socket.gethostname)
    started_at: datetime = field(default_factory=lambda: _now())
    finished_at: datetime | None = None
    seconds: float | None = None
    report_path: str | None = None

    def row(self) -> tuple[Any, ...]:
        return (
            self.run_date,
            self.run_id,
            self.price_date,
            self.status,
            self.attempt,
            [tuple(vars(s).values()) for s in self.stages],
            self.model_version,
            self.retrained,
            self.retrain_reason,
            self.skus_priced,
            self.checks,
            self.maintenance,
            self.error,
            self.host,
            self.started_at,
            self.finished_at,
            self.seconds,
            self.report_path,
        )

    def render(self) -> str:
        lines = [
            f"night {self.run_date} ({self.run_id}, attempt {self.attempt}): {self.status}; "
            f"prices for {self.price_date}, model {self.model_version or '-'}"
            + (f", retrained ({self.retrain_reason})" if self.retrained else ""),
            f"  {'stage':<10} {'status':<8} {'seconds':>8} {'rows out':>10} {'MB read':>9} "
            f"{'MB written':>10}",
        ]
        for s in self.stages:
            rows = "-" if s.rows_written is None else f"{s.rows_written:,}"
            lines.append(
                f"  {s.stage:<10} {s.status:<8} {s.seconds:>8.1f} {rows:>10} "
                f"{s.bytes_read / 1e6:>9.2f} {s.bytes_written / 1e6:>10.2f}  {s.detail or ''}"
            )
        failed = [c for c in self.checks if not c[1]]
        lines.append(f"  checks: {len(self.checks) - len(failed)}/{len(self.checks)} passed")
        lines += [f"    FAILED {name}: {detail}" for name, _, detail in failed]
        if self.maintenance:
            lines.append(f"  maintenance: {', '.join(self.maintenance)}")
        if self.report_path:
            lines.append(f"  report: {self.report_path}")
        return "\n".join(lines)


def _save_run(spark: SparkSession, lakehouse: Lakehouse, report: NightlyReport) -> None:
    """Replace the night's one ``audit/runs`` row in one commit (a replaceWhere writes only the new row,
    where a MERGE would first join the whole table)."""
    lakehouse.replace_where(
        RUNS,
        spark.createDataFrame([report.row()], RUNS_SCHEMA),
        f"run_date = DATE'{report.run_date.isoformat()}'",
    )


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)


class _IoMeter:
    """Bytes read and written by the Spark stages run since the last reading (Spark's status store).

    Counts what tasks read from and wrote to files; the driver's own small reads (Delta logs) and
    the training processes' Parquet reads are not included.
    """

    def __init__(self, spark: SparkSession) -> None:
        self._store = spark.sparkContext._jsc.sc().statusStore()
        gateway = spark.sparkContext._gateway
        assert gateway is not None
        self._no_quantiles = gateway.new_array(gateway.jvm.double, 0)
        self._seen = -1
        self.take()

    def take(self) -> tuple[int, int]:
        stages = self._store.stageList(None, False, False, self._no_quantiles, None)
        read = written = 0
        seen = self._seen
        # The store lists stages newest first (AppStatusStore.stageList reverses its id index) and
        # keeps up to spark.ui.retainedStages of them: stop at the first one already counted, so a
        # reading costs py4j calls per new stage, not per stage the session ever ran.
        for i in range(stages.size()):
            stage = stages.apply(i)
            stage_id = int(stage.stageId())
            if stage_id <= self._seen:
                break
            read += int(stage.inputBytes())
            written += int(stage.outputBytes())
            seen = max(seen, stage_id)
        self._seen = seen
        return read, written


class NightlyRun:
    """One night of the pipeline; :meth:`run` does it (see the module docstring)."""

    def __init__(
        self,
        spark: SparkSession,
        cfg: PricingConfig,
        run_date: date,
        landing: str | None = None,
        lakehouse_root: str | None = None,
    ) -> None:
        self.spark, self.cfg = spark, cfg
        self.landing = io.qualify(spark, landing or cfg.paths.landing)
        self.lakehouse = Lakehouse.at(spark, lakehouse_root or cfg.paths.lakehouse)
        self.report = NightlyReport(run_date, night_run_id(run_date), run_date + timedelta(days=1))
        self._meter: _IoMeter | None = None

    # -- bookkeeping -------------------------------------------------------------------------

    def _save(self) -> None:
        # Written when the night starts (its attempt) and when it ends (every stage): a commit per stage
        # cost about 3 s each, a fifth of a small night.
        _save_run(self.spark, self.lakehouse, self.report)

    def _stage(self, name: str, work: Callable[[], tuple[str, int | None, str]]) -> None:
        assert self._meter is not None
        log.info(f"[nightly] {name}: started")
        started = time.monotonic()
        self._meter.take()
        status, rows, detail = work()
        read, written = self._meter.take()
        stage = Stage(name, status, round(time.monotonic() - started, 2), rows, read, written, detail)
        self.report.stages.append(stage)
        log.info(f"[nightly] {name}: {status} in {stage.seconds:.1f}s: {detail}")

    # -- stages ------------------------------------------------------------------------------

    def _ingest(self) -> tuple[str, int | None, str]:
        report = run_ingest(self.spark, self.lakehouse, self.cfg.ingest, self.landing)
        if not report.results:
            return "done", 0, "no new files"
        files = sum(r.files_ingested for r in report.results)
        rows = sum(r.rows_silver for r in report.results)
        quarantined = sum(r.rows_quarantined for r in report.results)
        return "done", rows, f"batch {report.batch_id}: {files} files, {quarantined} rows quarantined"

    def _check_fresh(self) -> None:
        stale = stale_sources(self.spark, self.lakehouse, self.cfg.ingest, self.report.run_date)
        if stale:
            seen = "; ".join(f"{name}: last day {last or 'none'}" for name, last in stale)
            raise NightlyError(
                f"stale data: no rows in the {self.cfg.ingest.max_staleness_days} day(s) up to "
                f"{self.report.run_date} ({seen}); prices were not changed. Deliver the missing files and "
                "run the night again (ingest.max_staleness_days=0 turns the check off)"
            )

    def _match(self) -> tuple[str, int | None, str]:
        report = run_matching(self.spark, self.lakehouse, self.cfg.matching, self.cfg.features)
        if not report.listings:
            return "skipped", None, "no competitor listings to match"
        return ("skipped" if report.skipped else "done"), report.matched, report.render()

    def _features(self) -> tuple[str, int | None, str]:
        runs = self.lakehouse.read_declared(self.spark, FEATURE_RUNS)
        earlier = runs.where(F.col("run_id") == self.report.run_id).first()
        if earlier is not None:
            return "skipped", None, f"done by an earlier attempt ({earlier.rows_written} rows written)"
        report = run_features(
            self.spark,
            self.lakehouse,
            self.cfg.features,
            self.cfg.catalog,
            run_date=self.report.run_date,
            run_id=self.report.run_id,
        )
        return "done", report.rows_written, f"{report.mode}: {report.skus_recomputed} SKUs recomputed"

    def _train(self) -> tuple[str, int | None, str]:
        tcfg = self.cfg.train
        mlflow.set_tracking_uri(tcfg.tracking_uri)
        client = mlflow.MlflowClient()
        experiment = client.get_experiment_by_name(tcfg.experiment)
        earlier = (
            client.search_runs([experiment.experiment_id], f"tags.{RUN_TAG} = '{self.report.run_id}'")
            if experiment
            else []
        )
        for run in earlier:
            version = run.data.tags.get("model_version")
            if run.info.status == "FINISHED" and version:
                self.report.retrained, self.report.retrain_reason = True, run.data.tags.get("retrain_reason")
                return (
                    "skipped",
                    None,
                    f"done by an earlier attempt: v{version} ({run.data.tags.get('alias')})",
                )
        for run in earlier:
            registered = client.search_model_versions(f"run_id = '{run.info.run_id}'")
            if registered:
                # Died between registering and gating: finish that run instead of training again.
                version = str(registered[0].version)
                _, alias = promote(self.spark, self.lakehouse, self.cfg.train, run.info.run_id, version)
                client.set_terminated(run.info.run_id, "FINISHED")
                self.report.retrained, self.report.retrain_reason = True, run.data.tags.get("retrain_reason")
                return "done", None, f"resumed: v{version} gated ({alias})"
            client.set_terminated(run.info.run_id, "FAILED")
        reason = retrain_reason(self.spark, self.lakehouse, self.cfg, self.report.run_date)
        if reason is None:
            return "skipped", None, "champion is fresh and within drift limits"
        log.info(f"[nightly] train: retraining: {reason}")
        report = run_train(
            self.spark,
            self.lakehouse,
            self.cfg.train,
            self.cfg.features,
            tags={RUN_TAG: self.report.run_id, "retrain_reason": reason},
        )
        self.report.retrained, self.report.retrain_reason = True, reason
        return (
            "done",
            None,
            f"v{report.model_version} ({report.alias}), holdout WAPE {report.holdout_wape:.3f}",
        )

    def _score(self) -> tuple[str, int | None, str]:
        report = run_score(
            self.spark, self.lakehouse, self.cfg, price_date=self.report.price_date, run_id=self.report.run_id
        )
        self.report.model_version, self.report.skus_priced = report.model_version, report.skus
        statuses = ", ".join(f"{n} {k}" for k, n in sorted(report.by_status.items()))
        return "done", report.skus, statuses

    def _reconcile(self) -> tuple[str, int | None, str]:
        spark, lakehouse, night = self.spark, self.lakehouse, self.report
        checks: list[tuple[str, bool, str | None]] = []
        unbalanced = io.count_where(spark, lakehouse.path(RECONCILIATION), "NOT balanced")
        checks.append(("ingest_balanced", unbalanced == 0, f"{unbalanced} unbalanced source batches"))
        expected = lakehouse.read(spark, SKU_CALENDAR).where(F.col("first_date") <= F.lit(night.run_date))
        panel_day = lakehouse.read(spark, SKU_DAY).where(F.col("date") == F.lit(night.run_date))
        missing_panel = expected.join(panel_day, "sku", "left_anti").count()
        checks.append(
            ("panel_complete", missing_panel == 0, f"{missing_panel} SKUs without a row for {night.run_date}")
        )
        recommendations = lakehouse.read(spark, PRICE_RECOMMENDATIONS).where(
            F.col("price_date") == F.lit(night.price_date)
        )
        priced = panel_day.where(F.col("price").isNotNull()).select("sku")
        unpriced = priced.join(recommendations, "sku", "left_anti").count()
        checks.append(
            ("prices_complete", unpriced == 0, f"{unpriced} SKUs without a price for {night.price_date}")
        )
        tolerance = 1e-6
        outside = recommendations.where(
            (F.col("binding_constraint") != "infeasible")
            & (
                (F.col("recommended_price") < F.col("price_floor") - tolerance)
                | (F.col("recommended_price") > F.col("price_ceiling") + tolerance)
            )
        ).count()
        checks.append(("guardrails_held", outside == 0, f"{outside} recommendations outside their band"))
        stale = (
            lakehouse.read(spark, CURRENT_PRICES)
            .join(recommendations.select("sku", "final_price"), "sku")
            .where(F.col("effective_date") == F.lit(night.price_date))
            .where(F.abs(F.col("price") - F.col("final_price")) > tolerance)
            .count()
        )
        checks.append(
            (
                "current_prices_match",
                stale == 0,
                f"{stale} current prices differ from the night's final price",
            )
        )
        night.checks = checks
        failed = [name for name, passed, _ in checks if not passed]
        if failed:
            raise NightlyError(f"reconciliation failed: {', '.join(failed)}")
        return "done", None, f"{len(checks)} checks passed"

    def _maintain(self, previous: list[Any]) -> tuple[str, int | None, str]:
        ncfg = self.cfg.nightly

        def due(operation: str, every: int) -> bool:
            # Counted from the last time it ran, else from the first night (which has nothing to tidy).
            done = [r.run_date for r in previous if operation in (r.maintenance or [])]
            since = max(done) if done else min((r.run_date for r in previous), default=None)
            return every > 0 and since is not None and (self.report.run_date - since).days >= every

        cadence = (("optimize", ncfg.optimize_every_days), ("vacuum", ncfg.vacuum_every_days))
        jobs = [operation for operation, every in cadence if due(operation, every)]
        if not jobs:
            return "skipped", None, "not due"
        tables = maintain_tables(self.spark, self.lakehouse.root, jobs, ncfg)
        self.report.maintenance = jobs
        return "done", None, f"{' + '.join(jobs)} ({ncfg.vacuum_mode}) of {len(tables)} tables"

    def _report(self) -> tuple[str, int | None, str]:
        if not self.cfg.nightly.report:
            return "skipped", None, "nightly.report is off"
        try:
            self.report.report_path = write_night_report(
                self.spark, self.lakehouse, self.report, self.cfg.train, self.cfg.nightly.report_dir
            )
        except Exception as error:
            # The prices are written and checked; a report that cannot be drawn does not undo them.
            log.warning("the night's report was not written: %s", error, exc_info=True)
            return "failed", None, f"{type(error).__name__}: {error}"
        return "done", None, self.report.report_path

    # -- the night -----------------------------------------------------------------------------

    def run(self) -> NightlyReport:
        """Run the night under the lakehouse lock; a night that already succeeded writes nothing.

        Raises:
            LockHeld: another run holds the lock.
            NightlyError: a later night already ran, or a reconciliation check failed.
        """
        night = self.report
        ttl = self.cfg.nightly.lock_ttl_minutes * 60
        with LakehouseLock(
            self.spark, self.lakehouse.root, "nightly", ttl, f"nightly run for {night.run_date}"
        ) as lock:
            if lock.taken_over is not None:
                log.info(f"[nightly] took over a stale lock of {lock.taken_over.describe()}")
            runs = self.lakehouse.read_declared(self.spark, RUNS)
            previous = (
                runs.where(F.col("run_date") != F.lit(night.run_date))
                .select("run_date", "status", "maintenance")
                .collect()
            )
            this = runs.where(F.col("run_date") == F.lit(night.run_date)).first()
            if this is not None and this.status == "succeeded":
                log.info(
                    f"[nightly] night {night.run_date} already succeeded (attempt {this.attempt}): "
                    "nothing to do"
                )
                return _from_row(this)
            later = [r.run_date for r in previous if r.run_date > night.run_date and r.status == "succeeded"]
            if later:
                raise NightlyError(
                    f"night {max(later)} already ran; the nightly job only moves forward "
                    f"(re-run older nights' stages with the stage commands)"
                )
            night.attempt = this.attempt + 1 if this is not None else 1
            self._meter = _IoMeter(self.spark)
            started = time.monotonic()
            self._save()
            log.info(
                f"[nightly] night {night.run_date}, attempt {night.attempt}: prices for {night.price_date} "
                f"(pricing {pricing.__version__} from {Path(pricing.__file__).parent})"
            )
            try:
                self._stage("ingest", self._ingest)
                self._check_fresh()
                self._stage("match", self._match)
                self._stage("features", self._features)
                self._stage("train", self._train)
                self._stage("score", self._score)
                self._stage("reconcile", self._reconcile)
                self._stage(
                    "maintain", lambda: self._maintain([r for r in previous if r.status == "succeeded"])
                )
                night.status = "succeeded"
                self._stage("report", self._report)
            except BaseException as error:
                night.status, night.error = "failed", f"{type(error).__name__}: {error}"
                raise
            finally:
                night.finished_at, night.seconds = _now(), round(time.monotonic() - started, 2)
                self._save()
                log.info(night.render())
        return night


def _from_row(row: Any) -> NightlyReport:
    report = NightlyReport(row.run_date, row.run_id, row.price_date)
    for name in (
        "status",
        "attempt",
        "model_version",
        "retrained",
        "retrain_reason",
        "skus_priced",
        "error",
        "host",
        "started_at",
        "finished_at",
        "seconds",
        "report_path",
    ):
        setattr(report, name, row[name])
    report.stages = [Stage(**s.asDict()) for s in row.stages]
    report.checks = [tuple(c) for c in row.checks]
    report.maintenance = list(row.maintenance)
    return report


def report_night(
    spark: SparkSession,
    cfg: PricingConfig,
    run_date: date | None = None,
    lakehouse_root: str | None = None,
    out: str | None = None,
) -> str:
    """Write the report of a recorded night (default: the latest) into ``out`` (default
    ``nightly.report_dir``, else ``<lakehouse>/reports``) and record its path in ``audit/runs``.

    Raises:
        NightlyError: the lakehouse has no such night.
        LockHeld: a night is running on this lakehouse.
    """
    lakehouse = Lakehouse.at(spark, lakehouse_root or cfg.paths.lakehouse)
    ttl = cfg.nightly.lock_ttl_minutes * 60
    with LakehouseLock(spark, lakehouse.root, "nightly", ttl, "nightly report"):
        runs = lakehouse.read_declared(spark, RUNS)
        chosen = runs.where(F.col("run_date") == F.lit(run_date)) if run_date else runs
        row = chosen.orderBy(F.desc("run_date")).first()
        if row is None:
            raise NightlyError(
                f"{lakehouse.root} has no night {run_date or ''} in audit/runs".replace("  ", " ")
            )
        night = _from_row(row)
        night.report_path = write_night_report(
            spark, lakehouse, night, cfg.train, out or cfg.nightly.report_dir
        )
        _save_run(spark, lakehouse, night)
    return night.report_path


def run_nightly(
    spark: SparkSession,
    cfg: PricingConfig,
    run_date: date,
    landing: str | None = None,
    lakehouse_root: str | None = None,
) -> NightlyReport:
    """Run the night of ``run_date`` (see :class:`NightlyRun`)."""
    return NightlyRun(spark, cfg, run_date, landing, lakehouse_root).run()
