"""Writers for tiny landing files in every contract format (test data built inline, by hand)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pandas as pd


def write_csv(path: Path, header: list[str], rows: list[list[Any]], gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(header)] + [",".join("" if v is None else str(v) for v in row) for row in rows]
    text = "\n".join(lines) + "\n"
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def write_parquet(path: Path, frame: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Spark reads micro- and millisecond Parquet timestamps; pandas' default nanoseconds it refuses.
    frame.to_parquet(path, index=False, coerce_timestamps="us", allow_truncated_timestamps=True)
    return path


CATALOG_HEADER = ["sku", "title", "category", "brand", "unit_cost", "currency", "updated_at"]
TRANSACTIONS_HEADER = ["order_id", "order_ts", "sku", "quantity", "unit_price"]


def write_catalog(landing: Path, skus: list[str], name: str = "catalog.csv") -> Path:
    return write_csv(
        landing / "catalog" / name,
        CATALOG_HEADER,
        [[sku, f"Item {sku}", "tents", "Acme", "10.00", "USD", "2026-06-01T00:00:00Z"] for sku in skus],
    )
