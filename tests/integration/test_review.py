"""Review of a night's prices: the queue, approve / reject with their history, and what is refused."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from review_support import NIGHT, ROWS, YESTERDAY, price_lakehouse

from pricing.cli import main
from pricing.decide.approval import apply_decisions, apply_overrides
from pricing.decide.review import ReviewError, Selection, decide, decision_history, override, review_queue
from pricing.lakehouse.tables import (
    CURRENT_PRICES,
    PRICE_DECISIONS,
    PRICE_OVERRIDES,
    PRICE_RECOMMENDATIONS,
    Lakehouse,
)
from pricing.platform.lock import LakehouseLock, LockHeld
from pricing.schemas import PRICE_DECISIONS_SCHEMA, PRICE_RECOMMENDATIONS_SCHEMA


@pytest.fixture(scope="module")
def untouched(spark: SparkSession, price_template: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One lakehouse for the tests that must leave it as it is."""
    return price_lakehouse(spark, price_template, tmp_path_factory.mktemp("review"))


def _night(spark: SparkSession, root: str) -> DataFrame:
    return (
        Lakehouse(root)
        .read(spark, PRICE_RECOMMENDATIONS)
        .where(F.col("price_date") == F.lit(NIGHT))
        .select("sku", "status", "final_price")
    )


def _current(spark: SparkSession, root: str) -> DataFrame:
    return Lakehouse(root).read(spark, CURRENT_PRICES).select("sku", "price", "effective_date", "status")


def _versions(spark: SparkSession, root: str) -> dict[str, int]:
    tables = Lakehouse(root)
    return {
        table.label: int(tables.history(spark, table).first()["version"])
        for table in (PRICE_RECOMMENDATIONS, CURRENT_PRICES, PRICE_DECISIONS)
        if tables.exists(spark, table)
    }


def test_the_queue_lists_the_waiting_prices_largest_expected_gain_first(spark: SparkSession) -> None:
    queue = review_queue(spark.createDataFrame(ROWS, PRICE_RECOMMENDATIONS_SCHEMA), NIGHT)
    assert [r.sku for r in queue.collect()] == ["D", "A", "B"]
    first = queue.first()
    assert first is not None and first.change == pytest.approx(0.5) and first.review_reason == "large_change"


def test_approving_one_sku_puts_its_price_in_force_and_keeps_who_and_why(
    spark: SparkSession, price_template: Path, tmp_path: Path
) -> None:
    root = price_lakehouse(spark, price_template, tmp_path)
    report = decide(
        spark,
        Lakehouse.at(spark, root),
        "approved",
        Selection(skus=("A",)),
        "ana",
        note="supplier raised cost",
    )
    assert (report.count, report.first_skus, report.price_date) == (1, ["A"], NIGHT)
    expected_night = spark.createDataFrame(
        [("A", "approved", 11.5), ("B", "needs_review", 20.0), ("C", "auto_approved", 30.9)]
        + [("D", "needs_review", 40.0), ("E", "overridden", 52.0)],
        "sku string, status string, final_price double",
    )
    assertDataFrameEqual(_night(spark, root), expected_night)
    current = _current(spark, root).where("sku = 'A'").first()
    assert current is not None and (current.price, current.effective_date, current.status) == (
        11.5,
        NIGHT,
        "approved",
    )
    (history,) = decision_history(spark, Lakehouse.at(spark, root)).collect()
    assert (history.sku, history.decision, history.status_before, history.author, history.note) == (
        "A",
        "approved",
        "needs_review",
        "ana",
        "supplier raised cost",
    )
    assert (history.current_price, history.recommended_price, history.final_price) == (10.0, 11.5, 11.5)
    # Approved is final for approving; rejecting it now keeps the current price, and history has both.
    decide(spark, Lakehouse.at(spark, root), "rejected", Selection(skus=("A",)), "bo")
    assert _night(spark, root).where("sku = 'A'").first() == ("A", "rejected", 10.0)
    assert [
        (r.decision, r.author) for r in decision_history(spark, Lakehouse.at(spark, root), NIGHT).collect()
    ] == [
        ("rejected", "bo"),
        ("approved", "ana"),
    ]
    assert _current(spark, root).where("sku = 'A'").first().price == 10.0  # type: ignore[union-attr]


def test_rejecting_every_change_up_to_a_size_keeps_the_current_prices(
    spark: SparkSession, price_template: Path, tmp_path: Path
) -> None:
    root = price_lakehouse(spark, price_template, tmp_path)
    # B (-5 %) and C (+3 %, auto-approved) are within 8 %; A (+15 %) and D (+50 %) are not; E is a person's.
    report = decide(
        spark, Lakehouse.at(spark, root), "rejected", Selection(max_change=0.08), "ana", note="hold the line"
    )
    assert (report.count, report.first_skus) == (2, ["B", "C"])
    assertDataFrameEqual(
        _current(spark, root).where("sku in ('B', 'C')"),
        spark.createDataFrame(
            [("B", 20.0, NIGHT, "rejected"), ("C", 30.0, NIGHT, "rejected")],
            "sku string, price double, effective_date date, status string",
        ),
    )
    # --all approves what is left that can be approved: A, and B and C back; never D (outside its band).
    report = decide(spark, Lakehouse.at(spark, root), "approved", Selection(every=True), "ana")
    assert report.first_skus == ["A", "B", "C"]
    assert dict((r.sku, r.status) for r in _night(spark, root).collect()) == {
        "A": "approved",
        "B": "approved",
        "C": "approved",
        "D": "needs_review",
        "E": "overridden",
    }
    # Nothing left to approve is not an error, and writes nothing.
    versions = _versions(spark, root)
    assert decide(spark, Lakehouse.at(spark, root), "approved", Selection(every=True), "ana").count == 0
    assert _versions(spark, root) == versions


@pytest.mark.parametrize(
    ("decision", "selection", "author", "price_date", "message"),
    [
        ("approved", Selection(skus=("D",)), "ana", None, r"D's recommended price 60.00 is outside its band"),
        ("approved", Selection(skus=("A", "Z")), "ana", None, r"Z has no price for this night"),
        ("rejected", Selection(skus=("E",)), "ana", None, r"E is overridden.*remove its override first"),
        (
            "approved",
            Selection(skus=("C",)),
            "ana",
            None,
            r"C is auto_approved, not needs_review or rejected",
        ),
        ("approved", Selection(skus=("A",)), "ana", YESTERDAY, r"the night 2026-03-01 is stale"),
        ("approved", Selection(skus=("A",)), "ana", date(2026, 3, 9), r"no prices for 2026-03-09"),
        ("approved", Selection(skus=("A",)), " ", None, r"needs an --author"),
        ("kept", Selection(skus=("A",)), "ana", None, r"one of \['approved', 'rejected'\]"),
    ],
)
def test_a_decision_that_cannot_be_taken_is_refused_and_changes_nothing(
    spark: SparkSession,
    untouched: str,
    decision: str,
    selection: Selection,
    author: str,
    price_date: date | None,
    message: str,
) -> None:
    root = untouched
    versions = _versions(spark, root)
    with pytest.raises(ReviewError, match=message):
        decide(spark, Lakehouse.at(spark, root), decision, selection, author, price_date=price_date)
    assert _versions(spark, root) == versions
    assert not Lakehouse(root).exists(spark, PRICE_DECISIONS)


def test_a_selection_is_exactly_one_of_skus_a_change_size_or_all() -> None:
    for bad in ({}, {"skus": ("A",), "every": True}, {"max_change": 0.05, "every": True}):
        with pytest.raises(ReviewError, match="exactly one"):
            Selection(**bad)
    with pytest.raises(ReviewError, match=">= 0"):
        Selection(max_change=-0.1)


def test_no_decision_while_a_night_holds_theprice_lakehouse(
    spark: SparkSession, price_template: Path, tmp_path: Path
) -> None:
    root = price_lakehouse(spark, price_template, tmp_path)
    with LakehouseLock(spark, root, "nightly", 600, "nightly run for 2026-03-02"), pytest.raises(LockHeld):
        decide(spark, Lakehouse.at(spark, root), "approved", Selection(skus=("A",)), "ana")
    assert decide(spark, Lakehouse.at(spark, root), "approved", Selection(skus=("A",)), "ana").count == 1


def test_rescoring_keeps_decisions_while_the_proposal_is_the_one_decided(spark: SparkSession) -> None:
    def decision(sku: str, what: str, recommended: float, at: int) -> tuple[Any, ...]:
        return (
            f"d{at}",
            sku,
            NIGHT,
            what,
            "needs_review",
            10.0,
            recommended,
            0.0,
            "ana",
            None,
            datetime(2026, 3, 2, at),
        )

    decisions = spark.createDataFrame(
        [
            decision("A", "approved", 11.5, 8),  # the same proposal again: still approved
            decision("B", "approved", 19.5, 8),  # re-scored to another price: asks again
            decision("C", "approved", 30.9, 8),
            decision("C", "rejected", 30.9, 9),  # the newest decision wins
            decision("E", "rejected", 55.0, 8),  # a person's override wins over a decision
        ],
        PRICE_DECISIONS_SCHEMA,
    )
    night = spark.createDataFrame(ROWS, PRICE_RECOMMENDATIONS_SCHEMA).where(
        F.col("price_date") == F.lit(NIGHT)
    )
    decided = apply_decisions(night, decisions, NIGHT).select("sku", "status", "final_price")
    expected = spark.createDataFrame(
        [("A", "approved", 11.5), ("B", "needs_review", 20.0), ("C", "rejected", 30.0)]
        + [("D", "needs_review", 40.0), ("E", "overridden", 52.0)],
        "sku string, status string, final_price double",
    )
    assertDataFrameEqual(decided, expected)


def test_a_decision_recorded_before_a_crash_is_applied_by_the_next_one(
    spark: SparkSession, price_template: Path, tmp_path: Path
) -> None:
    root = price_lakehouse(spark, price_template, tmp_path)
    # As if a process died between recording B's approval and applying it.
    Lakehouse(root).append(
        PRICE_DECISIONS,
        spark.createDataFrame(
            [
                (
                    "d0",
                    "B",
                    NIGHT,
                    "approved",
                    "needs_review",
                    20.0,
                    19.0,
                    19.0,
                    "ana",
                    None,
                    datetime(2026, 3, 2, 8),
                )
            ],
            PRICE_DECISIONS_SCHEMA,
        ),
    )
    decide(spark, Lakehouse.at(spark, root), "approved", Selection(skus=("A",)), "ana")
    assert {r.sku: r.price for r in _current(spark, root).where("sku in ('A', 'B')").collect()} == {
        "A": 11.5,
        "B": 19.0,
    }


def test_the_review_commands(
    spark: SparkSession, price_template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = price_lakehouse(spark, price_template, tmp_path)
    lakehouse = ["--lakehouse", root]
    assert main(["review", *lakehouse]) == 0
    out = capsys.readouterr().out
    assert "3 wait for review" in out and "+50.0%" in out and "large_change" in out
    assert main(["approve", *lakehouse, "--sku", "A", "--sku", "B", "--author", "ana", "--note", "ok"]) == 0
    assert "2 price(s) for 2026-03-02 approved by ana" in capsys.readouterr().out
    assert main(["reject", *lakehouse, "--sku", "D", "--max-change", "0.1", "--author", "ana"]) == 2
    assert "exactly one of --sku, --max-change or --all" in capsys.readouterr().err
    assert main(["approve", *lakehouse, "--sku", "D", "--author", "ana"]) == 2
    assert "outside its band" in capsys.readouterr().err
    assert main(["review", *lakehouse]) == 0
    assert "1 wait for review" in capsys.readouterr().out


def test_a_price_set_on_review_is_in_force_at_once_and_kept_by_rescoring(
    spark: SparkSession, price_template: Path, tmp_path: Path
) -> None:
    root = price_lakehouse(spark, price_template, tmp_path)
    report = override(spark, Lakehouse.at(spark, root), "D", 45.0, "ana", note="match the flyer")
    assert (report.decision, report.first_skus) == ("overridden", ["D"])
    assert _night(spark, root).where("sku = 'D'").first() == ("D", "overridden", 45.0)
    current = _current(spark, root).where("sku = 'D'").first()
    assert current is not None and (current.price, current.status) == (45.0, "overridden")
    tables = Lakehouse(root)
    (recorded,) = tables.read(spark, PRICE_OVERRIDES).collect()
    assert (recorded.sku, recorded.price_date, recorded.price, recorded.reason, recorded.author) == (
        "D",
        NIGHT,
        45.0,
        "match the flyer",
        "ana",
    )
    (decided,) = decision_history(spark, Lakehouse.at(spark, root)).collect()
    assert (decided.decision, decided.status_before, decided.final_price) == (
        "overridden",
        "needs_review",
        45.0,
    )
    # Scoring the night again from scratch applies the same override.
    fresh = spark.createDataFrame(ROWS, PRICE_RECOMMENDATIONS_SCHEMA).where(
        F.col("price_date") == F.lit(NIGHT)
    )
    again = apply_overrides(fresh, tables.read(spark, PRICE_OVERRIDES), NIGHT).where("sku = 'D'")
    assert again.select("status", "final_price", "override_price", "override_author").first() == (
        "overridden",
        45.0,
        45.0,
        "ana",
    )


@pytest.mark.parametrize(
    ("sku", "price", "price_date", "message"),
    [
        ("D", 49.0, None, r"49.00 is outside D's band \[32.00, 48.00\]"),
        ("D", 31.99, None, r"outside D's band"),
        ("D", 45.001, None, r"whole cents"),
        ("Z", 10.0, None, r"Z has no price for 2026-03-02"),
        ("A", 10.5, YESTERDAY, r"is stale"),
    ],
)
def test_a_price_outside_the_band_or_on_a_stale_night_is_refused(
    spark: SparkSession, untouched: str, sku: str, price: float, price_date: date | None, message: str
) -> None:
    versions = _versions(spark, untouched)
    with pytest.raises(ReviewError, match=message):
        override(spark, Lakehouse.at(spark, untouched), sku, price, "ana", price_date=price_date)
    assert _versions(spark, untouched) == versions
    assert not Lakehouse(untouched).exists(spark, PRICE_OVERRIDES)
