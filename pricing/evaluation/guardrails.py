"""Did a price break a guardrail? One check for the judge and the backtest.

The hard limits are derived again from the market's truth (its real costs) and the catalog's limits,
not read from the band the product wrote, because that band is part of what is checked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pricing.config import PolicyConfig

# A hard limit is met to the cent: a price a rounding error past it is not a violation.
CENT = 0.005


def guardrail_violations(frame: pd.DataFrame, policy: PolicyConfig) -> np.ndarray:
    """Per row, whether ``price`` breaks a guardrail of ``policy`` (a boolean array).

    A violation is a price below the hard floor (the true cost plus ``min_margin`` where the catalog
    knows the cost, ``min_price``, the MAP price when respected) or above ``max_price``; outside the
    band the product recorded (``price_floor``/``price_ceiling``, where it recorded one); a move from
    ``previous_price`` larger than the largest allowed change, unless that price was itself outside
    the hard limits (a forced move); or a changed price without an allowed ending where one fitted in
    the band. Rows whose ``binding_constraint`` is ``infeasible`` (hard limits that cross, where no
    price can meet them all) are not violations.
    """
    price = frame["price"].to_numpy(float)
    previous = frame["previous_price"].to_numpy(float)
    cost = frame["true_cost"].to_numpy(float)
    hard_floor = np.fmax.reduce(
        [
            np.where(frame["cost_known"].to_numpy(bool), cost * (1 + policy.min_margin), np.nan),
            frame["min_price"].to_numpy(float),
            frame["map_price"].to_numpy(float) if policy.respect_map else np.full(len(frame), np.nan),
        ]
    )
    hard_ceiling = frame["max_price"].to_numpy(float)
    floor, ceiling = frame["price_floor"].to_numpy(float), frame["price_ceiling"].to_numpy(float)
    allowed = max(policy.max_change, policy.clearance_max_change)
    with np.errstate(invalid="ignore", divide="ignore"):
        forced = (previous < hard_floor - CENT) | (previous > hard_ceiling + CENT)
        violated = (
            (price < hard_floor - CENT)
            | (price > hard_ceiling + CENT)
            | (price < floor - 1e-6)
            | (price > ceiling + 1e-6)
            | (~forced & (np.abs(price / previous - 1) > allowed + 0.01 / previous))
        )
        if policy.price_endings:
            endings = np.array([round(e * 100) for e in policy.price_endings])
            cents = np.round((price - np.floor(price)) * 100)
            # An allowed ending existed inside the recorded band (else any cent is allowed).
            wholes = np.floor(floor)[:, None] + np.array([0.0, 1.0])[None, :]
            candidates = (wholes[:, :, None] + endings[None, None, :] / 100).reshape(len(frame), -1)
            fits = ((candidates >= floor[:, None] - 1e-9) & (candidates <= ceiling[:, None] + 1e-9)).any(
                axis=1
            )
            changed = np.abs(price - previous) > 1e-9
            violated |= ~np.isnan(floor) & changed & fits & ~np.isin(cents, endings)
    if "binding_constraint" in frame:
        violated &= frame["binding_constraint"].to_numpy() != "infeasible"
    return np.asarray(violated, bool)


def with_violations(frame: pd.DataFrame, policy: PolicyConfig) -> pd.DataFrame:
    """``frame`` with a ``violation`` column (:func:`guardrail_violations`)."""
    return frame.assign(violation=guardrail_violations(frame, policy))
