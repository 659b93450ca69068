"""The job's own progress on the console: the ``pricing`` loggers' INFO lines on stdout, one line each.

The library logs (``logging.getLogger(__name__)``) and never prints; the ``pricing`` command, the
notebooks and the standalone-cluster tool call :func:`show_progress` so its stage lines appear as
before. Warnings are left to the root logger's handler (the command prints them on stderr).
"""

from __future__ import annotations

import logging
import sys


class _Stdout(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is when a record comes (test runners and notebooks replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def _below_warning(record: logging.LogRecord) -> bool:
    return record.levelno < logging.WARNING


def show_progress() -> None:
    """Show the ``pricing`` loggers' INFO lines on stdout (idempotent)."""
    logger = logging.getLogger("pricing")
    if not any(isinstance(h, _Stdout) for h in logger.handlers):
        handler = _Stdout()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.addFilter(_below_warning)
        logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
