"""Where the code reaches storage: tables only through ``pricing/lakehouse``, files only where they land."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The product: its library (less the simulators and the evaluation, which write their own truth files),
# its spark-submit entry points and its notebooks.
PRODUCT = sorted(
    [
        *(
            path
            for path in (REPO / "pricing").rglob("*.py")
            if path.relative_to(REPO / "pricing").parts[0] not in ("lakehouse", "sim", "evaluation")
        ),
        *(REPO / "jobs").glob("*.py"),
        *(REPO / "notebooks").glob("*.py"),
    ]
)
# Landing files are the users' deliveries, not lakehouse tables: the intake reads them as they came.
READS_LANDING = {REPO / "pricing" / "ingest" / "landing.py"}
# Spark's readers and writers (``spark.read.parquet``, ``df.write.format``: an attribute of one of these),
# the writers that name a table, and the session's own ways to a table (``spark.table``, ``spark.sql``).
READERS_WRITERS = {"read", "readStream", "write", "writeStream"}
TABLE_WRITERS = {"writeTo", "saveAsTable", "insertInto"}
SESSION_TABLES = {"table", "sql"}


def _is_session(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id == "spark") or getattr(node, "attr", None) == "spark"


def _storage_calls(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Attribute) and getattr(node.value, "attr", None) in READERS_WRITERS:
            found.append(f"{where} .{node.value.attr}.{node.attr}")  # type: ignore[attr-defined]
        elif isinstance(node, ast.Attribute) and (
            node.attr in TABLE_WRITERS or (node.attr in SESSION_TABLES and _is_session(node.value))
        ):
            found.append(f"{where} .{node.attr}")
        elif isinstance(node, ast.Name) and node.id == "DeltaTable":
            found.append(f"{where} DeltaTable")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{where} import {m}" for m in modules if m.split(".")[0] == "delta"]
    return found


def test_no_table_is_read_or_written_outside_the_lakehouse_package() -> None:
    offenders = [call for path in PRODUCT if path not in READS_LANDING for call in _storage_calls(path)]
    assert offenders == []
    # The scan must see the product, not an empty folder, and must catch what it looks for.
    assert len(PRODUCT) >= 40
    assert _storage_calls(REPO / "pricing" / "lakehouse" / "io.py")
    assert any(".read.format" in call for call in _storage_calls(REPO / "pricing" / "ingest" / "landing.py"))
