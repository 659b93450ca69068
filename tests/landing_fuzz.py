"""Transaction deliveries drawn from a grammar of the ways real exports vary, each with what it must yield.

Seeded, so a failing case is reproduced by its seed. Each file varies: format (CSV, JSON lines),
compression, encoding (UTF-8 with or without a byte-order mark), line endings, quoting, header case and
spacing, column order, which optional columns it has, file name characters (spaces, ``#``, ``%``, ``:``,
non-ASCII), timestamp style (``Z``, offsets, no zone), and quoted fields with commas, doubled quotes
and line breaks. Some rows break a rule, some re-deliver an earlier row, some files end mid-row, are
empty, are not UTF-8 or are cut-off gzip streams. Rows are counted here by Python's own parsers,
independently of the product.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal

REQUIRED = ["order_id", "order_ts", "sku", "quantity", "unit_price"]
OPTIONAL = ["line_id", "channel", "promo_id", "customer_id"]
# One price per SKU, a few units a line: no row is a robust-z outlier, only the rule breakers fail.
PRICES = {"A": "10.00", "B": "20.00", "C": "5.50"}
PROMOS = ["", "spring", 'spring, "big" sale', "Ü-Aktion", "  padded  "]
MULTILINE_PROMOS = ["two\nlines", 'a "quoted"\nbreak']
NAME_PARTS = ["export", "orders #", "50%", "2026-06-30T23:59:59", "Überweisung", "a b", "ÆØÅ"]
# How a rule breaker breaks the contract: (column, value, reason in the quarantine table)
BAD = [("quantity", "many", "bad_type"), ("sku", "", "missing_field"), ("order_ts", "yesterday", "bad_type")]
START = datetime(2026, 6, 28, tzinfo=timezone.utc)


@dataclass
class Delivery:
    """One landing file and what ingesting it must give."""

    name: str
    data: bytes
    rows: int = 0  # records in it, counted by Python's csv / json
    quarantined: int = 0
    reasons: set[str] = field(default_factory=set)  # the reasons its quarantined rows may give
    unreadable: str | None = None  # part of the reason the ledger must give


@dataclass
class Expected:
    deliveries: list[Delivery]
    silver: dict[str, tuple[datetime, str, int, Decimal, str | None]]  # order_id -> silver values
    duplicates: int


def _timestamp(rng: random.Random, at: datetime) -> str:
    style = rng.randrange(4)
    if style == 0:
        return at.strftime("%Y-%m-%dT%H:%M:%SZ")
    if style == 1:
        return at.replace(tzinfo=None).isoformat(sep=" ")
    offset = timedelta(hours=rng.choice([2, -5, 5.5]))
    return (at + offset).replace(tzinfo=timezone(offset)).isoformat()


def _header(rng: random.Random, columns: list[str]) -> list[str]:
    style = rng.choice([str.lower, str.upper, str.title, lambda c: f" {c} "])
    return [style(c) for c in columns]


def _csv(rng: random.Random, header: list[str], rows: list[list[str]], truncate: bool) -> tuple[str, int]:
    buffer = io.StringIO()
    newline = rng.choice(["\n", "\r\n"])
    quoting = rng.choice([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])
    writer = csv.writer(buffer, lineterminator=newline, quoting=quoting)
    writer.writerow(header)
    writer.writerows(rows[:-1] if truncate else rows)
    if truncate:  # the export stopped two fields into its last row
        writer.writerow(rows[-1][:2])
        buffer.seek(buffer.tell() - len(newline))
        buffer.truncate()
    text = buffer.getvalue()
    return text, sum(1 for row in csv.reader(io.StringIO(text, newline="")) if row) - 1


def _jsonl(
    rng: random.Random, header: list[str], rows: list[list[str]], truncate: bool, escapes: bool = True
) -> tuple[str, int]:
    lines = []
    for row in rows:
        record: dict[str, object] = dict(zip(header, row, strict=True))
        if rng.random() < 0.5:  # numbers as JSON numbers
            record = {k: (int(v) if v.isdigit() else v) for k, v in record.items()}
        # \u escapes make any text ASCII (escapes=False keeps a Latin-1 file's non-ASCII bytes)
        lines.append(json.dumps(record, ensure_ascii=rng.random() < 0.5 and escapes))
    if truncate:
        lines[-1] = lines[-1][: len(lines[-1]) // 2]
    newline = rng.choice(["\n", "\r\n"])
    text = "".join(line + newline for line in lines)
    return text, sum(1 for line in text.splitlines() if line.strip())


def deliveries(seed: int, files: int, line_breaks: bool = False) -> Expected:
    """``files`` transaction deliveries and what the ingest must make of them.

    ``line_breaks``: quoted values may hold line breaks (for a source read with multiLine).
    """
    rng = random.Random(seed)
    promos = PROMOS + (MULTILINE_PROMOS if line_breaks else [])
    out: list[Delivery] = []
    silver: dict[str, tuple[datetime, str, int, Decimal, str | None]] = {}
    delivered: list[dict[str, str]] = []  # good rows of readable files, for re-deliveries
    duplicates = 0
    for index in range(files):
        is_json = rng.random() < 0.25
        gz = rng.random() < 0.2
        broken = rng.choices(["none", "latin1", "cut_gzip"], [0.9, 0.05, 0.05])[0]
        gz = gz or broken == "cut_gzip"
        # A Latin-1 file is only unreadable as UTF-8 where it has a non-ASCII character: its first promo.
        columns = REQUIRED + [
            c for c in OPTIONAL if rng.random() < 0.5 or (c == "promo_id" and broken == "latin1")
        ]
        rng.shuffle(columns)
        name = f"{rng.choice(NAME_PARTS)} {index:03d}{rng.choice(['', '_' + rng.choice(NAME_PARTS)])}"
        suffix = (".jsonl" if is_json else rng.choice([".csv", ".CSV"])) + (".gz" if gz else "")
        delivery = Delivery(f"{name}{suffix}", b"")
        if rng.random() < 0.05 and broken == "none":
            out.append(delivery)  # zero bytes: a delivery of nothing
            continue
        n_rows = rng.randrange(1 if broken == "latin1" else 0, 7)
        truncate = n_rows > 0 and rng.random() < 0.1
        records: list[dict[str, str]] = []
        for row in range(n_rows):
            last = row == n_rows - 1
            source = rng.choice(delivered) if delivered and rng.random() < 0.15 else None
            if (
                source is not None
                and set(source) <= set(columns)
                and broken == "none"
                and not (truncate and last)
            ):
                records.append(dict(source))
                duplicates += 1
                continue
            sku = rng.choice(sorted(PRICES))
            at = START + timedelta(minutes=rng.randrange(3 * 24 * 60))
            values = {
                "order_id": f"o{index:03d}-{row}",
                "order_ts": _timestamp(rng, at),
                "sku": sku,
                "quantity": str(rng.randint(1, 3)),
                "unit_price": PRICES[sku],
                "line_id": str(rng.randint(1, 9)),
                "channel": rng.choice(["web", "store_01", "app"]),
                "promo_id": rng.choice(promos) if broken != "latin1" or row else "Ü-Aktion",
                "customer_id": f"c{rng.randint(1, 50)}",
            }
            values = {c: values[c] for c in columns}
            bad = rng.random() < 0.15
            if bad:
                column, value, reason = rng.choice(BAD)
                values[column] = value
                delivery.reasons.add(reason)
            if truncate and last:  # cut short: fields missing, or a line that is no longer JSON
                delivery.reasons |= {"unparseable"} if is_json else {"missing_field", "unparseable"}
            if broken == "none":
                if bad or (truncate and last):
                    delivery.quarantined += 1
                else:
                    promo = values.get("promo_id", "").strip() or None
                    price = Decimal(values["unit_price"])
                    silver[values["order_id"]] = (
                        at.replace(tzinfo=None),
                        sku,
                        int(values["quantity"]),
                        price,
                        promo,
                    )
                    delivered.append(values)
            records.append(values)
        header = _header(rng, columns)
        rows = [[r.get(c, "") for c in columns] for r in records]
        if is_json:
            text, delivery.rows = _jsonl(rng, header, rows, truncate, escapes=broken != "latin1")
        else:
            text, delivery.rows = _csv(rng, header, rows, truncate)
        encoding = "latin-1" if broken == "latin1" else rng.choice(["utf-8", "utf-8-sig"])
        data = text.encode(encoding)
        if gz:
            data = gzip.compress(data)
        if broken == "cut_gzip":
            data = data[: max(10, len(data) // 2)]
            delivery.unreadable = "cannot open"
        elif broken == "latin1":
            delivery.unreadable = "not UTF-8"
        delivery.data = data
        out.append(delivery)
    return Expected(out, silver, duplicates)
