"""The `pricing` command: subcommands, overrides and what spark-submit needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from pricing.cli import build_parser, main
from pricing.config import load_config
from pricing.platform.spark import (
    CODEGEN_CACHE_ENTRIES,
    LOG_LEVEL_CONF,
    QUIET_LOG4J,
    jar_cache_dir,
    session_conf,
)


def test_every_stage_has_a_subcommand() -> None:
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {
        "setup-jars",
        "spark-conf",
        "simulate",
        "ingest",
        "features",
        "train",
        "score",
        "whatif",
        "override",
        "evaluate",
    } <= set(commands)


def test_evaluate_rejects_unknown_families_and_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--workdir", "unused", "--families", "simulator,atlantis"]) == 2
    assert "atlantis" in capsys.readouterr().err
    assert main(["evaluate", "--workdir", "unused", "--decisions", "lower_bound:1.5"]) == 2
    assert "lower_bound:1.5" in capsys.readouterr().err


def test_whatif_takes_several_prices() -> None:
    args = build_parser().parse_args(
        ["whatif", "--sku", "SKU-1", "--price", "9.99,12.49", "--price", "15", "train.seed=3"]
    )
    assert (args.sku, args.price, args.overrides) == ("SKU-1", [9.99, 12.49, 15.0], ["train.seed=3"])


def test_override_needs_a_reason_and_an_author(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["override", "--sku", "SKU-1", "--price", "9.99"]) == 2
    assert "--reason" in capsys.readouterr().err


def test_spark_conf_prints_delta_settings_for_spark_submit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spark-conf", "spark.shuffle_partitions=7"]) == 0
    flags = capsys.readouterr().out.split()
    pairs = dict(flags[i + 1].split("=", 1) for i in range(0, len(flags), 2) if flags[i] == "--conf")
    assert pairs["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert pairs["spark.sql.catalog.spark_catalog"] == "org.apache.spark.sql.delta.catalog.DeltaCatalog"
    assert pairs["spark.sql.shuffle.partitions"] == "7"
    assert pairs["spark.sql.session.timeZone"] == "UTC"
    assert "delta-spark_4.2_2.13" in pairs.get("spark.jars", pairs.get("spark.jars.packages", ""))


def test_bad_override_exits_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spark-conf", "spark.shuffle_partitionz=7"]) == 2
    assert "shuffle_partitionz" in capsys.readouterr().err


def test_quiet_by_default_and_verbose_on_request() -> None:
    quiet = session_conf(load_config("local").spark)
    assert quiet["spark.ui.showConsoleProgress"] == "false" and quiet[LOG_LEVEL_CONF] == "ERROR"
    assert quiet["spark.driver.extraJavaOptions"] == f"-Dlog4j2.configurationFile={QUIET_LOG4J.as_uri()}"
    assert QUIET_LOG4J.is_file()
    verbose = session_conf(load_config("local", overrides=["spark.verbose=true"]).spark)
    assert "spark.ui.showConsoleProgress" not in verbose and verbose[LOG_LEVEL_CONF] == "WARN"
    assert "spark.driver.extraJavaOptions" not in verbose
    # A user's JVM options are kept, after ours.
    mine = load_config("local", overrides=["spark.extra_conf={spark.driver.extraJavaOptions: -Xss4m}"])
    assert session_conf(mine.spark)["spark.driver.extraJavaOptions"].endswith(".properties -Xss4m")


def test_the_session_keeps_a_night_of_compiled_queries(spark: SparkSession) -> None:
    # A static conf: it counts only if it reaches the session when the JVM starts.
    assert spark.conf.get("spark.sql.codegen.cache.maxEntries") == str(CODEGEN_CACHE_ENTRIES)
    mine = load_config("local", overrides=["spark.extra_conf={spark.sql.codegen.cache.maxEntries: '50'}"])
    assert session_conf(mine.spark)["spark.sql.codegen.cache.maxEntries"] == "50"


@pytest.mark.slow
def test_a_command_prints_no_spark_progress_or_warnings_and_writes_nothing_where_it_starts(
    tmp_path: Path,
) -> None:
    command = [sys.executable, "-m", "pricing.cli", "simulate", "--skus", "3", "--days", "3",
               f"paths.landing={tmp_path / 'market'}", f"paths.truth={tmp_path / 'truth'}"]  # fmt: skip
    caller = tmp_path / "caller"
    caller.mkdir()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=caller)
    assert done.returncode == 0, done.stderr
    printed = (done.stdout + done.stderr).replace("\r", "\n").splitlines()
    # The JVM's own note on the vector incubator module (Spark 4 adds the module) is the one left.
    noisy = [line for line in printed if line.startswith("[Stage") or "log level" in line or "WARN" in line]
    assert printed and all(line.startswith("WARNING: Using incubator modules") for line in noisy), noisy
    # Started from another folder, it writes nothing there and finds the JARs in the user cache.
    assert list(caller.iterdir()) == []


def test_delta_jars_live_in_the_user_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    assert jar_cache_dir(load_config("local").spark) == tmp_path / "xdg" / "pricing-lakehouse" / "ivy"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert jar_cache_dir(load_config("local").spark) == Path.home() / ".cache" / "pricing-lakehouse" / "ivy"
    chosen = load_config("local", overrides=[f"spark.jar_cache_dir={tmp_path / 'jars'}"])
    assert jar_cache_dir(chosen.spark) == tmp_path / "jars"


def test_experiment_commands_check_their_input(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start = ["experiment", "start", "--name", "x", "--share", "0.2", "--from", "2026-07-01", "--days", "7"]
    assert main([*start, "--by", "store", "--lakehouse", str(tmp_path)]) == 2
    assert "per store" in capsys.readouterr().err
    assert main(["experiment", "readout", "--name", "nope", "--lakehouse", str(tmp_path)]) == 2
    assert "no experiment named 'nope'" in capsys.readouterr().err
    assert main(["experiment", "list", "--lakehouse", str(tmp_path)]) == 0
    assert "no experiments" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([*start, "--by", "shelf"])
