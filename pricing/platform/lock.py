"""A lock file in the lakehouse that keeps two nightly runs apart and survives crashes.

The lock is ``<lakehouse>/_locks/<name>.json``, created with Hadoop's exclusive create (one creator
wins on HDFS, local disks, DBFS and ABFS). Its holder refreshes the file's modification time every
``ttl / 3`` (a heartbeat); a lock whose heartbeat is older than ``ttl``, or whose process is known to
be dead on this host, is stale and is taken over by renaming it aside first, so that only one of
several contenders can win. On object stores without atomic create/rename (plain S3), run the nightly
job from one scheduler, as docs/operations.md explains.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pyspark.sql import SparkSession

from pricing.lakehouse import io


class LockHeld(RuntimeError):
    """Another live run holds the lock."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as written in the lock file."""

    token: str
    host: str
    pid: int
    process_start: str | None
    purpose: str
    acquired_at: str

    @classmethod
    def mine(cls, purpose: str) -> Holder:
        return cls(
            token=uuid.uuid4().hex,
            host=socket.gethostname(),
            pid=os.getpid(),
            process_start=_process_start(os.getpid()),
            purpose=purpose,
            acquired_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )

    def describe(self) -> str:
        return f"{self.purpose} (pid {self.pid} on {self.host}, since {self.acquired_at})"


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _dead_here(holder: Holder) -> bool:
    """True only when the holder ran on this host and its process is gone (or the pid was reused)."""
    if holder.host != socket.gethostname():
        return False
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return holder.process_start is not None and _process_start(holder.pid) != holder.process_start


class LakehouseLock:
    """``with LakehouseLock(spark, root, "nightly", ttl_s, purpose):`` holds the lock for the block.

    Raises:
        LockHeld: on entry, when another live run holds it (the message names the holder).
    """

    def __init__(self, spark: SparkSession, root: str, name: str, ttl_s: float, purpose: str) -> None:
        self.path = f"{root.rstrip('/')}/_locks/{name}.json"
        self.ttl_s = ttl_s
        self.holder = Holder.mine(purpose)
        self.taken_over: Holder | None = None
        self._fs, self._path = io.hadoop_fs(spark, self.path)
        self._jvm = io.jvm(spark)
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _create(self) -> bool:
        try:
            stream = self._fs.create(self._path, False)
        except Exception as error:  # py4j wraps FileAlreadyExistsException
            if "FileAlreadyExists" in str(error) or self._fs.exists(self._path):
                return False
            raise
        try:
            stream.write(bytearray(json.dumps(self.holder.__dict__).encode()))
        finally:
            stream.close()
        return True

    def _read(self) -> tuple[Holder | None, float] | None:
        """(holder or None when unreadable, seconds since the last heartbeat); None when absent."""
        try:
            status = self._fs.getFileStatus(self._path)
            stream = self._fs.open(self._path)
        except Exception:
            return None
        try:
            raw = bytes(self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
        finally:
            stream.close()
        age = time.time() - status.getModificationTime() / 1000.0
        try:
            return Holder(**json.loads(raw.decode())), age
        except (ValueError, TypeError):
            return None, age  # being written right now, or damaged: only the heartbeat can tell

    def acquire(self) -> None:
        for _ in range(5):
            if self._create():
                self._start_heartbeat()
                return
            found = self._read()
            if found is None:
                continue  # released in between: try again
            holder, age = found
            stale = age > self.ttl_s or (holder is not None and _dead_here(holder))
            if not stale:
                who = holder.describe() if holder else "an unreadable lock file"
                raise LockHeld(
                    f"another run holds {self.path}: {who}; last heartbeat {age:.0f}s ago, "
                    f"taken over after {self.ttl_s:.0f}s without one"
                )
            # Rename aside first: of several runs taking over, only one rename succeeds.
            aside = self._jvm.org.apache.hadoop.fs.Path(f"{self.path}.stale-{self.holder.token}")
            if self._fs.rename(self._path, aside):
                self._fs.delete(aside, False)
                self.taken_over = holder
        raise LockHeld(f"could not take {self.path}: other runs kept taking it")

    def _start_heartbeat(self) -> None:
        def beat() -> None:
            while not self._stop.wait(self.ttl_s / 3):
                with contextlib.suppress(Exception):  # a missed beat only shortens the lock's life
                    self._fs.setTimes(self._path, int(time.time() * 1000), -1)

        self._beat = threading.Thread(target=beat, name="lakehouse-lock-heartbeat", daemon=True)
        self._beat.start()

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        found = self._read()
        if found is not None and found[0] is not None and found[0].token == self.holder.token:
            self._fs.delete(self._path, False)

    def __enter__(self) -> LakehouseLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
