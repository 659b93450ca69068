"""The report of one night: one self-contained HTML file a category manager can open.

What the night changed and by how much, its expected impact with intervals, the review queue, the
guardrails that decided, the intake's reconciliation and quarantine by reason, stage timings and bytes,
the model version and its validation. It reads only the lakehouse's tables, the night's ``audit/runs``
row and the model registry (never simulator ground truth); every piece of data shown is escaped. Each
section reads a bounded aggregate or the first rows of a sorted table, so the driver holds little
whatever the catalogue's size.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pricing.config import TrainConfig
from pricing.decide.review import review_queue
from pricing.lakehouse import io
from pricing.lakehouse.tables import (
    COMPETITOR_MATCHES,
    EXPERIMENTS,
    LISTING_QUARANTINE,
    PRICE_RECOMMENDATIONS,
    QUARANTINE,
    RECONCILIATION,
    SILVER,
    Lakehouse,
)
from pricing.matching import OVERRIDE
from pricing.platform import tracking
from pricing.platform.pages import page, png, section, table
from pricing.schemas import BATCH_ID, INGESTED_AT

if TYPE_CHECKING:
    from pricing.nightly.job import NightlyReport

log = logging.getLogger(__name__)

# Rows a table of SKUs shows (the rest are counted, not listed).
TOP = 20
# The MLflow experiment holding one run per night, to which its report is logged.
NIGHTS_EXPERIMENT = "pricing-nightly"


def report_file(folder: str, run_date: Any) -> str:
    """``<folder>/night-<run_date>.html``."""
    return f"{folder.rstrip('/')}/night-{run_date}.html"


def _pandas(df: DataFrame) -> pd.DataFrame:
    """A bounded aggregate or a limited selection to the driver (every caller bounds its size)."""
    return cast(pd.DataFrame, df.toPandas())


def _titles(spark: SparkSession, lakehouse: Lakehouse) -> DataFrame | None:
    catalog = lakehouse.read_if_exists(spark, SILVER["catalog"])
    return catalog.select("sku", "title", "category") if catalog is not None else None


def _with_titles(rows: DataFrame, titles: DataFrame | None) -> DataFrame:
    if titles is None:
        return rows.withColumn("title", F.lit(None).cast("string")).withColumn(
            "category", F.lit(None).cast("string")
        )
    return rows.join(titles, "sku", "left")


@dataclass
class _Night:
    """What the report is about: the night's run-log row and where its tables live."""

    spark: SparkSession
    lakehouse: Lakehouse
    run: NightlyReport
    tcfg: TrainConfig

    @property
    def prices(self) -> DataFrame | None:
        if not self.lakehouse.exists(self.spark, PRICE_RECOMMENDATIONS):
            return None
        return self.lakehouse.read(self.spark, PRICE_RECOMMENDATIONS).where(
            F.col("price_date") == F.lit(self.run.price_date)
        )


def _summary(night: _Night) -> str:
    run = night.run
    passed = sum(1 for c in run.checks if c[1])
    rows = [
        ("lakehouse", night.lakehouse.root),
        ("night (data through)", str(run.run_date)),
        ("prices for", str(run.price_date)),
        ("status", run.status + (f": {run.error}" if run.error else "")),
        ("attempt", str(run.attempt)),
        ("model version", run.model_version or "none"),
        ("retrained", f"yes ({run.retrain_reason})" if run.retrained else "no"),
        ("SKUs priced", "-" if run.skus_priced is None else f"{run.skus_priced:,}"),
        ("checks passed", f"{passed}/{len(run.checks)}"),
        ("started", str(run.started_at)),
        ("finished", str(run.finished_at or "-")),
    ]
    return section("The night", table(pd.DataFrame(rows, columns=["", "value"])))


def _impact(night: _Night, prices: DataFrame) -> str:
    # Expected profit at the final price: the model's expectation where the final price is one it priced.
    at_final = F.when(
        F.col("final_price") == F.col("recommended_price"), F.col("expected_profit_recommended")
    ).when(F.col("final_price") == F.col("current_price"), F.col("expected_profit_current"))
    totals = _pandas(
        prices.agg(
            F.count("*").alias("skus"),
            F.sum((F.col("recommended_price") != F.col("current_price")).cast("int")).alias("proposed_moves"),
            F.sum((F.col("final_price") != F.col("current_price")).cast("int")).alias("moves_in_force"),
            F.sum(
                F.when(F.col("expected_profit_recommended").isNotNull(), F.col("expected_profit_current"))
            ).alias("profit_at_current"),
            F.sum("expected_profit_recommended").alias("profit_at_recommended"),
            F.sum(at_final).alias("profit_at_final"),
            F.sum("expected_gain").alias("gain_recommended"),
            F.sum("expected_gain_low").alias("gain_low"),
            F.sum("expected_gain_high").alias("gain_high"),
        )
    )
    statuses = _pandas(prices.groupBy("status").count().orderBy(F.desc("count")))
    t = totals.iloc[0]
    base = float(t["profit_at_current"] or 0.0)

    def share(value: Any) -> str:
        return f"{float(value) / base - 1:+.2%}" if base and value is not None and not pd.isna(value) else "-"

    rows = pd.DataFrame(
        [
            ("expected profit per day at the current prices", t["profit_at_current"], ""),
            ("... at the recommended prices", t["profit_at_recommended"], share(t["profit_at_recommended"])),
            ("... at the prices in force (after review)", t["profit_at_final"], share(t["profit_at_final"])),
            ("expected gain of the recommendations", t["gain_recommended"], ""),
            ("  sum of per-SKU lower bounds", t["gain_low"], ""),
            ("  sum of per-SKU upper bounds", t["gain_high"], ""),
        ],
        columns=["", "value", "vs current"],
    )
    note = (
        f"{int(t['skus']):,} SKUs; {int(t['proposed_moves'] or 0):,} price moves proposed, "
        f"{int(t['moves_in_force'] or 0):,} in force. The model's expectations (not realised sales); the "
        "bounds are per SKU at the model's gain confidence, summed (not a joint interval)."
    )
    return section("Expected impact", table(rows, 2) + "<h3>Status</h3>" + table(statuses), note=note)


def _changes(night: _Night, prices: DataFrame, titles: DataFrame | None) -> str:
    change = prices.select(
        (F.col("recommended_price") / F.col("current_price") - 1).alias("proposed"),
        (F.col("final_price") / F.col("current_price") - 1).alias("in_force"),
    ).where(F.col("proposed") != 0)
    # A histogram computed in Spark: 41 bins over ±(the largest move), counted per kind.
    width = io.first_value(change.agg(F.max(F.greatest(F.abs("proposed"), F.abs("in_force"))))) or 0.0
    body = ""
    image = None
    if width:
        edges = np.linspace(-width, width, 42)
        bins = {}
        for kind in ("proposed", "in_force"):
            index = F.least(F.floor((F.col(kind) + width) / (2 * width) * 41), F.lit(40)).cast("int")
            counted = _pandas(change.where(F.col(kind) != 0).groupBy(index.alias("bin")).count())
            bins[kind] = np.bincount(counted["bin"].astype(int), weights=counted["count"], minlength=41)
        fig, ax = plt.subplots(figsize=(8, 3.2))
        centres = (edges[:-1] + edges[1:]) / 2 * 100
        ax.bar(centres, bins["proposed"], width=(edges[1] - edges[0]) * 100, alpha=0.5, label="proposed")
        ax.bar(centres, bins["in_force"], width=(edges[1] - edges[0]) * 60, alpha=0.8, label="in force")
        ax.set_xlabel("price change, % of the current price")
        ax.set_ylabel("SKUs")
        ax.legend(fontsize=8)
        image = png(fig, None, "price_changes")
    moved = (
        _with_titles(prices.where(F.col("final_price") != F.col("current_price")), titles)
        .orderBy(F.desc_nulls_last("expected_gain"), "sku")
        .select(
            "sku",
            "title",
            "category",
            "current_price",
            "final_price",
            (F.col("final_price") / F.col("current_price") - 1).alias("change"),
            "expected_gain",
            "expected_gain_low",
            "expected_gain_high",
            "status",
            "binding_constraint",
        )
        .limit(TOP)
    )
    frame = _pandas(moved)
    frame["change"] = frame["change"].map(lambda v: f"{v:+.1%}")
    body += f"<h3>Largest expected gains among the prices in force (first {TOP})</h3>" + table(frame, 2)
    return section(
        "What changed", body, image, note="Proposed moves (all) and the moves in force after review."
    )


def _queue(night: _Night, prices: DataFrame, titles: DataFrame | None) -> str:
    queue = review_queue(prices, night.run.price_date)
    waiting = queue.count()
    if not waiting:
        return section("Review queue", "<p>Nothing waits for review.</p>")
    named = _with_titles(queue, titles).limit(TOP)
    frame = _pandas(
        named.select("sku", "title", "category", *[c for c in queue.columns if c not in ("sku", "status")])
    )
    frame["change"] = frame["change"].map(lambda v: f"{v:+.1%}")
    note = (
        f"{waiting:,} prices wait for a person (the current price stays in force until approved): "
        "`pricing review`, `pricing approve`, `pricing reject`. The largest expected gains first."
    )
    return section("Review queue", table(frame, 2), note=note)


def _guardrails(prices: DataFrame) -> str:
    counts = _pandas(prices.groupBy("binding_constraint").count().orderBy(F.desc("count")))
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(counts) + 1))
    ax.barh(counts["binding_constraint"].astype(str), counts["count"])
    ax.invert_yaxis()
    ax.set_xlabel("SKUs")
    note = "The guardrail that decided each price (none: the model's choice inside the band)."
    return section("Guardrails", table(counts), png(fig, None, "guardrails"), note)


def _intake(night: _Night) -> str:
    spark, run, lakehouse = night.spark, night.run, night.lakehouse
    until = run.finished_at or datetime.now()
    body = ""
    if lakehouse.exists(spark, RECONCILIATION):
        batches = lakehouse.read(spark, RECONCILIATION).where(
            (F.col(INGESTED_AT) >= F.lit(run.started_at)) & (F.col(INGESTED_AT) <= F.lit(until))
        )
        sums = [
            F.sum(c).alias(c)
            for c in (
                "files_ingested",
                "files_failed",
                "rows_read",
                "rows_silver",
                "rows_quarantined",
                "rows_duplicate",
                "rows_unaccounted",
            )
        ]
        recon = _pandas(
            batches.groupBy("source")
            .agg(*sums, F.min(F.col("balanced").cast("int")).cast("boolean").alias("balanced"))
            .orderBy("source")
        )
        body += "<h3>Reconciliation</h3>" + (
            table(recon, 0) if len(recon) else "<p>No new files this night.</p>"
        )
        if lakehouse.exists(spark, QUARANTINE) and len(recon):
            ids = batches.select("source", BATCH_ID)
            reasons = _pandas(
                lakehouse.read(spark, QUARANTINE)
                .join(ids, ["source", BATCH_ID])
                .groupBy("source", "reason")
                .count()
                .orderBy("source", F.desc("count"))
            )
            body += "<h3>Quarantine by reason</h3>" + (table(reasons, 0) if len(reasons) else "<p>None.</p>")
    body += _listings(night)
    note = "Every row read is in silver, in quarantine (with its reason) or a counted duplicate."
    return section("Intake", body or "<p>No intake recorded.</p>", note=note)


def _listings(night: _Night) -> str:
    """Competitor listings matched to SKUs and the review queue (docs/matching.md), when any exist."""
    spark, lakehouse = night.spark, night.lakehouse
    if not lakehouse.exists(spark, COMPETITOR_MATCHES):
        return ""
    matched = _pandas(
        lakehouse.read(spark, COMPETITOR_MATCHES)
        .groupBy("competitor")
        .agg(
            F.count(F.lit(1)).alias("matched"),
            F.count(F.when(F.col("method") == OVERRIDE, 1)).alias("by_a_person"),
            F.round(F.min("score"), 2).alias("lowest_score"),
        )
    )
    queue = (
        _pandas(
            lakehouse.read(spark, LISTING_QUARANTINE)
            .groupBy("competitor")
            .agg(F.count(F.lit(1)).alias("unmatched"), F.sum("price_rows").alias("price_rows_held_out"))
        )
        if lakehouse.exists(spark, LISTING_QUARANTINE)
        else pd.DataFrame(columns=["competitor", "unmatched", "price_rows_held_out"])
    )
    both = matched.merge(queue, on="competitor", how="outer").fillna(0)
    return (
        "<h3>Competitor listings</h3>"
        + table(both, 2)
        + "<p>Listings the matcher would not map stay out of the panel until matched: "
        "<code>pricing listings review</code>.</p>"
    )


def _stages(night: _Night) -> str:
    stages = pd.DataFrame(
        [
            {
                "stage": s.stage,
                "status": s.status,
                "seconds": s.seconds,
                "rows written": s.rows_written,
                "MB read": s.bytes_read / 1e6,
                "MB written": s.bytes_written / 1e6,
                "detail": s.detail,
            }
            for s in night.run.stages
        ]
    )
    checks = pd.DataFrame(night.run.checks, columns=["check", "passed", "detail"])
    if stages.empty:
        return section("Stages", "<p>No stage ran.</p>")
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(stages) + 1))
    ax.barh(stages["stage"], stages["seconds"])
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    body = table(stages, 2) + ("<h3>Checks</h3>" + table(checks) if len(checks) else "")
    return section("Stages", body, png(fig, None, "stages"))


def _model(night: _Night) -> str:
    version = night.run.model_version
    if not version:
        return section("Model", "<p>No model priced this night: every SKU kept its price.</p>")
    import mlflow

    client = mlflow.MlflowClient(night.tcfg.tracking_uri)
    try:
        registered = client.get_model_version(night.tcfg.model_name, version)
        run = client.get_run(str(registered.run_id))
    except mlflow.exceptions.MlflowException as error:
        return section(
            "Model", f"<p>{night.tcfg.model_name} v{version}: not readable ({type(error).__name__}).</p>"
        )
    metrics = pd.DataFrame(sorted(run.data.metrics.items()), columns=["validation metric", "value"])
    note = (
        f"{night.tcfg.model_name} version {version}, trained in MLflow run {run.info.run_id} "
        f"({datetime.fromtimestamp(run.info.start_time / 1000):%Y-%m-%d %H:%M})."
    )
    return section("Model", table(metrics, 4), note=note)


def _experiments(night: _Night) -> str:
    """Each experiment running on the priced night, or ended in the week before it: its readout so far
    (computed here from the panel, not recorded) and a plot of the effects with their intervals."""
    from pricing.decide.experiment import readout

    spark, price_date, lakehouse = night.spark, night.run.price_date, night.lakehouse
    if not lakehouse.exists(spark, EXPERIMENTS):
        return ""
    recent = _pandas(
        lakehouse.read_declared(spark, EXPERIMENTS)
        .where(
            (F.col("start_date") <= F.lit(price_date))
            & (F.col("end_date") >= F.date_sub(F.lit(price_date), 7))
        )
        .orderBy("start_date", "name")
        .limit(TOP)
    )
    if recent.empty:
        return ""
    rows, effects = [], []
    for experiment in recent.itertuples():
        found = readout(spark, lakehouse, experiment.name, record=False)
        whole = found[(found["segment"] == "all") & (found["estimator"] == "cuped")]
        row = {
            "experiment": experiment.name,
            "by": experiment.unit,
            "nights": f"{experiment.start_date} .. {experiment.end_date}",
            "treatment / control": f"{experiment.units_treatment} / {experiment.units_control}",
            "days read": int(found["days_post"].iloc[0]) if len(found) else 0,
        }
        for metric in ("profit", "revenue", "units"):
            hit = whole[whole["metric"] == metric]
            if len(hit):
                r = hit.iloc[0]
                row[f"{metric} per unit-day"] = (
                    f"{r['effect']:+,.2f} [{r['ci_low']:+,.2f}, {r['ci_high']:+,.2f}]"
                )
                effects.append((experiment.name, metric, r["effect"], r["ci_low"], r["ci_high"]))
        rows.append(row)
    image = None
    if effects:
        plotted = pd.DataFrame(effects, columns=["experiment", "metric", "effect", "low", "high"])
        fig, axes = plt.subplots(1, 3, figsize=(10, 0.5 * len(recent) + 1.5), sharey=True)
        for ax, metric in zip(axes, ("profit", "revenue", "units"), strict=True):
            part = plotted[plotted["metric"] == metric]
            effect = part["effect"].to_numpy(float)
            ax.errorbar(
                effect,
                part["experiment"].to_numpy(str),
                xerr=np.vstack([effect - part["low"].to_numpy(float), part["high"].to_numpy(float) - effect]),
                fmt="o",
                capsize=4,
            )
            ax.axvline(0, color="grey", lw=0.8)
            ax.set_title(f"{metric} per unit and day")
        image = png(fig, None, "experiments")
    note = (
        "Treatment: the system's prices; control: prices kept (experiment_control). Effect per randomised "
        "unit and day, CUPED-adjusted for the pre-period, with its 90 % interval; "
        "`pricing experiment readout --name N` records it and adds the per-category breakdown."
    )
    return section("Experiments", table(pd.DataFrame(rows)), image, note)


def render_night(spark: SparkSession, lakehouse: Lakehouse, run: NightlyReport, tcfg: TrainConfig) -> str:
    """The night's report as one HTML document (plots embedded as PNG)."""
    night = _Night(spark, lakehouse, run, tcfg)
    sections = [_summary(night)]
    prices = night.prices
    if prices is not None and not prices.isEmpty():
        prices = prices.cache()
        titles = _titles(spark, lakehouse)
        try:
            sections += [
                _impact(night, prices),
                _changes(night, prices, titles),
                _queue(night, prices, titles),
                _guardrails(prices),
            ]
        finally:
            prices.unpersist()
    else:
        sections.append(section("Prices", f"<p>No prices were written for {run.price_date}.</p>"))
    sections += [_experiments(night), _intake(night), _stages(night), _model(night)]
    return page(f"Pricing night {run.run_date}: prices for {run.price_date}", [s for s in sections if s])


def write_night_report(
    spark: SparkSession,
    lakehouse: Lakehouse,
    run: NightlyReport,
    tcfg: TrainConfig,
    folder: str | None = None,
) -> str:
    """Write ``night-<run_date>.html`` into ``folder`` (default ``<lakehouse>/reports``, any Hadoop file
    system) and log it to the night's MLflow run; return its path."""
    target = report_file(io.qualify(spark, folder or f"{lakehouse.root.rstrip('/')}/reports"), run.run_date)
    text = render_night(spark, lakehouse, run, tcfg)
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(scratch) / Path(target).name
        local.write_text(text, encoding="utf-8")
        fs, path = io.hadoop_fs(spark, target)
        fs.mkdirs(path.getParent())
        fs.copyFromLocalFile(False, True, io.jvm(spark).org.apache.hadoop.fs.Path(local.as_uri()), path)
        _log_to_mlflow(tcfg, run, local)
    log.debug("night report: %s", target)
    return target


def _log_to_mlflow(tcfg: TrainConfig, run: NightlyReport, report: Path) -> None:
    """Log the report to the night's MLflow run (experiment ``pricing-nightly``, one run per night,
    found again by its ``pricing.run_id`` tag when the report is written again)."""
    import mlflow

    client = mlflow.MlflowClient(tcfg.tracking_uri)
    experiment_id = tracking.experiment_id(tcfg, NIGHTS_EXPERIMENT, "nightly")
    found = client.search_runs([experiment_id], f"tags.`pricing.run_id` = '{run.run_id}'", max_results=1)
    if found:
        run_id = found[0].info.run_id
    else:
        tags = {"pricing.run_id": run.run_id, "price_date": str(run.price_date)}
        run_id = client.create_run(experiment_id, tags=tags, run_name=run.run_id).info.run_id
    if run.skus_priced is not None:
        client.log_metric(run_id, "skus_priced", float(run.skus_priced))
    client.log_artifact(run_id, str(report), "report")
    client.set_terminated(run_id, "FINISHED" if run.status == "succeeded" else "FAILED")
