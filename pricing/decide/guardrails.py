"""Guardrails and the profit-maximising choice among candidate prices (vectorised pandas/numpy).

Every function here works on whole columns, so it runs unchanged inside a pandas UDF over Arrow
batches. The band each SKU may be priced in is built from hard limits and policy limits:

- hard (never broken): cost floor ``unit_cost * (1 + min_margin)``, MAP, catalog ``min_price`` and
  ``max_price``;
- policy: at most ``max_change`` up or down vs the current price per run (no discount when stock
  cover is low, deeper ones for clearance stock, less movement when the elasticity is uncertain), and
  at most ``max_premium_over_competitors`` above the competitor median.

When they conflict, policy limits give way in this order: the competitor bound, then the change limit;
hard limits never do. If the hard limits themselves contradict each other (``max_price`` below the cost
floor) there is no valid price: the SKU keeps its current price and is flagged ``infeasible``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pricing.config import PolicyConfig

BAND_INPUTS = [
    "current_price",
    "unit_cost",
    "map_price",
    "min_price",
    "max_price",
    "comp_median_price",
    "days_of_cover",
    "elasticity_low",
    "elasticity_high",
]


def _pick(labels: list[str], values: list[np.ndarray], largest: bool) -> tuple[np.ndarray, np.ndarray]:
    stacked = np.vstack(values)
    index = np.nanargmax(stacked, axis=0) if largest else np.nanargmin(stacked, axis=0)
    return stacked[index, np.arange(stacked.shape[1])], np.asarray(labels, dtype=object)[index]


def price_band(frame: pd.DataFrame, policy: PolicyConfig) -> pd.DataFrame:
    """Per row: ``price_floor``, ``price_ceiling``, what set each, and a ``band_note``.

    Args:
        frame: columns ``BAND_INPUTS``; missing optional limits are NaN.

    Returns:
        The band, cent-aligned, with ``floor_reason``, ``ceiling_reason`` and ``band_note``
        (``ok``, ``competitor_bound_relaxed``, ``max_change_relaxed`` or ``infeasible``).
    """
    n = len(frame)
    inf = np.full(n, np.inf)
    ninf = np.full(n, -np.inf)

    def col(name: str) -> np.ndarray:
        return frame[name].to_numpy(dtype=float, na_value=np.nan)

    current, cost = col("current_price"), col("unit_cost")
    cover = col("days_of_cover")
    width = col("elasticity_high") - col("elasticity_low")

    def present(values: np.ndarray, fallback: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(values), fallback, values)

    hard_floor, hard_floor_reason = _pick(
        ["cost_floor", "map", "min_price"],
        [
            present(cost * (1 + policy.min_margin), ninf),
            present(col("map_price"), ninf) if policy.respect_map else ninf,
            present(col("min_price"), ninf),
        ],
        largest=True,
    )
    hard_ceiling = present(col("max_price"), inf)

    uncertain = np.nan_to_num(width, nan=0.0) > policy.max_elasticity_interval
    factor = np.where(uncertain, policy.uncertain_change_factor, 1.0)
    down = (
        np.where(
            np.nan_to_num(cover, nan=np.inf) < policy.low_cover_days,
            0.0,
            np.where(
                np.nan_to_num(cover, nan=0.0) > policy.clearance_cover_days,
                policy.clearance_max_change,
                policy.max_change,
            ),
        )
        * factor
    )
    up = policy.max_change * factor
    clearance = np.nan_to_num(cover, nan=0.0) > policy.clearance_cover_days
    change_floor_reason = np.where(
        down == 0,
        "low_stock",
        np.where(uncertain, "uncertainty", np.where(clearance, "clearance", "max_change")),
    )
    change_ceiling_reason = np.where(uncertain, "uncertainty", "max_change")
    premium = policy.max_premium_over_competitors
    competitor_ceiling = (
        present(col("comp_median_price") * (1 + premium), inf) if premium is not None else inf
    )

    floor, floor_reason = _pick(["hard", "change"], [hard_floor, current * (1 - down)], largest=True)
    floor_reason = np.where(floor_reason == "hard", hard_floor_reason, change_floor_reason)
    ceiling, ceiling_reason = _pick(
        ["max_price", "max_change", "competitor_premium"],
        [hard_ceiling, current * (1 + up), competitor_ceiling],
        largest=False,
    )
    ceiling_reason = np.where(ceiling_reason == "max_change", change_ceiling_reason, ceiling_reason)
    note = np.full(n, "ok", dtype=object)

    # Conflicts: relax the competitor bound first, then the change limit; never the hard limits.
    conflict = floor > ceiling
    relaxed_ceiling, relaxed_reason = _pick(
        ["max_price", "max_change"], [hard_ceiling, current * (1 + up)], False
    )
    ceiling = np.where(conflict, relaxed_ceiling, ceiling)
    relaxed_reason = np.where(relaxed_reason == "max_change", change_ceiling_reason, relaxed_reason)
    ceiling_reason = np.where(conflict, relaxed_reason, ceiling_reason)
    note = np.where(conflict, "competitor_bound_relaxed", note)
    conflict = floor > ceiling
    floor = np.where(conflict, hard_floor, floor)
    floor_reason = np.where(conflict, hard_floor_reason, floor_reason)
    ceiling = np.where(conflict, np.maximum(hard_floor, np.minimum(hard_ceiling, ceiling)), ceiling)
    note = np.where(conflict, "max_change_relaxed", note)
    # Prices are in cents: the hard limits become the cents inside them, and no price can exist when
    # they leave none (e.g. max_price below the cost floor).
    hard_floor_c = np.ceil(np.round(hard_floor * 100, 6)) / 100
    hard_ceiling_c = np.floor(np.round(hard_ceiling * 100, 6)) / 100
    infeasible = hard_floor_c > hard_ceiling_c
    note = np.where(infeasible, "infeasible", note)
    with np.errstate(invalid="ignore"):
        floor_c = np.clip(np.ceil(np.round(floor * 100, 6)) / 100, hard_floor_c, hard_ceiling_c)
        # A policy band narrower than a cent collapses onto its floor (policy limits may then be
        # missed by less than a cent; hard limits never are).
        ceiling_c = np.clip(np.floor(np.round(ceiling * 100, 6)) / 100, floor_c, hard_ceiling_c)
    return pd.DataFrame(
        {
            "price_floor": np.where(infeasible, current, floor_c),
            "price_ceiling": np.where(infeasible, current, ceiling_c),
            "floor_reason": np.where(infeasible, "infeasible", floor_reason),
            "ceiling_reason": np.where(infeasible, "infeasible", ceiling_reason),
            "band_note": note,
        },
        index=frame.index,
    )
