"""The backtest: the closed-loop market day, policies compared on one market, the report."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from conftest import TEST_OVERRIDES
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pricing.config import PricingConfig, load_config
from pricing.lakehouse import io
from pricing.lakehouse.tables import PRICE_RECOMMENDATIONS, RUNS, SKU_DAY, Lakehouse
from pricing.sim.backtest import Backtest, BacktestReport, run_backtest
from pricing.sim.closed_loop import realise_day
from pricing.sim.report import write_report

BASELINES = ["keep", "cost_plus", "competitor_median", "oracle"]
GUARDED = ["cost_plus", "competitor_median", "oracle"]


def _config(root: Path, *overrides: str) -> PricingConfig:
    return load_config(
        "local",
        overrides=[
            *TEST_OVERRIDES,
            "simulate.n_skus=8",
            "simulate.dirt.corrupt_files=false",
            "backtest.history_days=30",
            "backtest.nights=2",
            f"train.tracking_uri=sqlite:///{root}/mlflow.db",
            f"train.artifact_location={root}/mlartifacts",
            "train.epochs=3",
            "train.ensemble_size=2",
            "train.hidden=16",
            "train.holdout_days=7",
            *overrides,
        ],
    )


@pytest.fixture(scope="module")
def baselines(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> tuple[PricingConfig, str]:
    root = tmp_path_factory.mktemp("backtest")
    cfg = _config(root, f"backtest.policies=[{','.join(BASELINES)}]")
    run_backtest(spark, cfg, str(root / "bt"), log=lambda _: None)
    return cfg, str(root / "bt")


def test_closed_loop_day_draws_the_same_sales_for_the_same_prices(
    spark: SparkSession, baselines: tuple[PricingConfig, str]
) -> None:
    cfg, workdir = baselines
    bt = Backtest(spark, cfg, workdir)
    planned = spark.read.parquet(f"{workdir}/truth/sku_day")
    params = spark.read.parquet(f"{workdir}/truth/sku_params")
    history = planned.where(F.col("date") < F.lit(bt.first_night))
    yesterday = history.where(F.col("date") == F.lit(bt.first_night - timedelta(days=1)))

    def day_at(factor: float) -> pd.DataFrame:
        prices = yesterday.select("sku", (F.col("price") * factor).alias("price"))
        day = realise_day(planned, params, history, prices, bt.first_night, bt.sim)
        return day.toPandas().set_index("sku").sort_index()

    same, again, dearer = day_at(1.0), day_at(1.0), day_at(1.2)
    pd.testing.assert_frame_equal(same, again)
    # Common random numbers: a higher price never sells more, and expected demand falls.
    assert (dearer["demand"] <= same["demand"]).all()
    assert (dearer["expected_demand"] < same["expected_demand"]).all()
    # Stock carries over from the day before (or is restocked at a cycle's start); sales never exceed it.
    prev = yesterday.toPandas().set_index("sku").sort_index()
    carried = (prev["on_hand_start"] - prev["units_sold"]).clip(lower=0)
    restock = params.toPandas().set_index("sku").sort_index()["order_up_to"]
    assert ((same["on_hand_start"] == carried) | (same["on_hand_start"] == restock)).all()
    assert (same["units_sold"] <= same["on_hand_start"]).all()
    assert (same["units_sold"] == same[["demand", "on_hand_start"]].min(axis=1)).all()


def test_baseline_policies_on_one_market(spark: SparkSession, baselines: tuple[PricingConfig, str]) -> None:
    cfg, workdir = baselines
    report = BacktestReport.load(workdir)
    assert [p.policy for p in report.policies] == BASELINES
    by_policy = {p.policy: p for p in report.policies}
    for policy in GUARDED:
        assert by_policy[policy].violations == 0, policy
    assert by_policy["keep"].uplift_vs_keep == 0
    assert by_policy["oracle"].share_of_oracle_uplift == pytest.approx(1.0)
    nights = io.read_table(spark, f"{workdir}/results/policy_nights").toPandas()
    assert sorted(nights.groupby("policy").size().items()) == sorted((p, 2) for p in BASELINES)
    # On the first night every policy starts from the same prices and band: nothing beats the oracle
    # in expected profit under the true demand curve.
    first = nights[nights["date"] == nights["date"].min()].set_index("policy")["expected_profit"]
    assert first["oracle"] >= first[["keep", "cost_plus", "competitor_median"]].max() * 0.999
    client = mlflow.MlflowClient(cfg.train.tracking_uri)
    run = client.get_run(report.mlflow_run_id or "")
    assert run.data.metrics["oracle.profit"] == pytest.approx(by_policy["oracle"].profit)
    # Its artifacts go to the configured store, not to ./mlruns under the folder the tests ran from.
    assert f"{cfg.train.artifact_location}/backtest/" in run.info.artifact_uri


def test_report_writes_html_and_plots_and_logs_them(
    spark: SparkSession, baselines: tuple[PricingConfig, str], tmp_path: Path
) -> None:
    cfg, workdir = baselines
    index = write_report(spark, cfg, workdir, str(tmp_path / "report"))
    page = index.read_text()
    assert "Policies compared" in page and "data:image/png;base64," in page
    assert (tmp_path / "report" / "profit_by_night.png").stat().st_size > 1000
    run_id = BacktestReport.load(workdir).mlflow_run_id or ""
    logged = {a.path for a in mlflow.MlflowClient(cfg.train.tracking_uri).list_artifacts(run_id, "report")}
    assert {"report/index.html", "report/profit_by_night.png"} <= logged


def test_unknown_policy_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="unknown policies"):
        _config(tmp_path, "backtest.policies=[keep,guess]")


@pytest.mark.slow
def test_the_nightly_job_in_the_loop(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _config(tmp_path, "backtest.policies=[keep,model_explore]", "backtest.exploration_share=0.5")
    monkeypatch.setenv(cfg.ingest.pii_salt_env, "s" * 32)
    report = run_backtest(spark, cfg, str(tmp_path / "bt"), log=lambda _: None)
    explore = {p.policy: p for p in report.policies}["model_explore"]
    assert explore.violations == 0
    assert explore.wape is not None and explore.elasticity_mae is not None
    lakehouse = Lakehouse(str(tmp_path / "bt" / "policies" / "model_explore" / "lakehouse"))
    runs = lakehouse.read(spark, RUNS).toPandas()
    # The backfill night and the first backtest night ran (the last night's prices are not needed).
    assert len(runs) == 2 and (runs["status"] == "succeeded").all()
    # The first backtest day's sales came back through the landing files the loop wrote.
    first = Backtest(spark, cfg, str(tmp_path / "bt")).first_night
    panel = lakehouse.read(spark, SKU_DAY)
    sold = panel.where(F.col("date") == F.lit(first)).agg(F.sum("units_sold")).first()
    realised = spark.read.parquet(str(tmp_path / "bt" / "policies" / "model_explore" / "realised"))
    truth = realised.where(F.col("date") == F.lit(first)).agg(F.sum("units_sold")).first()
    assert sold is not None and truth is not None and sold[0] > 0
    assert abs(sold[0] - truth[0]) <= 0.05 * truth[0] + 2  # dirt in the files quarantines a few lines
    recs = lakehouse.read(spark, PRICE_RECOMMENDATIONS)
    assert recs.where(F.col("binding_constraint") == "price_test").count() > 0


def test_backtest_runs_on_an_evaluation_family(spark: SparkSession, tmp_path: Path) -> None:
    """The closed loop on a market with another demand form: days realised from its true curve."""
    import numpy as np

    from pricing.evaluation.families import log_units

    cfg = _config(tmp_path, "backtest.policies=[keep,oracle]", "backtest.family=semilog_stock")
    report = run_backtest(spark, cfg, str(tmp_path / "bt"), log=lambda _: None)
    by_policy = {r.policy: r for r in report.policies}
    assert by_policy["oracle"].profit > by_policy["keep"].profit
    assert by_policy["oracle"].violations == 0
    planned = spark.read.parquet(str(tmp_path / "bt/truth/sku_day")).toPandas()
    realised = spark.read.parquet(str(tmp_path / "bt/policies/oracle/realised")).toPandas()
    days = realised.merge(planned.drop(columns=["price", "expected_demand"]), on=["sku", "date"])
    # Each backtest day's expected demand is the family's true curve at the oracle's price.
    assert len(days) == 8 * 2
    assert np.allclose(days["expected_demand"], np.exp(log_units(days, days["price"])))
