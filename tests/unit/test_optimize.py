"""Guardrails hold whatever the inputs (hypothesis), each one binds where it should, profit is maximised."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing.config import PolicyConfig
from pricing.decide.choose import (
    apply_endings,
    candidate_grid,
    candidates_with_current,
    choose_prices,
    gain_bounds,
    posterior_gains,
)
from pricing.decide.guardrails import price_band

POLICY = PolicyConfig()


def _row(**values: float) -> pd.DataFrame:
    base = {
        "current_price": 100.0,
        "unit_cost": 50.0,
        "map_price": math.nan,
        "min_price": math.nan,
        "max_price": math.nan,
        "comp_median_price": math.nan,
        "days_of_cover": 30.0,
        "elasticity_low": -2.2,
        "elasticity_high": -1.8,
    }
    return pd.DataFrame([{**base, **values}])


def _band(policy: PolicyConfig = POLICY, **values: float) -> dict[str, object]:
    return price_band(_row(**values), policy).iloc[0].to_dict()


def test_max_change_binds_both_ways() -> None:
    band = _band()
    assert (band["price_floor"], band["price_ceiling"]) == (90.0, 110.0)
    assert (band["floor_reason"], band["ceiling_reason"]) == ("max_change", "max_change")


def test_cost_floor_map_and_catalog_limits_bind() -> None:
    assert _band(unit_cost=95.0)["price_floor"] == 99.75  # 95 * 1.05
    assert _band(unit_cost=95.0)["floor_reason"] == "cost_floor"
    assert (_band(map_price=97.0)["price_floor"], _band(map_price=97.0)["floor_reason"]) == (97.0, "map")
    assert _band(min_price=93.5)["floor_reason"] == "min_price"
    assert (_band(max_price=104.0)["price_ceiling"], _band(max_price=104.0)["ceiling_reason"]) == (
        104.0,
        "max_price",
    )


def test_competitor_premium_caps_the_ceiling() -> None:
    band = _band(comp_median_price=90.0)  # 90 * 1.15 = 103.5
    assert (band["price_ceiling"], band["ceiling_reason"]) == (103.5, "competitor_premium")


def test_stock_rules() -> None:
    low = _band(days_of_cover=3.0)
    assert (low["price_floor"], low["floor_reason"]) == (100.0, "low_stock")  # no discount
    clearance = _band(days_of_cover=400.0)
    assert (clearance["price_floor"], clearance["floor_reason"]) == (75.0, "clearance")  # up to 25 % off
    assert clearance["price_ceiling"] == 110.0


def test_uncertain_elasticity_narrows_the_band() -> None:
    band = _band(elasticity_low=-3.5, elasticity_high=-0.6)
    assert (band["price_floor"], band["price_ceiling"]) == (95.0, 105.0)
    assert (band["floor_reason"], band["ceiling_reason"]) == ("uncertainty", "uncertainty")


def test_conflicts_relax_policy_never_hard_limits() -> None:
    # Competitors far below our cost floor: the competitor bound gives way, the cost floor does not.
    band = _band(unit_cost=80.0, comp_median_price=60.0)
    assert band["price_floor"] == 90.0 and band["price_ceiling"] == 110.0
    assert band["band_note"] == "competitor_bound_relaxed"
    # The cost went up 40 %: the floor must rise further than the change limit allows.
    band = _band(unit_cost=130.0)
    assert (band["price_floor"], band["floor_reason"], band["band_note"]) == (
        136.5,
        "cost_floor",
        "max_change_relaxed",
    )
    # max_price below the cost floor: no valid price at all.
    band = _band(unit_cost=100.0, max_price=90.0)
    assert (band["band_note"], band["price_floor"], band["price_ceiling"]) == ("infeasible", 100.0, 100.0)


def test_endings_stay_inside_the_band() -> None:
    prices = apply_endings(
        np.array([101.3, 100.2, 95.02]),
        np.array([90.0, 100.1, 95.0]),
        np.array([110.0, 100.45, 95.2]),
        [0.49, 0.99],
    )
    assert prices.tolist() == [101.49, 100.2, 95.02]  # no x.49/x.99 inside the last two bands


def test_the_current_price_is_a_candidate_wherever_its_band_allows_it() -> None:
    # Rows 1-3 of a batch (row 0 was not scorable): current inside, outside, and on a grid point.
    band = pd.DataFrame(
        {"price_floor": [10.0, 10.0, 10.0], "price_ceiling": [12.0, 12.0, 12.0]}, index=[1, 2, 3]
    )
    current = np.array([99.0, 11.13, 12.5, 12.0])
    candidates = candidates_with_current(band, current, 3, [0.0])
    grid = candidate_grid(band, 3, [0.0])
    assert grid.groupby("row")["candidate_price"].apply(list).to_dict() == {
        r: [10.0, 11.0, 12.0] for r in (1, 2, 3)
    }
    by_row = candidates.groupby("row")["candidate_price"].apply(list).to_dict()
    assert by_row == {1: [10.0, 11.0, 12.0, 11.13], 2: [10.0, 11.0, 12.0], 3: [10.0, 11.0, 12.0]}
    assert 0 not in by_row


def test_choose_prices_maximises_expected_profit() -> None:
    candidates = pd.DataFrame(
        {
            "row": [0, 0, 0, 1, 1],
            "candidate_price": [9.0, 10.0, 11.0, 5.0, 6.0],
            "unit_cost": [5.0] * 3 + [4.0] * 2,
            "current_price": [10.0] * 3 + [6.0] * 2,
            "expected_units": [10.0, 9.0, 6.0, 3.0, 2.0],
        }
    )
    chosen = choose_prices(candidates)
    assert chosen["candidate_price"].to_dict() == {0: 10.0, 1: 6.0}  # profits 45 > 40, 36; 4 = 3 -> closest
    assert chosen.loc[0, "expected_profit"] == 45.0

    # Profit with a revenue floor: no candidate of row 0 reaches 95 of revenue, so plain profit
    # decides; row 1 must keep revenue >= 15, which only 5.00 (x 3 units) does.
    floored = choose_prices(candidates.assign(revenue_floor=[95.0] * 3 + [15.0] * 2))
    assert floored["candidate_price"].to_dict() == {0: 10.0, 1: 5.0}  # 5 x 3 = 15 meets the floor


def _curve(elasticity: float, low: float, high: float, prices: list[float]) -> pd.DataFrame:
    """Candidates of one SKU at 10.00 (cost 5, 100 units) under a log-log model of ``elasticity``."""
    price = np.asarray(prices, float)
    return pd.DataFrame(
        {
            "row": 0,
            "candidate_price": price,
            "unit_cost": 5.0,
            "current_price": 10.0,
            "expected_units": 100.0 * (price / 10.0) ** elasticity,
            "units_current": 100.0,
            "elasticity": elasticity,
            "elasticity_low": low,
            "elasticity_high": high,
        }
    )


def test_gain_bounds_are_the_gains_at_the_elasticitys_bounds() -> None:
    # Interval [-2.5, -1.5] at 90% (z 1.645 each side): sd = 0.5 / 1.645; bound at z = 1.
    bounded = gain_bounds(_curve(-2.0, -2.5, -1.5, [9.0, 10.0, 11.0]), 1.645, 1.0)
    sd = 0.5 / 1.645
    for price, row in zip([9.0, 10.0, 11.0], bounded.itertuples(), strict=True):
        gains = [(price - 5) * 100 * (price / 10) ** e - 500 for e in (-2.0 - sd, -2.0, -2.0 + sd)]
        assert row.gain == pytest.approx(0.0 if price == 10 else gains[1])
        assert row.gain_low == pytest.approx(0.0 if price == 10 else min(gains))
        assert row.gain_high == pytest.approx(0.0 if price == 10 else max(gains))
    # No elasticity above 0: the upper side is cut at 0.
    flat = gain_bounds(_curve(-0.2, -1.0, 0.0, [11.0]), 1.645, 3.0).iloc[0]
    assert flat.gain_high == pytest.approx((11 - 5) * 100 * (11 / 10) ** 0.0 - 500)


def test_lower_bound_keeps_the_price_unless_the_gain_is_clearly_positive() -> None:
    prices = [9.0, 9.5, 10.0, 10.5, 11.0]
    # Elasticity -1.2 with cost at half the price: raising pays at the point estimate.
    narrow = gain_bounds(_curve(-1.2, -1.3, -1.1, prices), 1.645, 1.2816)
    wide = gain_bounds(_curve(-1.2, -3.5, -0.2, prices), 1.645, 1.2816)
    middling = gain_bounds(_curve(-1.2, -2.1, -0.3, prices), 1.645, 1.2816)
    assert choose_prices(wide, "expected")["candidate_price"].item() == 11.0
    assert choose_prices(narrow, "lower_bound")["candidate_price"].item() == 11.0
    # Wide enough that a loss is plausible at every move: keep.
    assert choose_prices(wide, "lower_bound")["candidate_price"].item() == 10.0
    # In between: move, but less than the point estimate would.
    assert choose_prices(middling, "lower_bound")["candidate_price"].item() == 10.5
    with pytest.raises(ValueError, match="unknown decision"):
        choose_prices(narrow, "optimistic")


def _softplus_interval(centre: float, sd: float, z: float = 1.645) -> tuple[float, float, float]:
    """(elasticity, low, high) of a posterior Gaussian in the softplus's argument, as the model writes it."""
    soft = lambda a: math.log1p(math.exp(a))  # noqa: E731
    return -soft(centre), -soft(centre + z * sd), -soft(centre - z * sd)


def test_posterior_rule_integrates_the_elasticitys_posterior_and_keeps_when_unsure() -> None:
    prices = [9.0, 9.5, 10.0, 10.5, 11.0]
    elasticity, low, high = _softplus_interval(0.6, 0.4)  # about -1.04, from -1.8 to -0.53
    posterior = posterior_gains(_curve(elasticity, low, high, prices), 1.645, 1.2816)
    # The expected gain is the mean gain over the argument's Gaussian (checked by sampling).
    draws = -np.logaddexp(0.0, 0.6 + 0.4 * np.random.default_rng(0).standard_normal(400_000))
    for price, row in zip(prices, posterior.itertuples(), strict=True):
        sampled = np.mean((price - 5) * 100 * (price / 10) ** draws - 500)
        assert row.gain == pytest.approx(sampled, rel=0.01, abs=0.5)
        assert row.gain_low <= row.gain_sure <= row.gain + 1e-9
    # A posterior that leans elastic makes a rise worth less than the point estimate says.
    assert posterior.gain.iloc[-1] < gain_bounds(posterior, 1.645, 1.2816).gain.iloc[-1]
    # Sure enough that raising gains: the rule raises, to the best expected gain.
    chosen = choose_prices(posterior, "posterior")
    best = posterior.loc[posterior.gain.idxmax(), "candidate_price"]
    assert chosen["candidate_price"].item() == best
    assert chosen["candidate_price"].item() > 10.0
    # Not sure: the same estimate with a posterior four times as wide keeps the price.
    elasticity, low, high = _softplus_interval(0.6, 1.6)
    wide = posterior_gains(_curve(elasticity, low, high, prices), 1.645, 1.2816)
    assert (wide.gain_sure[wide.candidate_price != 10.0] < 0).all()
    assert choose_prices(wide, "posterior")["candidate_price"].item() == 10.0


money = st.floats(0.5, 2_000, allow_nan=False)
optional_money = st.one_of(st.just(math.nan), money)


@settings(max_examples=300, deadline=None)
@given(
    current=money,
    cost=money,
    map_price=optional_money,
    min_price=optional_money,
    max_price=optional_money,
    comp=optional_money,
    cover=st.one_of(st.just(math.nan), st.floats(0, 1_000)),
    width=st.floats(0, 4),
    max_change=st.floats(0.01, 0.5),
    min_margin=st.floats(0, 0.5),
    endings=st.lists(st.sampled_from([0.0, 0.49, 0.95, 0.99]), max_size=3),
)
def test_no_guardrail_can_be_violated(
    current: float,
    cost: float,
    map_price: float,
    min_price: float,
    max_price: float,
    comp: float,
    cover: float,
    width: float,
    max_change: float,
    min_margin: float,
    endings: list[float],
) -> None:
    policy = PolicyConfig(max_change=max_change, min_margin=min_margin, price_endings=endings)
    frame = _row(
        current_price=current,
        unit_cost=cost,
        map_price=map_price,
        min_price=min_price,
        max_price=max_price,
        comp_median_price=comp,
        days_of_cover=cover,
        elasticity_low=-1 - width,
        elasticity_high=-1.0,
    )
    band = price_band(frame, policy).iloc[0]
    if band["band_note"] == "infeasible":
        assert band["price_floor"] == band["price_ceiling"] == current
        return
    hard_floor = max(
        cost * (1 + min_margin), np.nan_to_num(map_price, nan=0), np.nan_to_num(min_price, nan=0)
    )
    hard_ceiling = np.nan_to_num(max_price, nan=np.inf)
    floor, ceiling = band["price_floor"], band["price_ceiling"]
    assert hard_floor - 1e-9 <= floor <= ceiling <= hard_ceiling + 1e-9
    if band["band_note"] == "ok":  # policy limits hold too (to the cent)
        assert floor >= current * (1 - max(max_change, policy.clearance_max_change)) - 0.01
        assert ceiling <= current * (1 + max_change) + 0.01
        if not math.isnan(comp):
            assert ceiling <= comp * (1 + (policy.max_premium_over_competitors or 0)) + 0.01
    grid = candidate_grid(price_band(frame, policy), points=11, endings=policy.price_endings)
    assert grid["candidate_price"].between(floor - 1e-9, ceiling + 1e-9).all()
    cents = grid["candidate_price"].to_numpy() * 100
    assert np.allclose(cents, np.round(cents), atol=1e-6)  # whole cents only


def test_policy_rejects_bad_endings() -> None:
    with pytest.raises(ValueError, match="cents"):
        PolicyConfig(price_endings=[1.5])
