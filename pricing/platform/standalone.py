"""A real Spark standalone cluster on this machine, started from the installed pyspark.

``python -m pricing.platform.standalone [--workers N --cores C --memory M] -- SPARK-SUBMIT-ARGS...`` starts a
master and N workers with ``spark-class``, waits until every worker has registered, runs
``spark-submit --master spark://...`` with the given arguments, and stops the cluster whatever
happens. ``make cluster-demo`` and the cluster test use it; docs/operations.md shows the same job on
YARN, Kubernetes and Databricks.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pyspark

_log = logging.getLogger(__name__)


def spark_home() -> Path:
    """The installed pyspark's Spark distribution (bin/, jars/)."""
    return Path(os.environ.get("SPARK_HOME") or Path(pyspark.__file__).parent)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _alive_workers(ui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as response:
            return int(json.load(response).get("aliveworkers", 0))
    except (OSError, ValueError):
        return 0


@contextmanager
def standalone_cluster(
    workers: int = 1, cores: int = 2, memory: str = "3g", timeout_s: float = 120.0
) -> Iterator[str]:
    """Start a master and ``workers`` workers on 127.0.0.1; yield the master URL; stop them.

    Raises:
        RuntimeError: the workers did not register in time (their logs are in the message).
    """
    spark_class = str(spark_home() / "bin" / "spark-class")
    port, ui_port = _free_port(), _free_port()
    url = f"spark://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="spark-standalone-") as scratch:
        env = {**os.environ, "SPARK_HOME": str(spark_home()), "SPARK_LOCAL_IP": "127.0.0.1"}
        logs = []
        processes = []

        def launch(name: str, *args: str) -> None:
            log = Path(scratch, f"{name}.log")
            logs.append(log)
            processes.append(
                subprocess.Popen(
                    [spark_class, *args],
                    stdout=log.open("wb"),
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            )

        try:
            launch(
                "master",
                "org.apache.spark.deploy.master.Master",
                "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui_port),
            )  # fmt: skip
            for i in range(workers):
                launch(
                    f"worker-{i}",
                    "org.apache.spark.deploy.worker.Worker",
                    "--cores", str(cores), "--memory", memory, "--webui-port", "0",
                    "--work-dir", str(Path(scratch, f"work-{i}")), url,
                )  # fmt: skip
            deadline = time.monotonic() + timeout_s
            while _alive_workers(ui_port) < workers:
                if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-2000:]}" for log in logs)
                    raise RuntimeError(f"standalone cluster did not start in {timeout_s:.0f}s\n{tails}")
                time.sleep(1)
            _log.info(f"[standalone] master {url} with {workers} worker(s) x {cores} cores")
            yield url
        finally:
            for process in reversed(processes):
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
            _log.info("[standalone] stopped")


def spark_submit_command(master: str, args: Sequence[str]) -> list[str]:
    """``spark-submit --master MASTER ARGS`` with the installed pyspark's spark-submit."""
    return [str(spark_home() / "bin" / "spark-submit"), "--master", master, *args]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pricing.platform.standalone",
        description="start a local Spark standalone cluster, spark-submit to it, stop it",
    )
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cores", type=int, default=2, help="cores per worker")
    parser.add_argument("--memory", default="3g", help="memory per worker")
    parser.add_argument("submit", nargs=argparse.REMAINDER, help="-- then spark-submit's arguments")
    args = parser.parse_args(argv)
    from pricing.platform.console import show_progress

    show_progress()
    submit = args.submit[1:] if args.submit[:1] == ["--"] else args.submit
    if not submit:
        parser.error("give spark-submit's arguments after --")
    with standalone_cluster(args.workers, args.cores, args.memory) as master:
        return subprocess.call(spark_submit_command(master, submit))


if __name__ == "__main__":
    sys.exit(main())
