"""CPU time as Linux's ``/proc`` counts it: the machine's, a process's and each of its threads'."""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def machine_cpu_times() -> tuple[int, int]:
    """All cores' idle (idle + iowait) and total jiffies since boot (``/proc/stat``)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return fields[3] + fields[4], sum(fields)


def _stat_seconds(stat: str) -> float:
    """User + system seconds from a ``stat`` line (fields after the parenthesised name)."""
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds ``pid`` has used, all its threads together."""
    return _stat_seconds(Path(f"/proc/{pid}/stat").read_text())


def thread_cpu_seconds(pid: int) -> dict[str, tuple[str, float]]:
    """Each live thread of ``pid``: its id -> (its name, the CPU seconds it has used)."""
    out: dict[str, tuple[str, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            name = (task / "comm").read_text().strip()
        except OSError:
            continue  # the thread ended while we looked
        out[task.name] = (name, _stat_seconds(stat))
    return out
