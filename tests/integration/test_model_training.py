"""Distributed training with both backends, MLflow logging and the champion gate (2 processes, CPU)."""

from __future__ import annotations

import importlib.util
from datetime import date, timedelta
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from conftest import TEST_OVERRIDES, copy_shop
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual
from review_support import rec_row

from pricing.config import PricingConfig, load_config
from pricing.decide.experiment import PRICE_TEST
from pricing.features import feature_rows, read_sku_day
from pricing.lakehouse import io
from pricing.lakehouse.tables import ELASTICITIES, PRICE_RECOMMENDATIONS, TEXT_EMBEDDINGS, Lakehouse
from pricing.model.dataset import (
    NUMERIC_FEATURES,
    UNITS_LAGS,
    fit_input_spec,
    input_features,
    model_inputs,
    text_basis,
    text_vectors,
)
from pricing.model.distributed import SHARD_COLUMN, read_shard
from pricing.model.train import (
    TrainReport,
    price_change_metrics,
    run_elasticities,
    run_train,
    training_shards,
)
from pricing.schemas import PRICE_RECOMMENDATIONS_SCHEMA, TEXT_EMBEDDINGS_SCHEMA
from pricing.sim.truth import elasticity_error, training_vs_truth
from pricing.text import encoder_name

SMALL_MODEL = [
    "train.epochs=6",
    "train.ensemble_size=2",
    "train.hidden=16",
    "train.holdout_days=7",
    "train.batch_size=128",
]


@pytest.fixture(scope="module")
def market(gold_shop: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The shared shop (conftest.SHOP), copied: training writes its shards and elasticities there."""
    root = tmp_path_factory.mktemp("model_market")
    return root, copy_shop(gold_shop, root)


def _config(root: Path, *overrides: str) -> PricingConfig:
    return load_config(
        "local",
        overrides=TEST_OVERRIDES
        + SMALL_MODEL
        + [
            f"train.tracking_uri=sqlite:///{root}/mlflow.db",
            f"train.artifact_location={root}/artifacts",
            *overrides,
        ],
    )


def _train(spark: SparkSession, cfg: PricingConfig, lakehouse: Path) -> TrainReport:
    return run_train(spark, Lakehouse.at(spark, str(lakehouse)), cfg.train, cfg.features)


def test_elasticity_error_splits_category_and_sku_errors(spark: SparkSession) -> None:
    truth = spark.createDataFrame(
        [("a1", "A", -1.0), ("a2", "A", -2.0), ("b1", "B", -3.0), ("b2", "B", -3.0)],
        "sku string, category string, elasticity double",
    )
    estimates = spark.createDataFrame(
        [
            (sku, e, e - 0.25, e + 0.25)
            # A's mean is right and its SKUs' deviations are too small; B's mean is 0.4 too high.
            for sku, e in [("a1", -1.2), ("a2", -1.8), ("b1", -2.5), ("b2", -2.7), ("new", -1.0)]
        ],
        "sku string, elasticity double, elasticity_low double, elasticity_high double",
    )
    errors = elasticity_error(estimates, truth)
    assert errors is not None
    assert errors == pytest.approx(
        {
            "elasticity_mae": 0.3,
            "elasticity_bias": 0.2,
            "elasticity_interval_coverage": 0.5,
            "elasticity_category_mae": 0.2,
            "elasticity_within_mae": 0.15,
            "elasticity_within_floor_mae": 0.25,
        }
    )
    assert elasticity_error(estimates.where("sku = 'new'"), truth) is None


def _check_distributed(report: TrainReport, loss_falls: bool = True) -> None:
    assert report.world_size == 2
    # The debiased fit starts from the demand nuisance, so its loss need not fall (as in
    # tests/unit/test_model_network.py); it must still have trained.
    assert report.losses[-1] < report.losses[0] if loss_falls else report.losses[-1] != report.losses[0]
    first, second = report.param_checksums
    assert first == second  # both workers end with identical weights
    assert report.holdout_wape < 1.0


def test_text_basis_is_the_principal_axes_of_the_titles(spark: SparkSession) -> None:
    rng = np.random.default_rng(3)
    # Six titles in 5 dimensions whose spread lies mostly along two directions.
    vectors = rng.normal(size=(6, 2)) @ rng.normal(size=(2, 5)) * 3 + rng.normal(size=(6, 5)) * 0.01
    titles = spark.createDataFrame(
        [(f"t{i}", "enc", [float(x) for x in v]) for i, v in enumerate(vectors)], TEXT_EMBEDDINGS_SCHEMA
    )
    basis = np.array(text_basis(titles, 5, 2))
    assert basis.shape == (5, 2)
    np.testing.assert_allclose(basis.T @ basis, np.eye(2), atol=1e-9)
    # The same plane as numpy's leading eigenvectors of the titles' covariance.
    axes = np.linalg.eigh(np.cov(vectors, rowvar=False))[1][:, ::-1][:, :2]
    np.testing.assert_allclose(np.abs(axes.T @ basis), np.eye(2), atol=1e-6)
    # Nothing to project where the vectors are no longer than the components asked for.
    assert text_basis(titles, 5, 5) is None and text_basis(titles, 5, 0) is None


def test_training_shards_carry_each_text_once_and_read_back_the_same_rows(
    spark: SparkSession, market: tuple[Path, Path], tmp_path: Path
) -> None:
    _, lakehouse = market
    cfg = _config(tmp_path)
    tables = Lakehouse(str(lakehouse))
    panel = feature_rows(read_sku_day(spark, tables, cfg.features), cfg.features)
    embeddings = tables.read_declared(spark, TEXT_EMBEDDINGS)
    text_dim = len(embeddings.first()["embedding"])
    end = panel.agg({"date": "max"}).first()[0]
    spec = fit_input_spec(panel, encoder_name(cfg.features), text_dim, end)
    written = {
        "vector": model_inputs(panel, embeddings, spec),
        "hash": model_inputs(panel, None, spec, text="hash"),
    }
    for name, rows in written.items():
        rows.orderBy("sku", "date").coalesce(1).write.parquet(str(tmp_path / name))
    text_vectors(embeddings, spec).write.parquet(str(tmp_path / "texts"))

    by_vector = read_shard(str(tmp_path / "vector"), 0, 1)
    by_hash = read_shard(str(tmp_path / "hash"), 0, 1, texts_dir=str(tmp_path / "texts"))
    assert by_hash.keys() == by_vector.keys()
    for name, tensor in by_vector.items():
        assert torch.equal(by_hash[name], tensor), name
    assert by_hash["text"].abs().sum() > 0  # the market's titles really have vectors
    # Each title's vector is stored once, not once per day.
    assert "text" not in spark.read.parquet(str(tmp_path / "hash")).columns
    distinct = written["hash"].select("text_hash").distinct().count()
    assert spark.read.parquet(str(tmp_path / "texts")).count() == distinct < len(by_hash["units"])
    with pytest.raises(ValueError, match="texts_dir"):
        read_shard(str(tmp_path / "hash"), 0, 1)

    # However many files Spark writes a run's rows as, each process reads the same rows in the same
    # order (it once wrote one file for four, and a process read none).
    sharded = training_shards(written["vector"], 4)
    io.write_files(sharded, str(tmp_path / "four"), SHARD_COLUMN)
    io.write_files(sharded.coalesce(1), str(tmp_path / "one"), SHARD_COLUMN)
    assert io.count_partitions(spark, str(tmp_path / "one"), SHARD_COLUMN) == 4
    # The shards are the files Spark's own hash partitioning writes, each in (sku, date) order.
    written["vector"].repartition(4, "sku", "date").sortWithinPartitions("sku", "date").write.parquet(
        str(tmp_path / "files")
    )
    for rank in (0, 1):
        four, one = (read_shard(str(tmp_path / name), rank, 2) for name in ("four", "one"))
        files = read_shard(str(tmp_path / "files"), rank, 2)
        assert 0 < len(four["units"]) < len(by_vector["units"])
        for name, tensor in four.items():
            assert torch.equal(one[name], tensor) and torch.equal(files[name], tensor), name

    # train.units_lags=false: the same inputs, scaled the same, without the five units columns.
    assert len(UNITS_LAGS) == 5 and set(UNITS_LAGS) < set(NUMERIC_FEATURES)
    reduced = fit_input_spec(panel, encoder_name(cfg.features), text_dim, end, input_features(False))
    assert reduced.numeric_features == [n for n in NUMERIC_FEATURES if n not in UNITS_LAGS]
    kept = [spec.numeric_features.index(n) for n in reduced.numeric_features]
    assert reduced.means == [spec.means[i] for i in kept] and reduced.highs == [spec.highs[i] for i in kept]
    full = np.array([r.numeric for r in written["vector"].orderBy("sku", "date").select("numeric").collect()])
    fewer = model_inputs(panel, embeddings, reduced).orderBy("sku", "date").select("numeric").collect()
    np.testing.assert_array_equal(np.array([r.numeric for r in fewer]), full[:, kept])
    with pytest.raises(ValueError, match="not model inputs"):
        fit_input_spec(panel, encoder_name(cfg.features), text_dim, end, ["units_lag_1"])


def test_torch_distributor_trains_registers_and_gates(
    spark: SparkSession, market: tuple[Path, Path], tmp_path: Path
) -> None:
    root, lakehouse = market
    cfg = _config(tmp_path, "train.backend=torch_distributor")
    good = _train(spark, cfg, lakehouse)
    _check_distributed(good)
    assert (good.model_version, good.alias) == ("1", "champion")
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    assert {"holdout_wape", "seasonal_naive_wape"} <= set(client.get_run(good.run_id).data.metrics)
    # Training never reads ground truth; `pricing train --truth` judges what it wrote, into its run.
    assert "elasticity_mae" not in client.get_run(good.run_id).data.metrics
    errors = training_vs_truth(spark, good, str(lakehouse), str(root / "truth"), cfg.train.tracking_uri)
    run = client.get_run(good.run_id)
    assert errors["elasticity_mae"] > 0
    assert run.data.metrics["elasticity_mae"] == pytest.approx(errors["elasticity_mae"])
    assert good.elasticity_mae == errors["elasticity_mae"] and "elasticity vs truth" in good.render()
    assert (
        len(client.get_metric_history(good.run_id, "train_poisson_loss")) == 6
    )  # one per epoch, rank 0 only
    # Where the run's time went, and the batch it trained on (a small panel: the configured one).
    assert {"seconds_prepare", "seconds_fit", "seconds_evaluate", "seconds_register"} <= set(run.data.metrics)
    assert run.data.params["train_poisson_batch_size"] == "128"
    # Two processes share it: the fit takes the steps one process would.
    assert run.data.params["train_poisson_process_batch_size"] == "64"
    # The training rows as written: two shards per process, as asked.
    assert run.data.params["train_shards"] == run.data.params["train_shards_asked"] == "4"
    # What serving the model needs is pinned, torch included (MLflow's own inference missed it).
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    requirements = Path(mlflow.pyfunc.get_model_dependencies("models:/pricing-demand/1")).read_text()
    pinned = dict(line.split("==") for line in requirements.split())
    assert {"torch", "mlflow", "numpy", "pandas"} <= pinned.keys()

    # A model that barely trained must not take the champion's place on the same holdout.
    weak = _train(spark, _config(tmp_path, "train.epochs=1", "train.learning_rate=1e-7"), lakehouse)
    assert weak.alias == "challenger"
    assert weak.champion_wape is not None and weak.holdout_wape > weak.champion_wape
    assert str(client.get_model_version_by_alias("pricing-demand", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("pricing-demand", "challenger").version) == "2"
    # gold/elasticities describes the champion, which prices: the challenger's stay with its run.
    tables = Lakehouse.at(spark, str(lakehouse))
    champion_elasticities = run_elasticities(spark, tables, good.run_id)
    assertDataFrameEqual(tables.read(spark, ELASTICITIES), champion_elasticities)
    weak_elasticities = run_elasticities(spark, tables, weak.run_id)
    assert weak_elasticities.count() == champion_elasticities.count()
    assert weak_elasticities.exceptAll(champion_elasticities).count() > 0

    # Five of the system's own price tests, in force on training days: too few to move the level, so
    # they go back into the fit, which is then the one the champion was trained by, weight for weight.
    shards = tables.read_model_data(spark, good.run_id, "train")
    tested = (
        shards.where("weight > 0").orderBy("sku", "date").select("sku", "date", "price").limit(5).collect()
    )
    tests = [
        rec_row(r.sku, r.date, r.price, r.price, "auto_approved", binding_constraint=PRICE_TEST)
        for r in tested
    ]
    tables.append(PRICE_RECOMMENDATIONS, spark.createDataFrame(tests, PRICE_RECOMMENDATIONS_SCHEMA))
    refit = _train(
        spark, _config(tmp_path, "train.backend=torch_distributor", "train.own_test_z=2"), lakehouse
    )
    assert refit.metrics["own_test_rows"] == 5 and refit.metrics["own_test_refit"] == 1
    assert refit.metrics["elasticity_level_shift"] == 0
    marked = tables.read_model_data(spark, refit.run_id, "train").where("own_test IS NOT NULL")
    assert marked.count() == 5
    assert (refit.losses, refit.param_checksums) == (good.losses, good.param_checksums)


@pytest.mark.skipif(importlib.util.find_spec("horovod") is None, reason="Horovod not installed (make setup)")
def test_horovod_on_spark_trains_with_two_processes(
    spark: SparkSession, market: tuple[Path, Path], tmp_path: Path
) -> None:
    _, lakehouse = market
    # The debiased fit (cross-fitted nuisances, then the ensemble) on Horovod; the naive one above.
    # Both sides see the titles through 4 principal components, which the saved model applies itself.
    # The system's own price tests are asked for too: a debiased fit keeps its level, and every row.
    projected = ["train.debias=true", "train.text_components=4", "train.own_test_z=2"]
    cfg = _config(tmp_path, "train.backend=horovod", *projected)
    report = _train(spark, cfg, lakehouse)
    _check_distributed(report, loss_falls=False)
    shards = Lakehouse.at(spark, str(lakehouse)).read_model_data(spark, report.run_id, "train")
    assert "own_test" not in shards.columns
    mlflow.set_tracking_uri(cfg.train.tracking_uri)
    served = mlflow.pyfunc.load_model(f"models:/pricing-demand/{report.model_version}")
    basis = served.unwrap_python_model().model.text_basis
    assert basis is not None and basis.shape[1] == 4 and basis.shape[0] > 4
    # Switching the backend must not change the model: the same seed trains the same weights. The
    # twin asks for GPUs too: where none is visible it trains on the CPU with Gloo, as CI must.
    twin = _train(
        spark,
        _config(tmp_path, "train.backend=torch_distributor", *projected, "train.use_gpu=true"),
        lakehouse,
    )
    assert twin.device == ("cuda:0" if torch.cuda.is_available() else "cpu")
    if twin.device == "cpu":  # a GPU's float arithmetic differs from the CPU's in the last bits
        assert report.losses == pytest.approx(twin.losses, rel=1e-5)
        assert report.param_checksums[0] == pytest.approx(twin.param_checksums[0], rel=1e-4)


def test_the_price_response_slope_reads_the_price_part_of_held_out_changes(spark: SparkSession) -> None:
    """Three SKUs, elasticity -2, prices moving every day; the model also predicts a day effect.

    Where the day effect did not happen, the actual changes follow the model's price part exactly:
    the price response slope is 1 while the plain response slope falls below it. Where demand
    answers prices 1.5 times as strongly as the model says, the price response slope reads 1.5.
    """
    elasticity, days = -2.0, 21
    log_price = [0.1 * ((d * 7) % 5 - 2) for d in range(days)]  # moves of 0.1 to 0.4 every day
    day_effect = [0.3 * ((d * 3) % 4 - 1.5) for d in range(days)]

    def rows(
        response: float, day_effect_happens: bool
    ) -> list[tuple[str, date, float, float, float, float, float]]:
        out = []
        for sku, level in (("A", 2.0), ("B", 2.5), ("C", 3.0)):
            for d in range(days):
                predicted = level + elasticity * log_price[d] + day_effect[d]
                actual = (
                    level
                    + response * elasticity * log_price[d]
                    + (day_effect[d] if day_effect_happens else 0)
                )
                # log(units + 0.5) is the log the metrics take, so these changes are exact.
                out.append(
                    (
                        sku,
                        date(2026, 3, 1) + timedelta(days=d),
                        float(np.exp(actual) - 0.5),
                        float(np.exp(predicted) - 0.5),
                        log_price[d],
                        elasticity,
                        1.0,
                    )
                )
        return out

    schema = (
        "sku string, date date, units double, expected_units double, log_price_ratio double,"
        " elasticity double, weight double"
    )
    right = price_change_metrics(spark.createDataFrame(rows(1.0, day_effect_happens=False), schema))
    assert right["price_change_rows"] == 3 * (days - 1)
    assert right["price_response_slope"] == pytest.approx(1.0, abs=1e-6)
    assert right["price_response_slope_se"] == pytest.approx(0.0, abs=1e-6)
    assert right["price_change_slope"] < 0.9  # the day effect that did not happen pulls it down

    too_inelastic = price_change_metrics(spark.createDataFrame(rows(1.5, day_effect_happens=True), schema))
    assert too_inelastic["price_response_slope"] == pytest.approx(1.5, abs=1e-6)
