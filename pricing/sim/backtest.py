"""``pricing backtest``: pricing policies compared night by night on one simulated market (closed loop).

The market is simulated once over ``backtest.history_days`` + ``backtest.nights`` days; its first
``history_days`` are the shared past. Then, for each policy and each backtest night, the policy sets
tomorrow's prices, and :func:`pricing.sim.closed_loop.realise_day` draws that day's sales from the true
demand at those prices (common random numbers: the same price on the same day sells the same).

Policies (``backtest.policies``):

- ``keep``: the price in force on the last day of history, kept.
- ``cost_plus``: unit cost x (1 + ``cost_plus_markup``), inside the guardrail band.
- ``competitor_median``: yesterday's competitor median, inside the band.
- ``model_naive``, ``model_debiased``: the real nightly job (``pricing.nightly``: ingest of the day's
  landing files, features, training when due, scoring, reconciliation) with ``train.debias`` off/on,
  each in its own lakehouse, landing area and MLflow store.
- ``model_explore``: the nightly job with the configured fit (``train.debias``, off by default) plus
  price exploration (``score.exploration_share``): its cost and benefit are read against the policy
  with the same fit and no exploration.
- ``model_explore_unpriced`` (only when asked): the same, exploring only SKUs kept for want of price
  history (``score.exploration_scope=no_price_history``).
- ``oracle``: the best candidate of the same grid and band under the true demand curve.

Everything a policy did lands under ``<workdir>/policies/<policy>/``; the nightly figures go to the
Delta table ``<workdir>/results/policy_nights`` and the comparison to ``<workdir>/results/summary.json``,
logged to MLflow (experiment ``pricing-backtest``), where ``pricing report`` attaches its report.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, DateType, DoubleType, StringType, StructField, StructType

from pricing.config import PolicyConfig, PricingConfig, SimulateConfig, derive
from pricing.decide.choose import apply_endings, candidates_with_current, choose_prices
from pricing.decide.guardrails import price_band
from pricing.evaluation.guardrails import with_violations
from pricing.lakehouse import io
from pricing.lakehouse.tables import ELASTICITIES, PRICE_RECOMMENDATIONS, RUNS, Lakehouse
from pricing.nightly.job import run_nightly
from pricing.platform import tracking
from pricing.sim import simulate_market
from pricing.sim.closed_loop import CURVE_COLUMNS, realise_day, true_units
from pricing.sim.deliver import deliver
from pricing.sim.market import SKU_DAY_SCHEMA, catalog_cost_missing, fx_rates, write_daily_sources
from pricing.sim.truth import elasticity_error

MODEL_POLICIES = ("model_naive", "model_debiased", "model_explore", "model_explore_unpriced")
BASELINE_POLICIES = ("keep", "cost_plus", "competitor_median", "oracle")

POLICY_PRICES_SCHEMA = StructType(
    [
        StructField("sku", StringType(), False),
        StructField("price", DoubleType(), False),
        StructField("price_floor", DoubleType(), True),
        StructField("price_ceiling", DoubleType(), True),
        StructField("predicted_units", DoubleType(), True),
    ]
)

POLICY_NIGHTS_SCHEMA = StructType(
    [
        StructField("policy", StringType(), False),
        StructField("date", DateType(), False),
        *[
            StructField(name, DoubleType(), False)
            for name in (
                "units",
                "revenue",
                "profit",
                "expected_profit",
                "stockout_skus",
                "price_changes",
                "violations",
                "abs_error_model",
                "abs_error_seasonal_naive",
                "units_uncensored",
                "forecast_rows",
                "seconds",
            )
        ],
    ]
)


@dataclass
class PolicyResult:
    """One policy over all backtest nights."""

    policy: str
    units: float
    revenue: float
    profit: float
    expected_profit: float
    violations: int
    uplift_vs_keep: float | None = None
    share_of_oracle_uplift: float | None = None
    wape: float | None = None
    seasonal_naive_wape: float | None = None
    elasticity_mae: float | None = None
    elasticity_bias: float | None = None
    retrains: int | None = None
    seconds_per_night: float | None = None


@dataclass
class BacktestReport:
    """What ``pricing backtest`` measured (also ``<workdir>/results/summary.json``)."""

    workdir: str
    first_night: str
    nights: int
    skus: int
    seed: int
    apply: str
    policies: list[PolicyResult] = field(default_factory=list)
    mlflow_run_id: str | None = None

    def render(self) -> str:
        def fmt(value: float | None, pattern: str) -> str:
            return "" if value is None else format(value, pattern)

        lines = [
            f"backtest: {self.nights} nights from {self.first_night}, {self.skus} SKUs, seed {self.seed}, "
            f"system prices applied: {self.apply}",
            "| policy | profit | revenue | units | vs keep | share of oracle uplift | violations "
            "| WAPE | seasonal naive WAPE | elasticity MAE | bias |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in self.policies:
            lines.append(
                f"| {r.policy} | {r.profit:,.0f} | {r.revenue:,.0f} | {r.units:,.0f} "
                f"| {fmt(r.uplift_vs_keep, '+.1%')} | {fmt(r.share_of_oracle_uplift, '.0%')} "
                f"| {r.violations} "
                f"| {fmt(r.wape, '.3f')} | {fmt(r.seasonal_naive_wape, '.3f')} "
                f"| {fmt(r.elasticity_mae, '.3f')} | {fmt(r.elasticity_bias, '+.3f')} |"
            )
        return "\n".join(lines)

    @classmethod
    def load(cls, workdir: str) -> BacktestReport:
        data = json.loads((Path(workdir) / "results" / "summary.json").read_text())
        data["policies"] = [PolicyResult(**p) for p in data["policies"]]
        return cls(**data)


def _baseline_prices(
    policy: str, pcfg: PolicyConfig, grid_points: int, markup: float
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """A ``mapInPandas`` function: one SKU's state for tomorrow -> the policy's price and band."""

    def prices(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for f in frames:
            f = f.reset_index(drop=True)
            current = f["current_price"].to_numpy(float)
            if policy == "keep":
                yield pd.DataFrame(
                    {"sku": f["sku"], "price": current, "price_floor": np.nan, "price_ceiling": np.nan}
                ).assign(predicted_units=np.nan)
                continue
            band = price_band(f.assign(elasticity_low=np.nan, elasticity_high=np.nan), pcfg)
            floor, ceiling = band["price_floor"].to_numpy(float), band["price_ceiling"].to_numpy(float)
            if policy == "oracle":
                grid = candidates_with_current(band, current, grid_points, pcfg.price_endings)
                rows = grid["row"].to_numpy()
                expanded = f.iloc[rows].reset_index(drop=True)
                units = true_units(expanded, grid["candidate_price"].to_numpy(float))
                best = choose_prices(
                    grid.assign(
                        unit_cost=f["unit_cost"].to_numpy(float)[rows],
                        current_price=current[rows],
                        expected_units=np.asarray(units, float),
                    )
                ).reindex(range(len(f)))
                price = best["candidate_price"].to_numpy(float)
            else:
                target = (
                    f["unit_cost"].to_numpy(float) * (1 + markup)
                    if policy == "cost_plus"
                    else f["comp_median_price"].to_numpy(float)
                )
                target = np.where(np.isnan(target), current, target)
                price = apply_endings(target, floor, ceiling, pcfg.price_endings)
            yield pd.DataFrame(
                {"sku": f["sku"], "price": price, "price_floor": floor, "price_ceiling": ceiling}
            ).assign(predicted_units=np.nan)

    return prices


class Backtest:
    """One backtest in ``workdir``; :meth:`run` runs every configured policy and compares them."""

    def __init__(
        self, spark: SparkSession, cfg: PricingConfig, workdir: str, log: Callable[[str], None] = print
    ) -> None:
        self.spark, self.cfg, self.log = spark, cfg, log
        self.workdir = workdir.rstrip("/")
        bcfg = cfg.backtest
        self.sim: SimulateConfig = derive(cfg.simulate, {"n_days": bcfg.history_days + bcfg.nights})
        self.first_night = self.sim.start_date + timedelta(days=bcfg.history_days)
        self.nights = [self.first_night + timedelta(days=k) for k in range(bcfg.nights)]
        self.market, self.truth = f"{self.workdir}/market", f"{self.workdir}/truth"

    # -- the market ---------------------------------------------------------------------------
    def _prepare_market(self) -> None:
        family = self.cfg.backtest.family
        summary = Path(self.truth) / ("summary.json" if family == "simulator" else "family.json")
        wanted: dict[str, Any] = {"n_skus": self.sim.n_skus, "seed": self.sim.seed}
        wanted.update({"n_days": self.sim.n_days} if family == "simulator" else {"family": family})
        if summary.exists():
            found = json.loads(summary.read_text())
            found.setdefault("n_skus", found.get("summary", {}).get("catalog"))
            if all(found.get(k) == v for k, v in wanted.items()) and (
                family == "simulator" or found.get("price_date") == self.nights[-1].isoformat()
            ):
                self.log(f"[backtest] market: reusing {self.market}")
                return
        self.log(f"[backtest] market ({family}): simulating {self.sim.n_skus} SKUs x {self.sim.n_days} days")
        if family == "simulator":
            simulate_market(self.spark, self.sim, self.market, self.truth)
            return
        from pricing.evaluation.families import ALL_FAMILIES, generate_market

        if family not in ALL_FAMILIES:
            raise ValueError(f"unknown backtest.family {family!r}; choose from {sorted(ALL_FAMILIES)}")
        # An evaluation market simulates one day past its history: the backtest's last night.
        history = derive(self.sim, {"n_days": self.sim.n_days - 1})
        generate_market(self.spark, ALL_FAMILIES[family], history, self.market, self.truth)

    def _policy_dir(self, policy: str) -> str:
        return f"{self.workdir}/policies/{policy}"

    def _history(self, policy: str) -> DataFrame:
        """What happened under ``policy``: the shared past, then its own realised days."""
        past = self.planned.where(F.col("date") < F.lit(self.first_night)).select(
            *SKU_DAY_SCHEMA.fieldNames()
        )
        realised = f"{self._policy_dir(policy)}/realised"
        if Path(realised).exists():
            return past.unionByName(self.spark.read.parquet(realised))
        return past

    def _state(self, history_df: DataFrame, day: date) -> DataFrame:
        """Per SKU, what a rule-based policy knows the night before ``day`` (plus the oracle's truth)."""
        recent = history_df.where(
            (F.col("date") < F.lit(day)) & (F.col("date") >= F.date_sub(F.lit(day), 28))
        )
        yesterday = history_df.where(F.col("date") == F.date_sub(F.lit(day), 1)).select(
            "sku",
            F.col("price").alias("current_price"),
            F.col("competitor_median").alias("comp_median_price"),
            F.greatest(F.col("on_hand_start") - F.col("units_sold"), F.lit(0)).alias("_stock"),
        )
        sales = recent.groupBy("sku").agg(F.avg("units_sold").alias("_rate"))
        # An evaluation market's true demand curve of the day comes along for the oracle.
        curve = [c for c in CURVE_COLUMNS if c in self.planned.columns]
        tomorrow = self.planned.where(F.col("date") == F.lit(day)).select(
            "sku", "date", "shock", "competitor_median", *curve
        )
        missing = catalog_cost_missing(self.sim)
        return (
            yesterday.join(sales, "sku")
            .join(tomorrow, "sku")
            .join(self.params, "sku")
            .select(
                "*",
                F.when(missing, F.col("ref_price") * (1 - self.cfg.catalog.default_margin))
                .otherwise(F.col("true_cost"))
                .alias("unit_cost"),
                (F.col("_stock") / F.greatest(F.col("_rate"), F.lit(1e-3))).alias("days_of_cover"),
            )
        )

    def _record(self, policy: str, realised_df: DataFrame) -> None:
        realised_df.write.mode("append").parquet(f"{self._policy_dir(policy)}/realised")

    # -- policies -----------------------------------------------------------------------------
    def _run_baseline(self, policy: str) -> None:
        pcfg, bcfg = self.cfg.policy, self.cfg.backtest
        fn = _baseline_prices(policy, pcfg, self.cfg.score.grid_points, bcfg.cost_plus_markup)
        for k, day in enumerate(self.nights, 1):
            started = time.monotonic()
            history = self._history(policy)
            prices = self._state(history, day).mapInPandas(fn, POLICY_PRICES_SCHEMA).cache()
            realised = realise_day(self.planned, self.params_raw, history, prices, day, self.sim)
            self._record(policy, realised)
            self._night_metrics(policy, day, prices, time.monotonic() - started)
            prices.unpersist()
            self.log(f"[backtest] {policy}: night {k}/{len(self.nights)} ({day}) done")

    def _model_cfg(self, policy: str) -> PricingConfig:
        base = self._policy_dir(policy)
        explores = policy in ("model_explore", "model_explore_unpriced")
        score: dict[str, Any] = {
            "exploration_share": self.cfg.backtest.exploration_share if explores else 0.0,
            "exploration_scope": "no_price_history" if policy == "model_explore_unpriced" else "all",
        }
        if self.cfg.backtest.apply == "recommended":
            # Every change inside the guardrails is approved, so the system's own price tables (the
            # price in force it starts from tomorrow) hold what the market saw.
            score.update(auto_approve_max_change=1.0, review_skus=[], review_unknown_skus=False)
        changes = {
            "train": {
                "debias": {"model_naive": False, "model_debiased": True}.get(policy, self.cfg.train.debias),
                "tracking_uri": f"sqlite:///{Path(base).resolve()}/mlflow.db",
                "artifact_location": f"{Path(base).resolve()}/mlartifacts",
            },
            "score": score,
            "simulate": self.sim.model_dump(),
            # The backtest's own report covers its nights; one HTML file per simulated night would only cost.
            "nightly": {"report": False},
        }
        return derive(self.cfg, changes)

    def _system_prices(self, lakehouse: str, day: date) -> DataFrame:
        recs = (
            Lakehouse(lakehouse)
            .read(self.spark, PRICE_RECOMMENDATIONS)
            .where(F.col("price_date") == F.lit(day))
        )
        # The market sees the final price (with backtest.apply=recommended every change is approved).
        final = F.col("final_price")
        predicted = F.when(
            F.abs(final - F.col("recommended_price")) < 1e-9, F.col("expected_units_recommended")
        ).when(F.abs(final - F.col("current_price")) < 1e-9, F.col("expected_units_current"))
        return recs.select(
            "sku",
            final.alias("price"),
            "price_floor",
            "price_ceiling",
            predicted.alias("predicted_units"),
            "binding_constraint",
        )

    def _run_model(self, policy: str) -> None:
        cfg = self._model_cfg(policy)
        base = self._policy_dir(policy)
        landing, lakehouse = f"{base}/landing", f"{base}/lakehouse"
        deliver(self.spark, self.market, landing, self.first_night - timedelta(days=1))
        self.log(f"[backtest] {policy}: backfill night {self.first_night - timedelta(days=1)}")
        run_nightly(self.spark, cfg, self.first_night - timedelta(days=1), landing, lakehouse)
        for k, day in enumerate(self.nights, 1):
            started = time.monotonic()
            history = self._history(policy)
            prices = self._system_prices(lakehouse, day).cache()
            realised = realise_day(self.planned, self.params_raw, history, prices, day, self.sim).cache()
            write_daily_sources(realised, self.fx, self.sim, landing, mode="append")
            self._record(policy, realised)
            realised.unpersist()
            if day != self.nights[-1]:
                night = run_nightly(self.spark, cfg, day, landing, lakehouse)
                if night.status != "succeeded":
                    raise RuntimeError(f"{policy}: the nightly run of {day} failed: {night.error}")
            self._night_metrics(policy, day, prices, time.monotonic() - started)
            prices.unpersist()
            self.log(f"[backtest] {policy}: night {k}/{len(self.nights)} ({day}) done")

    # -- measurement --------------------------------------------------------------------------
    def _night_metrics(self, policy: str, day: date, prices_df: DataFrame, seconds: float) -> None:
        """One ``policy_nights`` row: outcomes under true demand, guardrail checks, forecast error."""
        pcfg = self.cfg.policy
        history = self._history(policy)
        today = history.where(F.col("date") == F.lit(day))
        before = history.where(F.col("date") == F.date_sub(F.lit(day), 1)).select(
            "sku", F.col("price").alias("prev_price")
        )
        week_ago = history.where(F.col("date") == F.date_sub(F.lit(day), 7)).select(
            "sku", F.col("units_sold").alias("naive_units")
        )
        missing = catalog_cost_missing(self.sim)
        df = (
            today.join(
                self.params.select(
                    "sku", "true_cost", "map_price", "min_price", "max_price", missing.alias("_nocost")
                ),
                "sku",
            )
            .join(before, "sku")
            .join(week_ago, "sku", "left")
            .join(prices_df.drop("price"), "sku")
        )
        checked = df.select(
            "units_sold",
            "expected_demand",
            "censored",
            "predicted_units",
            "naive_units",
            "price",
            F.col("prev_price").alias("previous_price"),
            "true_cost",
            (~F.col("_nocost")).alias("cost_known"),
            "min_price",
            "max_price",
            "map_price",
            "price_floor",
            "price_ceiling",
            *(["binding_constraint"] if "binding_constraint" in prices_df.columns else []),
        )
        df = checked.mapInPandas(
            lambda frames: (with_violations(f, pcfg) for f in frames),
            StructType([*checked.schema.fields, StructField("violation", BooleanType())]),
        )
        price, prev, violated = F.col("price"), F.col("previous_price"), F.col("violation")
        uncensored = ~F.col("censored")
        forecastable = uncensored & F.col("predicted_units").isNotNull() & F.col("naive_units").isNotNull()
        margin = price - F.col("true_cost")
        row = df.agg(
            F.sum("units_sold"),
            F.sum(F.col("units_sold") * price),
            F.sum(F.col("units_sold") * margin),
            F.sum(F.col("expected_demand") * margin),
            F.sum(F.col("censored").cast("double")),
            F.sum((F.abs(price - prev) > 1e-9).cast("double")),
            F.sum(violated.cast("double")),
            F.sum(F.when(forecastable, F.abs(F.col("units_sold") - F.col("predicted_units")))),
            F.sum(F.when(forecastable, F.abs(F.col("units_sold") - F.col("naive_units")))),
            F.sum(F.when(forecastable, F.col("units_sold"))),
            F.sum(forecastable.cast("double")),
        ).first()
        values = [float(v or 0.0) for v in (row or [])]
        out = self.spark.createDataFrame([(policy, day, *values, seconds)], POLICY_NIGHTS_SCHEMA)
        io.append(
            out, f"{self.workdir}/results/policy_nights", POLICY_NIGHTS_SCHEMA, "backtest policy_nights"
        )

    def _elasticity_error(self, policy: str) -> tuple[float | None, float | None]:
        elasticities = Lakehouse(f"{self._policy_dir(policy)}/lakehouse").read_if_exists(
            self.spark, ELASTICITIES
        )
        if elasticities is None:
            return None, None
        errors = elasticity_error(elasticities, self.params_raw)
        return (errors["elasticity_mae"], errors["elasticity_bias"]) if errors else (None, None)

    def _summarise(self) -> BacktestReport:
        nights = io.read_table(self.spark, f"{self.workdir}/results/policy_nights")
        totals = {
            r["policy"]: r
            for r in nights.groupBy("policy")
            .agg(
                *[F.sum(c).alias(c) for c in ("units", "revenue", "profit", "expected_profit", "violations")],
                *[
                    F.sum(c).alias(c)
                    for c in ("abs_error_model", "abs_error_seasonal_naive", "units_uncensored")
                ],
                F.avg("seconds").alias("seconds"),
            )
            .collect()
        }
        report = BacktestReport(
            workdir=self.workdir,
            first_night=self.first_night.isoformat(),
            nights=len(self.nights),
            skus=self.sim.n_skus,
            seed=self.sim.seed,
            apply=self.cfg.backtest.apply,
        )
        keep = totals.get("keep")
        oracle = totals.get("oracle")
        for policy in self.cfg.backtest.policies:
            t = totals[policy]
            result = PolicyResult(
                policy=policy,
                units=t["units"],
                revenue=t["revenue"],
                profit=t["profit"],
                expected_profit=t["expected_profit"],
                violations=int(t["violations"]),
                seconds_per_night=t["seconds"],
            )
            if keep is not None:
                result.uplift_vs_keep = t["profit"] / keep["profit"] - 1 if keep["profit"] else None
                if oracle is not None and oracle["profit"] != keep["profit"]:
                    result.share_of_oracle_uplift = (t["profit"] - keep["profit"]) / (
                        oracle["profit"] - keep["profit"]
                    )
            if policy in MODEL_POLICIES and t["units_uncensored"]:
                result.wape = t["abs_error_model"] / t["units_uncensored"]
                result.seasonal_naive_wape = t["abs_error_seasonal_naive"] / t["units_uncensored"]
                result.elasticity_mae, result.elasticity_bias = self._elasticity_error(policy)
                runs = Lakehouse(f"{self._policy_dir(policy)}/lakehouse").read(self.spark, RUNS)
                result.retrains = runs.where(F.col("retrained")).count()
            report.policies.append(result)
        return report

    def _log_mlflow(self, report: BacktestReport) -> str:
        import mlflow

        mlflow.set_tracking_uri(self.cfg.train.tracking_uri)
        with mlflow.start_run(
            experiment_id=tracking.experiment_id(self.cfg.train, "pricing-backtest", "backtest"),
            run_name=f"backtest-{report.first_night}-{report.nights}n",
        ) as run:
            mlflow.log_params(
                {
                    "nights": report.nights,
                    "first_night": report.first_night,
                    "skus": report.skus,
                    "seed": report.seed,
                    "apply": report.apply,
                    "policies": ",".join(self.cfg.backtest.policies),
                    "workdir": self.workdir,
                }
            )
            for r in report.policies:
                metrics = {
                    k: v
                    for k, v in asdict(r).items()
                    if k != "policy" and isinstance(v, (int, float)) and v is not None
                }
                mlflow.log_metrics({f"{r.policy}.{k}": float(v) for k, v in metrics.items()})
            mlflow.log_text(report.render(), "backtest.md")
            return run.info.run_id

    def run(self) -> BacktestReport:
        """Simulate (or reuse) the market, run every policy over every night, compare, log."""
        self._prepare_market()
        self.params_raw = self.spark.read.parquet(f"{self.truth}/sku_params").cache()
        self.params = self.params_raw.withColumnRenamed("unit_cost", "true_cost")
        self.planned = self.spark.read.parquet(f"{self.truth}/sku_day").cache()
        self.fx = fx_rates(self.spark, self.sim).cache()
        shutil.rmtree(f"{self.workdir}/results", ignore_errors=True)
        for policy in self.cfg.backtest.policies:
            shutil.rmtree(self._policy_dir(policy), ignore_errors=True)
            started = time.monotonic()
            if policy in MODEL_POLICIES:
                self._run_model(policy)
            else:
                self._run_baseline(policy)
            self.log(f"[backtest] {policy}: {len(self.nights)} nights in {time.monotonic() - started:.0f}s")
        report = self._summarise()
        report.mlflow_run_id = self._log_mlflow(report)
        out = Path(self.workdir) / "results" / "summary.json"
        out.write_text(json.dumps(asdict(report), indent=2, default=str))
        return report


def run_backtest(
    spark: SparkSession, cfg: PricingConfig, workdir: str, log: Callable[[str], None] = print
) -> BacktestReport:
    """Run ``pricing backtest`` in ``workdir`` (see the module docstring)."""
    return Backtest(spark, cfg, workdir, log).run()
