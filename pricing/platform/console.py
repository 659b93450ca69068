"""The job's own progress on the console: the ``pricing`` loggers' INFO lines on stdout, one line each.

The library logs (``logging.getLogger(__name__)``) and never prints; the ``pricing`` command, the
notebooks and the standalone-cluster tool call :func:`show_progress` so its stage lines appear as
before. Warnings are left to the root logger's handler (the command prints them on stderr).
"""

from __future__ import annotations

import logging
import os
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


def configure_console(verbose: bool) -> None:
    """The ``pricing`` command's console: warnings on stderr, the job's progress on stdout, and
    libraries' own notes (MLflow's database set-up and model warnings, TorchDistributor's start and
    finish) only when ``verbose``; the environment carries that to the training processes too."""
    root = logging.getLogger()
    if not root.handlers:  # a host that configured logging (a notebook, a test runner) keeps its own
        warnings = logging.StreamHandler()
        warnings.setLevel(logging.WARNING)  # the job's own INFO lines go to stdout once (show_progress)
        warnings.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(warnings)
        root.setLevel(logging.WARNING)
    show_progress()
    if not verbose:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
        logging.getLogger("TorchDistributor").setLevel(logging.ERROR)
