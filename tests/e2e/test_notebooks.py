"""Every notebook runs top to bottom against a small lakehouse after two nightly runs (the kill -9
tests' reference lakehouse, so a `make test-slow` session builds one two-night market, not two)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nightly_support import Market

pytestmark = pytest.mark.slow

NOTEBOOKS = sorted(Path(__file__).resolve().parents[2].glob("notebooks/*.py"))
_CELL = re.compile(r"^# COMMAND -+\s*$", re.MULTILINE)


def databricks_source_to_notebook(text: str) -> nbformat.NotebookNode:
    """Databricks' ``.py`` source format -> a Jupyter notebook (``# MAGIC %md`` cells become markdown)."""
    notebook = nbformat.v4.new_notebook()
    for chunk in _CELL.split(text.removeprefix("# Databricks notebook source\n")):
        lines = chunk.strip("\n").splitlines()
        if not lines:
            continue
        if all(line.startswith("# MAGIC") for line in lines):
            body = "\n".join(line.removeprefix("# MAGIC").removeprefix(" ") for line in lines)
            notebook.cells.append(nbformat.v4.new_markdown_cell(body.removeprefix("%md").strip()))
        else:
            notebook.cells.append(nbformat.v4.new_code_cell("\n".join(lines)))
    return notebook


def test_notebooks_are_found() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01_intake.py",
        "02_gold_panel.py",
        "03_model.py",
        "04_recommendations.py",
        "05_nights.py",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path, crash_world: Market, monkeypatch: pytest.MonkeyPatch) -> None:
    notebook = databricks_source_to_notebook(path.read_text())
    assert sum(c.cell_type == "code" for c in notebook.cells) >= 2
    # The kernel inherits these: the lakehouse, its MLflow store, the test's small Spark settings.
    monkeypatch.setenv("LAKEHOUSE", crash_world.lakehouse)
    monkeypatch.setenv(
        "PRICING_OVERRIDES",
        " ".join(
            [
                f"train.tracking_uri={crash_world.cfg.train.tracking_uri}",
                "spark.shuffle_partitions=2",
                "spark.driver_memory=1g",
            ]
        ),
    )
    monkeypatch.setenv("MPLBACKEND", "agg")
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": os.getcwd()}}
    )
    client.execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
