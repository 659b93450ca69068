"""Gold panel -> model inputs: vocabularies, standardised numeric features, text vectors, Parquet shards.

Only information known before a day starts is a feature of that day (lags, previous days' traffic,
competitor prices, stock at opening, calendar); the day's own price enters only through
``log_price_ratio = log(price / ref_price)``, the treatment whose effect the network isolates.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Literal

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType

from pricing.features.rows import TRAFFIC_LAGS

# (name, expression over the panel with lag columns added); nulls become 0 with a *_missing flag.
_LOG1P_COUNTS = [
    "units_lag_1",
    "units_lag_7",
    "units_lag_28",
    "units_mean_7d",
    "units_mean_28d",
    "views_lag_1",
    "add_to_carts_lag_1",
    "on_hand",
]
_MISSING_FLAGS = {
    "views_missing": "views_lag_1",
    "competitor_missing": "comp_median_price",
    "stock_missing": "on_hand",
}


def _numeric_expressions() -> dict[str, Column]:
    ref = F.col("ref_price")
    exprs: dict[str, Column] = {f"log1p_{c}": F.log1p(F.greatest(F.col(c), F.lit(0))) for c in _LOG1P_COUNTS}
    exprs["log_comp_ratio"] = F.log(F.col("comp_median_price") / ref)
    # Read only by models of earlier releases (their InputSpec lists them), not by new ones.
    exprs["log_price_mean_7d_ratio"] = F.log(F.col("price_mean_7d") / ref)
    exprs["log_price_mean_28d_ratio"] = F.log(F.col("price_mean_28d") / ref)
    exprs.update({name: F.col(source).isNull().cast("double") for name, source in _MISSING_FLAGS.items()})
    exprs.update({f"dow_{d}": (F.col("day_of_week") == d).cast("double") for d in range(7)})
    exprs["month_sin"] = F.sin(F.col("month") * (2 * 3.141592653589793 / 12))
    exprs["month_cos"] = F.cos(F.col("month") * (2 * 3.141592653589793 / 12))
    exprs["is_holiday"] = F.col("is_holiday").cast("double")
    # A promotion lifts demand and cuts the price together; without it the lift reads as elasticity.
    exprs["promo"] = F.coalesce(F.col("promo"), F.lit(False)).cast("double")
    return exprs


# Names only (building Columns needs a running SparkContext). What a new model reads: no input derived
# from our own past prices. A price that holds for weeks (cost-plus steps, a rigid shop) is matched by
# its own recent average, and a base that reads that average explains the demand of the whole period by
# it; the elasticity then learns only from the few days after each change (docs/training.md).
NUMERIC_FEATURES = (
    [f"log1p_{c}" for c in _LOG1P_COUNTS]
    + ["log_comp_ratio"]
    + list(_MISSING_FLAGS)
    + [f"dow_{d}" for d in range(7)]
    + ["month_sin", "month_cos", "is_holiday", "promo"]
)
# The SKU's own recent units. Where a price holds for days, they already carry its effect
# (``train.units_lags``, docs/training.md "Yesterday's units as inputs").
UNITS_LAGS = [f"log1p_{c}" for c in _LOG1P_COUNTS if c.startswith("units_")]


def input_features(units_lags: bool = True) -> list[str]:
    """The numeric inputs a new model reads: all of :data:`NUMERIC_FEATURES`, or all but the units lags."""
    return [name for name in NUMERIC_FEATURES if units_lags or name not in UNITS_LAGS]


@dataclass
class InputSpec:
    """Everything needed to turn panel rows into network inputs again (saved with the model)."""

    skus: list[str]
    categories: list[str]
    brands: list[str]
    ref_prices: dict[str, float]
    means: list[float]
    stds: list[float]
    encoder: str
    text_dim: int
    train_end: str
    numeric_features: list[str] = field(default_factory=lambda: list(NUMERIC_FEATURES))
    # Each feature's range in training: new rows are clipped to it, because a network extrapolates
    # wildly (a first day of a month never seen in training once moved forecasts 2-3x).
    lows: list[float] | None = None
    highs: list[float] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> InputSpec:
        return cls(**json.loads(text))


def fit_input_spec(
    train_df: DataFrame,
    encoder: str,
    text_dim: int,
    train_end: date,
    numeric_features: Sequence[str] = tuple(NUMERIC_FEATURES),
) -> InputSpec:
    """Vocabularies, reference prices and the scales of ``numeric_features`` (a subset of
    :data:`NUMERIC_FEATURES`, in its order) from the training rows (small aggregates)."""
    ref = (
        train_df.groupBy("sku")
        .agg(F.percentile_approx("price", 0.5).alias("ref_price"))
        .where(F.col("ref_price") > 0)
    )
    ref_prices = {r.sku: float(r.ref_price) for r in ref.collect()}
    scaled = train_df.join(ref, "sku")
    unknown = sorted(set(numeric_features) - set(NUMERIC_FEATURES))
    if unknown:
        raise ValueError(f"fit_input_spec: {unknown} are not model inputs")
    exprs = {name: value for name, value in _numeric_expressions().items() if name in numeric_features}
    assert set(exprs) == set(numeric_features), "NUMERIC_FEATURES is out of step with the expressions"
    stats = scaled.select(
        *[F.mean(F.coalesce(e, F.lit(0.0))).alias(f"m_{n}") for n, e in exprs.items()],
        *[F.stddev_pop(F.coalesce(e, F.lit(0.0))).alias(f"s_{n}") for n, e in exprs.items()],
        *[F.min(F.coalesce(e, F.lit(0.0))).alias(f"lo_{n}") for n, e in exprs.items()],
        *[F.max(F.coalesce(e, F.lit(0.0))).alias(f"hi_{n}") for n, e in exprs.items()],
    ).first()
    assert stats is not None
    vocab = train_df.select(
        F.sort_array(F.collect_set("sku")),
        F.sort_array(F.collect_set("category")),
        F.sort_array(F.collect_set("brand")),
    ).first()
    assert vocab is not None
    return InputSpec(
        skus=list(vocab[0]),
        categories=list(vocab[1]),
        brands=list(vocab[2]),
        ref_prices=ref_prices,
        means=[float(stats[f"m_{n}"] or 0.0) for n in exprs],
        stds=[float(stats[f"s_{n}"] or 0.0) or 1.0 for n in exprs],
        lows=[float(stats[f"lo_{n}"] or 0.0) for n in exprs],
        highs=[float(stats[f"hi_{n}"] or 0.0) for n in exprs],
        encoder=encoder,
        text_dim=text_dim,
        train_end=train_end.isoformat(),
        numeric_features=list(exprs),
    )


def _index(values: list[str], column: str) -> Column:
    # 1-based; 0 = unseen (a new SKU, category or brand).
    mapping = F.create_map(*[part for i, v in enumerate(values) for part in (F.lit(v), F.lit(i + 1))])
    return F.coalesce(mapping[F.col(column)], F.lit(0))


def model_inputs(
    panel_df: DataFrame,
    embeddings_df: DataFrame | None,
    spec: InputSpec,
    extra_columns: Sequence[str] = (),
    text: Literal["vector", "hash"] = "vector",
) -> DataFrame:
    """Model rows (:func:`pricing.features.feature_rows`) -> network inputs, one row per SKU and day.

    ``extra_columns`` of the panel are carried along unchanged (e.g. the guardrail inputs for scoring).
    ``text="hash"``: each row names its title by ``text_hash`` instead of carrying the vector, which
    :func:`text_vectors` holds once per distinct text (training shards: a title is the same on every
    day, and its 384 floats were most of a row's bytes).
    """
    absent = [name for name in TRAFFIC_LAGS if name not in panel_df.columns]
    if absent:
        # A row without them would read as "no traffic yesterday" (their missing flag), silently.
        raise ValueError(f"model_inputs: {absent} absent: build the rows with features.feature_rows")
    spark = panel_df.sparkSession
    ref_df = spark.createDataFrame(list(spec.ref_prices.items()), "sku string, ref_price double")
    df = panel_df.join(F.broadcast(ref_df), "sku", "left").withColumn(
        "ref_price", F.coalesce("ref_price", "price_mean_28d", "price")
    )
    exprs = _numeric_expressions()
    n = len(spec.numeric_features)
    lows: list[float | None] = list(spec.lows) if spec.lows else [None] * n
    highs: list[float | None] = list(spec.highs) if spec.highs else [None] * n

    def clipped(value: Column, low: float | None, high: float | None) -> Column:
        return value if low is None or high is None else F.least(F.greatest(value, F.lit(low)), F.lit(high))

    numeric = F.array(
        *[
            ((clipped(F.coalesce(exprs[name], F.lit(0.0)), low, high) - mean) / std).cast("float")
            for name, mean, std, low, high in zip(
                spec.numeric_features, spec.means, spec.stds, lows, highs, strict=True
            )
        ]
    )
    zeros = F.array_repeat(F.lit(0.0).cast("float"), spec.text_dim)
    if text == "hash":
        text_column = F.col("text_hash")
    elif embeddings_df is not None:
        df = df.join(
            embeddings_df.where(F.col("encoder") == spec.encoder).select(
                "text_hash", F.col("embedding").alias("_text")
            ),
            "text_hash",
            "left",
        )
        text_column = F.coalesce(F.col("_text"), zeros).cast(ArrayType(FloatType())).alias("text")
    else:
        text_column = zeros.cast(ArrayType(FloatType())).alias("text")
    return df.select(
        "sku",
        "date",
        _index(spec.skus, "sku").alias("sku_idx"),
        _index(spec.categories, "category").alias("category_idx"),
        _index(spec.brands, "brand").alias("brand_idx"),
        numeric.alias("numeric"),
        text_column,
        F.log(F.col("price") / F.col("ref_price")).cast("float").alias("log_price_ratio"),
        F.col("units_gross").cast("float").alias("units"),
        # Stock-out days are censored demand: weight 0 in every error measure, never "no stock = no
        # demand"; training reads what they did sell as a lower bound of demand (``censored``).
        F.when(F.coalesce(F.col("stockout"), F.lit(False)), 0.0).otherwise(1.0).cast("float").alias("weight"),
        (F.coalesce(F.col("stockout"), F.lit(False)) & (F.col("units_gross") > 0))
        .cast("float")
        .alias("censored"),
        F.col("units_lag_7").cast("double").alias("seasonal_naive"),
        # Cross-fitting folds for the price nuisance: by row, so each fold still sees every SKU.
        F.pmod(F.xxhash64("sku", "date"), F.lit(2)).cast("int").alias("fold"),
        "price",
        "ref_price",
        F.col("unit_cost"),
        *extra_columns,
    ).where(F.col("log_price_ratio").isNotNull())


def text_vectors(embeddings_df: DataFrame, spec: InputSpec) -> DataFrame:
    """``(text_hash, text)``: each distinct text's vector under the model's encoder, once.

    What rows written with ``model_inputs(..., text="hash")`` point to; a hash missing here reads as
    the zero vector, as in :func:`model_inputs`.
    """
    return (
        embeddings_df.where(F.col("encoder") == spec.encoder)
        .dropDuplicates(["text_hash"])
        .select("text_hash", F.col("embedding").cast(ArrayType(FloatType())).alias("text"))
    )


def text_basis(embeddings_df: DataFrame, text_dim: int, components: int) -> list[list[float]] | None:
    """The first ``components`` principal axes of the vectors in ``embeddings_df.embedding``, as the rows
    of a (text_dim, components) matrix; None where the vectors have no more dimensions than that.

    Spark ML's PCA: the covariance is aggregated where the rows are, only text_dim² numbers reach the
    driver. Like its transform, the projection does not centre (the first layer's bias takes the offset).
    """
    if components <= 0 or text_dim <= components:
        return None
    from pyspark.ml.feature import PCA
    from pyspark.ml.functions import array_to_vector

    vectors = embeddings_df.select(array_to_vector(F.col("embedding")).alias("vector"))
    fitted = PCA(k=components, inputCol="vector").fit(vectors)
    return [[float(x) for x in row] for row in fitted.pc.toArray()]
