"""Whether tonight retrains: the champion's age and its forecast error on the days since it was trained."""

from __future__ import annotations

from datetime import date, timedelta

import mlflow
from pyspark.sql import SparkSession

from pricing.config import PricingConfig
from pricing.decide.stage import load_champion
from pricing.features import feature_rows, read_sku_day
from pricing.lakehouse.tables import TEXT_EMBEDDINGS, Lakehouse
from pricing.model.dataset import model_inputs
from pricing.model.predict import foreign_model
from pricing.model.train import evaluate, wape


def retrain_reason(
    spark: SparkSession, lakehouse: Lakehouse, cfg: PricingConfig, run_date: date
) -> str | None:
    """Why the champion should be retrained tonight, or None when it is fresh and accurate."""
    ncfg, tcfg = cfg.nightly, cfg.train
    mlflow.set_tracking_uri(tcfg.tracking_uri)
    client = mlflow.MlflowClient()
    try:
        version = client.get_model_version_by_alias(tcfg.model_name, cfg.score.model_alias)
    except mlflow.exceptions.MlflowException:
        return "no champion model yet"
    lakehouse_id = lakehouse.identity(spark)
    foreign = foreign_model(version, lakehouse_id)
    if foreign:
        return foreign
    if not version.run_id:
        return f"champion v{version.version} has no training run"
    run = client.get_run(version.run_id)
    panel_end = run.data.tags.get("panel_end")
    if panel_end is None:
        return f"champion v{version.version} does not record its training data's end"
    age = (run_date - date.fromisoformat(panel_end)).days
    if age >= ncfg.retrain_every_days:
        return f"champion v{version.version} trained on data through {panel_end} ({age} days old)"
    baseline = run.data.metrics.get("holdout_wape")
    start = max(
        date.fromisoformat(panel_end) + timedelta(days=1), run_date - timedelta(ncfg.drift_window_days - 1)
    )
    if baseline is None or start > run_date:
        return None
    champion = load_champion(tcfg, cfg.score.model_alias, lakehouse_id)
    assert champion is not None
    rows = model_inputs(
        feature_rows(read_sku_day(spark, lakehouse, cfg.features), cfg.features, start=start, end=run_date),
        lakehouse.read_declared(spark, TEXT_EMBEDDINGS),
        champion.input_spec,
    )
    shipped = spark.sparkContext.broadcast(champion)
    recent = wape(evaluate(rows, lambda: shipped.value.load()), "expected_units")
    if recent > baseline * ncfg.drift_max_wape_ratio:
        return (
            f"drift: WAPE {recent:.3f} since {start} vs {baseline:.3f} on the champion's holdout "
            f"(> x{ncfg.drift_max_wape_ratio})"
        )
    return None
