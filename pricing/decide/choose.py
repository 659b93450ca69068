"""The profit-maximising choice among candidate prices inside a SKU's band (vectorised pandas/numpy).

Every function here works on whole columns, so it runs unchanged inside a pandas UDF over Arrow
batches: the candidate grid across the band (snapped to the price endings, with the current price),
the expected gain of each candidate and its bounds under the elasticity's uncertainty, and the rule
that picks one (docs/pricing-policy.md).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def apply_endings(
    prices: np.ndarray, floor: np.ndarray, ceiling: np.ndarray, endings: list[float]
) -> np.ndarray:
    """Snap each price to the nearest allowed ending (e.g. x.99, x.49) that stays inside its band.

    Where no such price exists in the band, the price stays as it is, rounded to cents inside the band.
    """
    prices = np.clip(np.round(prices, 2), floor, ceiling)
    if not endings:
        return prices
    whole = np.floor(prices)[:, None] + np.arange(-1, 2)[None, :]
    candidates = (whole[:, :, None] + np.asarray(endings)[None, None, :]).reshape(len(prices), -1)
    candidates = np.round(candidates, 2)
    inside = (candidates >= floor[:, None] - 1e-9) & (candidates <= ceiling[:, None] + 1e-9)
    distance = np.where(inside, np.abs(candidates - prices[:, None]), np.inf)
    best = candidates[np.arange(len(prices)), np.argmin(distance, axis=1)]
    return np.where(np.isfinite(distance.min(axis=1)), best, prices)


def candidate_grid(band: pd.DataFrame, points: int, endings: list[float]) -> pd.DataFrame:
    """``points`` evenly spaced prices per band (ends included), snapped to endings, deduplicated.

    Returns:
        Long frame with the band's index repeated in column ``row`` and ``candidate_price``.
    """
    floor = band["price_floor"].to_numpy(float)
    ceiling = band["price_ceiling"].to_numpy(float)
    steps = np.linspace(0.0, 1.0, points)
    grid = floor[:, None] + (ceiling - floor)[:, None] * steps[None, :]
    rows = np.repeat(np.arange(len(band)), points)
    snapped = apply_endings(grid.ravel(), floor[rows], ceiling[rows], endings)
    long = pd.DataFrame({"row": band.index.to_numpy()[rows], "candidate_price": snapped})
    return long.drop_duplicates(ignore_index=True)


def candidates_with_current(
    band: pd.DataFrame, current: np.ndarray, points: int, endings: list[float]
) -> pd.DataFrame:
    """:func:`candidate_grid` plus each row's current price (``current``, indexed like the band's
    index) wherever its band allows it: keeping today's price is always a candidate then. The one
    candidate set of scoring and of the backtest's oracle."""
    grid = candidate_grid(band, points, endings)
    rows = band.index.to_numpy()
    price = current[rows]
    inside = (price >= band["price_floor"].to_numpy(float) - 1e-9) & (
        price <= band["price_ceiling"].to_numpy(float) + 1e-9
    )
    kept = pd.DataFrame({"row": rows[inside], "candidate_price": price[inside]})
    return pd.concat([grid, kept], ignore_index=True).drop_duplicates(ignore_index=True)


def gain_bounds(candidates: pd.DataFrame, interval_z: float, gain_z: float) -> pd.DataFrame:
    """Add each candidate's expected profit gain over the current price and its interval.

    Under the model, a SKU's units at price p are its units at the current price c times
    ``(p / c) ** elasticity``. The elasticity is uncertain: its interval ``[elasticity_low,
    elasticity_high]`` is read as a central interval at the model's level (``interval_z`` standard
    deviations each side). The gain ``(p - cost) q(p) - (c - cost) q(c)`` is monotone in the
    elasticity for a given p, so its bounds at ``gain_z`` are the gains at the elasticity's bounds at
    ``gain_z`` (an elasticity is never above 0). The interval's wider side sets the sd (its upper end
    may be cut at 0). Keeping the current price gains exactly 0.

    Args:
        candidates: ``candidate_price``, ``unit_cost``, ``current_price``, ``expected_units`` (at the
            candidate), ``units_current`` (at the current price), ``elasticity``, ``elasticity_low``,
            ``elasticity_high``.

    Returns:
        ``candidates`` with ``gain``, ``gain_low`` and ``gain_high``.
    """
    price = candidates["candidate_price"].to_numpy(float)
    current = candidates["current_price"].to_numpy(float)
    cost = candidates["unit_cost"].to_numpy(float)
    units = candidates["expected_units"].to_numpy(float)
    units_current = candidates["units_current"].to_numpy(float)
    elasticity = candidates["elasticity"].to_numpy(float)
    # The wider side: the upper end is capped at 0 (an elasticity is never positive), the lower is not.
    half = np.fmax(
        elasticity - candidates["elasticity_low"].to_numpy(float),
        candidates["elasticity_high"].to_numpy(float) - elasticity,
    )
    sd = np.nan_to_num(half / interval_z, nan=0.0).clip(min=0.0)
    log_ratio = np.log(price / current)
    same = np.abs(log_ratio) < 1e-12
    kept_profit = (current - cost) * units_current

    def gain_at(shifted: np.ndarray) -> np.ndarray:
        return np.asarray((price - cost) * units * np.exp((shifted - elasticity) * log_ratio) - kept_profit)

    low_side = gain_at(elasticity - gain_z * sd)
    high_side = gain_at(np.minimum(elasticity + gain_z * sd, 0.0))
    gain = (price - cost) * units - kept_profit
    return candidates.assign(
        gain=np.where(same, 0.0, gain),
        gain_low=np.where(same, 0.0, np.minimum(low_side, high_side)),
        gain_high=np.where(same, 0.0, np.maximum(low_side, high_side)),
    )


# Gauss-Hermite nodes for the posterior expected gain (probabilists' weights, normalised).
_NODES, _NODE_WEIGHTS = np.polynomial.hermite_e.hermegauss(15)
_NODE_WEIGHTS = _NODE_WEIGHTS / _NODE_WEIGHTS.sum()


def _softplus_inverse(magnitude: np.ndarray) -> np.ndarray:
    return np.asarray(np.log(np.expm1(np.clip(magnitude, 1e-9, 50.0))), float)


def posterior_gains(candidates: pd.DataFrame, interval_z: float, gain_z: float) -> pd.DataFrame:
    """:func:`gain_bounds` integrated over the posterior, and whether a gain is positive at ``gain_z``.

    The model's posterior of an elasticity is Gaussian in the softplus's argument (elasticity =
    -softplus(argument); docs/training.md), which the interval ``[elasticity_low, elasticity_high]``
    (``interval_z`` standard deviations each side) gives back exactly: its centre and sd. The expected
    gain integrates ``(p - cost) q(c) (p / c) ** elasticity - (c - cost) q(c)`` over that posterior
    (15-point Gauss-Hermite), so an elasticity that may well be steeper than its estimate (the posterior
    is wider on the elastic side) counts against a price rise. ``gain_sure`` is the gain at the
    argument's quantile on the losing side, at ``gain_z``: the gain is monotone in the elasticity, so a
    positive ``gain_sure`` means the move gains with at least that confidence.

    Args:
        candidates: as for :func:`gain_bounds`.

    Returns:
        ``candidates`` with ``gain`` (the posterior's expected gain), ``gain_low`` and ``gain_high``
        (its central interval at ``interval_z``, the model's level) and ``gain_sure``.
    """
    price = candidates["candidate_price"].to_numpy(float)
    current = candidates["current_price"].to_numpy(float)
    cost = candidates["unit_cost"].to_numpy(float)
    units_current = candidates["units_current"].to_numpy(float)
    elasticity = candidates["elasticity"].to_numpy(float)
    upper = _softplus_inverse(-candidates["elasticity_low"].to_numpy(float))
    lower = _softplus_inverse(-candidates["elasticity_high"].to_numpy(float))
    centre = np.where(np.isfinite(upper + lower), (upper + lower) / 2, _softplus_inverse(-elasticity))
    sd = np.nan_to_num((upper - lower) / (2 * interval_z), nan=0.0).clip(min=0.0)
    log_ratio = np.log(price / current)
    same = np.abs(log_ratio) < 1e-12
    kept_profit = (current - cost) * units_current

    def gain_at(argument: np.ndarray) -> np.ndarray:
        # Units at p scale from the units at the current price with the elasticity at that argument.
        shifted = -np.logaddexp(0.0, argument)
        return np.asarray((price - cost) * units_current * np.exp(shifted * log_ratio) - kept_profit)

    expected = sum(w * gain_at(centre + node * sd) for node, w in zip(_NODES, _NODE_WEIGHTS, strict=True))
    sure = np.minimum(gain_at(centre + gain_z * sd), gain_at(centre - gain_z * sd))
    ends = gain_at(centre + interval_z * sd), gain_at(centre - interval_z * sd)
    return candidates.assign(
        gain=np.where(same, 0.0, expected),
        gain_low=np.where(same, 0.0, np.minimum(*ends)),
        gain_high=np.where(same, 0.0, np.maximum(*ends)),
        gain_sure=np.where(same, 0.0, sure),
    )


def choose_prices(candidates: pd.DataFrame, decision: str = "expected") -> pd.DataFrame:
    """Per ``row``, the best candidate (ties: closest to the current price).

    ``decision="expected"``: the highest expected profit; ``"lower_bound"``: the highest lower bound
    of the gain over the current price (``gain_low`` from :func:`gain_bounds`), so the current price
    (gain exactly 0) stays unless a move's gain is clearly positive; ``"posterior"``: the highest
    posterior expected gain (``gain`` from :func:`posterior_gains`) among the moves whose gain is
    positive with the configured confidence (``gain_sure`` > 0), else the current price.

    Args:
        candidates: ``row``, ``candidate_price``, ``unit_cost``, ``current_price``, ``expected_units``
            (and ``gain_low`` for ``lower_bound``); optionally ``revenue_floor``: only candidates
            with at least that expected revenue compete (where none has, all do).
    """
    objectives = {"expected": "expected_profit", "lower_bound": "_gain_low", "posterior": "_gain_post"}
    if decision not in objectives:
        raise ValueError(f"unknown decision rule {decision!r}")
    scored = candidates.assign(
        expected_profit=(candidates["candidate_price"] - candidates["unit_cost"])
        * candidates["expected_units"],
        expected_revenue=candidates["candidate_price"] * candidates["expected_units"],
        _distance=(candidates["candidate_price"] - candidates["current_price"]).abs(),
    )
    objective = objectives[decision]
    # A rounding-level gain is no evidence: it must clear a millionth of the current profit.
    noise = 1e-6 * np.abs((scored["current_price"] - scored["unit_cost"]) * scored["expected_units"])
    if decision == "lower_bound":
        scored = scored.assign(_gain_low=np.where(scored["gain_low"] > noise, scored["gain_low"], 0.0))
    if decision == "posterior":
        confident = (scored["gain_sure"] > noise) & (scored["gain"] > noise)
        scored = scored.assign(_gain_post=np.where(confident, scored["gain"], 0.0))
    if "revenue_floor" in scored.columns:
        meets = (scored["expected_revenue"] >= scored["revenue_floor"] - 1e-9) | scored[
            "revenue_floor"
        ].isna()
        # Rank first by meeting the floor, so a row with no candidate meeting it still gets a price.
        scored = scored.assign(_misses=~meets)
        keys, ascending = ["row", "_misses", objective, "_distance"], [True, True, False, True]
    else:
        keys, ascending = ["row", objective, "_distance"], [True, False, True]
    ordered = scored.sort_values(keys, ascending=ascending)
    return (
        ordered.drop_duplicates("row")
        .drop(columns=["_distance", "_misses", "_gain_low", "_gain_post"], errors="ignore")
        .set_index("row")
    )
