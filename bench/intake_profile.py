"""Where a one-day intake's time goes, in a fresh JVM and in warm ones: JVM threads, Python driver, idle.

Simulates a market (the demo's size by default), ingests all but its last day (the backfill), delivers
the last day and keeps a copy of that lakehouse and landing. Each round restores the copy into the same
paths (the ledger names files by path) and ingests the day in the same SparkSession, so every round
after the first runs in a warm JVM. For each round it records the wall time, the Spark jobs, the CPU
seconds of every JVM thread (``/proc``: Java names its native threads, so task threads, Delta's own
threads, the DAG scheduler and py4j's can be told apart), of the Python driver, and the classes
Spark generated and compiled with Janino (their compile time is estimated, see ``_codegen``). Java
Flight Recorder was tried for stacks and left out: on 2 cores it doubled a warm round (90 s against
42 s), and its 64-frame stacks mostly end above the frames that say what the work was.

``--stage nightly`` does the same for the whole night instead of the intake: the backfill night (which
trains the first model) runs once, and each round runs ``run_nightly`` of the last day on a restored
copy of the lakehouse, landing and MLflow store. Scoring's Python workers are neither the JVM nor the
driver, so the machine's idle share comes from ``/proc/stat``.

Writes ``bench/results/intake_profile.json``. Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import resource
import secrets
import shutil
import tempfile
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from proc_cpu import machine_cpu_times, process_cpu_seconds, thread_cpu_seconds
from results_io import write_results
from run_config import market_overrides, run_config

from pricing.ingest import run_ingest
from pricing.lakehouse.tables import Lakehouse
from pricing.nightly.job import run_nightly
from pricing.platform.spark import build_spark
from pricing.sim import simulate_market
from pricing.sim.deliver import deliver

# A JVM thread's group, from the name Java gave its native thread (truncated to 15 characters).
THREAD_GROUPS = [
    ("tasks", re.compile(r"^Executor task")),
    ("delta threads", re.compile(r"^delta-")),
    ("dag scheduler", re.compile(r"^dag-scheduler")),
    ("py4j (driver calls)", re.compile(r"^Thread-\d+")),
    ("JIT compiler", re.compile(r"^C[12] CompilerThre")),
    ("garbage collector", re.compile(r"^(GC|G1|VM Thread)")),
]


def _last_job(status: Any) -> int:
    """The newest Spark job's id (the status store keeps only the latest jobs, so no count of them)."""
    jobs = status.jobsList(None)
    return max(int(jobs.head().jobId()), int(jobs.last().jobId())) if jobs.nonEmpty() else -1


def _thread_group(name: str) -> str:
    return next((label for label, pattern in THREAD_GROUPS if pattern.search(name)), "other JVM threads")


def _by_thread_group(
    before: dict[str, tuple[str, float]], after: dict[str, tuple[str, float]]
) -> tuple[dict[str, float], dict[str, float]]:
    """CPU seconds spent between two readings of :func:`thread_cpu_seconds` by each thread group
    (threads that ended in between are not seen), and by the names of the threads in no group.

    By thread id, named as in the second reading: Spark renames its task threads between running
    and idle, so a name can change between the two."""
    spent: Counter[str] = Counter()
    others: Counter[str] = Counter()
    for tid, (name, seconds) in after.items():
        used = seconds - before.get(tid, (name, 0.0))[1]
        group = _thread_group(name)
        spent[group] += used
        if group == "other JVM threads":
            others[re.sub(r"\d+", "#", name)] += used
    rounded = {k: round(v, 2) for k, v in spent.most_common()}
    return rounded, {k: round(v, 2) for k, v in others.most_common(8)}


class _StageMeter(logging.Handler):
    """Samples every JVM thread's CPU and the machine's idle time while a night runs, and cuts the
    samples at the night's stage boundaries (its "[nightly] <stage>: started" and "... in" log lines)."""

    def __init__(self, pid: int, every: float = 0.25) -> None:
        super().__init__(logging.INFO)
        self.pid, self.every = pid, every
        self.marks: list[tuple[float, str, str]] = []
        self.samples: list[tuple[float, dict[str, tuple[str, float]], tuple[int, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._logger = logging.getLogger("pricing.nightly.job")
        self._level = logging.NOTSET

    def emit(self, record: logging.LogRecord) -> None:
        found = re.match(r"\[nightly\] (\w+): (started|\w+ in )", record.getMessage())
        if found:
            self.marks.append(
                (time.monotonic(), found.group(1), "start" if found.group(2) == "started" else "end")
            )

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), thread_cpu_seconds(self.pid), machine_cpu_times()))
            self._stop.wait(self.every)

    def __enter__(self) -> _StageMeter:
        self._level = self._logger.level
        self._logger.setLevel(logging.INFO)
        self._logger.addHandler(self)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)

    def _at(self, moment: float) -> tuple[dict[str, tuple[str, float]], tuple[int, int]]:
        """The last sample taken at or before ``moment`` (the first one if none)."""
        earlier = [s for s in self.samples if s[0] <= moment] or self.samples[:1]
        return earlier[-1][1], earlier[-1][2]

    def by_stage(self) -> dict[str, dict[str, float]]:
        """Per stage: its JVM CPU by thread group and the machine's idle share over it."""
        starts = {stage: t for t, stage, kind in self.marks if kind == "start"}
        out: dict[str, dict[str, float]] = {}
        for t, stage, kind in self.marks:
            if kind != "end" or stage not in starts:
                continue
            (threads_a, machine_a), (threads_b, machine_b) = self._at(starts[stage]), self._at(t)
            groups, _ = _by_thread_group(threads_a, threads_b)
            idle = (machine_b[0] - machine_a[0]) / max(1, machine_b[1] - machine_a[1])
            out[stage] = {**groups, "machine_idle_share": round(idle, 3)}
        return out


def _codegen(jvm: Any) -> tuple[int, float]:
    """Whole-stage and expression classes Spark has compiled so far, and an estimate of their compile
    milliseconds: the count times the mean of Spark's sampled histogram, so a difference of two
    readings is rough (it can even come out slightly negative)."""
    timer = jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME()
    return int(timer.getCount()), float(timer.getCount() * timer.getSnapshot().getMean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skus", type=int, default=200)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stage", choices=["ingest", "nightly"], default="ingest", help="what a round runs")
    parser.add_argument("--java-options", default="", help="added to the driver JVM's options")
    parser.add_argument("--spark-conf", action="append", default=[], help="KEY=VALUE for the session")
    parser.add_argument("--workdir", default=None, help="default: a temporary folder, removed after")
    parser.add_argument("--out", default="bench/results/intake_profile.json")
    args = parser.parse_args()
    os.environ.setdefault("PRICING_PII_SALT", secrets.token_hex(24))
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-intake-"))
    # Each stage keeps its own starting copy: the nightly one holds a trained model and its store.
    market, live, kept = workdir / "market", workdir / "live", workdir / f"kept-{args.stage}"
    # A night's MLflow store is restored with its lakehouse, so it lives in the copied folder.
    store = live if args.stage == "nightly" else workdir
    cfg = run_config(store, *market_overrides(args.skus, args.days, args.seed))
    if args.java_options:
        cfg.spark.extra_conf["spark.driver.extraJavaOptions"] = args.java_options
    for setting in args.spark_conf:
        key, value = setting.split("=", 1)
        cfg.spark.extra_conf[key] = value
    spark = build_spark(cfg.spark)
    spark.sparkContext.setLogLevel("ERROR")
    jvm_pid = int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())  # type: ignore[union-attr]
    last_day = cfg.simulate.start_date + timedelta(days=args.days - 1)
    if not kept.exists():
        simulate_market(spark, cfg.simulate, str(market), str(workdir / "truth"))
        shutil.rmtree(live, ignore_errors=True)
        deliver(spark, str(market), str(live / "landing"), last_day - timedelta(days=1))
        if args.stage == "nightly":
            night = run_nightly(
                spark, cfg, last_day - timedelta(days=1), str(live / "landing"), str(live / "lakehouse")
            )
            assert night.status == "succeeded", night
        else:
            run_ingest(spark, Lakehouse.at(spark, str(live / "lakehouse")), cfg.ingest, str(live / "landing"))
        deliver(spark, str(market), str(live / "landing"), last_day)
        shutil.copytree(live, kept)
    status = spark.sparkContext._jsc.sc().statusStore()  # type: ignore[union-attr]
    rounds: list[dict[str, Any]] = []
    for number in range(args.rounds):
        shutil.rmtree(live, ignore_errors=True)
        shutil.copytree(kept, live)
        jobs_before = _last_job(status)
        jvm = spark.sparkContext._jvm  # type: ignore[union-attr]
        compiled_before, compile_ms_before = _codegen(jvm)
        threads_before, jvm_before = thread_cpu_seconds(jvm_pid), process_cpu_seconds(jvm_pid)
        python_before = resource.getrusage(resource.RUSAGE_SELF)
        machine_before = machine_cpu_times()
        started = time.perf_counter()
        extra: dict[str, Any]
        if args.stage == "nightly":
            with _StageMeter(jvm_pid) as meter:
                night = run_nightly(spark, cfg, last_day, str(live / "landing"), str(live / "lakehouse"))
            assert night.status == "succeeded", night
            extra = {
                "stage_jvm_cpu": meter.by_stage(),
                "stages": {s.stage: round(s.seconds, 2) for s in night.stages},
                "retrained": night.retrained,
            }
        else:
            tables = Lakehouse.at(spark, str(live / "lakehouse"))
            report = run_ingest(spark, tables, cfg.ingest, str(live / "landing"))
            assert report.balanced
            extra = {
                "files": sum(r.files_ingested for r in report.results),
                "silver_rows": sum(r.rows_silver for r in report.results),
            }
        wall = time.perf_counter() - started
        machine_after = machine_cpu_times()
        python_after = resource.getrusage(resource.RUSAGE_SELF)
        jvm_cpu = process_cpu_seconds(jvm_pid) - jvm_before
        threads, other_threads = _by_thread_group(threads_before, thread_cpu_seconds(jvm_pid))
        compiled, compile_ms = _codegen(jvm)
        python_cpu = (python_after.ru_utime - python_before.ru_utime) + (
            python_after.ru_stime - python_before.ru_stime
        )
        entry: dict[str, Any] = {
            "round": number + 1,
            "seconds": round(wall, 2),
            "spark_jobs": _last_job(status) - jobs_before,
            "jvm_cpu_seconds": round(jvm_cpu, 2),
            "python_cpu_seconds": round(python_cpu, 2),
            # Both cores' capacity over the round that neither process used.
            "idle_share": round(1 - (jvm_cpu + python_cpu) / (wall * (os.cpu_count() or 1)), 3),
            # The same from the kernel's count for every process (scoring's Python workers included).
            "machine_idle_share": round(
                (machine_after[0] - machine_before[0]) / max(1, machine_after[1] - machine_before[1]), 3
            ),
            "jvm_cpu_by_thread_group": threads,
            "other_threads": other_threads,
            "classes_generated": compiled - compiled_before,
            "janino_seconds": round((compile_ms - compile_ms_before) / 1000, 2),
            **extra,
        }
        rounds.append(entry)
        print(f"[bench] round {number + 1}: {json.dumps(entry)}", flush=True)
    warm = rounds[1:] or rounds
    results = {
        "skus": args.skus,
        "days": args.days,
        "stage": args.stage,
        "cores": os.cpu_count(),
        "java_options": args.java_options,
        "spark_conf": args.spark_conf,
        "rounds": rounds,
        "warm_seconds": [r["seconds"] for r in warm],
        "warm_idle_share": [r["idle_share"] for r in warm],
    }
    write_results(results, args.out, ["warm_seconds", "warm_idle_share"])
    spark.stop()
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
