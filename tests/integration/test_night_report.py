"""The report of a night: one self-contained HTML file, escaped, logged to MLflow, recorded in audit/runs."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import mlflow
import pytest
from pyspark.sql import SparkSession
from review_support import NIGHT, price_lakehouse

from pricing.cli import main
from pricing.config import PricingConfig, load_config
from pricing.decide.review import Selection, decide
from pricing.lakehouse.tables import RUNS, SILVER, Lakehouse
from pricing.nightly.job import NightlyReport, Stage, report_night
from pricing.nightly.report import NIGHTS_EXPERIMENT, render_night
from pricing.schemas import RUNS_SCHEMA

HOSTILE = '<script>alert("x")</script> Tent & "Co"'


def _night() -> NightlyReport:
    run_date = NIGHT - timedelta(days=1)
    night = NightlyReport(run_date, f"nightly-{run_date}", NIGHT, status="succeeded", model_version=None)
    night.stages = [
        Stage("ingest", "done", 12.5, 40, 1_000_000, 200_000, "3 files"),
        Stage("score", "done", 4.0, 5, 0, 0, None),
    ]
    night.checks = [("ingest_balanced", True, "0 unbalanced source batches")]
    night.skus_priced = 5
    night.finished_at = datetime(2026, 3, 2, 0, 5)
    return night


def _shop(spark: SparkSession, template: Path, tmp_path: Path) -> tuple[str, PricingConfig]:
    """The hand-built night's prices, a catalogue with a hostile title, a run-log row, an MLflow store."""
    root = price_lakehouse(spark, template, tmp_path)
    # Only the columns the report reads, written straight in Delta: the catalog would want them all.
    spark.createDataFrame(
        [("A", HOSTILE, "tents"), ("B", "Plain mug", "kitchen")], "sku string, title string, category string"
    ).write.format("delta").save(Lakehouse(root).path(SILVER["catalog"]))
    Lakehouse(root).append(RUNS, spark.createDataFrame([_night().row()], RUNS_SCHEMA))
    store = tmp_path / "mlflow"
    cfg = load_config(
        "local",
        overrides=[
            f"paths.lakehouse={root}",
            f"train.tracking_uri=sqlite:///{store}/mlflow.db",
            f"train.artifact_location={store}/artifacts",
        ],
    )
    return root, cfg


def test_the_report_shows_the_night_and_escapes_what_comes_from_data(
    spark: SparkSession, price_template: Path, tmp_path: Path
) -> None:
    root, cfg = _shop(spark, price_template, tmp_path)
    decide(spark, Lakehouse.at(spark, root), "approved", Selection(skus=("A",)), "ana")
    page = render_night(spark, Lakehouse.at(spark, root), _night(), cfg.train)
    for heading in (
        "The night",
        "Expected impact",
        "What changed",
        "Review queue",
        "Guardrails",
        "Intake",
        "Stages",
        "Model",
    ):
        assert f"<h2>{heading}</h2>" in page
    # A's approved rise is in force (+15.0 %); B and D still wait; the title cannot inject markup.
    assert "+15.0%" in page and "2 prices wait for a person" in page
    assert "<script>" not in page and '&lt;script&gt;alert("x")&lt;/script&gt; Tent &amp; "Co"' in page
    # Self-contained: every image is embedded, nothing is fetched from elsewhere.
    sources = re.findall(r'src="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "href=" not in page
    assert "No model priced this night" in page and "ingest_balanced" in page


def test_pricing_report_writes_the_file_logs_it_and_records_its_path(
    spark: SparkSession, price_template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, cfg = _shop(spark, price_template, tmp_path)
    overrides = [
        f"train.tracking_uri={cfg.train.tracking_uri}",
        f"train.artifact_location={cfg.train.artifact_location}",
    ]
    for _ in range(2):  # written again, it replaces the file and reuses the night's MLflow run
        assert main(["report", "--lakehouse", root, *overrides]) == 0
    path = f"{root}/reports/night-{NIGHT - timedelta(days=1)}.html"
    assert capsys.readouterr().out.strip().endswith(path)
    assert Path(path.removeprefix("file:")).read_text().startswith("<!doctype html>")
    (row,) = Lakehouse(root).read(spark, RUNS).collect()
    assert row.report_path == path and row.status == "succeeded"
    client = mlflow.MlflowClient(cfg.train.tracking_uri)
    experiment = client.get_experiment_by_name(NIGHTS_EXPERIMENT)
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert (
        run.info.run_name == f"nightly-{NIGHT - timedelta(days=1)}" and run.data.metrics["skus_priced"] == 5
    )
    assert [a.path for a in client.list_artifacts(run.info.run_id, "report")] == [
        f"report/night-{NIGHT - timedelta(days=1)}.html"
    ]
    # Another folder on request; an unknown night or both kinds of report at once are refused.
    assert main(["report", "--lakehouse", root, "--out", str(tmp_path / "out"), *overrides]) == 0
    assert (tmp_path / "out" / f"night-{NIGHT - timedelta(days=1)}.html").exists()
    assert main(["report", "--lakehouse", root, "--run-date", "2026-01-01", *overrides]) == 1
    assert "has no night 2026-01-01" in capsys.readouterr().err
    assert main(["report", "--lakehouse", root, "--backtest", "x"]) == 2
    with pytest.raises(Exception, match="has no night"):
        report_night(spark, cfg, NIGHT + timedelta(days=5))
