"""``pricing report``: a self-contained HTML report of a backtest, with PNG plots, logged to MLflow.

Sections: the policy comparison, profit per night by policy, demand and profit curves of sample SKUs
with the guardrail band and the prices chosen, estimated vs true elasticities, forecast vs actual,
the intake's reconciliation and quarantine, and the nightly job's stage timings. Plots are written as
PNG files beside ``index.html`` and embedded in it, so the one file can be mailed or opened anywhere;
the whole folder is logged as artifacts of the backtest's MLflow run.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import cast

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pricing.config import PricingConfig
from pricing.lakehouse import io
from pricing.lakehouse.tables import (
    ELASTICITIES,
    PRICE_RECOMMENDATIONS,
    QUARANTINE,
    RECONCILIATION,
    RUNS,
    Lakehouse,
    Table,
)
from pricing.platform.pages import page, png, section
from pricing.platform.pages import table as _table
from pricing.sim.backtest import MODEL_POLICIES, BacktestReport
from pricing.sim.market import DEMAND_PARAMS, log_expected_demand

# What the true demand curve needs from the simulator's parameters (the elasticity comes renamed, as
# the recommendations have their own).
_CURVE_PARAMS = ("sku", "ref_price", *[p for p in DEMAND_PARAMS if p != "elasticity"])
# Most elasticity points a scatter draws (a sample beyond that; the driver only ever holds this many).
_MAX_POINTS = 2000


def _pandas(df: DataFrame) -> pd.DataFrame:
    """A small aggregate to the driver (every caller bounds its size)."""
    return cast(pd.DataFrame, df.toPandas())


class _Report:
    def __init__(self, spark: SparkSession, cfg: PricingConfig, workdir: str, out: Path) -> None:
        self.spark, self.cfg, self.workdir, self.out = spark, cfg, workdir.rstrip("/"), out
        self.summary = BacktestReport.load(self.workdir)
        self.policies = [p.policy for p in self.summary.policies]
        self.models = [p for p in self.policies if p in MODEL_POLICIES]
        # The system's own lakehouse the report reads audit tables from: the default (naive) fit if run.
        self.system: str | None = next((p for p in MODEL_POLICIES if p in self.models), None)
        self.params = spark.read.parquet(f"{self.workdir}/truth/sku_params")
        self.sections: list[str] = []

    def lakehouse(self, policy: str) -> str:
        return f"{self.workdir}/policies/{policy}/lakehouse"

    def table(self, policy: str, table: Table) -> DataFrame | None:
        return Lakehouse(self.lakehouse(policy)).read_if_exists(self.spark, table)

    def add(self, title: str, body: str, image: tuple[str, str] | None = None, note: str = "") -> None:
        self.sections.append(section(title, body, image, note))

    # -- sections ------------------------------------------------------------------------------
    def comparison(self) -> None:
        rows = pd.DataFrame([vars(p) for p in self.summary.policies])
        self.add(
            "Policies compared",
            _table(rows),
            note=f"{self.summary.nights} nights from {self.summary.first_night}, {self.summary.skus} SKUs, "
            f"seed {self.summary.seed}; system prices applied: {self.summary.apply}. Profit and revenue are "
            "realised sales under the simulator's true demand at each policy's prices (common random "
            "numbers); violations count prices outside a hard limit, the change limit or the band.",
        )

    def profit_by_night(self) -> None:
        nights = _pandas(
            io.read_table(self.spark, f"{self.workdir}/results/policy_nights").select(
                "policy", "date", "profit", "expected_profit"
            )
        ).sort_values("date")
        fig, axes = plt.subplots(1, 2, figsize=(12, 4))
        for policy, rows in nights.groupby("policy"):
            axes[0].plot(rows["date"], rows["profit"], marker="o", label=policy)
            axes[1].plot(rows["date"], rows["profit"].cumsum(), label=policy)
        axes[0].set_title("profit per night (realised)")
        axes[1].set_title("cumulative profit")
        for ax in axes:
            ax.tick_params(axis="x", rotation=45)
        axes[1].legend(fontsize=8)
        self.add("Profit over nights", "", png(fig, self.out, "profit_by_night"))

    def price_curves(self) -> None:
        if self.system is None:
            return
        recs = self.table(self.system, PRICE_RECOMMENDATIONS)
        if recs is None:
            return
        last = io.first_value(recs.agg(F.max("price_date")))
        tonight = recs.where(F.col("price_date") == F.lit(last))
        sample = (
            tonight.where(F.col("expected_units_recommended").isNotNull())
            .orderBy(F.desc("expected_profit_recommended"))
            .limit(self.cfg.backtest.report_skus)
        )
        planned = self.spark.read.parquet(f"{self.workdir}/truth/sku_day").where(F.col("date") == F.lit(last))
        rows = _pandas(
            sample.join(
                self.params.select(*_CURVE_PARAMS, F.col("elasticity").alias("true_elasticity")), "sku"
            ).join(planned.select("sku", "shock", "competitor_median"), "sku")
        )
        oracle = self._realised_price("oracle", last)
        fig, axes = plt.subplots(1, max(len(rows), 1), figsize=(4 * max(len(rows), 1), 3.6), squeeze=False)
        for ax, (_, r) in zip(axes[0], rows.iterrows(), strict=False):
            low, high = r["current_price"] * 0.7, r["current_price"] * 1.3
            prices = np.linspace(low, high, 120)
            day = pd.Timestamp(last)
            params = r[list(_CURVE_PARAMS)].rename({"sku": "_sku"}).copy()
            params["elasticity"] = r["true_elasticity"]
            true_units = np.exp(
                log_expected_demand(
                    params, day.dayofweek, day.dayofyear, r["shock"], prices, r["competitor_median"], 0.0
                )
            )
            # The model's curve: its log-linear response through its expected units at its choice.
            model_units = (
                r["expected_units_recommended"] * (prices / r["recommended_price"]) ** r["elasticity"]
            )
            ax.axvspan(r["price_floor"], r["price_ceiling"], color="tab:green", alpha=0.15, label="band")
            ax.plot(prices, true_units * (prices - r["unit_cost"]), label="true profit")
            ax.plot(prices, model_units * (prices - r["unit_cost"]), "--", label="model profit")
            ax.axvline(r["current_price"], color="grey", lw=1, label="current")
            ax.axvline(r["recommended_price"], color="tab:red", lw=1.5, label="system")
            if r["sku"] in oracle:
                ax.axvline(oracle[r["sku"]], color="black", ls=":", label="oracle")
            ax.set_title(
                f"{r['sku']}: elasticity {r['elasticity']:.2f} (true {r['true_elasticity']:.2f})", fontsize=9
            )
            ax.set_xlabel("price")
        axes[0][0].set_ylabel("expected profit / day")
        axes[0][0].legend(fontsize=7)
        self.add(
            f"Profit curves on {last} ({self.system})",
            "",
            png(fig, self.out, "price_curves"),
            note="True expected profit vs the model's, over ±30% of the current price; the shaded band is "
            "where the guardrails allowed the price to go tonight.",
        )

    def _realised_price(self, policy: str, day: date) -> dict[str, float]:
        path = Path(f"{self.workdir}/policies/{policy}/realised")
        if not path.exists():
            return {}
        rows = self.spark.read.parquet(str(path)).where(F.col("date") == F.lit(day)).select("sku", "price")
        return {r["sku"]: r["price"] for r in rows.limit(_MAX_POINTS).collect()}

    def elasticities(self) -> None:
        frames = {}
        for policy in self.models:
            table = self.table(policy, ELASTICITIES)
            if table is not None:
                frames[policy] = _pandas(
                    table.join(self.params.select("sku", F.col("elasticity").alias("true")), "sku").limit(
                        _MAX_POINTS
                    )
                )
        if not frames:
            return
        fig, axes = plt.subplots(1, len(frames), figsize=(4.2 * len(frames), 4), squeeze=False)
        for ax, (policy, frame) in zip(axes[0], frames.items(), strict=False):
            errors = np.vstack(
                [
                    frame["elasticity"] - frame["elasticity_low"],
                    frame["elasticity_high"] - frame["elasticity"],
                ]
            ).clip(min=0)
            ax.errorbar(
                frame["true"], frame["elasticity"], yerr=errors, fmt="o", ms=3, alpha=0.6, elinewidth=0.6
            )
            lo = min(frame["true"].min(), frame["elasticity"].min())
            ax.plot([lo, 0], [lo, 0], color="black", lw=1)
            mae = (frame["elasticity"] - frame["true"]).abs().mean()
            ax.set_title(f"{policy}: MAE {mae:.3f}", fontsize=9)
            ax.set_xlabel("true elasticity")
        axes[0][0].set_ylabel("estimated (ensemble interval)")
        self.add("Estimated vs true elasticities", "", png(fig, self.out, "elasticities"))

    def forecast(self) -> None:
        series = []
        for policy in self.models:
            recs = self.table(policy, PRICE_RECOMMENDATIONS)
            realised = Path(f"{self.workdir}/policies/{policy}/realised")
            if recs is None or not realised.exists():
                continue
            actual = self.spark.read.parquet(str(realised)).select(
                "sku", F.col("date").alias("price_date"), "units_sold", "censored"
            )
            per_night = _pandas(
                recs.join(actual, ["sku", "price_date"])
                .where(~F.col("censored"))
                .groupBy("price_date")
                .agg(
                    F.sum("expected_units_recommended").alias("forecast"), F.sum("units_sold").alias("actual")
                )
                .orderBy("price_date")
            )
            series.append((policy, per_night))
        if not series:
            return
        fig, ax = plt.subplots(figsize=(8, 3.6))
        for policy, frame in series:
            line = ax.plot(frame["price_date"], frame["actual"], marker="o", label=f"{policy} actual")
            ax.plot(
                frame["price_date"],
                frame["forecast"],
                "--",
                color=line[0].get_color(),
                label=f"{policy} forecast",
            )
        ax.set_title("units per night, uncensored SKUs: forecast at the recommended price vs sold")
        ax.tick_params(axis="x", rotation=45)
        ax.legend(fontsize=7)
        self.add("Forecast vs actual", "", png(fig, self.out, "forecast"))

    def intake(self) -> None:
        if self.system is None:
            return
        recon = self.table(self.system, RECONCILIATION)
        quarantine = self.table(self.system, QUARANTINE)
        body = ""
        if recon is not None:
            totals = _pandas(
                recon.groupBy("source")
                .agg(
                    *[
                        F.sum(c).alias(c)
                        for c in (
                            "files_ingested",
                            "files_failed",
                            "rows_read",
                            "rows_silver",
                            "rows_quarantined",
                        )
                    ],
                    F.sum("rows_duplicate").alias("rows_duplicate"),
                    F.sum("rows_unaccounted").alias("rows_unaccounted"),
                    F.min(F.col("balanced").cast("int")).cast("boolean").alias("all_batches_balanced"),
                )
                .orderBy("source")
            )
            body += "<h3>Reconciliation (all batches)</h3>" + _table(totals)
        if quarantine is not None:
            reasons = _pandas(
                quarantine.groupBy("source", "reason").count().orderBy("source", F.desc("count"))
            )
            body += "<h3>Quarantine by reason</h3>" + _table(reasons)
        if body:
            self.add(f"Intake ({self.system})", body)

    def timings(self) -> None:
        if self.system is None:
            return
        runs = self.table(self.system, RUNS)
        if runs is None:
            return
        stages = (
            _pandas(
                runs.select("run_date", F.explode("stages").alias("s")).select(
                    "run_date", "s.stage", "s.seconds"
                )
            )
            .pivot_table(index="run_date", columns="stage", values="seconds", aggfunc="sum")
            .fillna(0.0)
            .sort_index()
        )
        fig, ax = plt.subplots(figsize=(9, 3.6))
        bottom = np.zeros(len(stages))
        for stage in stages.columns:
            ax.bar([str(d) for d in stages.index], stages[stage], bottom=bottom, label=stage)
            bottom += stages[stage].to_numpy()
        ax.set_ylabel("seconds")
        ax.set_title("nightly job: seconds per stage")
        ax.tick_params(axis="x", rotation=45)
        ax.legend(fontsize=7)
        self.add(f"Pipeline timings ({self.system})", "", png(fig, self.out, "timings"))

    def write(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        for part in (
            self.comparison,
            self.profit_by_night,
            self.price_curves,
            self.elasticities,
            self.forecast,
            self.intake,
            self.timings,
        ):
            part()
        text = page(f"Backtest report: {self.workdir}", self.sections)
        index = self.out / "index.html"
        index.write_text(text)
        return index


def write_report(spark: SparkSession, cfg: PricingConfig, workdir: str, out: str | None = None) -> Path:
    """Write the report of the backtest in ``workdir`` to ``out`` (default ``<workdir>/report``) and
    log the folder as artifacts (``report/``) of the backtest's MLflow run; return ``index.html``."""
    folder = Path(out or f"{workdir.rstrip('/')}/report")
    report = _Report(spark, cfg, workdir, folder)
    index = report.write()
    if report.summary.mlflow_run_id:
        import mlflow

        mlflow.set_tracking_uri(cfg.train.tracking_uri)
        with mlflow.start_run(run_id=report.summary.mlflow_run_id):
            mlflow.log_artifacts(str(folder), "report")
    return index
