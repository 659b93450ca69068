"""Price experiments: proof in the shop (docs/experiments.md).

``start``: part of the catalogue (``share`` of the randomisation units: SKUs or whole categories) is split
at random, within strata of category and sales level, half into **treatment** (the system's prices, as
every other SKU) and half into **control** (prices kept: scoring holds them with
``binding_constraint = experiment_control``, inside their guardrails) for the nights ``start_date``
.. ``end_date``. The split is recorded in ``gold/experiment_assignments`` and the experiment in
``gold/experiments``.

``readout``: from the gold panel, each unit's mean profit, revenue and units per day before the start
(the pre-period) and since; the effect of treatment per unit and day is the difference of the arms'
post-period means adjusted for their pre-period difference, by CUPED (the adjustment's slope estimated
from the data, within arms) and by difference-in-differences (slope 1), with Welch intervals; the
pre-period difference itself is the balance check. Per category as well when SKUs were randomised.
Rows go to ``gold/experiment_readouts`` (appended: each readout is kept).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from pricing.lakehouse import io
from pricing.lakehouse.tables import (
    EXPERIMENT_ASSIGNMENTS,
    EXPERIMENT_READOUTS,
    EXPERIMENTS,
    PRICE_RECOMMENDATIONS,
    SKU_DAY,
    Lakehouse,
)
from pricing.schemas import (
    EXPERIMENT_READOUTS_SCHEMA,
)

log = logging.getLogger(__name__)

ARMS = ("treatment", "control")
METRICS = ("profit", "revenue", "units")
UNITS = ("sku", "category", "store")
CONTROL_REASON = "experiment_control"
# Price exploration (score.exploration_share) reads out as the experiment of this reserved name, its
# pre-period this many days before its first explored night.
EXPLORATION = "exploration"
EXPLORATION_PRE_DAYS = 28
PRICE_TEST = "price_test"
# Why a SKU kept its price: it moved too few times in the history (``score.min_price_changes``); with
# ``score.exploration_scope=no_price_history`` these SKU-nights are exploration's control arm.
NO_PRICE_HISTORY = "no_price_history"
# Sales-level strata: SKUs (or categories) are ranked by pre-period units per day into this many bands.
SALES_LEVELS = 3


class ExperimentError(ValueError):
    """An experiment that cannot be started or read out as asked."""


def _hash(*columns: Any) -> Any:
    """A uniform draw in [0, 1) per row, fixed by its inputs (the experiment's seed among them)."""
    return (F.abs(F.xxhash64(*columns)) % F.lit(1_000_003)) / F.lit(1_000_003.0)


def experiment_units(pre_df: DataFrame, unit: str) -> DataFrame:
    """Per SKU of the pre-period panel rows ``pre_df`` (sku, date, category, units_sold): the unit it is
    randomised with (``unit`` "sku": itself; "category": its category) and that unit's stratum (its
    category and sales level; a category's stratum is its sales level). Pure."""
    if unit not in ("sku", "category"):
        raise ExperimentError(f"unknown randomisation unit {unit!r}")
    skus = pre_df.groupBy("sku").agg(
        F.coalesce(F.max("category"), F.lit("unknown")).alias("category"),
        F.avg(F.col("units_sold").cast("double")).alias("daily_units"),
    )
    if unit == "sku":
        units = skus.select(F.col("sku").alias("unit"), "category", "daily_units")
    else:
        units = skus.groupBy(F.col("category").alias("unit")).agg(
            F.first("category").alias("category"), F.sum("daily_units").alias("daily_units")
        )
    # Sales level across all units (one small window: a catalogue's SKUs, not its rows).
    level = F.ntile(SALES_LEVELS).over(Window.orderBy("daily_units", "unit"))
    units = units.withColumn("level", level)
    stratum = (
        F.concat_ws("|", "category", F.concat(F.lit("sales"), "level"))
        if unit == "sku"
        else F.concat(F.lit("sales"), F.col("level"))
    )
    units = units.select("unit", stratum.alias("stratum"))
    key = "sku" if unit == "sku" else "category"
    return skus.join(units, skus[key] == units["unit"]).select(skus["sku"], "unit", "stratum")


def assign_arms(units_df: DataFrame, name: str, seed: int, share: float) -> DataFrame:
    """Draw ``share`` of the units of ``units_df`` (unit, stratum) into the experiment and split them
    half and half within each stratum, and overall, into treatment and control. Pure and
    reproducible: the same name, seed and units give the same split.

    Taking part is systematic sampling through the units ordered by stratum and a random key, from a
    random start: every stratum contributes its share (to within one unit), and the whole draw is
    ``share`` of the units to within one. Within a stratum, the units in a random order are paired off
    and each pair split by its stratum's own coin; the odd unit of every odd-sized stratum goes into
    one pool, split the same way in a random order of its own. Every unit is treated with probability
    one half, independently of which stratum came before it, and the arms are halves to within one in
    every stratum and overall, however many strata hold a single unit.
    """
    if not 0 < share <= 1:
        raise ExperimentError(f"share must be in (0, 1], got {share}")
    ident = [F.lit(name), F.lit(seed)]
    start = _hash(*ident, F.lit("start"))
    ordered = units_df.select("unit", "stratum").distinct()
    k = F.row_number().over(Window.orderBy("stratum", "_draw", "unit")) - 1
    taken = (
        ordered.withColumn("_draw", _hash(*ident, F.col("unit")))
        .withColumn("_k", k)
        .where(F.floor((F.col("_k") + 1) * share + start) > F.floor(F.col("_k") * share + start))
    )
    in_stratum = Window.partitionBy("stratum")
    position = F.row_number().over(in_stratum.orderBy("_split", "unit")) - 1
    size = F.count("*").over(in_stratum)
    paired = taken.withColumn("_split", _hash(*ident, F.col("unit"), F.lit("arm"))).select(
        "unit",
        "stratum",
        position.alias("_j"),
        ((size % 2 == 1) & (position == size - 1)).alias("_odd"),
    )

    def coin(*key: Any) -> Any:
        return F.when(_hash(*ident, *key) < 0.5, 0).otherwise(1)

    pool_order = F.row_number().over(
        Window.partitionBy("_odd").orderBy(_hash(*ident, F.col("unit"), F.lit("pool")), "unit")
    )
    slot = F.when(F.col("_odd"), pool_order - 1 + coin(F.lit("pool"))).otherwise(
        F.col("_j") + coin(F.col("stratum"), F.lit("pairs"))
    )
    return paired.select("unit", "stratum", F.when(slot % 2 == 0, ARMS[0]).otherwise(ARMS[1]).alias("arm"))


def running_experiments(spark: SparkSession, lakehouse: Lakehouse, price_date: date) -> DataFrame:
    """The experiments whose nights include ``price_date``."""
    return lakehouse.read_declared(spark, EXPERIMENTS).where(
        (F.col("start_date") <= F.lit(price_date)) & (F.col("end_date") >= F.lit(price_date))
    )


def controls_on(spark: SparkSession, lakehouse: Lakehouse, price_date: date) -> DataFrame:
    """The SKUs (sku) in the control arm of an experiment running on ``price_date``."""
    running = running_experiments(spark, lakehouse, price_date).select(F.col("name").alias("experiment"))
    assigned = lakehouse.read_declared(spark, EXPERIMENT_ASSIGNMENTS)
    return assigned.join(running, "experiment").where(F.col("arm") == ARMS[1]).select("sku").distinct()


@dataclass
class StartedExperiment:
    name: str
    unit: str
    start_date: date
    end_date: date
    units_treatment: int
    units_control: int
    skus_treatment: int
    skus_control: int
    eligible_units: int

    def render(self) -> str:
        return (
            f"experiment {self.name}: {self.units_treatment} {self.unit} unit(s) in treatment "
            f"({self.skus_treatment} SKUs), {self.units_control} in control ({self.skus_control} SKUs) of "
            f"{self.eligible_units} eligible; nights {self.start_date} .. {self.end_date}; control SKUs keep "
            f"their prices ({CONTROL_REASON})"
        )


def start_experiment(
    spark: SparkSession,
    lakehouse: Lakehouse,
    name: str,
    share: float,
    start: date,
    days: int,
    unit: str = "sku",
    seed: int = 0,
    pre_days: int = 28,
) -> StartedExperiment:
    """Split part of the catalogue for a price experiment from the night ``start`` for ``days`` nights.

    Eligible: SKUs with panel rows in the ``pre_days`` before ``start`` and in no other experiment whose
    nights overlap. ``start`` must be a night not priced yet (after the panel's last day and after the
    last night in ``gold/price_recommendations``).
    """
    from pricing.decide.stage import next_night

    if unit == "store":
        raise ExperimentError(
            "--by store needs a price per store, and this lakehouse prices each SKU once for every "
            "channel (gold/sku_day has no store): randomise by sku or category"
        )
    if unit not in UNITS:
        raise ExperimentError(f"--by must be one of {', '.join(UNITS)}, got {unit!r}")
    if not name.strip() or name != name.strip():
        raise ExperimentError("an experiment needs a name without leading or trailing spaces")
    if name == EXPLORATION:
        raise ExperimentError(f"{EXPLORATION!r} is price exploration's readout (score.exploration_share)")
    if days < 1 or pre_days < 1:
        raise ExperimentError("--days and --pre-days must be at least 1")
    existing = lakehouse.read_declared(spark, EXPERIMENTS).cache()
    cached = [existing]
    try:
        if existing.where(F.col("name") == name).limit(1).count():
            raise ExperimentError(f"an experiment named {name!r} already exists")
        # The first night whose prices are not set yet: after the panel, and after the last night priced.
        first_open = next_night(spark, lakehouse)
        if lakehouse.exists(spark, PRICE_RECOMMENDATIONS):
            last_priced = io.first_value(
                lakehouse.read(spark, PRICE_RECOMMENDATIONS).agg(F.max("price_date"))
            )
            if last_priced is not None:
                first_open = max(first_open, last_priced + timedelta(days=1))
        if start < first_open:
            raise ExperimentError(
                f"the night {start} is already priced or past: start on {first_open} or later"
            )
        end = start + timedelta(days=days - 1)
        overlapping = existing.where(
            (F.col("start_date") <= F.lit(end)) & (F.col("end_date") >= F.lit(start))
        )
        busy = (
            lakehouse.read_declared(spark, EXPERIMENT_ASSIGNMENTS)
            .join(overlapping.select(F.col("name").alias("experiment")), "experiment")
            .select("sku")
        )
        panel = lakehouse.read(spark, SKU_DAY)
        pre = panel.where(
            (F.col("date") >= F.lit(start - timedelta(days=pre_days))) & (F.col("date") < F.lit(start))
        ).join(busy, "sku", "left_anti")
        units = experiment_units(pre.select("sku", "date", "category", "units_sold"), unit).cache()
        cached.append(units)
        eligible = units.select("unit").distinct().count()
        if eligible < 2:
            raise ExperimentError(
                f"only {eligible} eligible {unit}(s) with sales history in the {pre_days} days before {start}"
            )
        arms = assign_arms(units, name, seed, share)
        assigned = (
            units.join(arms.select("unit", "arm"), "unit")
            .select(F.lit(name).alias("experiment"), "sku", "unit", "stratum", "arm")
            .withColumn("assigned_at", F.current_timestamp())
            .cache()
        )
        cached.append(assigned)
        counts = {
            (r["arm"]): (int(r["units"]), int(r["skus"]))
            for r in assigned.groupBy("arm")
            .agg(F.countDistinct("unit").alias("units"), F.count("*").alias("skus"))
            .collect()
        }
        treated, control = counts.get(ARMS[0], (0, 0)), counts.get(ARMS[1], (0, 0))
        if not treated[0] or not control[0]:
            raise ExperimentError(
                f"share {share} of {eligible} eligible {unit}(s) leaves an arm empty: raise --share"
            )
        # Assignments first (replacing any a crashed start left), the experiment row last: a split is
        # only in force once its experiment exists.
        lakehouse.replace_where(
            EXPERIMENT_ASSIGNMENTS, assigned, f"experiment = '{name.replace(chr(39), chr(39) * 2)}'"
        )
        row = spark.createDataFrame(
            [
                (
                    name,
                    unit,
                    float(share),
                    int(seed),
                    start,
                    end,
                    int(days),
                    int(pre_days),
                    "keep",
                    treated[0],
                    control[0],
                )
            ],
            "name string, unit string, share double, seed long, start_date date, end_date date, days int, "
            "pre_days int, control string, units_treatment long, units_control long",
        ).withColumn("created_at", F.current_timestamp())
        lakehouse.append(EXPERIMENTS, row)
    finally:
        for frame in cached:
            frame.unpersist()
    started = StartedExperiment(
        name, unit, start, end, treated[0], control[0], treated[1], control[1], eligible
    )
    log.info(started.render())
    return started


def _metric_columns() -> list[Any]:
    """A panel row's :data:`METRICS`: profit (revenue less units at the day's unit cost), revenue, units."""
    return [
        (F.col("revenue") - F.col("units_sold") * F.coalesce("unit_cost", F.lit(0.0))).alias("profit"),
        F.col("revenue").cast("double").alias("revenue"),
        F.col("units_sold").cast("double").alias("units"),
    ]


def unit_outcomes(
    panel_df: DataFrame, assignments_df: DataFrame, start: date, through: date, pre_days: int
) -> DataFrame:
    """Per randomised unit: its arm, segment (its category) and mean profit, revenue and units per day in
    the pre-period (``pre_<metric>``) and from ``start`` to ``through`` (``post_<metric>``). Pure.

    A unit's day is the sum over its SKUs; profit is revenue less units at the day's unit cost.
    """
    pre_start = start - timedelta(days=pre_days)
    rows = (
        panel_df.where((F.col("date") >= F.lit(pre_start)) & (F.col("date") <= F.lit(through)))
        .join(assignments_df.select("sku", "unit", "arm"), "sku")
        .select(
            "unit",
            "arm",
            "date",
            "category",
            F.when(F.col("date") < F.lit(start), "pre").otherwise("post").alias("period"),
            *_metric_columns(),
        )
    )
    daily = rows.groupBy("unit", "arm", "period", "date").agg(
        F.max("category").alias("category"), *[F.sum(m).alias(m) for m in METRICS]
    )
    periods = daily.groupBy("unit", "arm", "period").agg(
        F.max("category").alias("category"), *[F.avg(m).alias(m) for m in METRICS]
    )
    pivoted = (
        periods.groupBy("unit", "arm")
        .pivot("period", ["pre", "post"])
        .agg(F.max("category").alias("category"), *[F.first(m).alias(m) for m in METRICS])
    )
    return pivoted.select(
        "unit",
        "arm",
        F.coalesce("pre_category", "post_category", F.lit("unknown")).alias("segment"),
        *[f"{p}_{m}" for p in ("pre", "post") for m in METRICS],
    ).where(F.col("pre_units").isNotNull())


def exploration_outcomes(
    panel_df: DataFrame,
    recommendations_df: DataFrame,
    start: date,
    through: date,
    pre_days: int,
    scope: str = "all",
) -> DataFrame:
    """Exploration read as an experiment of SKU-nights (shaped like :func:`unit_outcomes`). Pure.

    Each night from ``start`` to ``through`` draws its explored SKUs at random (``score.exploration_share``,
    hashed from SKU and night): a SKU-night is in treatment when its recommendation was a price test
    (as recommended: a test that waited for review still counts, intention to treat), in control
    otherwise; with ``scope="no_price_history"`` (``score.exploration_scope``) only SKU-nights drawn
    from the same pool are controls, those kept as ``no_price_history``. Its post-period outcome is
    that day's; its pre-period, the SKU's mean per day over the ``pre_days`` before ``start`` (the
    covariate CUPED adjusts by). Segment: the SKU's category.
    """
    metrics = _metric_columns()
    pre = (
        panel_df.where(
            (F.col("date") >= F.lit(start - timedelta(days=pre_days))) & (F.col("date") < F.lit(start))
        )
        .select("sku", *metrics)
        .groupBy("sku")
        .agg(*[F.avg(m).alias(f"pre_{m}") for m in METRICS])
    )
    nights = recommendations_df.where(
        (F.col("price_date") >= F.lit(start)) & (F.col("price_date") <= F.lit(through))
    )
    if scope == NO_PRICE_HISTORY:
        nights = nights.where(F.col("binding_constraint").isin(PRICE_TEST, NO_PRICE_HISTORY))
    nights = nights.select(
        "sku",
        F.col("price_date").alias("date"),
        F.when(F.col("binding_constraint") == PRICE_TEST, ARMS[0]).otherwise(ARMS[1]).alias("arm"),
    )
    days = panel_df.select("sku", "date", F.coalesce("category", F.lit("unknown")).alias("segment"), *metrics)
    return (
        nights.join(days, ["sku", "date"])
        .join(pre, "sku")
        .select(
            F.concat_ws("|", "sku", F.col("date").cast("string")).alias("unit"),
            "arm",
            "segment",
            *[F.col(f"pre_{m}") for m in METRICS],
            *[F.col(m).alias(f"post_{m}") for m in METRICS],
        )
    )


def _moments(outcomes_df: DataFrame, by: list[str]) -> pd.DataFrame:
    """Per group and arm: count, means, variances and the pre/post covariance of each metric."""
    aggregates = [F.count("*").alias("n")]
    for m in METRICS:
        pre, post = F.col(f"pre_{m}"), F.col(f"post_{m}")
        aggregates += [
            F.avg(pre).alias(f"{m}_pre_mean"),
            F.avg(post).alias(f"{m}_post_mean"),
            F.var_samp(pre).alias(f"{m}_pre_var"),
            F.var_samp(post).alias(f"{m}_post_var"),
            F.covar_samp(pre, post).alias(f"{m}_cov"),
            F.sum(F.when(post.isNotNull(), 1).otherwise(0)).alias(f"{m}_n_post"),
        ]
    return outcomes_df.groupBy(*by, "arm").agg(*aggregates).toPandas()


def _welch(effect: float, var_t: float, n_t: int, var_c: float, n_c: int, level: float) -> dict[str, float]:
    from scipy import stats

    parts = (max(var_t, 0.0) / n_t, max(var_c, 0.0) / n_c)
    se = math.sqrt(sum(parts))
    if se == 0.0:
        return {"effect": effect, "se": 0.0, "ci_low": effect, "ci_high": effect, "p_value": float("nan")}
    df = (
        sum(parts) ** 2 / (parts[0] ** 2 / (n_t - 1) + parts[1] ** 2 / (n_c - 1))
        if all(parts)
        else n_t + n_c - 2
    )
    half = float(stats.t.ppf((1 + level) / 2, df)) * se
    p = float(2 * stats.t.sf(abs(effect) / se, df))
    return {"effect": effect, "se": se, "ci_low": effect - half, "ci_high": effect + half, "p_value": p}


def _effects_of(moments: pd.DataFrame, level: float) -> list[dict[str, Any]]:
    """The estimates of one segment from its two arms' moments (rows of :func:`_moments`)."""
    arms = {r["arm"]: r for _, r in moments.iterrows()}
    if set(arms) != set(ARMS):
        return []
    t, c = arms[ARMS[0]], arms[ARMS[1]]
    n_t, n_c = int(t["n"]), int(c["n"])
    if n_t < 2 or n_c < 2:
        return []
    rows: list[dict[str, Any]] = []
    for m in METRICS:
        g = {
            a: {
                k: float(r[f"{m}_{k}"]) if pd.notna(r[f"{m}_{k}"]) else 0.0
                for k in ("pre_mean", "post_mean", "pre_var", "post_var", "cov")
            }
            for a, r in arms.items()
        }
        gt, gc = g[ARMS[0]], g[ARMS[1]]
        pre_diff = gt["pre_mean"] - gc["pre_mean"]
        balance = _welch(pre_diff, gt["pre_var"], n_t, gc["pre_var"], n_c, level)
        pooled_sd = math.sqrt((gt["pre_var"] + gc["pre_var"]) / 2)
        rows.append(
            {
                "metric": m,
                "estimator": "pre_period_balance",
                **balance,
                "control_mean": gc["pre_mean"],
                "relative_effect": pre_diff / gc["pre_mean"] if gc["pre_mean"] else None,
                "standardized_difference": pre_diff / pooled_sd if pooled_sd else 0.0,
            }
        )
        if int(t[f"{m}_n_post"]) < n_t or int(c[f"{m}_n_post"]) < n_c:
            continue  # no post-period yet for some unit: only the balance check
        # CUPED's slope: the pre/post covariance within arms over the pre-period variance within arms.
        spread = (n_t - 1) * gt["pre_var"] + (n_c - 1) * gc["pre_var"]
        theta = ((n_t - 1) * gt["cov"] + (n_c - 1) * gc["cov"]) / spread if spread > 0 else 0.0
        for estimator, slope in (("cuped", theta), ("did", 1.0)):
            effect = gt["post_mean"] - gc["post_mean"] - slope * pre_diff

            def adjusted_var(a: dict[str, float], s: float = slope) -> float:
                return a["post_var"] - 2 * s * a["cov"] + s * s * a["pre_var"]

            estimate = _welch(effect, adjusted_var(gt), n_t, adjusted_var(gc), n_c, level)
            rows.append(
                {
                    "metric": m,
                    "estimator": estimator,
                    **estimate,
                    "control_mean": gc["post_mean"],
                    "relative_effect": effect / gc["post_mean"] if gc["post_mean"] else None,
                    "standardized_difference": None,
                }
            )
    for row in rows:
        row.update(n_treatment=n_t, n_control=n_c)
    return rows


def experiment_effects(outcomes_df: DataFrame, level: float = 0.9, by_segment: bool = True) -> pd.DataFrame:
    """The readout of :func:`unit_outcomes`: per segment (``all``, and each category when
    ``by_segment``), metric and estimator, the effect of treatment per unit and day with its standard
    error, ``level`` interval and two-sided p-value (one row per estimator: ``cuped``, ``did``,
    ``pre_period_balance``)."""
    if not 0 < level < 1:
        raise ExperimentError(f"level must be in (0, 1), got {level}")
    rows = [{"segment": "all", **r} for r in _effects_of(_moments(outcomes_df, []), level)]
    if by_segment:
        per_segment = _moments(outcomes_df, ["segment"])
        for segment, moments in per_segment.groupby("segment", sort=True):
            rows += [{"segment": str(segment), **r} for r in _effects_of(moments, level)]
    columns = ["segment", "metric", "estimator", "effect", "se", "ci_low", "ci_high", "p_value"]
    columns += ["control_mean", "relative_effect", "standardized_difference", "n_treatment", "n_control"]
    return pd.DataFrame(rows, columns=columns).assign(level=level)


def list_experiments(spark: SparkSession, lakehouse: Lakehouse) -> pd.DataFrame:
    """Every experiment of the lakehouse, newest first."""
    table = lakehouse.read_declared(spark, EXPERIMENTS)
    return table.orderBy(F.col("created_at").desc()).drop("seed").toPandas()


def read_experiment(spark: SparkSession, lakehouse: Lakehouse, name: str) -> dict[str, Any]:
    """The ``gold/experiments`` row of ``name`` as a dict."""
    found = lakehouse.read_declared(spark, EXPERIMENTS).where(F.col("name") == name).collect()
    if not found:
        raise ExperimentError(f"no experiment named {name!r} in {lakehouse.root}")
    return found[0].asDict()


def readout(
    spark: SparkSession,
    lakehouse: Lakehouse,
    name: str,
    through: date | None = None,
    level: float = 0.9,
    record: bool = True,
    exploration_scope: str = "all",
) -> pd.DataFrame:
    """Read out experiment ``name`` over the panel's days up to ``through`` (default: the panel's last day,
    at most the experiment's last night); append the rows to ``gold/experiment_readouts`` (unless not
    ``record``) and return them. ``exploration_scope``: ``score.exploration_scope``, for ``exploration``."""
    experiment = read_experiment(spark, lakehouse, name) if name != EXPLORATION else None
    if not lakehouse.exists(spark, SKU_DAY):
        raise ExperimentError(f"{lakehouse.path(SKU_DAY)} does not exist: nothing to read out")
    panel = lakehouse.read(spark, SKU_DAY)
    last = io.first_value(panel.agg(F.max("date")))
    if last is None:
        raise ExperimentError("gold/sku_day is empty: nothing to read out")
    if experiment is None:
        recommendations = lakehouse.read(spark, PRICE_RECOMMENDATIONS)
        start = io.first_value(
            recommendations.where(F.col("binding_constraint") == PRICE_TEST).agg(F.min("price_date"))
        )
        if start is None:
            raise ExperimentError("no night has explored a price yet (score.exploration_share is 0)")
        through = min(through or last, last)
        outcomes = exploration_outcomes(
            panel, recommendations, start, through, EXPLORATION_PRE_DAYS, exploration_scope
        )
        unit, pre_days = "sku", EXPLORATION_PRE_DAYS
    else:
        start, unit, pre_days = experiment["start_date"], experiment["unit"], int(experiment["pre_days"])
        through = min(through or last, last, experiment["end_date"])
        assignments = lakehouse.read_declared(spark, EXPERIMENT_ASSIGNMENTS).where(
            F.col("experiment") == name
        )
        outcomes = unit_outcomes(panel, assignments, start, through, pre_days)
    outcomes = outcomes.cache()
    try:
        effects = experiment_effects(outcomes, level, by_segment=unit == "sku")
    finally:
        outcomes.unpersist()
    days_post = max((through - start).days + 1, 0)
    effects = effects.assign(
        experiment=name,
        days_pre=pre_days,
        days_post=days_post,
        through_date=through,
    )
    if record and not effects.empty:
        rows = spark.createDataFrame(
            effects[[f.name for f in EXPERIMENT_READOUTS_SCHEMA.fields if f.name != "computed_at"]],
            StructType(EXPERIMENT_READOUTS_SCHEMA.fields[:-1]),
        ).withColumn("computed_at", F.current_timestamp())
        lakehouse.append(EXPERIMENT_READOUTS, rows)
    return effects


def render_readout(effects: pd.DataFrame, estimator: str = "cuped") -> str:
    """A readout as text: the whole experiment's effects and its balance check, then per category."""
    if effects.empty:
        return "no readout: fewer than two units in an arm"
    level = float(effects["level"].iloc[0])
    lines = []
    whole = effects[effects["segment"] == "all"]
    post = whole[whole["estimator"] == estimator]
    n_t, n_c = int(whole["n_treatment"].iloc[0]), int(whole["n_control"].iloc[0])
    days = int(effects["days_post"].iloc[0])
    lines.append(
        f"{n_t} treatment vs {n_c} control units, {days} day(s) since the start, "
        f"{int(effects['days_pre'].iloc[0])} before; effect per unit and day ({estimator}, "
        f"{level:.0%} interval):"
    )
    for _, r in post.iterrows():
        rel = f" ({r['relative_effect']:+.1%} of control)" if pd.notna(r["relative_effect"]) else ""
        lines.append(
            f"  {r['metric']:<8} {r['effect']:+10.3f}  [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]{rel}  "
            f"p={r['p_value']:.3f}"
        )
    if post.empty:
        lines.append("  (no day since the start in the panel yet)")
    balance = whole[whole["estimator"] == "pre_period_balance"]
    lines.append("pre-period balance (treatment - control before the start):")
    for _, r in balance.iterrows():
        lines.append(
            f"  {r['metric']:<8} {r['effect']:+10.3f}  standardized "
            f"{r['standardized_difference']:+.2f}  p={r['p_value']:.3f}"
        )
    segments = effects[
        (effects["segment"] != "all") & (effects["estimator"] == estimator) & (effects["metric"] == "profit")
    ]
    if not segments.empty:
        lines.append(f"profit per category ({estimator}):")
        for _, r in segments.iterrows():
            lines.append(
                f"  {r['segment']:<20} {r['effect']:+10.3f}  [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]  "
                f"n={int(r['n_treatment'])}/{int(r['n_control'])}"
            )
    return "\n".join(lines)


__all__ = [
    "ARMS",
    "CONTROL_REASON",
    "ExperimentError",
    "EXPLORATION",
    "NO_PRICE_HISTORY",
    "PRICE_TEST",
    "assign_arms",
    "controls_on",
    "experiment_effects",
    "experiment_units",
    "exploration_outcomes",
    "list_experiments",
    "readout",
    "render_readout",
    "start_experiment",
    "unit_outcomes",
]
