from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import get_args

import pytest

from pricing.config import (
    ConfigError,
    PolicyConfig,
    PricingConfig,
    SourceName,
    derive,
    load_config,
    parse_overrides,
)
from pricing.schemas import SOURCES


def test_local_overlay_on_base() -> None:
    cfg = load_config("local")
    assert cfg.env == "local"
    assert cfg.spark.master == "local[2]"
    assert cfg.ingest.base_currency == "USD"
    assert cfg.simulate.start_date == date(2026, 6, 1)


def test_cluster_overlay_leaves_master_to_spark_submit() -> None:
    cfg = load_config("cluster")
    assert cfg.spark.master is None
    assert cfg.spark.shuffle_partitions == 200
    assert cfg.spark.extra_conf["spark.sql.adaptive.enabled"] == "true"


def test_overrides_are_typed_and_nested() -> None:
    cfg = load_config(
        "local",
        overrides=[
            "simulate.n_skus=7",
            "ingest.anomaly.robust_z_threshold=5.5",
            "spark.ui_enabled=true",
            "simulate.start_date=2025-01-31",
        ],
    )
    assert cfg.simulate.n_skus == 7
    assert cfg.ingest.anomaly.robust_z_threshold == 5.5
    assert cfg.spark.ui_enabled is True
    assert cfg.simulate.start_date == date(2025, 1, 31)


def test_extra_conf_file_then_overrides_win(tmp_path: Path) -> None:
    extra = tmp_path / "site.yaml"
    extra.write_text("simulate:\n  n_skus: 11\n  seed: 3\npaths:\n  lakehouse: /data/lh\n")
    cfg = load_config("local", conf_files=[str(extra)], overrides=["simulate.seed=4"])
    assert (cfg.simulate.n_skus, cfg.simulate.seed, cfg.paths.lakehouse) == (11, 4, "/data/lh")


@pytest.mark.parametrize(
    "override",
    ["simulate.n_skuz=3", "nosuchsection.key=1", "ingest.anomaly.bogus=1"],
)
def test_unknown_keys_are_rejected(override: str) -> None:
    with pytest.raises(ConfigError, match="Extra inputs are not permitted"):
        load_config("local", overrides=[override])


def test_unknown_key_in_file_is_rejected(tmp_path: Path) -> None:
    extra = tmp_path / "typo.yaml"
    extra.write_text("ingest:\n  base_curency: EUR\n")
    with pytest.raises(ConfigError, match="base_curency"):
        load_config("local", conf_files=[str(extra)])


@pytest.mark.parametrize(
    "override, message",
    [
        ("simulate.n_skus=many", "n_skus"),
        ("simulate.n_skus=0", "greater than or equal to 1"),
        ("catalog.default_margin=1.5", "default_margin"),
        ("simulate.elasticity_range=[-1, 0.5]", "elasticity_range"),
    ],
)
def test_invalid_values_are_rejected(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config("local", overrides=[override])


def test_base_yaml_states_the_code_defaults() -> None:
    """A setting read from conf/base.yaml and the same setting left to the code mean one value, so a
    notebook that builds a config section in code prices as the nightly job does."""
    assert load_config("test") == PricingConfig(env="test")
    assert load_config("test").policy.price_endings == [0.49, 0.99] == PolicyConfig().price_endings


def test_a_derived_config_is_validated_like_a_loaded_one() -> None:
    cfg = load_config("local")
    assert derive(cfg, {}) == cfg
    derived = derive(cfg, {"score": {"exploration_share": 0.1}, "simulate": {"n_days": 30}})
    assert (derived.score.exploration_share, derived.simulate.n_days) == (0.1, 30)
    assert derived.score.model_copy(update={"exploration_share": cfg.score.exploration_share}) == cfg.score
    assert derive(cfg.simulate, {"n_skus": 7}).n_skus == 7
    # What model_copy(update=...) would let through.
    with pytest.raises(ConfigError, match="n_skus"):
        derive(cfg, {"simulate": {"n_skus": 0}})
    with pytest.raises(ConfigError, match="n_skuz"):
        derive(cfg.simulate, {"n_skuz": 5})


def test_malformed_override_and_missing_overlay() -> None:
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["simulate.n_skus"])
    with pytest.raises(ConfigError, match="no overlay"):
        load_config("staging")
    with pytest.raises(ConfigError, match="not found"):
        load_config("local", conf_files=["/nonexistent/site.yaml"])


def test_spark_settings_as_overrides_keep_their_dotted_names() -> None:
    cfg = load_config(
        "local",
        overrides=[
            "spark.extra_conf.spark.sql.adaptive.enabled=false",
            "spark.extra_conf.spark.sql.files.maxPartitionBytes=64m",
            "spark.extra_conf.spark.driver.extraJavaOptions=-Dx=a: b: c",
            "spark.shuffle_partitions=8",
        ],
    )
    assert cfg.spark.extra_conf == {
        "spark.sql.adaptive.enabled": "false",
        "spark.sql.files.maxPartitionBytes": "64m",
        "spark.driver.extraJavaOptions": "-Dx=a: b: c",
    }
    assert cfg.spark.shuffle_partitions == 8
    with pytest.raises(ConfigError, match="extra_conf"):
        load_config("local", overrides=["spark.extra_conf=7"])


def test_multiline_sources_are_landing_sources() -> None:
    assert set(get_args(SourceName)) == set(SOURCES)
    with pytest.raises(ConfigError, match="csv_multiline_sources"):
        load_config("local", overrides=["ingest.csv_multiline_sources=[catalogue]"])


def test_the_mlflow_store_belongs_to_the_lakehouse(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    monkeypatch.chdir(tmp_path)
    for lakehouse, root in (
        ("shop/lh", tmp_path / "shop/lh"),
        ("file:///x/lh", Path("/x/lh")),
        ("/y", Path("/y")),
    ):
        train = load_config("local", overrides=[f"paths.lakehouse={lakehouse}"]).train
        assert train.tracking_uri == f"sqlite:///{root}/_mlflow/mlflow.db"
        assert train.artifact_location == str(root / "_mlflow/artifacts")
    chosen = load_config("local", overrides=["train.tracking_uri=http://mlflow:5000", "paths.lakehouse=/y"])
    assert (chosen.train.tracking_uri, chosen.train.artifact_location) == ("http://mlflow:5000", None)
    with pytest.raises(ConfigError, match="s3a://bucket/lh is not on a local disk: set train.tracking_uri"):
        load_config("local", overrides=["paths.lakehouse=s3a://bucket/lh"])
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "16.4")
    assert load_config("cluster", overrides=["paths.lakehouse=dbfs:/lh"]).train.tracking_uri == "databricks"
