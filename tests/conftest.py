"""One SparkSession (local[2], Delta, UTC, UI off) for the whole suite; tmp folders per test."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from pricing.config import PricingConfig, load_config
from pricing.platform.spark import build_spark

TEST_OVERRIDES = [
    "spark.master=local[2]",
    "spark.shuffle_partitions=2",
    "spark.driver_memory=2g",
    "spark.ui_enabled=false",
]


def gold_market(spark: SparkSession, cfg: PricingConfig, root: Path) -> Path:
    """Simulate ``cfg``'s market under ``root`` (landing/, truth/), ingest it and build its gold panel.

    Returns the lakehouse.
    """
    from pricing.features import run_features
    from pricing.ingest import run_ingest
    from pricing.lakehouse.tables import Lakehouse
    from pricing.sim import simulate_market

    simulate_market(spark, cfg.simulate, str(root / "landing"), str(root / "truth"))
    lakehouse = Lakehouse.at(spark, str(root / "lakehouse"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv(cfg.ingest.pii_salt_env, "t" * 32)  # fixed: the same pseudonyms every run
        run_ingest(spark, lakehouse, cfg.ingest, str(root / "landing"))
    run_features(spark, lakehouse, cfg.features, cfg.catalog)
    return root / "lakehouse"


# The clean small shop the scoring and training tests share (simulated, ingested and built once).
SHOP = ["simulate.n_skus=10", "simulate.n_days=40", "simulate.dirt.corrupt_files=false"]


@pytest.fixture(scope="session")
def gold_shop(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SHOP's market under a session folder (landing/, truth/, lakehouse/ to its gold panel); a module
    that writes takes its own copy (:func:`copy_shop`)."""
    root = tmp_path_factory.mktemp("gold_shop")
    gold_market(spark, load_config("local", overrides=TEST_OVERRIDES + SHOP), root)
    return root


def copy_shop(shop: Path, root: Path) -> Path:
    """A copy of the shared shop's folders under ``root`` (Delta tables copy as files); returns its
    lakehouse."""
    shutil.copytree(shop, root, dirs_exist_ok=True)
    return root / "lakehouse"


@pytest.fixture(scope="session")
def cfg() -> PricingConfig:
    return load_config("local", overrides=TEST_OVERRIDES)


@pytest.fixture(scope="session")
def spark(cfg: PricingConfig) -> Iterator[SparkSession]:
    session = build_spark(cfg.spark)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def nightly_market(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A small market after two nightly runs (tests/nightly_support.py), built once per session."""
    from nightly_support import two_nights

    with pytest.MonkeyPatch.context() as env:
        env.setenv("PRICING_PII_SALT", secrets.token_hex(24))
        yield two_nights(spark, tmp_path_factory.mktemp("nightly"))


@pytest.fixture(scope="session")
def crash_world(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The kill -9 tests' world (tests/nightly_support.py): night 1 state, night 2's landing, and a
    reference lakehouse after two nights, which the notebook tests explore. Built once per session."""
    from nightly_support import crash_world

    with pytest.MonkeyPatch.context() as env:
        env.setenv("PRICING_PII_SALT", secrets.token_hex(24))
        yield crash_world(spark, tmp_path_factory.mktemp("crash"))


@pytest.fixture
def pii_salt(monkeypatch: pytest.MonkeyPatch, cfg: PricingConfig) -> str:
    salt = secrets.token_hex(24)
    monkeypatch.setenv(cfg.ingest.pii_salt_env, salt)
    return salt


@pytest.fixture(scope="session")
def price_template(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the review tests' hand-built price lakehouse (tests/review_support.py) as
    ``lakehouse/``, built once; each test takes a copy (``review_support.price_lakehouse``)."""
    from review_support import build_price_lakehouse

    root = tmp_path_factory.mktemp("price_template")
    build_price_lakehouse(spark, root / "lakehouse")
    return root
