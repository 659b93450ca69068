"""Table schemas and the landing contract, declared once.

The landing contract (docs/data-contract.md) says which columns each raw source may carry; bronze
keeps them as delivered (strings), silver types them. Jobs check what they write against these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

MONEY = DecimalType(18, 4)
RATE = DecimalType(18, 8)

# Bronze metadata columns, added to every raw row.
SOURCE_FILE = "_source_file"
INGESTED_AT = "_ingested_at"
BATCH_ID = "_batch_id"
EXTRA = "_extra"
CORRUPT_RECORD = "_corrupt_record"


@dataclass(frozen=True)
class SourceContract:
    """One landing source: its raw columns, how they are typed, and how rows are keyed.

    Attributes:
        name: folder name under the landing root and table name in bronze/silver.
        types: contract column -> silver type, in contract order.
        key: columns identifying a row; duplicates by key are removed on the way to silver.
        required: columns a row must have (non-null) to reach silver; a CSV file whose header
            lacks any of them is rejected whole.
        money: columns converted to the base currency.
        money_date: timestamp/date column whose day picks the FX rate.
        pii: columns pseudonymised on the way to silver (never stored raw past bronze).
        upsert: a re-delivered key replaces the silver row when it is newer (``version``) or differs;
            otherwise the first delivery wins and later ones count as duplicates.
        version: column deciding which of two rows with one key is newer (upsert sources).
        date_column: silver's day column, derived from ``money_date`` or the source's own date.
        one_of: columns of which a row must carry at least one (else ``missing_field``).
    """

    name: str
    types: dict[str, DataType]
    key: tuple[str, ...]
    required: tuple[str, ...]
    money: tuple[str, ...] = ()
    money_date: str | None = None
    has_currency: bool = False
    pii: tuple[str, ...] = ()
    upsert: bool = False
    version: str | None = None
    date_column: str | None = None
    date_from: str | None = None
    extra_silver: dict[str, DataType] = field(default_factory=dict)
    one_of: tuple[str, ...] = ()

    @property
    def columns(self) -> list[str]:
        return list(self.types)

    @property
    def bronze_schema(self) -> StructType:
        """Raw columns as delivered (strings) plus ingestion metadata."""
        return StructType(
            [StructField(name, StringType()) for name in self.types]
            + [
                StructField(EXTRA, MapType(StringType(), StringType())),
                StructField(CORRUPT_RECORD, StringType()),
                StructField(SOURCE_FILE, StringType(), nullable=False),
                StructField(INGESTED_AT, TimestampType(), nullable=False),
                StructField(BATCH_ID, LongType(), nullable=False),
            ]
        )

    @property
    def silver_schema(self) -> StructType:
        """Typed, cleaned columns; PII columns replaced by ``<name>_hash``."""
        fields = []
        for name, data_type in self.types.items():
            if name in self.pii:
                fields.append(StructField(f"{name}_hash", StringType()))
            elif name == "currency" and self.has_currency:
                continue  # silver amounts are all in the base currency
            else:
                fields.append(StructField(name, data_type, nullable=name not in self.required))
        if self.date_column and self.date_column not in self.types:
            fields.append(StructField(self.date_column, DateType(), nullable=False))
        for name, data_type in self.extra_silver.items():
            fields.append(StructField(name, data_type))
        fields += [
            StructField(SOURCE_FILE, StringType(), nullable=False),
            StructField(BATCH_ID, LongType(), nullable=False),
        ]
        return StructType(fields)


CATALOG = SourceContract(
    name="catalog",
    types={
        "sku": StringType(),
        "title": StringType(),
        "category": StringType(),
        "brand": StringType(),
        "description": StringType(),
        "size": StringType(),  # pack size as written (750 ml, 1.2 kg, 3 pack): checked by listing matches
        "unit_cost": MONEY,
        "currency": StringType(),
        "map_price": MONEY,
        "min_price": MONEY,
        "max_price": MONEY,
        "updated_at": TimestampType(),
    },
    key=("sku",),
    required=("sku", "title", "category"),
    money=("unit_cost", "map_price", "min_price", "max_price"),
    money_date="updated_at",
    has_currency=True,
    upsert=True,
    version="updated_at",
    extra_silver={"unit_cost_missing": BooleanType()},
)

TRANSACTIONS = SourceContract(
    name="transactions",
    types={
        "order_id": StringType(),
        "line_id": StringType(),
        "order_ts": TimestampType(),
        "sku": StringType(),
        "quantity": IntegerType(),
        "unit_price": MONEY,
        "list_price": MONEY,
        "currency": StringType(),
        "customer_id": StringType(),
        "channel": StringType(),
        "promo_id": StringType(),
    },
    # line_key = line_id when present, else sku (the contract's two key forms).
    key=("order_id", "line_key"),
    required=("order_id", "order_ts", "sku", "quantity", "unit_price"),
    money=("unit_price", "list_price"),
    money_date="order_ts",
    has_currency=True,
    pii=("customer_id",),
    date_column="order_date",
    date_from="order_ts",
    extra_silver={"line_key": StringType()},
)

CLICKSTREAM = SourceContract(
    name="clickstream",
    types={
        "event_id": StringType(),
        "event_ts": TimestampType(),
        "sku": StringType(),
        "event_type": StringType(),
        "session_id": StringType(),
        "customer_id": StringType(),
        "price_shown": MONEY,
    },
    key=("event_id",),
    required=("event_id", "event_ts", "sku", "event_type"),
    pii=("customer_id",),
    date_column="event_date",
    date_from="event_ts",
)

COMPETITOR_PRICES = SourceContract(
    name="competitor_prices",
    types={
        "observed_ts": TimestampType(),
        "competitor": StringType(),
        "sku": StringType(),
        # A listing in the competitor's own words, for feeds that do not carry our SKU: the matching
        # stage maps (competitor, competitor_sku) to a SKU (docs/matching.md).
        "competitor_sku": StringType(),
        "title": StringType(),
        "brand": StringType(),
        "size": StringType(),
        "price": MONEY,
        "currency": StringType(),
        "in_stock": BooleanType(),
    },
    # A row carries `sku` or `competitor_sku` (silver's check); a null key part compares equal to null.
    key=("competitor", "sku", "competitor_sku", "observed_ts"),
    required=("observed_ts", "competitor", "price"),
    one_of=("sku", "competitor_sku"),
    money=("price",),
    money_date="observed_ts",
    has_currency=True,
    date_column="observed_date",
    date_from="observed_ts",
)

INVENTORY = SourceContract(
    name="inventory",
    types={
        "snapshot_date": DateType(),
        "sku": StringType(),
        "on_hand": IntegerType(),
        "on_order": IntegerType(),
    },
    key=("sku", "snapshot_date"),
    required=("snapshot_date", "sku", "on_hand"),
    upsert=True,
)

FX_RATES = SourceContract(
    name="fx_rates",
    types={"date": DateType(), "currency": StringType(), "rate": RATE},
    key=("date", "currency"),
    required=("date", "currency", "rate"),
    upsert=True,
)

# Ingestion order matters: FX rates convert the amounts of every later source.
SOURCES: dict[str, SourceContract] = {
    contract.name: contract
    for contract in (FX_RATES, CATALOG, TRANSACTIONS, CLICKSTREAM, COMPETITOR_PRICES, INVENTORY)
}

QUARANTINE_SCHEMA = StructType(
    [
        StructField("source", StringType(), nullable=False),
        StructField(BATCH_ID, LongType(), nullable=False),
        StructField("reason", StringType(), nullable=False),
        StructField("all_reasons", ArrayType(StringType()), nullable=False),
        StructField("detail", StringType()),
        StructField("raw_record", StringType()),
        StructField(SOURCE_FILE, StringType(), nullable=False),
        StructField(INGESTED_AT, TimestampType(), nullable=False),
    ]
)

INGESTED_FILES_SCHEMA = StructType(
    [
        StructField("source", StringType(), nullable=False),
        StructField("path", StringType(), nullable=False),
        StructField("size_bytes", LongType(), nullable=False),
        StructField("modification_time", LongType(), nullable=False),
        StructField(BATCH_ID, LongType(), nullable=False),
        StructField("status", StringType(), nullable=False),  # ingested | failed
        StructField("error", StringType()),
        StructField("rows_read", LongType()),
        StructField(INGESTED_AT, TimestampType(), nullable=False),
    ]
)

RECONCILIATION_SCHEMA = StructType(
    [
        StructField(BATCH_ID, LongType(), nullable=False),
        StructField("source", StringType(), nullable=False),
        StructField("files_ingested", LongType(), nullable=False),
        StructField("files_failed", LongType(), nullable=False),
        StructField("rows_read", LongType(), nullable=False),
        StructField("rows_silver", LongType(), nullable=False),
        StructField("rows_quarantined", LongType(), nullable=False),
        StructField("rows_duplicate", LongType(), nullable=False),
        StructField("rows_unaccounted", LongType(), nullable=False),
        StructField("balanced", BooleanType(), nullable=False),
        StructField(INGESTED_AT, TimestampType(), nullable=False),
    ]
)


def sku_day_schema(lags: list[int], windows: list[int]) -> StructType:
    """The gold ``sku_day`` panel: one row per SKU and day (docs/features.md describes each column)."""

    def col(name: str, data_type: DataType, nullable: bool = True) -> StructField:
        return StructField(name, data_type, nullable)

    fields = [
        col("sku", StringType(), False),
        col("date", DateType(), False),
        col("category", StringType()),
        col("brand", StringType()),
        col("text_hash", StringType()),
        col("units_sold", IntegerType(), False),
        col("units_gross", IntegerType(), False),
        col("units_returned", IntegerType(), False),
        col("orders", IntegerType(), False),
        col("revenue", DoubleType(), False),
        col("avg_paid_price", DoubleType()),
        col("list_price", DoubleType()),
        col("price", DoubleType()),
        col("discount_depth", DoubleType()),
        col("promo", BooleanType()),
        col("price_change_1d", DoubleType()),
        col("price_change_7d", DoubleType()),
        col("comp_min_price", DoubleType()),
        col("comp_median_price", DoubleType()),
        col("n_competitors", IntegerType()),
        col("comp_price_index", DoubleType()),
        col("comp_obs_age_days", IntegerType()),
        col("views", IntegerType()),
        col("add_to_carts", IntegerType()),
        col("purchases", IntegerType()),
        col("view_to_cart_rate", DoubleType()),
        col("cart_to_purchase_rate", DoubleType()),
        col("on_hand", IntegerType()),
        col("on_order", IntegerType()),
        col("stock_obs_age_days", IntegerType()),
        col("stockout", BooleanType()),
        col("days_of_cover", DoubleType()),
        col("day_of_week", IntegerType(), False),
        col("week_of_year", IntegerType(), False),
        col("month", IntegerType(), False),
        col("is_holiday", BooleanType(), False),
    ]
    fields += [col(f"units_lag_{k}", IntegerType()) for k in lags]
    fields += [col(f"units_mean_{w}d", DoubleType()) for w in windows]
    fields += [col(f"price_mean_{w}d", DoubleType()) for w in windows]
    fields += [
        col("unit_cost", DoubleType()),
        col("unit_cost_assumed", BooleanType()),
        col("map_price", DoubleType()),
        col("min_price", DoubleType()),
        col("max_price", DoubleType()),
    ]
    return StructType(fields)


# gold/elasticities: the champion's elasticity and interval per SKU, rewritten when a model becomes champion.
ELASTICITIES_SCHEMA = StructType(
    [
        StructField("sku", StringType(), False),
        StructField("elasticity", DoubleType(), False),
        StructField("elasticity_low", DoubleType(), False),
        StructField("elasticity_high", DoubleType(), False),
    ]
)

TEXT_EMBEDDINGS_SCHEMA = StructType(
    [
        StructField("text_hash", StringType(), nullable=False),
        StructField("encoder", StringType(), nullable=False),
        StructField("embedding", ArrayType(FloatType(), containsNull=False), nullable=False),
    ]
)

SKU_CALENDAR_SCHEMA = StructType(
    [
        StructField("sku", StringType(), nullable=False),
        StructField("first_date", DateType(), nullable=False),
    ]
)

FEATURE_RUNS_SCHEMA = StructType(
    [
        StructField("run_id", StringType(), nullable=False),
        StructField("run_date", DateType(), nullable=False),
        StructField("mode", StringType(), nullable=False),  # full | incremental
        StructField("batch_watermark", LongType(), nullable=False),
        StructField("skus_recomputed", LongType(), nullable=False),
        StructField("rows_written", LongType(), nullable=False),
        StructField("finished_at", TimestampType(), nullable=False),
    ]
)


def _fields(spec: str, nullable: bool = True) -> list[StructField]:
    types = {"string": StringType(), "double": DoubleType(), "date": DateType(), "timestamp": TimestampType()}
    return [
        StructField(name, types[kind], nullable) for name, kind in (part.split(":") for part in spec.split())
    ]


# One row per SKU and night: the band, the choice, its expected outcome, why, and who decides.
PRICE_RECOMMENDATIONS_SCHEMA = StructType(
    _fields("sku:string price_date:date current_price:double recommended_price:double", False)
    + _fields("final_price:double price_floor:double price_ceiling:double", False)
    + _fields("floor_reason:string ceiling_reason:string band_note:string unit_cost:double")
    + _fields("expected_units_current:double expected_revenue_current:double expected_profit_current:double")
    + _fields(
        "expected_units_recommended:double expected_revenue_recommended:double "
        "expected_profit_recommended:double"
    )
    + _fields("elasticity:double elasticity_low:double elasticity_high:double")
    + _fields("binding_constraint:string status:string", False)
    + _fields("review_reason:string override_price:double override_reason:string override_author:string")
    + _fields("model_version:string")
    + _fields("run_id:string created_at:timestamp", False)
    # The recommended price's expected profit gain over the current price and its interval (at
    # score.gain_confidence, over the elasticity's uncertainty); 0 where the price is kept.
    + _fields("expected_gain:double expected_gain_low:double expected_gain_high:double")
)

# Manual prices: for one night (price_date) or open-ended (price_date null) until deleted.
PRICE_OVERRIDES_SCHEMA = StructType(
    _fields("sku:string", False)
    + _fields("price_date:date")
    + _fields("price:double reason:string author:string created_at:timestamp", False)
)

# A reviewer's decision on one SKU's price for one night: appended, never changed (the review history).
PRICE_DECISIONS_SCHEMA = StructType(
    _fields("decision_id:string sku:string price_date:date decision:string status_before:string", False)
    + _fields("current_price:double recommended_price:double final_price:double author:string", False)
    + _fields("note:string")
    + _fields("decided_at:timestamp", False)
)

# The price in force per SKU, for downstream systems.
CURRENT_PRICES_SCHEMA = StructType(
    _fields("sku:string price:double effective_date:date status:string", False)
    + _fields("model_version:string")
    + _fields("run_id:string updated_at:timestamp", False)
)

# One stage of a nightly run: what it did, how long it took, how much it read and wrote.
# (Delta allows no NOT NULL inside arrays, so nested fields are nullable.)
NIGHTLY_STAGE_SCHEMA = StructType(
    _fields("stage:string status:string")
    + [
        StructField("seconds", DoubleType()),
        StructField("rows_written", LongType()),
        StructField("bytes_read", LongType()),
        StructField("bytes_written", LongType()),
    ]
    + _fields("detail:string")
)

NIGHTLY_CHECK_SCHEMA = StructType(
    [
        StructField("check", StringType()),
        StructField("passed", BooleanType()),
        StructField("detail", StringType()),
    ]
)

# audit/runs: one row per night (replaced by run_date), written when the night starts and when it ends.
RUNS_SCHEMA = StructType(
    _fields("run_date:date run_id:string price_date:date status:string", False)
    + [StructField("attempt", IntegerType(), False)]
    + [StructField("stages", ArrayType(NIGHTLY_STAGE_SCHEMA, containsNull=False), False)]
    + _fields("model_version:string")
    + [StructField("retrained", BooleanType(), False)]
    + _fields("retrain_reason:string")
    + [StructField("skus_priced", LongType(), True)]
    + [StructField("checks", ArrayType(NIGHTLY_CHECK_SCHEMA, containsNull=False), False)]
    + [StructField("maintenance", ArrayType(StringType(), containsNull=False), False)]
    + _fields("error:string host:string")
    + _fields("started_at:timestamp", False)
    + _fields("finished_at:timestamp")
    + [StructField("seconds", DoubleType(), True)]
    # Where the night's HTML report was written (pricing.nightly.report), once it was.
    + _fields("report_path:string")
)

# Price experiments (pricing.decide.experiment, docs/experiments.md). One row per experiment, written last
# when it starts (the assignment rows before it are only in force once it exists).
EXPERIMENTS_SCHEMA = StructType(
    _fields("name:string unit:string", False)
    + [StructField("share", DoubleType(), False), StructField("seed", LongType(), False)]
    + _fields("start_date:date end_date:date", False)
    + [StructField("days", IntegerType(), False), StructField("pre_days", IntegerType(), False)]
    + _fields("control:string", False)
    + [StructField("units_treatment", LongType(), False), StructField("units_control", LongType(), False)]
    + _fields("created_at:timestamp", False)
)

# Which arm each SKU of an experiment is in; ``unit`` is what was randomised (the SKU or its category),
# ``stratum`` the category and sales level it was balanced within.
EXPERIMENT_ASSIGNMENTS_SCHEMA = StructType(
    _fields("experiment:string sku:string unit:string stratum:string arm:string", False)
    + _fields("assigned_at:timestamp", False)
)

# One readout: per segment (``all`` or a category) and metric (profit, revenue, units), the effect per
# randomised unit and day of the system's prices against the kept ones, under each estimator (``cuped``,
# ``did``), and the pre-period check (``pre_period_balance``: the arms' difference before the start).
EXPERIMENT_READOUTS_SCHEMA = StructType(
    _fields("experiment:string segment:string metric:string estimator:string", False)
    + _fields("effect:double se:double ci_low:double ci_high:double p_value:double")
    + _fields("control_mean:double relative_effect:double standardized_difference:double")
    + [
        StructField("level", DoubleType(), False),
        StructField("n_treatment", LongType(), False),
        StructField("n_control", LongType(), False),
        StructField("days_pre", IntegerType(), False),
        StructField("days_post", IntegerType(), False),
    ]
    + _fields("through_date:date computed_at:timestamp", False)
)


# Competitor listings matched to our SKUs (pricing.matching, docs/matching.md). `_batch_id` is the
# newest ingest batch when the match was made: the features stage treats a listing's price rows as new
# from then on. `title` is the listing text the match was made on.
COMPETITOR_MATCHES_SCHEMA = StructType(
    _fields("competitor:string competitor_sku:string sku:string", False)
    + _fields("score:double")
    + _fields("method:string matched_at:timestamp", False)
    + _fields("title:string")
    + [StructField(BATCH_ID, LongType(), False)]
)

# A person's decision on a listing: `sku` confirms or corrects the match, null says it is not a
# product we sell. The latest decision per listing wins over the matcher.
LISTING_OVERRIDES_SCHEMA = StructType(
    _fields("competitor:string competitor_sku:string", False)
    + _fields("sku:string")
    + _fields("decided_by:string decided_at:timestamp", False)
    + _fields("note:string")
)

# Listings the matcher would not map (reason `unmatched_listing`), the review queue: replaced each
# time the matcher runs. Their price rows stay in silver and out of the panel until a match exists.
LISTING_QUARANTINE_SCHEMA = StructType(
    _fields("competitor:string competitor_sku:string", False)
    + _fields("title:string brand:string size:string")
    + _fields("reason:string detail:string", False)
    + _fields("best_sku:string best_score:double")
    + [StructField("price_rows", LongType(), False)]
    + _fields("last_seen:date")
    + _fields("checked_at:timestamp", False)
)

# One row per matching run that did the work (a night with no new listing text, catalogue row, decision
# or setting skips it): what it consumed, so the next run knows whether anything changed.
MATCH_RUNS_SCHEMA = StructType(
    _fields("run_at:timestamp settings:string", False)
    + [
        StructField("competitor_batch", LongType(), False),
        StructField("catalog_batch", LongType(), False),
        StructField("overrides_version", LongType(), False),
        StructField("listings", LongType(), False),
        StructField("matched", LongType(), False),
        StructField("quarantined", LongType(), False),
    ]
)
