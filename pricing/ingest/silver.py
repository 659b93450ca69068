"""Bronze -> silver: typing, currency conversion, pseudonymisation, quarantine rules, deduplication.

Every function here is a pure ``DataFrame -> DataFrame`` transformation; I/O lives in
``pricing.ingest``. Each bronze row ends in exactly one place: silver, quarantine (with a reason),
or counted as a duplicate, which is what the reconciliation checks.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DataType,
    DateType,
    DecimalType,
    IntegerType,
    StringType,
    TimestampType,
)

from pricing.config import AnomalyConfig
from pricing.ingest.rules import (
    BAD_TYPE,
    DERIVED,
    MISSING_FIELD,
    OUTLIER_MEASURES,
    UNKNOWN_CURRENCY,
    UNPARSEABLE,
    VALUE_RULES,
    Limits,
    outlier_subject,
)
from pricing.schemas import (
    BATCH_ID,
    CORRUPT_RECORD,
    EXTRA,
    INGESTED_AT,
    MONEY,
    SOURCE_FILE,
    SourceContract,
)

REASONS = "_reasons"  # array<struct<reason, detail>>
RAW_RECORD = "_raw_record"
ROW_STATUS = "_row_status"  # new | update | own | duplicate
_RAW = "_raw_"  # prefix of the as-delivered string copies kept for quarantine


def _blank_to_null(column: Column) -> Column:
    return F.when(F.trim(column) == "", None).otherwise(column)


def _typed(raw: Column, data_type: DataType) -> Column:
    """Parse a delivered string without failing: invalid values become null (ANSI-safe)."""
    text = F.trim(raw)
    if isinstance(data_type, StringType):
        return text
    if isinstance(data_type, IntegerType):
        # "2" and "2.0" are both 2; "2.5" and "two" are not integers.
        number = text.try_cast(DecimalType(38, 6))
        return F.when(number == F.floor(number), number.try_cast(IntegerType()))
    if isinstance(data_type, TimestampType):
        return text.try_cast(TimestampType())
    if isinstance(data_type, DateType):
        return text.try_cast(DateType())
    if isinstance(data_type, BooleanType):
        return F.lower(text).try_cast(BooleanType())
    return text.try_cast(data_type)


def _check(condition: Column, reason: str, detail: Column | str) -> Column:
    detail_col = F.lit(detail) if isinstance(detail, str) else detail
    return F.when(condition, F.struct(F.lit(reason).alias("reason"), detail_col.alias("detail")))


def fx_daily_rates(fx_df: DataFrame, max_staleness_days: int) -> DataFrame:
    """Silver FX rates (date, currency, rate) -> one rate per currency and day, forward-filled.

    A day without a published rate uses the latest earlier rate for up to ``max_staleness_days``.
    """
    bounds = fx_df.groupBy("currency").agg(F.min("date").alias("first"), F.max("date").alias("last"))
    calendar = bounds.select(
        "currency",
        F.explode(F.sequence("first", F.date_add("last", max_staleness_days))).alias("date"),
    )
    window = Window.partitionBy("currency").orderBy("date").rowsBetween(Window.unboundedPreceding, 0)
    return (
        calendar.join(fx_df.select("date", "currency", "rate"), ["currency", "date"], "left")
        .withColumn("rate", F.last("rate", ignorenulls=True).over(window))
        .withColumn(
            "rate_date",
            F.last(F.when(F.col("rate").isNotNull(), F.col("date")), ignorenulls=True).over(window),
        )
        .where(F.datediff("date", "rate_date") <= max_staleness_days)
        .select(F.upper("currency").alias("_fx_currency"), F.col("date").alias("_fx_date"), "rate")
    )


def parse_bronze(
    bronze_df: DataFrame,
    contract: SourceContract,
    *,
    base_currency: str,
    fx_daily_df: DataFrame | None,
    pii_salt: str,
    max_abs_quantity: int,
    max_price: float,
) -> DataFrame:
    """Type bronze rows, convert money to ``base_currency``, hash PII and collect rule violations.

    Returns:
        Silver columns plus ``_reasons`` (violations, empty when clean) and ``_raw_record``
        (the delivered record as JSON with PII already hashed, for the quarantine table).
    """
    df = bronze_df
    for name in contract.columns:
        df = df.withColumn(f"{_RAW}{name}", _blank_to_null(F.col(name)))
    checks: list[Column] = [
        _check(F.col(CORRUPT_RECORD).isNotNull(), UNPARSEABLE, "row does not parse in its file's format")
    ]
    for name, data_type in contract.types.items():
        raw = F.col(f"{_RAW}{name}")
        df = df.withColumn(name, _typed(raw, data_type))
        if name in contract.required:
            checks.append(_check(raw.isNull(), MISSING_FIELD, f"{name} is missing"))
        checks.append(
            _check(
                raw.isNotNull() & F.col(name).isNull(),
                BAD_TYPE,
                F.concat(F.lit(f"{name}={{"), raw, F.lit(f"}} is not {data_type.simpleString()}")),
            )
        )
    if contract.one_of:
        checks.append(
            _check(
                reduce(lambda a, b: a & b, [F.col(f"{_RAW}{name}").isNull() for name in contract.one_of]),
                MISSING_FIELD,
                f"{' and '.join(contract.one_of)} are all missing",
            )
        )
    # Materialised now: later steps replace typed columns (currency conversion) that these judge.
    df = df.withColumn(REASONS, F.array(*checks))
    checks = []

    if contract.date_column and contract.date_from:
        df = df.withColumn(contract.date_column, F.to_date(contract.date_from))
    for derived in DERIVED.get(contract.name, ()):
        df = df.withColumn(derived.column, derived.value())

    if contract.has_currency:
        assert contract.money_date is not None, f"{contract.name}: has_currency needs money_date"
        currency = F.upper(F.coalesce(F.col("currency"), F.lit(base_currency)))
        df = df.withColumn("_currency", currency).withColumn("_money_day", F.to_date(contract.money_date))
        if fx_daily_df is not None:
            df = df.join(
                F.broadcast(fx_daily_df),
                (F.col("_currency") == F.col("_fx_currency")) & (F.col("_money_day") == F.col("_fx_date")),
                "left",
            )
        else:
            df = df.withColumn("rate", F.lit(None).cast("decimal(18,8)"))
        rate = F.when(F.col("_currency") == base_currency, F.lit(1)).otherwise(F.col("rate"))
        df = df.withColumn("_rate", rate)
        checks.append(
            _check(
                F.col("_rate").isNull(),
                UNKNOWN_CURRENCY,
                F.concat(
                    F.lit("no rate for "),
                    F.col("_currency"),
                    F.lit(" on "),
                    F.col("_money_day").cast("string"),
                ),
            )
        )
        for name in contract.money:
            df = df.withColumn(name, F.round(F.col(name) * F.col("_rate"), 4).cast(MONEY))

    checks += _value_checks(contract, max_abs_quantity, max_price)

    for name in contract.pii:
        df = df.withColumn(f"{name}_hash", pseudonymise(F.col(f"{_RAW}{name}"), pii_salt))

    raw_fields = [
        (F.col(f"{name}_hash") if name in contract.pii else F.col(f"{_RAW}{name}")).alias(
            f"{name}_hash" if name in contract.pii else name
        )
        for name in contract.columns
    ]
    if not contract.pii:
        # Unparseable lines and unknown extra columns can hold anything, PII included: only sources
        # without personal data keep them in the quarantine record (bronze keeps them for all).
        raw_fields += [F.col(EXTRA).alias("_extra"), F.col(CORRUPT_RECORD).alias("_corrupt_record")]
    df = df.withColumn(RAW_RECORD, F.to_json(F.struct(*raw_fields)))
    df = df.withColumn(REASONS, F.filter(F.concat(F.col(REASONS), F.array(*checks)), lambda c: c.isNotNull()))
    return df


def pseudonymise(column: Column, salt: str) -> Column:
    """Salted SHA-256 of an identifier; null stays null."""
    return F.when(column.isNotNull(), F.sha2(F.concat(F.lit(salt), F.lit("|"), column), 256))


def _value_checks(contract: SourceContract, max_abs_quantity: int, max_price: float) -> list[Column]:
    limits = Limits(max_abs_quantity, max_price)
    return [
        _check(rule.violated(limits), rule.reason, rule.detail(limits))
        for rule in VALUE_RULES.get(contract.name, ())
    ]


def _robust_z(value: Column, median: Column, mad: Column, min_scale: float) -> Column:
    # 1.4826 * MAD estimates the standard deviation of normal data.
    return F.abs(value - median) / F.greatest(F.lit(1.4826) * mad, F.lit(min_scale))


def flag_outliers(
    parsed_df: DataFrame,
    history_df: DataFrame | None,
    contract: SourceContract,
    cfg: AnomalyConfig,
) -> DataFrame:
    """Add per-SKU robust z-score violations (price, quantity) to ``_reasons``.

    Medians and MADs come from the batch's rule-abiding rows together with ``history_df`` (recent
    silver rows of the same source), so one bad batch cannot make its own outliers look normal.
    SKUs with fewer than ``cfg.min_observations`` observations are not judged.
    """
    measures = {
        m.name: (m.value(), m.reason, float(getattr(cfg, m.min_scale)))
        for m in OUTLIER_MEASURES.get(contract.name, ())
    }
    if not measures:
        return parsed_df

    subject = outlier_subject(contract.name)
    key = "_m_key"
    parsed_df = parsed_df.withColumn(key, subject)
    value_cols = [expr.alias(f"_m_{name}") for name, (expr, _, _) in measures.items()]
    clean_batch = parsed_df.where(F.size(REASONS) == 0).select(key, *value_cols)
    sample = clean_batch
    if history_df is not None:
        sample = sample.unionByName(
            history_df.withColumn(key, subject)
            .join(clean_batch.select(key).distinct(), key, "left_semi")
            .select(key, *value_cols)
        )
    medians = sample.groupBy(key).agg(
        F.count(F.lit(1)).alias("_m_n"),
        *[F.median(f"_m_{name}").alias(f"_m_{name}_median") for name in measures],
    )
    deviations = (
        sample.join(medians, key)
        .groupBy(key)
        .agg(
            *[
                F.median(F.abs(F.col(f"_m_{name}") - F.col(f"_m_{name}_median"))).alias(f"_m_{name}_mad")
                for name in measures
            ]
        )
    )
    stats = medians.join(deviations, key)
    df = parsed_df.join(stats, key, "left")
    extra_checks = []
    for name, (expr, reason, min_scale) in measures.items():
        z = _robust_z(expr, F.col(f"_m_{name}_median"), F.col(f"_m_{name}_mad"), min_scale)
        extra_checks.append(
            _check(
                (F.col("_m_n") >= cfg.min_observations) & (z > cfg.robust_z_threshold),
                reason,
                F.concat(F.lit(f"robust z of {name} = "), F.format_number(z, 1)),
            )
        )
    new_reasons = F.filter(F.array(*extra_checks), lambda c: c.isNotNull())
    # Only rows that passed every hard rule are judged; others already have their reason.
    df = df.withColumn(REASONS, F.when(F.size(REASONS) == 0, new_reasons).otherwise(F.col(REASONS)))
    return df.drop(*[c for c in df.columns if c.startswith("_m_")])


def judged_columns(flagged_df: DataFrame, contract: SourceContract) -> DataFrame:
    """Only the columns classification (the silver row) and the quarantine read from judged rows.

    Ingest keeps the judged batch on disk between the two; the parse's raw and intermediate columns
    would more than double what it writes there, and every clean row would carry its delivered record
    as JSON (docs/benchmarks.md).
    """
    silver = [f.name for f in contract.silver_schema.fields]
    lineage = [c for c in (REASONS, SOURCE_FILE, INGESTED_AT, BATCH_ID) if c not in silver]
    # The quarantine reads the delivered record of rejected rows only: a clean row's is never built.
    raw = F.when(F.size(REASONS) > 0, F.col(RAW_RECORD)).alias(RAW_RECORD)
    return flagged_df.select(*silver, *lineage, raw)


def quarantine_rows(parsed_df: DataFrame, contract: SourceContract) -> DataFrame:
    """Rows with at least one violation, in the quarantine table's shape."""
    return parsed_df.where(F.size(REASONS) > 0).select(
        F.lit(contract.name).alias("source"),
        F.col(BATCH_ID),
        F.col(REASONS)[0]["reason"].alias("reason"),
        F.transform(REASONS, lambda c: c["reason"]).alias("all_reasons"),
        F.col(REASONS)[0]["detail"].alias("detail"),
        F.col(RAW_RECORD).alias("raw_record"),
        F.col(SOURCE_FILE),
        F.col(INGESTED_AT),
    )


def _content_hash(columns: list[str]) -> Column:
    return F.xxhash64(*[F.col(c) for c in columns])


def classify_against_silver(
    clean_df: DataFrame,
    silver_df: DataFrame,
    contract: SourceContract,
    batch_id: int,
) -> DataFrame:
    """Mark each clean row ``new``, ``update``, ``own`` or ``duplicate`` (column ``_row_status``).

    - Within the batch, one row per key survives (the newest ``version``, else the last file).
    - Against silver: a key not there is ``new``; a key written by this same batch (a re-run after a
      crash) is ``own``; for upsert sources a newer or different row is an ``update``; anything else
      is a ``duplicate`` (re-delivered).
    """
    silver_columns = [f.name for f in contract.silver_schema.fields]
    content = [c for c in silver_columns if c not in (SOURCE_FILE, BATCH_ID)]
    key = list(contract.key)
    order = [F.col(SOURCE_FILE).desc()] if contract.upsert else [F.col(SOURCE_FILE).asc()]
    if contract.version:
        order = [F.col(contract.version).desc_nulls_last(), *order]
    ranked = clean_df.select(*silver_columns).withColumn(
        "_rank", F.row_number().over(Window.partitionBy(*key).orderBy(*order, _content_hash(content)))
    )
    existing = silver_df.select(
        *[F.col(k).alias(f"_t_{k}") for k in key],
        F.col(BATCH_ID).alias("_t_batch"),
        _content_hash(content).alias("_t_hash"),
        (F.col(contract.version) if contract.version else F.lit(None)).alias("_t_version"),
    )
    joined = ranked.join(
        existing, reduce(lambda a, b: a & b, [F.col(k).eqNullSafe(F.col(f"_t_{k}")) for k in key]), "left"
    )
    matched = F.col("_t_batch").isNotNull()
    if contract.version:
        newer = F.col(contract.version) > F.col("_t_version")
    else:
        newer = _content_hash(content) != F.col("_t_hash")
    status = (
        F.when(F.col("_rank") > 1, "duplicate")
        .when(~matched, "new")
        .when(F.col("_t_batch") == batch_id, "own")
        .when(F.lit(contract.upsert) & newer, "update")
        .otherwise("duplicate")
    )
    return joined.withColumn(ROW_STATUS, status).select(*silver_columns, ROW_STATUS)
