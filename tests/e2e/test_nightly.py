"""The nightly job: a night run twice writes nothing, one new day costs one day, the lock holds."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from mlflow import MlflowClient
from nightly_support import CRASH_DAYS, FIRST_NIGHT, NIGHTLY_OVERRIDES, SKUS, START, Market
from pyspark.sql import SparkSession

from pricing.cli import main
from pricing.config import load_config
from pricing.ingest import stale_sources
from pricing.lakehouse import io
from pricing.lakehouse.maintain import delta_tables
from pricing.lakehouse.tables import PRICE_RECOMMENDATIONS, RUNS, SKU_DAY, Lakehouse
from pricing.nightly.job import NightlyError, NightlyReport, run_nightly
from pricing.platform.lock import LakehouseLock, LockHeld
from pricing.sim import simulate_market
from pricing.sim.deliver import deliver


def _versions(spark: SparkSession, root: str) -> dict[str, int]:
    return {t: io.latest_version(spark, t) for t in delta_tables(spark, root)}


@pytest.fixture
def market(nightly_market: Market) -> Market:
    return nightly_market


def _stage(report: NightlyReport, name: str):  # type: ignore[no-untyped-def]
    (stage,) = [s for s in report.stages if s.stage == name]
    return stage


def test_nights_succeed_with_every_check_and_record_themselves(spark: SparkSession, market: Market) -> None:
    for night in (market.night1, market.night2):
        assert night.status == "succeeded" and night.attempt == 1
        assert [s.stage for s in night.stages] == [
            "ingest",
            "match",
            "features",
            "train",
            "score",
            "reconcile",
            "maintain",
            "report",
        ]
        assert night.checks and all(passed for _, passed, _ in night.checks)
        # No competitor of this market delivers listings: nothing to match.
        assert _stage(night, "match").status == "skipped"
        assert night.skus_priced == SKUS
        # Every night leaves its report in the lakehouse, recorded in the run log.
        assert night.report_path == f"file:{market.lakehouse}/reports/night-{night.run_date}.html"
        assert _stage(night, "report").status == "done"
        page = Path(f"{market.lakehouse}/reports/night-{night.run_date}.html").read_text()
        assert f"prices for {night.price_date}" in page and "<h2>Review queue</h2>" in page
    assert market.night1.retrained and market.night1.retrain_reason == "no champion model yet"
    assert not market.night2.retrained and _stage(market.night2, "train").status == "skipped"
    assert market.night1.maintenance == [] and market.night2.maintenance == ["optimize", "vacuum"]

    runs = Lakehouse(market.lakehouse).read(spark, RUNS).orderBy("run_date").collect()
    nights = [FIRST_NIGHT, FIRST_NIGHT + timedelta(days=1)]
    assert [(r.run_date, r.price_date, r.status, r.run_id) for r in runs] == [
        (night, night + timedelta(days=1), "succeeded", f"nightly-{night}") for night in nights
    ]
    assert [r.report_path for r in runs] == [market.night1.report_path, market.night2.report_path]
    prices = Lakehouse(market.lakehouse).read(spark, PRICE_RECOMMENDATIONS)
    assert sorted(r[0] for r in prices.groupBy("price_date").count().select("count").collect()) == [
        SKUS,
        SKUS,
    ]
    assert {r.run_id for r in prices.select("run_id").distinct().collect()} == {r.run_id for r in runs}


def test_a_night_with_one_new_day_reads_and_writes_a_bounded_amount(
    spark: SparkSession, market: Market
) -> None:
    first, second = market.night1, market.night2
    # Rows: the panel gains exactly one day per SKU, scoring one row per SKU.
    assert _stage(second, "features").rows_written == SKUS
    assert _stage(second, "score").rows_written == SKUS
    assert _stage(second, "ingest").rows_written < _stage(first, "ingest").rows_written / 20
    # Bytes written (Spark's task metrics): ingest writes a small fraction of the first night's. The
    # features MERGE rewrites the panel files holding the touched rows, which at this size is the one
    # file of the whole panel: at most about the panel's size, not the first night's panel, calendar
    # and text vectors. (What a night reads is bounded by Delta's file skipping, which needs more than
    # one file per table: see make bench.)
    assert _stage(second, "ingest").bytes_written < _stage(first, "ingest").bytes_written / 4
    panel = Lakehouse(market.lakehouse).detail(spark, SKU_DAY)
    assert _stage(second, "features").bytes_written <= 1.2 * panel["sizeInBytes"]
    assert _stage(second, "features").bytes_written < _stage(first, "features").bytes_written / 2


def test_running_a_night_again_writes_nothing(spark: SparkSession, market: Market) -> None:
    before = _versions(spark, market.lakehouse)
    again = run_nightly(spark, market.cfg, FIRST_NIGHT + timedelta(days=1), market.landing, market.lakehouse)
    assert (again.status, again.attempt, again.run_id) == ("succeeded", 1, market.night2.run_id)
    assert _versions(spark, market.lakehouse) == before


def test_an_older_night_after_a_newer_one_is_refused(spark: SparkSession, market: Market) -> None:
    with pytest.raises(NightlyError, match="only moves forward"):
        run_nightly(spark, market.cfg, FIRST_NIGHT - timedelta(days=1), market.landing, market.lakehouse)


def test_a_second_run_at_once_is_refused_with_a_clear_message(
    spark: SparkSession, market: Market, capsys: pytest.CaptureFixture[str]
) -> None:
    night = FIRST_NIGHT + timedelta(days=1)
    with LakehouseLock(spark, io.qualify(spark, market.lakehouse), "nightly", 600, "a night in progress"):
        with pytest.raises(LockHeld, match="another run holds .*a night in progress"):
            run_nightly(spark, market.cfg, night, market.landing, market.lakehouse)
        status = main(
            [
                "nightly",
                "--landing",
                market.landing,
                "--lakehouse",
                market.lakehouse,
                "--run-date",
                str(night),
            ]
            + [*NIGHTLY_OVERRIDES, f"train.tracking_uri={market.cfg.train.tracking_uri}"]
        )
        assert status == 3
        assert "pricing nightly refused: another run holds" in capsys.readouterr().err
    # Released: the next run goes ahead (and finds the night done).
    assert run_nightly(spark, market.cfg, night, market.landing, market.lakehouse).status == "succeeded"


def test_a_crashed_runs_lock_is_taken_over(spark: SparkSession, tmp_path: Path) -> None:
    root = io.qualify(spark, str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    crashed = LakehouseLock(spark, root, "nightly", 600, "a run that was killed")
    object.__setattr__(crashed.holder, "pid", dead.pid)  # as if that process had written it
    crashed.acquire()
    crashed._stop.set()  # its heartbeat dies with it

    successor = LakehouseLock(spark, root, "nightly", 600, "the next run")
    successor.acquire()
    assert successor.taken_over is not None and successor.taken_over.pid == dead.pid
    successor.release()

    # A live holder elsewhere is respected until its heartbeat is older than the TTL.
    elsewhere = LakehouseLock(spark, root, "nightly", 600, "a run on another host")
    object.__setattr__(elsewhere.holder, "host", "another-host")
    elsewhere.acquire()
    elsewhere._stop.set()
    with pytest.raises(LockHeld, match="another-host"):
        LakehouseLock(spark, root, "nightly", 600, "too early").acquire()
    fs, path = io.hadoop_fs(spark, elsewhere.path)
    fs.setTimes(path, 0, -1)  # heartbeat long ago
    late = LakehouseLock(spark, root, "nightly", 600, "after the TTL")
    late.acquire()
    assert late.taken_over is not None and late.taken_over.host == "another-host"
    late.release()
    assert not fs.exists(path)


def test_a_night_days_past_the_last_delivery_stops_before_pricing(
    spark: SparkSession, market: Market, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lakehouse = str(tmp_path / "lakehouse")
    shutil.copytree(market.lakehouse, lakehouse)
    last_day, late = FIRST_NIGHT + timedelta(days=1), FIRST_NIGHT + timedelta(days=6)
    prices_before = _versions(spark, lakehouse)[f"file:{lakehouse}/gold/price_recommendations"]

    with pytest.raises(NightlyError, match=rf"stale data: .*\(transactions: last day {last_day}\)"):
        run_nightly(spark, market.cfg, late, market.landing, lakehouse)
    row = Lakehouse(lakehouse).read(spark, RUNS).where(f"run_date = DATE'{late}'").first()
    assert row is not None and row.status == "failed" and "stale data" in row.error
    assert [s.stage for s in row.stages] == ["ingest"]
    assert _versions(spark, lakehouse)[f"file:{lakehouse}/gold/price_recommendations"] == prices_before
    command = ["nightly", "--landing", market.landing, "--lakehouse", lakehouse, "--run-date", str(late)]
    capsys.readouterr()
    assert main([*command, *NIGHTLY_OVERRIDES]) == 1
    assert "pricing nightly failed: stale data" in capsys.readouterr().err
    # Allowing six days of silence prices the night; the check can also be turned off.
    for days in (6, 0):
        cfg = load_config("local", overrides=[*NIGHTLY_OVERRIDES, f"ingest.max_staleness_days={days}"])
        assert stale_sources(spark, Lakehouse.at(spark, lakehouse), cfg.ingest, late) == []
    assert stale_sources(spark, Lakehouse.at(spark, lakehouse), market.cfg.ingest, last_day) == []


@pytest.mark.slow
def test_two_shops_from_one_folder_each_train_and_price_with_their_own_model(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pii_salt: str
) -> None:
    # As README shows, from one working folder, with no MLflow settings: before each lakehouse had its
    # own store, the second shop found the first one's fresh champion and priced with it.
    caller = tmp_path / "caller"
    caller.mkdir()
    monkeypatch.chdir(caller)
    night = START + timedelta(days=CRASH_DAYS - 1)
    for shop, seed in (("a", 1), ("b", 2)):
        base = tmp_path / shop
        cfg = load_config(
            "local",
            overrides=[
                *NIGHTLY_OVERRIDES,
                *[f"simulate.{k}={v}" for k, v in (("n_skus", SKUS), ("n_days", CRASH_DAYS), ("seed", seed))],
                f"simulate.start_date={START}",
                f"paths.lakehouse={base / 'lakehouse'}",
            ],
        )
        store = base / "lakehouse" / "_mlflow"
        assert (cfg.train.tracking_uri, cfg.train.artifact_location) == (
            f"sqlite:///{store}/mlflow.db",
            str(store / "artifacts"),
        )
        simulate_market(spark, cfg.simulate, str(base / "market"), str(base / "truth"))
        deliver(spark, str(base / "market"), str(base / "landing"), night)
        report = run_nightly(spark, cfg, night, str(base / "landing"))
        assert report.status == "succeeded" and report.retrained, report.render()
        assert report.retrain_reason == "no champion model yet" and report.model_version == "1"
        client = MlflowClient(cfg.train.tracking_uri)
        (version,) = client.search_model_versions(f"name = '{cfg.train.model_name}'")
        assert str(store / "artifacts") in str(client.get_run(str(version.run_id)).info.artifact_uri)
    assert list(caller.iterdir()) == []
