"""What a product title says, read the same way for competitor listings and our catalogue.

Pure Python on one title at a time (called per Arrow batch by the matching stage): accents folded,
lower case, the pack size parsed into a base unit (``0.75L``, ``750 ml`` and ``75cl`` are all 750 ml)
and taken out of the words, and the tokens that carry a digit kept apart: model numbers that must
agree for two titles to be one product.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# unit -> (dimension, factor to the base unit: ml, g or pieces)
UNITS: dict[str, tuple[str, float]] = {
    "ml": ("volume", 1.0),
    "cl": ("volume", 10.0),
    "dl": ("volume", 100.0),
    "l": ("volume", 1000.0),
    "ltr": ("volume", 1000.0),
    "litre": ("volume", 1000.0),
    "liter": ("volume", 1000.0),
    "litres": ("volume", 1000.0),
    "liters": ("volume", 1000.0),
    "floz": ("volume", 29.5735),
    "g": ("mass", 1.0),
    "gr": ("mass", 1.0),
    "gram": ("mass", 1.0),
    "grams": ("mass", 1.0),
    "kg": ("mass", 1000.0),
    "kgs": ("mass", 1000.0),
    "oz": ("mass", 28.3495),
    "lb": ("mass", 453.592),
    "lbs": ("mass", 453.592),
    "pack": ("count", 1.0),
    "pk": ("count", 1.0),
    "pcs": ("count", 1.0),
    "pieces": ("count", 1.0),
    "ct": ("count", 1.0),
    "count": ("count", 1.0),
}
_NUMBER = r"(\d+(?:[.,]\d+)?)"
_PACK_OF = re.compile(rf"(?<![a-z0-9.,])pack of\s*{_NUMBER}(?![a-z0-9])")
_AMOUNT = re.compile(
    rf"(?<![a-z0-9.,]){_NUMBER}\s*-?\s*({'|'.join(sorted(UNITS, key=len, reverse=True))})(?![a-z0-9])"
)
_TOKEN = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*")


@dataclass(frozen=True)
class Size:
    dimension: str
    value: float  # in the base unit


def fold(text: str | None) -> str:
    """Lower case without accents or punctuation other than decimal points: ``Ácme-3`` -> ``acme 3``."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    plain = plain.replace("ß", "ss").replace("ø", "o").replace("æ", "ae").replace("ł", "l")
    return re.sub(r"[^a-z0-9.,]+|(?<![0-9])[.,]|[.,](?![0-9])", " ", plain).strip()


def find_size(text: str) -> tuple[Size | None, str]:
    """The pack size in folded ``text``, and the text without it.

    ``pack of 3`` wins, then a volume or mass, then a count: in ``boreal 11 pack of 3`` the size is 3,
    and in ``ridge 82 pack 20 ltr`` (a backpack) it is 20 litres.
    """
    found = [(0, m.start(), m, m.group(1), "pack") for m in _PACK_OF.finditer(text)]
    found += [
        (2 if UNITS[m.group(2)][0] == "count" else 1, m.start(), m, m.group(1), m.group(2))
        for m in _AMOUNT.finditer(text)
    ]
    if not found:
        return None, text
    _, _, match, value, unit = min(found, key=lambda f: (f[0], f[1]))
    dimension, factor = UNITS[unit]
    size = Size(dimension, round(float(value.replace(",", ".")) * factor, 3))
    return size, (text[: match.start()] + " " + text[match.end() :]).strip()


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


@dataclass(frozen=True)
class Described:
    """One title read for matching."""

    text: str  # folded words without the size, what the encoder sees
    title_tokens: list[str]
    brand_tokens: list[str]
    size: Size | None


def describe(title: str | None, brand: str | None, size: str | None) -> Described:
    """Read a (title, brand, size) triple; the size column wins over a size written in the title."""
    folded_title = fold(title)
    stated, _ = find_size(fold(size))
    in_title, words = find_size(folded_title)
    brand_tokens = tokens(fold(brand))
    title_tokens = tokens(words)
    return Described(
        text=" ".join(title_tokens),
        title_tokens=sorted(set(title_tokens)),
        brand_tokens=sorted(set(brand_tokens)),
        size=stated or in_title,
    )
