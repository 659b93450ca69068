"""The system's own price tests set the elasticity level where they contradict the history's: which rows
count as tests, what level they call for, and how a model carries it."""

from __future__ import annotations

import io
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from review_support import rec_row

from pricing.lakehouse import io as lake_io
from pricing.lakehouse.tables import PRICE_RECOMMENDATIONS, Lakehouse
from pricing.model.network import Ensemble, NetSpec, Nuisance
from pricing.model.predict import LoadedModel
from pricing.model.train import MIN_OWN_TEST_ROWS, mark_own_tests, own_test_level
from pricing.schemas import PRICE_RECOMMENDATIONS_SCHEMA

SPEC = NetSpec(n_skus=3, n_categories=1, n_brands=1, text_dim=2, n_numeric=2, hidden=8, elasticity_prior=-2.0)
CONFIG: dict[str, Any] = {
    "net": SPEC.to_dict(),
    "ensemble_size": 1,
    "debias": False,
    "elasticity_interval": "laplace",
}
START = date(2026, 3, 1)
Z = 2.0  # train.own_test_z as measured (docs/training.md)


def _state() -> bytes:
    torch.manual_seed(0)
    ensemble = Ensemble(SPEC, 1)
    # About 20 units a day, so that a few hundred tested days pin the level down.
    ensemble.members[0].base_head.bias.data.fill_(3.0)  # type: ignore[union-attr]
    buffer = io.BytesIO()
    weights = {
        "ensemble": ensemble.state_dict(),
        "nuisance": Nuisance(SPEC).state_dict(),
        "elasticity_u_sd": torch.full((1, SPEC.n_skus + 1), 0.2, dtype=torch.float64),
        "elasticity_category_sd": torch.full((1, SPEC.n_categories + 1), 0.3, dtype=torch.float64),
        "elasticity_sku_prior_sd": torch.tensor([0.35], dtype=torch.float64),
    }
    torch.save(weights, buffer)
    return buffer.getvalue()


def _rows(n_tested: int, true_shift: float, seed: int = 0) -> pd.DataFrame:
    """Per SKU 1-3: ``n_tested`` // 3 tested days at random prices, every other day, then 30 untested
    days, all untested days at log price ratio 0.1; units drawn from the model with its elasticity
    argument moved by ``true_shift`` around that usual price."""
    rng = np.random.default_rng(seed)
    frames = []
    for sku in (1, 2, 3):
        k = n_tested // 3
        days = 2 * k + 30
        tested = (np.arange(days) < 2 * k) & (np.arange(days) % 2 == 1)
        frames.append(
            pd.DataFrame(
                {
                    "sku": f"S{sku}",
                    "date": [START + timedelta(days=d) for d in range(days)],
                    "sku_idx": sku,
                    "category_idx": 1,
                    "brand_idx": 1,
                    "numeric": [[0.0, 0.0]] * days,
                    "text": [[0.0, 0.0]] * days,
                    "log_price_ratio": np.where(tested, 0.1 + rng.uniform(-0.15, 0.15, days), 0.1),
                    "weight": 1.0,
                    "censored": 0.0,
                    "own_test": np.where(tested, 1.0, np.nan),
                }
            )
        )
    rows = pd.concat(frames, ignore_index=True)
    log_mean, elasticity = LoadedModel(_state(), CONFIG).members(rows)
    moved = -np.logaddexp(0.0, np.log(np.expm1(-elasticity[0])) + true_shift)
    mean = np.exp(log_mean[0] + (moved - elasticity[0]) * (rows["log_price_ratio"].to_numpy() - 0.1))
    rows["units"] = rng.poisson(mean).astype(float)
    return rows


def _frame(spark: SparkSession, rows: pd.DataFrame) -> DataFrame:
    return spark.createDataFrame(
        rows.assign(own_test=rows["own_test"].astype(object).where(rows["own_test"].notna()))
    )


def test_tests_that_contradict_the_historys_level_move_it(spark: SparkSession) -> None:
    level = own_test_level(_frame(spark, _rows(600, 1.5)), _state(), CONFIG, Z)
    assert level["own_test_rows"] == 600
    assert level["elasticity_level_shift"] == pytest.approx(1.5, abs=3 * level["elasticity_level_shift_sd"])
    assert abs(level["elasticity_level_shift"]) > 2 * level["elasticity_level_shift_sd"]
    # Each SKU's curve pivots at its usual (untested) price; index 0 (unknown SKU) at 0.
    assert level["elasticity_level_pivot"] == pytest.approx([0.0, 0.1, 0.1, 0.1])


def test_tests_that_agree_with_the_history_leave_its_level(spark: SparkSession) -> None:
    level = own_test_level(_frame(spark, _rows(600, 0.0)), _state(), CONFIG, Z)
    assert level["own_test_rows"] == 600 and "elasticity_level_shift" not in level
    assert abs(level["own_test_shift"]) <= 2 * level["own_test_shift_sd"]


def test_too_few_tests_a_debiased_model_or_switched_off_change_nothing(spark: SparkSession) -> None:
    few = _rows(MIN_OWN_TEST_ROWS - 3, 1.5)
    assert own_test_level(_frame(spark, few), _state(), CONFIG, Z) == {"own_test_rows": MIN_OWN_TEST_ROWS - 3}
    assert own_test_level(_frame(spark, _rows(600, 1.5)), _state(), {**CONFIG, "debias": True}, Z) == {}
    assert own_test_level(_frame(spark, _rows(600, 1.5)), _state(), CONFIG, z=0.0) == {}  # off
    untested = _rows(600, 1.5).drop(columns="own_test")
    assert own_test_level(spark.createDataFrame(untested), _state(), CONFIG, Z) == {}


def test_a_shifted_model_pivots_each_curve_at_its_usual_price() -> None:
    rows = _rows(60, 0.0)
    plain = LoadedModel(_state(), CONFIG)
    shifted = LoadedModel(
        _state(),
        {
            **CONFIG,
            "elasticity_level_shift": 1.0,
            "elasticity_level_shift_sd": 0.5,
            "elasticity_level_pivot": [0.0, 0.1, 0.1, 0.1],
        },
    )
    before, after = plain.predict(rows), shifted.predict(rows)
    argument = np.log(np.expm1(-before["elasticity"].to_numpy()))
    assert after["elasticity"].to_numpy() == pytest.approx(-np.logaddexp(0.0, argument + 1.0), rel=1e-5)
    usual = (rows["log_price_ratio"] == 0.1).to_numpy()
    assert after["expected_units"][usual].to_numpy() == pytest.approx(
        before["expected_units"][usual].to_numpy()
    )
    above = rows["log_price_ratio"].to_numpy() > 0.1
    # More elastic: fewer units above the usual price; and the level's own doubt widens every interval.
    assert (after["expected_units"][above] < before["expected_units"][above]).all()
    width = lambda frame: frame["elasticity_high"] - frame["elasticity_low"]  # noqa: E731
    assert (width(after) > width(before)).all()


def test_only_test_prices_that_were_in_force_are_marked(spark: SparkSession, tmp_path: Path) -> None:
    lakehouse = Lakehouse(lake_io.qualify(spark, str(tmp_path / "lakehouse")))
    day = START + timedelta(days=1)
    schema = "sku string, date date, price double, weight float, censored float"
    rows = spark.createDataFrame(
        [
            ("A", day, 11.0, 1.0, 0.0),
            ("A", START, 10.0, 1.0, 0.0),
            ("B", day, 10.0, 1.0, 0.0),
            ("C", day, 10.5, 1.0, 1.0),
        ],
        schema,
    )
    # The first night trains before any price was ever recommended: no table, no test.
    unmarked = rows.withColumn("own_test", F.lit(None).cast("float"))
    assertDataFrameEqual(mark_own_tests(spark, lakehouse, rows), unmarked)

    recommendations = [
        rec_row("A", day, 10.0, 11.0, "auto_approved", binding_constraint="price_test"),
        rec_row("B", day, 10.0, 9.0, "needs_review", binding_constraint="price_test"),  # never in force
        rec_row("C", day, 10.0, 10.5, "auto_approved"),  # an ordinary move
    ]
    lakehouse.append(
        PRICE_RECOMMENDATIONS, spark.createDataFrame(recommendations, PRICE_RECOMMENDATIONS_SCHEMA)
    )
    expected = spark.createDataFrame(
        [
            ("A", day, 11.0, 1.0, 0.0, 1.0),  # marked: the fit decides whether it takes part
            ("A", START, 10.0, 1.0, 0.0, None),
            ("B", day, 10.0, 1.0, 0.0, None),
            ("C", day, 10.5, 1.0, 1.0, None),
        ],
        schema + ", own_test float",
    )
    assertDataFrameEqual(mark_own_tests(spark, lakehouse, rows), expected)
