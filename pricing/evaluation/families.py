"""A family of structurally different evaluation markets, each with exact ground truth.

Every member writes the same landing contract as ``pricing simulate`` (transactions, clickstream,
competitor prices, inventory, catalog, FX, with the same dirt), so ``pricing nightly`` runs on it as
on any shop. What differs is what a pricing system must not assume:

- the **demand form** (:data:`FORMS`): constant elasticity (log-log), semi-log (exponential in
  price), linear with a choke price, a logit choice against the competitors' prices, and a
  reference-price response with a kink (losses above the price shoppers remember hurt more);
- **seasonality** that differs per SKU (weekly phase and amplitude, a monthly cycle), trends, and a
  persistent demand shock that traffic may or may not reveal;
- how the retailer **priced in the past** (:data:`HISTORIES`), i.e. how its prices are confounded with
  demand: discounts on each SKU's weak weekdays, markdowns after weak traffic, stock-triggered
  markdowns, competitor matching, promotion calendars, cost-plus with supplier cost shocks, markdowns
  that follow an ageing product's decline (``linear_lifecycle``), or almost no variation at all; with
  or without a small share of random price tests, and prices that follow demand the retailer saw
  coming and the data does not hold (``loglog_anticipated``);
- **noise**: Poisson or over-dispersed (negative binomial), a long tail of slow sellers, stock-outs.

Today's simulator (:mod:`pricing.sim.market`) is the member ``simulator``.

Ground truth is a demand curve per SKU and day, written to ``<truth>/sku_day`` as the columns of
:data:`CURVE_COLUMNS`; :func:`log_units` turns them into true expected units at *any* price, so any
price table can be judged (:mod:`pricing.evaluation.judge`). Markets are simulated one day past the
delivered history: that last day is the night the product prices, with its true state known.

Each market is small (a few hundred SKUs) and simulated on the driver with numpy, vectorised over
SKUs and stepped over days (stock-triggered markdowns need yesterday's stock); Spark then explodes it
into landing files with the simulator's own writers.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StringType, StructField, StructType

from pricing.config import SimulateConfig, derive
from pricing.sim.closed_loop import CURVE_COLUMNS
from pricing.sim.market import (
    SKU_DAY_SCHEMA,
    _write_bytes,
    catalog_rows,
    fx_rates,
    seasonality,
    simulate_market,
    sku_parameters,
    write_daily_sources,
)

FORMS = ("loglog", "semilog", "linear", "logit", "reference")
HISTORIES = (
    "weak_weekdays",
    "traffic_markdown",
    "stock_markdown",
    "competitor_match",
    "promo_calendar",
    "cost_plus",
    "rigid",
    "anticipated_demand",
    "lifecycle_markdown",
)
# How far (in log demand) an ageing SKU's demand falls between two lifecycle markdowns.
LIFECYCLE_STEP = 0.15
# The true demand curve of one SKU on one day: log units(p) = log_level + shape(form, p / ref, c1..c4)
# (CURVE_COLUMNS, declared beside the closed loop that also realises days from it).
CURVE_FIELDS = [
    StructField("form", StringType(), False),
    *[StructField(c, DoubleType(), False) for c in CURVE_COLUMNS[1:]],
]
TRUTH_DAY_SCHEMA = StructType([*SKU_DAY_SCHEMA.fields, *CURVE_FIELDS])


@dataclass(frozen=True)
class Family:
    """One kind of shop: its demand form, pricing history, noise and seasonality."""

    name: str
    demand: str
    history: tuple[str, ...]
    description: str
    price_test_share: float = 0.0
    noise: str = "poisson"  # or "negbin"
    dispersion: float = 2.0  # negative binomial shape: variance = mu + mu^2 / dispersion
    slow_tail: bool = False  # base demand with a long tail of slow sellers
    traffic_follows_shock: bool = True  # whether views reveal the demand shock
    trend: bool = False
    monthly: bool = False
    # Every SKU's true elasticity times this: a shop whose products are all more (or less) price-sensitive
    # than the simulator's categories (-3.5 to -0.6, mean about -2, which is also the model's prior
    # centre). Without it, every family's elasticities centre where the prior does.
    elasticity_scale: float = 1.0
    # Each SKU's elasticity follows the week: times exp(swing * cos(2 pi (weekday - its busiest) / 7)),
    # its swing drawn up to this (0: one elasticity every day). Shoppers who compare prices come on the
    # busy days; the quiet days' shoppers buy what they came for.
    weekly_elasticity_swing: float = 0.0

    def __post_init__(self) -> None:
        if self.demand not in FORMS and self.demand != "simulator":
            raise ValueError(f"unknown demand form {self.demand!r}")
        if self.weekly_elasticity_swing and self.demand not in ("loglog", "semilog"):
            raise ValueError("a weekly elasticity swing needs a curve whose c1 is its elasticity")
        unknown = set(self.history) - set(HISTORIES)
        if unknown:
            raise ValueError(f"unknown pricing histories {sorted(unknown)}")


def _by_name(*families: Family) -> dict[str, Family]:
    return {family.name: family for family in families}


FAMILIES: dict[str, Family] = _by_name(
    Family(
        "simulator",
        "simulator",
        ("traffic_markdown", "promo_calendar"),
        "today's simulator (pricing.sim.market): log-log demand, markdowns after weak traffic, "
        "promotions, 10% of SKUs price-tested",
        price_test_share=0.1,
    ),
    Family(
        "loglog_weekday",
        "loglog",
        ("weak_weekdays", "promo_calendar"),
        "constant elasticity; discounts on each SKU's weak weekdays (price follows seasonality), "
        "promotions; over-dispersed, monthly cycle, no price tests",
        noise="negbin",
        monthly=True,
    ),
    Family(
        "semilog_stock",
        "semilog",
        ("stock_markdown",),
        "exponential in price; markdowns while stock cover is high; long tail of slow sellers, "
        "trends, traffic that does not reveal the demand shock",
        noise="negbin",
        slow_tail=True,
        trend=True,
        traffic_follows_shock=False,
    ),
    Family(
        "linear_costplus",
        "linear",
        ("cost_plus",),
        "linear demand with a choke price; cost-plus prices that follow supplier cost shocks; "
        "Poisson, trends",
        trend=True,
    ),
    Family(
        "logit_competitor",
        "logit",
        ("competitor_match",),
        "logit choice against the competitors' prices; prices that match competitors; "
        "over-dispersed, 5% of SKUs price-tested",
        noise="negbin",
        price_test_share=0.05,
    ),
    Family(
        "reference_promo",
        "reference",
        ("promo_calendar", "weak_weekdays"),
        "reference-price response (kinked at the remembered price); a hi-lo promotion calendar and "
        "weak-weekday discounts; monthly cycle",
        monthly=True,
    ),
    Family(
        "loglog_elastic",
        "loglog",
        ("traffic_markdown", "promo_calendar"),
        "constant elasticity, every product 1.8x as price-sensitive as the simulator's (mean about "
        "-3.7, far from the prior's -2); markdowns after weak traffic, promotions, 5% price-tested",
        price_test_share=0.05,
        elasticity_scale=1.8,
    ),
    Family(
        "loglog_inelastic",
        "loglog",
        ("traffic_markdown", "promo_calendar"),
        "constant elasticity, every product 0.4x as price-sensitive as the simulator's (mean about "
        "-0.8, many below 1 in size); markdowns after weak traffic, promotions, 5% price-tested; "
        "over-dispersed",
        price_test_share=0.05,
        noise="negbin",
        elasticity_scale=0.4,
    ),
    Family(
        "rigid_semilog",
        "semilog",
        ("rigid",),
        "almost no price variation (a quarter of SKUs change price once); over-dispersed, "
        "long tail of slow sellers",
        noise="negbin",
        slow_tail=True,
    ),
    Family(
        "loglog_anticipated",
        "loglog",
        ("anticipated_demand", "promo_calendar"),
        "constant elasticity; the retailer prices with the demand it sees coming and the data does "
        "not hold (up on strong days, down on weak ones), promotions; traffic that does not reveal "
        "the demand, 5% of SKUs price-tested",
        price_test_share=0.05,
        traffic_follows_shock=False,
    ),
    Family(
        "loglog_anticipated_elastic",
        "loglog",
        ("anticipated_demand", "promo_calendar"),
        "loglog_anticipated's retailer (prices up on the strong days it sees coming, down on the weak "
        "ones; the data does not hold that demand) in a shop whose products are all 1.8x as "
        "price-sensitive as the simulator's, so about three quarters of its list prices sit above their "
        "profit-maximising level and a too-inelastic estimate raises them further; promotions, 5% of "
        "SKUs price-tested",
        price_test_share=0.05,
        traffic_follows_shock=False,
        elasticity_scale=1.8,
    ),
)


# Families built after the shipped defaults were chosen, kept out of `make robustness` (and of every
# default's choice): run them with `pricing evaluate --families NAME` to see how the product does on a
# kind of shop nothing was tuned on. Once a default is chosen with one of them in view, it belongs in
# FAMILIES, and a new held-out family is owed (loglog_anticipated joined FAMILIES when train.own_test_z
# was switched on with it in view, loglog_anticipated_elastic when train.interval_stretch_z was).
HELD_OUT_FAMILIES: dict[str, Family] = _by_name(
    Family(
        "loglog_weekly_sensitivity",
        "loglog",
        ("weak_weekdays", "promo_calendar"),
        "constant elasticity within a day, but each SKU's elasticity follows the week: up to 1.6x on "
        "its busiest days, down to 0.6x on its quiet ones, where the retailer discounts; promotions; "
        "over-dispersed, trends, 5% of SKUs price-tested",
        price_test_share=0.05,
        noise="negbin",
        trend=True,
        weekly_elasticity_swing=0.5,
    ),
    Family(
        "linear_lifecycle",
        "linear",
        ("lifecycle_markdown", "promo_calendar"),
        "linear demand with a choke price; products that age: 60% of SKUs lose 0.4-1.2% of their demand "
        "a day, and the retailer marks each down a step (6-12%) every time its demand has fallen another "
        "15%, so its cuts coincide with a decline no price caused; promotions; over-dispersed, no price "
        "tests",
        noise="negbin",
    ),
)
# Every family a market can be generated from.
ALL_FAMILIES: dict[str, Family] = {**FAMILIES, **HELD_OUT_FAMILIES}


def log_units(curve: Any, price: Any) -> np.ndarray:
    """True log expected units at ``price`` for aligned curve columns (:data:`CURVE_COLUMNS`).

    ``curve`` is a pandas frame (or mapping of arrays) with those columns; ``price`` broadcasts
    against them.
    """
    form = np.asarray(curve["form"])
    level = np.asarray(curve["log_level"], float)
    c1, c2, c3, c4 = (np.asarray(curve[c], float) for c in ("c1", "c2", "c3", "c4"))
    price = np.asarray(price, float)
    x = price / np.asarray(curve["curve_ref"], float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        loglog = c1 * np.log(x)
        semilog = c1 * (x - 1)
        linear = np.log(np.maximum(1 + c1 * (x - 1), 1e-6))
        # c1 = price sensitivity (> 0), c2 = own utility at the reference price, c3 = the competitors'
        # attraction (sum of their exp-utilities; the outside option is 1).
        own = np.exp(c2 - c1 * (x - 1))
        logit = np.log(own / (1 + c3 + own))
        # c1 = elasticity, c2 = the remembered (reference) price, c3 / c4 = the extra response to a
        # price above / below it.
        gap = np.log(price / c2)
        reference = c1 * np.log(x) + np.where(gap > 0, c3, c4) * gap
    shape = np.select(
        [form == "loglog", form == "semilog", form == "linear", form == "logit", form == "reference"],
        [loglog, semilog, linear, logit, reference],
        default=np.nan,
    )
    return np.asarray(level + shape, float)


def true_elasticity(curve: Any, price: Any, step: float = 1e-4) -> np.ndarray:
    """d log units / d log price at ``price`` (central difference; a kink gives its two sides' mean)."""
    price = np.asarray(price, float)
    up = log_units(curve, price * math.exp(step))
    down = log_units(curve, price * math.exp(-step))
    return np.asarray((up - down) / (2 * step), float)


# Each family's random stream (with the seed). Append only: a family added later must not move the
# others' streams, or every market judged before would change under the same family and seed.
MARKET_STREAMS = (
    "linear_costplus",
    "logit_competitor",
    "loglog_weekday",
    "reference_promo",
    "rigid_semilog",
    "semilog_stock",
    "simulator",
    "loglog_elastic",
    "loglog_inelastic",
    "loglog_anticipated",
    "loglog_weekly_sensitivity",
    "loglog_anticipated_elastic",
    "linear_lifecycle",
)


# -- the generator -------------------------------------------------------------------------------


def _base_params(spark: SparkSession, cfg: SimulateConfig) -> tuple[pd.DataFrame, StructType]:
    """The simulator's catalogue (titles, categories, costs, bands, seasonality, stock policy)."""
    params_df = sku_parameters(spark, cfg)
    frame: pd.DataFrame = params_df.toPandas()
    return frame.sort_values("sku_idx").reset_index(drop=True), params_df.schema


def _family_params(params: pd.DataFrame, family: Family, rng: np.random.Generator) -> pd.DataFrame:
    """Per-SKU parameters of the family's demand curve and pricing rule (added columns)."""
    n = len(params)
    p = params.copy()
    if family.slow_tail:
        # Most SKUs sell less than one a day; a few sell a lot.
        p["base_demand"] = np.exp(rng.normal(np.log(1.2), 1.1, n))
    p["monthly_amplitude"] = rng.uniform(0.05, 0.2, n) if family.monthly else 0.0
    p["monthly_phase"] = rng.uniform(0, 2 * np.pi, n)
    p["trend_per_day"] = rng.normal(0, 0.002, n) if family.trend else 0.0
    # Elasticity at the reference price, as in the simulator's categories (c1 is form-specific).
    e = p["elasticity"].to_numpy(float)
    if family.demand == "linear":
        e = np.clip(e, -2.5, -0.4)  # demand chokes at ref * (1 - 1/e): keep it above the bands' floor
        p["elasticity"] = e
    p["share_at_ref"] = rng.uniform(0.2, 0.45, n)
    p["undercut"] = rng.uniform(-0.02, 0.06, n)  # competitor matching: our price vs their median
    p["markup"] = p["ref_price"] / p["unit_cost"]
    p["cost_jump_rate"] = rng.uniform(0.02, 0.06, n)
    p["loss_aversion"] = rng.uniform(0.8, 2.0, n)
    p["gain_response"] = rng.uniform(0.1, 0.5, n)
    p["memory"] = rng.uniform(0.1, 0.3, n)  # reference price: exponential memory of past prices
    p["weak_day_discounter"] = rng.random(n) < 0.7
    p["markdown_cover"] = rng.uniform(12, 25, n)
    p["rigid_change_day"] = np.where(rng.random(n) < 0.25, rng.integers(20, 10_000, n), -1)
    p["rigid_change"] = rng.choice([-1, 1], n) * rng.uniform(0.05, 0.12, n)
    p["price_tested"] = rng.random(n) < family.price_test_share
    if "anticipated_demand" in family.history:
        # Drawn last and only here, so that every other family's stream stays as it was.
        p["anticipation"] = rng.uniform(0.2, 0.5, n)
    if family.weekly_elasticity_swing:
        p["elasticity_swing"] = rng.uniform(0.5, 1.0, n) * family.weekly_elasticity_swing
    if "lifecycle_markdown" in family.history:
        # Drawn last and only here (as the anticipation): most SKUs age, losing demand every day, and
        # the retailer marks one down a step each time its demand has fallen another LIFECYCLE_STEP.
        p["decay_per_day"] = np.where(rng.random(n) < 0.6, rng.uniform(0.004, 0.012, n), 0.0)
        p["markdown_step"] = rng.uniform(0.06, 0.12, n)
    return p


def _curve_c(
    family: Family, p: pd.DataFrame, competitor_median: np.ndarray, reference_price: np.ndarray
) -> dict:
    """c1..c4 of one day's curve, for every SKU (arrays)."""
    n = len(p)
    zeros = np.zeros(n)
    e = p["elasticity"].to_numpy(float)
    if family.demand == "logit":
        share = p["share_at_ref"].to_numpy(float)
        alpha = -e / (1 - share)  # elasticity e at the reference price when the share is share_at_ref
        # Competitors' attraction at their median price; at the reference it makes our share share_at_ref.
        base_attraction = (1 - share) / share - 1.0
        ref = p["ref_price"].to_numpy(float)
        attraction = np.maximum(base_attraction, 0.05) * np.exp(-alpha * (competitor_median / ref - 1))
        return {"c1": alpha, "c2": np.zeros(n), "c3": attraction, "c4": zeros}
    if family.demand == "reference":
        return {
            "c1": e,
            "c2": reference_price,
            "c3": -p["loss_aversion"].to_numpy(float),
            "c4": -p["gain_response"].to_numpy(float),
        }
    return {"c1": e, "c2": zeros, "c3": zeros, "c4": zeros}


def _simulate_family(
    params: pd.DataFrame, family: Family, cfg: SimulateConfig, n_days: int, rng: np.random.Generator
) -> pd.DataFrame:
    """Every SKU's daily history (SKU_DAY_SCHEMA columns plus the true curve), stepped over days."""
    # Scaled before the family's own parameters are drawn from it, so the truth's sku_params carry the
    # family's elasticities too, not the simulator's.
    params["elasticity"] = params["elasticity"] * family.elasticity_scale
    p = _family_params(params, family, rng)
    n, n_comp = len(p), max(cfg.n_competitors, 1)
    ref = p["ref_price"].to_numpy(float)
    base = p["base_demand"].to_numpy(float)
    lo, hi = p["min_price"].to_numpy(float), p["max_price"].to_numpy(float)
    cap = p["order_up_to"].to_numpy(np.int64)
    if family.slow_tail:
        cap = np.maximum(
            1, np.ceil(base * p["cycle_days"].to_numpy() * np.where(p["stockout_prone"], 0.7, 2.0))
        )
        cap = cap.astype(np.int64)
    cycle = p["cycle_days"].to_numpy(np.int64)
    rho, shock_sd = cfg.shock_persistence, cfg.shock_sd
    shock = rng.normal(0, shock_sd, n)
    comp_level = np.log(ref[:, None] * rng.uniform(0.9, 1.1, (n, n_comp)))
    cost = p["unit_cost"].to_numpy(float).copy()
    reference_price = ref.copy()
    on_hand = cap.copy()
    sold_history: list[np.ndarray] = []
    weak_dows = np.stack([(p["weekly_peak_dow"] + 3) % 7, (p["weekly_peak_dow"] + 4) % 7], axis=1)
    promo_days = np.zeros((n, n_days), dtype=bool)
    if "promo_calendar" in family.history:
        for _ in range(max(1, n_days // 25)):
            start = rng.integers(0, max(n_days - 6, 1), n)
            length = rng.integers(3, 7, n)
            days = np.arange(n_days)[None, :]
            promo_days |= (days >= start[:, None]) & (days < (start + length)[:, None])
    promo_depth = rng.uniform(0.15, 0.35, n)
    rows = []
    prev_views_gap = np.zeros(n)
    for t in range(n_days):
        day = cfg.start_date + timedelta(days=t)
        dow, doy = day.weekday(), day.timetuple().tm_yday
        weekly, annual = seasonality(p, dow, doy)
        weekly, annual = np.asarray(weekly, float), np.asarray(annual, float)
        monthly = p["monthly_amplitude"].to_numpy(float) * np.sin(
            2 * np.pi * t / 30.4 + p["monthly_phase"].to_numpy(float)
        )
        trend = p["trend_per_day"].to_numpy(float) * t
        if "lifecycle_markdown" in family.history:
            trend = trend - p["decay_per_day"].to_numpy(float) * t
        season = weekly + annual + monthly + trend
        if t > 0:
            shock = rho * shock + rng.normal(0, shock_sd * math.sqrt(1 - rho**2), n)
        comp_level = comp_level + rng.normal(0, 0.01, (n, n_comp))
        competitor_prices = np.round(np.exp(comp_level), 2)
        competitor_median = np.median(competitor_prices, axis=1)
        restock = (t % cycle) == 0
        if t > 0:
            on_hand = np.where(restock, cap, np.maximum(on_hand - sold_history[-1], 0))
        usual = base * np.exp(season)
        cover = on_hand / np.maximum(usual, 1e-3)

        # -- the retailer's price for the day --------------------------------------------------
        multiplier = np.ones(n)
        markdown = np.zeros(n, dtype=bool)
        if "weak_weekdays" in family.history:
            weak = (weak_dows == dow).any(axis=1) & p["weak_day_discounter"].to_numpy()
            multiplier = np.where(weak, 1 - rng.uniform(0.08, 0.22, n), multiplier)
            markdown |= weak
        if "traffic_markdown" in family.history:
            weak = (
                prev_views_gap < np.quantile(prev_views_gap, cfg.weak_day_discount_prob) if t > 0 else False
            )
            multiplier = np.where(weak, 1 - rng.uniform(0.08, 0.3, n), multiplier)
            markdown |= weak
        if "stock_markdown" in family.history:
            heavy = cover > p["markdown_cover"].to_numpy(float)
            multiplier = np.where(heavy, np.minimum(multiplier, 1 - rng.uniform(0.15, 0.3, n)), multiplier)
            markdown |= heavy
        if "anticipated_demand" in family.history:
            # The retailer sees the day's demand coming (bookings, the weather, its own store's
            # signals, none of them in the data) and prices with it: up on strong days, down on weak.
            anticipated = p["anticipation"].to_numpy(float) * shock + rng.normal(0, 0.02, n)
            multiplier = multiplier * np.exp(anticipated)
        if "lifecycle_markdown" in family.history:
            # Sales falling short of the launch's: the price steps down with the product's age, so the
            # cuts coincide with the decline they answer (which no price caused).
            steps = np.floor(p["decay_per_day"].to_numpy(float) * t / LIFECYCLE_STEP)
            multiplier = multiplier * (1 - p["markdown_step"].to_numpy(float)) ** steps
            markdown |= steps > 0
        price = ref * multiplier
        if "competitor_match" in family.history:
            price = competitor_median * (1 - p["undercut"].to_numpy(float))
        if "cost_plus" in family.history:
            jumps = rng.random(n) < p["cost_jump_rate"].to_numpy(float)
            cost = cost * np.exp(np.where(jumps, rng.normal(0, 0.07, n), 0.0))
            price = cost * p["markup"].to_numpy(float) * multiplier
        if "rigid" in family.history:
            changed = (p["rigid_change_day"].to_numpy() >= 0) & (
                t >= p["rigid_change_day"].to_numpy() % max(n_days, 1)
            )
            price = ref * np.where(changed, 1 + p["rigid_change"].to_numpy(float), 1.0)
        promo = promo_days[:, t]
        price = np.where(promo, ref * (1 - promo_depth), price)
        tested = p["price_tested"].to_numpy() & (rng.random(n) < 0.3)
        price = np.where(tested, ref * rng.uniform(0.85, 1.15, n), price)
        price = np.round(np.clip(price, lo, hi), 2)

        # -- demand ---------------------------------------------------------------------------
        lift = np.log(p["promo_lift"].to_numpy(float)) * promo
        if family.demand == "logit":
            log_level = np.log(base / p["share_at_ref"].to_numpy(float)) + season + shock + lift
        else:
            log_level = np.log(base) + season + shock + lift
        c = _curve_c(family, p, competitor_median, reference_price)
        if family.weekly_elasticity_swing:
            peak = p["weekly_peak_dow"].to_numpy(float)
            c["c1"] = c["c1"] * np.exp(
                p["elasticity_swing"].to_numpy(float) * np.cos(2 * np.pi * (dow - peak) / 7)
            )
        curve = {"form": np.full(n, family.demand), "log_level": log_level, "curve_ref": ref, **c}
        expected = np.exp(log_units(curve, price))
        if family.noise == "negbin":
            k = family.dispersion
            demand = rng.poisson(expected * rng.gamma(k, 1 / k, n))
        else:
            demand = rng.poisson(expected)
        sold = np.minimum(demand, on_hand)
        sold_history.append(sold)
        views_mean = usual * cfg.views_per_unit * (np.exp(shock) if family.traffic_follows_shock else 1.0)
        views = rng.poisson(views_mean)
        prev_views_gap = np.log1p(views) - np.log1p(usual * cfg.views_per_unit)
        returned = rng.binomial(sold_history[-4], cfg.return_rate) if t >= 3 else np.zeros(n, np.int64)
        rows.append(
            pd.DataFrame(
                {
                    "sku": p["sku"],
                    "sku_idx": p["sku_idx"].astype(np.int64),
                    "date": day,
                    "day_idx": np.int32(t),
                    "price": price,
                    "ref_price": ref,
                    "discounted": markdown & ~promo & ~tested,
                    "promo": promo & ~tested,
                    "price_test": tested,
                    "markdown_triggered": markdown,
                    "promo_scheduled": promo,
                    "shock": shock,
                    "competitor_median": competitor_median,
                    "competitor_prices": list(competitor_prices[:, : cfg.n_competitors]),
                    "competitor_observed": list(rng.random((n, n_comp))[:, : cfg.n_competitors] < 0.7),
                    "competitor_in_stock": list(rng.random((n, n_comp))[:, : cfg.n_competitors] < 0.95),
                    "expected_demand": expected,
                    "demand": demand.astype(np.int32),
                    "units_sold": sold.astype(np.int32),
                    "lines_of_two": rng.binomial(sold // 2, 0.15).astype(np.int32),
                    "units_returned": returned.astype(np.int32),
                    "on_hand_start": on_hand.astype(np.int32),
                    "on_order": np.where(on_hand < cap / 2, cap - on_hand, 0).astype(np.int32),
                    "censored": demand > sold,
                    "views": views.astype(np.int32),
                    "add_to_carts": rng.binomial(views, min(1.0, 1.8 / max(cfg.views_per_unit, 1.8))).astype(
                        np.int32
                    ),
                    "other_events": rng.poisson(expected * 0.1).astype(np.int32),
                    **{k: v for k, v in curve.items()},
                }
            )
        )
        # Shoppers remember prices: the reference moves towards today's.
        memory = p["memory"].to_numpy(float)
        reference_price = (1 - memory) * reference_price + memory * price
    out = pd.concat(rows, ignore_index=True)
    # The catalog is today's: its unit cost is the last one (cost-plus shops' costs moved).
    params["unit_cost"] = np.round(cost, 2)
    params["min_price"] = np.maximum(params["min_price"], np.round(cost * 1.05, 2))
    return out


def _simulator_truth(truth_days: Any, truth_params: Any) -> Any:
    """Today's simulator's truth as curve columns: log-log in price around everything else.

    The simulator's ``expected_demand`` is its formula at the day's price, so the level is what is left
    after taking the price term out (no second copy of the formula).
    """
    joined = truth_days.join(truth_params.select("sku", "elasticity"), "sku")
    level = F.log("expected_demand") - F.col("elasticity") * F.log(F.col("price") / F.col("ref_price"))
    return joined.select(
        *SKU_DAY_SCHEMA.fieldNames(),
        F.lit("loglog").alias("form"),
        level.alias("log_level"),
        F.col("ref_price").alias("curve_ref"),
        F.col("elasticity").alias("c1"),
        *[F.lit(0.0).alias(c) for c in ("c2", "c3", "c4")],
    )


@dataclass
class FamilyMarket:
    """A written evaluation market: where its files and truth are, and the night to price."""

    family: str
    seed: int
    market: str  # every day's landing files (deliver the history from here)
    truth: str
    history_end: str  # the last day delivered: the nightly job runs on this date
    price_date: str  # the day after: its true curve judges the prices
    summary: dict[str, Any]


def generate_market(
    spark: SparkSession, family: Family, cfg: SimulateConfig, market: str, truth: str
) -> FamilyMarket:
    """Write ``family``'s market (``cfg.n_days`` days of history plus the night to price) and its truth.

    Landing files go to ``market`` (all days; deliver the history with
    :func:`pricing.sim.deliver.deliver`), truth to ``truth``: ``sku_params``, ``sku_day`` (with the
    true curve, :data:`TRUTH_DAY_SCHEMA`), ``family.json``.
    """
    market, truth = market.rstrip("/"), truth.rstrip("/")
    days = cfg.n_days + 1
    full = derive(cfg, {"n_days": days})
    if family.demand == "simulator":
        summary = simulate_market(spark, full, market, f"{truth}/_simulator").rows
        params_df = spark.read.parquet(f"{truth}/_simulator/sku_params")
        truth_days = _simulator_truth(spark.read.parquet(f"{truth}/_simulator/sku_day"), params_df)
        truth_days.write.mode("overwrite").parquet(f"{truth}/sku_day")
        params_df.write.mode("overwrite").parquet(f"{truth}/sku_params")
    else:
        rng = np.random.default_rng([cfg.seed, MARKET_STREAMS.index(family.name) + 1])
        params, schema = _base_params(spark, full)
        history = _simulate_family(params, family, full, days, rng)
        # NaN in pandas is a missing MAP price: null in Spark.
        params_df = spark.createDataFrame(params[schema.fieldNames()], schema).withColumn(
            "map_price", F.when(~F.isnan("map_price"), F.col("map_price"))
        )
        days_df = spark.createDataFrame(history, TRUTH_DAY_SCHEMA).cache()
        days_df.write.mode("overwrite").parquet(f"{truth}/sku_day")
        params_df.write.mode("overwrite").parquet(f"{truth}/sku_params")
        summary, _ = write_daily_sources(
            days_df.select(*SKU_DAY_SCHEMA.fieldNames()), fx_rates(spark, full), full, market
        )
        catalog_rows(params_df, full).coalesce(1).write.mode("overwrite").json(f"{market}/catalog/initial")
        fx_rates(spark, full).select("date", "currency", F.col("rate").cast("string").alias("rate")).coalesce(
            1
        ).write.mode("overwrite").option("header", True).csv(f"{market}/fx_rates")
        summary["catalog"] = len(params)
        days_df.unpersist()
    history_end = cfg.start_date + timedelta(days=cfg.n_days - 1)
    result = FamilyMarket(
        family=family.name,
        seed=cfg.seed,
        market=market,
        truth=truth,
        history_end=history_end.isoformat(),
        price_date=(history_end + timedelta(days=1)).isoformat(),
        summary=dict(summary),
    )
    _write_bytes(
        spark,
        f"{truth}/family.json",
        json.dumps(
            {**asdict(family), **asdict(result), "n_skus": cfg.n_skus, "n_days": cfg.n_days},
            indent=2,
            default=str,
        ).encode(),
    )
    return result


__all__ = [
    "ALL_FAMILIES",
    "CURVE_COLUMNS",
    "FAMILIES",
    "HELD_OUT_FAMILIES",
    "FORMS",
    "HISTORIES",
    "MARKET_STREAMS",
    "Family",
    "FamilyMarket",
    "generate_market",
    "log_units",
    "true_elasticity",
]
