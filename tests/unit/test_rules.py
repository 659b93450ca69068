"""Each source's cleaning rules on three hand-built rows: which rows a rule rejects, and what it says."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pricing.config import AnomalyConfig
from pricing.ingest.rules import DERIVED, OUTLIER_MEASURES, VALUE_RULES, Limits, outlier_subject
from pricing.schemas import SOURCES

LIMITS = Limits(max_abs_quantity=500, max_price=1000.0)

# (source, the rule's position among the source's rules): three rows of the columns it reads, and
# which of them break it.
CASES: dict[tuple[str, int], tuple[dict[str, list[Any]], list[bool]]] = {
    ("transactions", 0): ({"quantity": [1, 0, -501]}, [False, True, True]),
    ("transactions", 1): ({"unit_price": [20.0, 0.0, 1000.5]}, [False, True, True]),
    ("transactions", 2): ({"list_price": [1000.0, -1.0, 2000.0]}, [False, True, True]),
    ("catalog", 0): ({"unit_cost": [0.0, -0.01, 1001.0]}, [False, True, True]),
    ("catalog", 1): ({"map_price": [9.99, 0.0, 5000.0]}, [False, True, True]),
    ("catalog", 2): ({"min_price": [1.0, 0.0, 1e6]}, [False, True, True]),
    ("catalog", 3): ({"max_price": [1.0, -3.0, 1e6]}, [False, True, True]),
    ("catalog", 4): ({"min_price": [5.0, 10.0, 5.0], "max_price": [10.0, 5.0, 5.0]}, [False, True, False]),
    ("clickstream", 0): ({"price_shown": [19.99, 0.0, 1000.01]}, [False, True, True]),
    ("competitor_prices", 0): ({"price": [18.5, -1.0, 0.0]}, [False, True, True]),
    ("inventory", 0): ({"on_hand": [0, -1, 3], "on_order": [0, 0, -2]}, [False, True, True]),
    ("fx_rates", 0): ({"rate": [1.08, 0.0, -1.0]}, [False, True, True]),
}


def test_every_rule_has_its_case_and_reads_its_sources_columns() -> None:
    declared = {(source, i) for source, rules in VALUE_RULES.items() for i in range(len(rules))}
    assert declared == set(CASES), "a value rule without its three-row case below (or a stale case)"
    contracts = SOURCES
    for source in {*VALUE_RULES, *DERIVED, *OUTLIER_MEASURES}:
        assert source in contracts
    for (source, i), (columns, _) in CASES.items():
        assert VALUE_RULES[source][i].column in columns
        assert set(columns) <= set(contracts[source].types)
    for source, derived in DERIVED.items():
        assert {d.column for d in derived} <= {f.name for f in contracts[source].silver_schema.fields}
    for measures in OUTLIER_MEASURES.values():
        for m in measures:
            assert isinstance(getattr(AnomalyConfig(), m.min_scale), float)


@pytest.mark.parametrize("case", sorted(CASES), ids=lambda c: f"{c[0]}-{c[1]}")
def test_a_value_rule_rejects_exactly_its_rows(spark: SparkSession, case: tuple[str, int]) -> None:
    source, position = case
    columns, broken = CASES[case]
    rule = VALUE_RULES[source][position]
    contract = SOURCES[source]
    rows = [tuple(values[i] for values in columns.values()) for i in range(3)]
    df = spark.createDataFrame(rows, list(columns)).select(
        F.monotonically_increasing_id().alias("row"),
        *[F.col(c).cast(contract.types[c]).alias(c) for c in columns],
    )
    judged = df.select(
        "row", rule.violated(LIMITS).alias("broken"), F.lit(rule.detail(LIMITS)).alias("detail")
    )
    got = judged.orderBy("row").collect()
    assert [r["broken"] for r in got] == broken
    for r in got:
        if r["broken"] and isinstance(rule.detail(LIMITS), str):
            assert r["detail"]
        elif r["broken"]:
            assert r["detail"].startswith(f"{rule.column}=")


def test_derived_columns_fill_defaults_and_normal_forms(spark: SparkSession) -> None:
    lines = spark.createDataFrame(
        [
            ("o1", "A", Decimal("9.99"), Decimal("12.00")),
            (None, "B", Decimal("5.00"), None),
            ("o3", "C", Decimal("1.00"), None),
        ],
        "line_id string, sku string, unit_price decimal(18,4), list_price decimal(18,4)",
    )
    for derived in DERIVED["transactions"]:
        lines = lines.withColumn(derived.column, derived.value())
    assertDataFrameEqual(
        lines.select("sku", "line_key", "list_price"),
        spark.createDataFrame(
            [("A", "o1", Decimal("12.00")), ("B", "B", Decimal("5.00")), ("C", "o3", Decimal("1.00"))],
            "sku string, line_key string, list_price decimal(18,4)",
        ),
    )
    rates = spark.createDataFrame([("eur",), ("USD",), ("Gbp",)], "currency string")
    (currency,) = DERIVED["fx_rates"]
    assert sorted(r[0] for r in rates.select(currency.value()).collect()) == ["EUR", "GBP", "USD"]


def test_a_competitor_listing_is_judged_as_itself_our_sku_as_ours(spark: SparkSession) -> None:
    prices = spark.createDataFrame(
        [("A", "c1", "x1"), (None, "c1", "x9"), (None, "c2", "x9")],
        "sku string, competitor string, competitor_sku string",
    )
    assert [r[0] for r in prices.select(outlier_subject("competitor_prices")).collect()] == [
        "A",
        "listing|c1|x9",
        "listing|c2|x9",
    ]
    assert [r[0] for r in prices.select(outlier_subject("transactions")).collect()] == ["A", None, None]
