"""Two versions of the code side by side: a git ref checked out beside this one, `pricing` under either."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sha(ref: str) -> str:
    """The commit ``ref`` names."""
    done = subprocess.run(["git", "rev-parse", ref], cwd=REPO, check=True, capture_output=True, text=True)
    return done.stdout.strip()


@contextmanager
def ref_worktree(ref: str, where: Path) -> Iterator[Path]:
    """``ref`` checked out (detached) at ``where`` for the block, removed after."""
    subprocess.run(["git", "worktree", "add", "--detach", str(where), sha(ref)], cwd=REPO, check=True)
    # A ref from before the JARs moved to the user cache looks for them in its own .cache/ivy.
    (where / ".cache").symlink_to(REPO / ".cache")
    try:
        yield where
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(where)], cwd=REPO, check=False)


def run_pricing(
    code: Path, args: list[str], env: dict[str, str], log: Path
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """``pricing ARGS`` as a fresh process with ``code`` first on the path: its wall seconds and the
    finished process (its stdout and stderr also written to ``log``)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pricing.cli", *args],
        env={**env, "PYTHONPATH": str(code)},
        cwd=code,
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - started
    log.write_text(done.stdout + done.stderr)
    return seconds, done
