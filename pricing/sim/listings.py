"""Competitor listings as scrapers deliver them: the competitor's own id, a rewritten title, a brand
and a pack size instead of our SKU, with the true mapping kept as ground truth.

A listing rewrites our catalogue title the way other shops write theirs: words reordered,
abbreviated, units written differently (``750 ml`` as ``0.75L`` or ``75cl``), typos, and accented
characters. A share of each competitor's listings are *decoys*: products we do not sell that look
like ours (another model number or another pack size of the same line); the truth maps them to no
SKU, so a matcher that takes them is wrong.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, IntegerType, StringType, StructField, StructType

# Pack sizes per category (categories without one carry no size), as the catalogue writes them.
SIZES: dict[str, list[str]] = {
    "backpacks": ["20 l", "28 l", "35 l", "45 l"],
    "water_bottles": ["500 ml", "750 ml", "1 l"],
    "tents": ["1.8 kg", "2.4 kg", "3.1 kg"],
    "socks": ["2 pack", "3 pack", "5 pack"],
    "sleeping_bags": ["900 g", "1.2 kg", "1.6 kg"],
}
ABBREVIATIONS = {
    "running": ["rng", "run."],
    "shoe": ["shoes", "sh."],
    "jacket": ["jkt", "jckt"],
    "backpack": ["bkpk", "pack", "rucksack"],
    "water": ["wtr"],
    "bottle": ["btl", "bttl"],
    "headlamp": ["head lamp", "hdlamp"],
    "hiking": ["hkg", "hike"],
    "socks": ["sox"],
    "sunglasses": ["sunnies", "sun glasses"],
    "gloves": ["glvs"],
    "sleeping": ["slpg", "sleep"],
    "classic": ["clsc"],
    "ultra": ["ult"],
    "storm": ["strm"],
    "trail": ["trl"],
    "urban": ["urb"],
    "lite": ["light", "lt"],
    "max": ["mx"],
}
ACCENTS = {"a": "á", "e": "é", "o": "ö", "u": "ü", "i": "í", "n": "ñ"}
LISTING_MAP_SCHEMA = StructType(
    [
        StructField("sku_idx", IntegerType(), False),
        StructField("competitor", StringType(), False),
        StructField("competitor_sku", StringType(), False),
        StructField("title", StringType(), True),
        StructField("brand", StringType(), True),
        StructField("size", StringType(), True),
        StructField("sku", StringType(), True),  # the truth: null for a decoy
        StructField("decoy", BooleanType(), False),
    ]
)


def catalog_size(uniform: Column) -> Column:
    """The pack size of a SKU from its category (null where the category has none)."""
    size = F.lit(None).cast("string")
    for category, options in SIZES.items():
        pick = F.element_at(
            F.array(*[F.lit(o) for o in options]), (F.floor(uniform * len(options)) + 1).cast("int")
        )
        size = F.when(F.col("category") == category, pick).otherwise(size)
    return size


def _format_size(size: str, rng: np.random.Generator) -> str:
    """The same amount in another shop's notation."""
    number, unit = size.split(" ")
    value = float(number)
    options: list[str]
    if unit == "ml":
        options = [f"{value:g}ml", f"{value / 1000:g} L", f"{value / 10:g}cl", f"{value:g} ML"]
    elif unit == "l":
        options = [f"{value:g}L", f"{value * 1000:g} ml", f"{value:g} ltr", f"{value:g} litre"]
    elif unit == "kg":
        options = [f"{value:g}kg", f"{value * 1000:g} g", f"{value:g} KG"]
    elif unit == "g":
        options = [f"{value:g}g", f"{value / 1000:g} kg", f"{value:g} gr"]
    else:  # pack
        options = [f"{value:g}-pack", f"pack of {value:g}", f"{value:g} pk", f"{value:g}pcs"]
    return options[int(rng.integers(len(options)))]


def _other_size(size: str, rng: np.random.Generator) -> str:
    number, unit = size.split(" ")
    factor = [0.5, 0.6, 1.5, 2.0][int(rng.integers(4))]
    value = float(number) * factor
    return f"{int(value) if unit == 'pack' else round(value, 2):g} {unit}"


def _typo(word: str, rng: np.random.Generator) -> str:
    if len(word) < 5 or not word.isalpha():
        return word
    i = int(rng.integers(1, len(word) - 2))
    if rng.random() < 0.5:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # swapped letters
    return word[:i] + word[i + 1 :]  # a dropped letter


def rewrite(
    title: str, brand: str, size: str | None, rng: np.random.Generator
) -> tuple[str, str | None, str | None]:
    """One competitor's (title, brand, size) for a catalogue product."""
    brand_core = brand.removeprefix("Brand ").strip()
    words = [w for w in title.split(" ")]
    core = words[len(brand_core.split(" ")) :] if title.startswith(brand_core) else words
    core = [
        (
            ABBREVIATIONS[w.lower()][int(rng.integers(len(ABBREVIATIONS[w.lower()])))]
            if rng.random() < 0.35
            else w
        )
        if w.lower() in ABBREVIATIONS
        else w
        for w in core
    ]
    if rng.random() < 0.3:
        core = [_typo(w, rng) if rng.random() < 0.5 else w for w in core]
    model = [w for w in core if any(c.isdigit() for c in w)]
    if rng.random() < 0.08:
        core = [w for w in core if w not in model]  # the listing leaves out the model number
    elif rng.random() < 0.5:
        rest = [w for w in core if w not in model]
        rng.shuffle(rest)
        core = rest + model if rng.random() < 0.5 else model + rest
    brand_written = [brand_core, brand_core.upper(), brand, brand_core.lower()][int(rng.integers(4))]
    head = brand_core if rng.random() < 0.7 else ""
    text = (
        " ".join([head, *core])
        if rng.random() < 0.6
        else " ".join([*core, "-", head])
        if head
        else " ".join(core)
    )
    if rng.random() < 0.15:
        text = "".join(ACCENTS.get(c, c) if rng.random() < 0.3 else c for c in text)
        brand_written = "".join(ACCENTS.get(c, c) if rng.random() < 0.3 else c for c in brand_written)
    brand_out = None if rng.random() < 0.1 else brand_written
    size_out = None
    if size:
        written = _format_size(size, rng)
        where = rng.random()
        if where < 0.5:
            size_out = written
        elif where < 0.85:
            text = f"{text} {written}"
        # else: the listing does not state its size
    return " ".join(text.split()), brand_out, size_out


def _decoy(title: str, size: str | None, rng: np.random.Generator) -> tuple[str, str | None]:
    """A product of the same line that we do not sell: another model number or another pack size."""
    if size and rng.random() < 0.5:
        return title, _other_size(size, rng)
    words = title.split(" ")
    model = int(words[-1]) if words[-1].isdigit() else 0
    words[-1] = str(model + int(rng.integers(100, 900)))
    return " ".join(words), size


def listing_map(catalog_df: DataFrame, competitors: list[str], seed: int, decoy_share: float) -> DataFrame:
    """(sku_idx, competitor) -> the competitor's listing of our SKU, and its decoys, with the truth.

    ``catalog_df`` has sku, sku_idx, title, brand, size. Every SKU is listed by every competitor;
    about ``decoy_share`` of the SKUs also get a look-alike listing for a product we do not sell.
    """

    def generate(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            rows = []
            for sku, idx, title, brand, size in batch[
                ["sku", "sku_idx", "title", "brand", "size"]
            ].itertuples(index=False):
                for c, competitor in enumerate(competitors):
                    rng = np.random.default_rng([seed, int(idx), c, 7])
                    prefix = competitor[:2].upper()
                    listing_id = f"{prefix}{int(rng.integers(10**7, 10**8))}"
                    rows.append((idx, competitor, listing_id, *rewrite(title, brand, size, rng), sku, False))
                    if rng.random() < decoy_share:
                        decoy_title, decoy_size = _decoy(title, size, rng)
                        rows.append(
                            (
                                idx,
                                competitor,
                                f"{prefix}{int(rng.integers(10**7, 10**8))}",
                                *rewrite(decoy_title, brand, decoy_size, rng),
                                None,
                                True,
                            )
                        )
            yield pd.DataFrame(rows, columns=LISTING_MAP_SCHEMA.fieldNames())

    return catalog_df.select(
        "sku", F.col("sku_idx").cast("int").alias("sku_idx"), "title", "brand", "size"
    ).mapInPandas(generate, LISTING_MAP_SCHEMA)
