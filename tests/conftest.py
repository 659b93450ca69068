"""One SparkSession (local[2], Delta, UTC, UI off) for the whole suite; tmp folders per test."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from pyspark.sql import SparkSession

from pricing.config import PricingConfig, load_config
from pricing.spark import build_spark

TEST_OVERRIDES = [
    "spark.master=local[2]",
    "spark.shuffle_partitions=2",
    "spark.driver_memory=2g",
    "spark.ui_enabled=false",
]


@pytest.fixture(scope="session")
def cfg() -> PricingConfig:
    return load_config("local", overrides=TEST_OVERRIDES)


@pytest.fixture(scope="session")
def spark(cfg: PricingConfig) -> Iterator[SparkSession]:
    session = build_spark(cfg.spark)
    yield session
    session.stop()


@pytest.fixture
def pii_salt(monkeypatch: pytest.MonkeyPatch, cfg: PricingConfig) -> str:
    salt = secrets.token_hex(24)
    monkeypatch.setenv(cfg.ingest.pii_salt_env, salt)
    return salt
