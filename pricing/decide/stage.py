"""`pricing score`: tomorrow's price for every SKU, chosen by the champion model inside the guardrails.

gold/sku_day -> each SKU's feature row for ``price_date`` -> in Arrow batches on the executors (the model
loaded once per task from a broadcast): expected demand at the current price and its elasticity
interval, the guardrail band, a candidate grid, expected units at every candidate, the profit-maximising
choice and the guardrail that decided it -> approval status and overrides (Spark joins) -> MERGE into
``gold/price_recommendations`` (key sku, price_date) and ``gold/current_prices`` (key sku).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, StructField, StructType

from pricing.config import FeaturesConfig, PolicyConfig, PricingConfig, ScoreConfig, TrainConfig
from pricing.decide.approval import apply_decisions, approve, prices_in_force, publish_current_prices
from pricing.decide.choose import candidates_with_current, choose_prices, gain_bounds, posterior_gains
from pricing.decide.experiment import CONTROL_REASON, NO_PRICE_HISTORY, PRICE_TEST, controls_on
from pricing.decide.guardrails import BAND_INPUTS, price_band
from pricing.features import feature_rows, price_changes, read_sku_day
from pricing.lakehouse import io
from pricing.lakehouse.tables import (
    PRICE_DECISIONS,
    PRICE_OVERRIDES,
    PRICE_RECOMMENDATIONS,
    SKU_DAY,
    TEXT_EMBEDDINGS,
    Lakehouse,
)
from pricing.model.dataset import InputSpec, model_inputs
from pricing.model.predict import LoadedModel, foreign_model
from pricing.schemas import (
    PRICE_RECOMMENDATIONS_SCHEMA,
)

log = logging.getLogger(__name__)

# Guardrail inputs carried from the feature row to the scoring batches (besides price and unit_cost).
_BAND_COLUMNS = ["map_price", "min_price", "max_price", "comp_median_price", "days_of_cover"]

# What the scoring batches return: the recommendation's model-side columns, nullable (a SKU without
# model output has no expectations), plus whether the model knew the SKU (for approval).
_SCORED_COLUMNS = [
    "current_price",
    "recommended_price",
    "price_floor",
    "price_ceiling",
    "floor_reason",
    "ceiling_reason",
    "band_note",
    "unit_cost",
    "expected_units_current",
    "expected_revenue_current",
    "expected_profit_current",
    "expected_units_recommended",
    "expected_revenue_recommended",
    "expected_profit_recommended",
    "elasticity",
    "elasticity_low",
    "elasticity_high",
    "binding_constraint",
    "expected_gain",
    "expected_gain_low",
    "expected_gain_high",
]
SCORED_SCHEMA = StructType(
    [
        PRICE_RECOMMENDATIONS_SCHEMA["sku"],
        PRICE_RECOMMENDATIONS_SCHEMA["price_date"],
        StructField("known_sku", BooleanType(), False),
        *[StructField(c, PRICE_RECOMMENDATIONS_SCHEMA[c].dataType, True) for c in _SCORED_COLUMNS],
    ]
)


@dataclass(frozen=True)
class Champion:
    """A registered model version, read once on the driver: weights, configuration, input spec."""

    name: str
    version: str
    state: bytes
    config: dict[str, Any]
    input_spec: InputSpec

    def load(self) -> LoadedModel:
        return LoadedModel(self.state, self.config)


def load_champion(tcfg: TrainConfig, alias: str, lakehouse: str | None = None) -> Champion | None:
    """The model version holding ``alias`` in the registry, or None when there is none yet or when it
    belongs to a lakehouse other than ``lakehouse`` (an id from :func:`pricing.lakehouse.io.lakehouse_id`)."""
    mlflow.set_tracking_uri(tcfg.tracking_uri)
    client = mlflow.MlflowClient()
    try:
        version = client.get_model_version_by_alias(tcfg.model_name, alias)
    except mlflow.exceptions.MlflowException:
        return None
    foreign = foreign_model(version, lakehouse)
    if foreign:
        log.warning("%s: not used", foreign)
        return None
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{tcfg.model_name}/{version.version}"))

    def artifact(name: str) -> Path:
        found = sorted(local.rglob(name))
        if not found:
            raise FileNotFoundError(f"model {tcfg.model_name} v{version.version} has no {name}")
        return found[0]

    return Champion(
        name=tcfg.model_name,
        version=str(version.version),
        state=artifact("weights.pt").read_bytes(),
        config=json.loads(artifact("config.json").read_text()),
        input_spec=InputSpec.from_json(artifact("input_spec.json").read_text()),
    )


def _optional(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame.columns else pd.Series(np.nan, index=frame.index)


def _band(frame: pd.DataFrame, interval: pd.DataFrame, policy: PolicyConfig) -> pd.DataFrame:
    """The guardrail band of model-input rows priced at ``price``, given their elasticity interval."""
    inputs = pd.DataFrame(
        {
            "current_price": frame["price"].to_numpy(float),
            "unit_cost": frame["unit_cost"].to_numpy(float),
            **{c: _optional(frame, c).to_numpy(float) for c in _BAND_COLUMNS},
            "elasticity_low": interval["elasticity_low"].to_numpy(float),
            "elasticity_high": interval["elasticity_high"].to_numpy(float),
        }
    )
    return price_band(inputs[BAND_INPUTS], policy)


def _unit_hash(*columns: Any) -> np.ndarray:
    """A uniform in [0, 1) per row, from a hash of the columns' values (same values, same draw)."""
    frame = pd.concat([pd.Series(np.asarray(c)).astype(str) for c in columns], axis=1)
    return pd.util.hash_pandas_object(frame, index=False).to_numpy(np.uint64) / 2.0**64


def _price_tests(frame: pd.DataFrame, candidates: pd.DataFrame, scfg: ScoreConfig) -> pd.DataFrame:
    """Exploration: for ``scfg.exploration_share`` of SKUs (drawn per SKU and night; with
    ``exploration_scope="no_price_history"`` only among SKUs without price history), a random
    candidate of their band; its columns of ``_TESTED`` indexed by ``row``."""
    empty = _no_picks()
    if scfg.exploration_share <= 0 or candidates.empty:
        return empty
    seed = pd.Series(str(scfg.exploration_seed), index=frame.index)
    explored = _unit_hash(frame["sku"], frame["date"], seed) < scfg.exploration_share
    if scfg.exploration_scope == NO_PRICE_HISTORY:
        explored &= _without_price_history(frame, scfg)
    pool = candidates[explored[candidates["row"].to_numpy()]]
    if pool.empty:
        return empty
    rows = pool["row"].to_numpy()
    draw = _unit_hash(frame["sku"].to_numpy()[rows] + "|test", pool["candidate_price"], seed.to_numpy()[rows])
    picked = pool.assign(_draw=draw).sort_values(["row", "_draw"]).drop_duplicates("row", keep="last")
    return picked.set_index("row")[list(_TESTED)]


def held_prices(frame: pd.DataFrame, candidates: pd.DataFrame) -> pd.DataFrame:
    """For SKUs in the control arm of a running experiment (``frame["held"]``), the candidate nearest
    their current price: the current price itself wherever the band allows it (keeping is always a
    candidate then), else the band's nearest allowed price, since guardrails outrank the experiment.
    Columns of ``_TESTED`` indexed by ``row``."""
    if "held" not in frame.columns:
        return _no_picks()
    return _nearest_current(candidates, frame["held"].eq(True).to_numpy())


def _blind_holds(frame: pd.DataFrame, candidates: pd.DataFrame, scfg: ScoreConfig) -> pd.DataFrame:
    """SKUs whose price moved fewer than ``scfg.min_price_changes`` times in the history keep it
    (the candidate nearest their current price, as :func:`held_prices`)."""
    if scfg.min_price_changes <= 0:
        return _no_picks()
    return _nearest_current(candidates, _without_price_history(frame, scfg))


def _without_price_history(frame: pd.DataFrame, scfg: ScoreConfig) -> np.ndarray:
    """Rows whose price moved fewer than ``max(1, scfg.min_price_changes)`` times in the history (none
    where the rows carry no count)."""
    if "price_changes" not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    changes = frame["price_changes"].fillna(0).to_numpy(float)
    return np.asarray(changes < max(1, scfg.min_price_changes))


def _nearest_current(candidates: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """For the rows marked in ``rows``, the candidate nearest the current price: the current price
    itself wherever the band allows it. Columns of ``_TESTED`` indexed by ``row``."""
    pool = candidates[rows[candidates["row"].to_numpy()]] if not candidates.empty else candidates
    if pool.empty:
        return _no_picks()
    distance = (pool["candidate_price"] - pool["current_price"]).abs()
    nearest = pool.assign(_d=distance).sort_values(["row", "_d", "candidate_price"]).drop_duplicates("row")
    return nearest.set_index("row")[list(_TESTED)]


# What an exploration pick (or a held price) replaces in the chosen row.
_TESTED = ("candidate_price", "expected_units", "gain", "gain_low", "gain_high")


def _no_picks() -> pd.DataFrame:
    """No row's choice replaced: the columns of ``_TESTED``, indexed by ``row``."""
    return pd.DataFrame({c: [] for c in _TESTED}, index=pd.Index([], dtype=np.int64, name="row"))


def score_batches(model_loader: Any, policy: PolicyConfig, scfg: ScoreConfig) -> Any:
    """A ``mapInPandas`` function over model-input rows (one per SKU) -> one scored row per SKU.

    ``model_loader()`` runs once per task and returns a :class:`LoadedModel`, or None when there is no
    model: then every SKU keeps its current price with ``binding_constraint = no_model``. Rows with
    ``held`` set (the control arm of a running experiment) take :func:`held_prices`.
    """

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = model_loader()
        for frame in batches:
            frame = frame.reset_index(drop=True)
            n = len(frame)
            current = frame["price"].to_numpy(float)
            nan = np.full(n, np.nan)
            if model is not None and n:
                at_current = model.predict(frame)
                units_now = at_current["expected_units"].to_numpy(float)
                interval = at_current[["elasticity", "elasticity_low", "elasticity_high"]]
            else:
                units_now = nan
                interval = pd.DataFrame({"elasticity": nan, "elasticity_low": nan, "elasticity_high": nan})
            usable = np.isfinite(units_now) & np.isfinite(interval["elasticity"].to_numpy(float))
            band = _band(frame, interval, policy)
            recommended = current.copy()
            units_best = nan.copy()
            gains = {c: nan.copy() for c in ("gain", "gain_low", "gain_high")}
            binding = np.where(band["band_note"] == "infeasible", "infeasible", "no_model").astype(object)
            scorable = usable & (band["band_note"] != "infeasible").to_numpy()
            if scorable.any():
                grid = candidates_with_current(
                    band[scorable], current, scfg.grid_points, policy.price_endings
                )
                rows = grid["row"].to_numpy()
                expanded = frame.iloc[rows].reset_index(drop=True)
                expanded["log_price_ratio"] = np.log(
                    grid["candidate_price"].to_numpy() / expanded["ref_price"].to_numpy(float)
                ).astype(np.float32)
                candidates = pd.DataFrame(
                    {
                        "row": rows,
                        "candidate_price": grid["candidate_price"].to_numpy(),
                        "unit_cost": frame["unit_cost"].to_numpy(float)[rows],
                        "current_price": current[rows],
                        "expected_units": model.predict(expanded)["expected_units"].to_numpy(),
                        "units_current": units_now[rows],
                        **{c: interval[c].to_numpy(float)[rows] for c in interval.columns},
                    }
                )
                # The current price's units are the ones already predicted for it (another batch's
                # rounding must not make keeping look like a gain or a loss).
                at_current = np.abs(candidates["candidate_price"].to_numpy() - current[rows]) < 1e-9
                candidates.loc[at_current, "expected_units"] = units_now[rows][at_current]
                # Both write gain, gain_low, gain_high (what is recorded); under "posterior" they are
                # the posterior's expected gain and its central interval at the model's level.
                gains_of = posterior_gains if scfg.decision == "posterior" else gain_bounds
                candidates = gains_of(candidates, model.z, _one_sided_z(scfg.gain_confidence))
                if scfg.objective == "profit_with_revenue_floor":
                    candidates["revenue_floor"] = scfg.min_revenue_ratio * (current * units_now)[rows]
                best = choose_prices(candidates, scfg.decision)
                # Kept for want of price history, unless tonight tests its price (which is how such a
                # SKU's history gets the variation it lacks) or an experiment holds it.
                blind = _blind_holds(frame, candidates, scfg)
                best.loc[blind.index, list(_TESTED)] = blind
                tested = _price_tests(frame, candidates, scfg)
                best.loc[tested.index, list(_TESTED)] = tested
                kept_held = held_prices(frame, candidates)
                best.loc[kept_held.index, list(_TESTED)] = kept_held
                chosen_rows = best.index.to_numpy()
                chosen = best["candidate_price"].to_numpy()
                extent = grid.groupby("row")["candidate_price"].agg(["min", "max"]).reindex(chosen_rows)
                lowest, highest = extent["min"].to_numpy(), extent["max"].to_numpy()
                # The guardrail that decided: the side of the band the choice was pushed against.
                binding[chosen_rows] = np.where(
                    chosen <= lowest + 1e-9,
                    band["floor_reason"].to_numpy()[chosen_rows],
                    np.where(
                        chosen >= highest - 1e-9, band["ceiling_reason"].to_numpy()[chosen_rows], "none"
                    ),
                )
                if scfg.decision in ("lower_bound", "posterior"):
                    # Kept because no move's gain is clearly positive, though the point estimate
                    # would have moved: the reviewer sees why.
                    hoped = choose_prices(candidates, "expected").reindex(chosen_rows)["candidate_price"]
                    doubtful = (np.abs(chosen - current[chosen_rows]) < 1e-9) & (
                        np.abs(hoped.to_numpy() - current[chosen_rows]) > 1e-9
                    )
                    binding[chosen_rows[doubtful]] = "uncertain_gain"
                # Where its band still allows the current price; else the guardrail that moved it says why.
                kept_blind = blind.index.to_numpy()[
                    np.abs(blind["candidate_price"].to_numpy() - current[blind.index.to_numpy()]) < 1e-9
                ]
                binding[kept_blind] = NO_PRICE_HISTORY
                binding[tested.index.to_numpy()] = PRICE_TEST
                binding[kept_held.index.to_numpy()] = CONTROL_REASON
                recommended[chosen_rows] = chosen
                units_best[chosen_rows] = best["expected_units"].to_numpy()
                for column in ("gain", "gain_low", "gain_high"):
                    gains[column][chosen_rows] = best[column].to_numpy()
            units_now = np.where(usable, units_now, np.nan)
            cost = frame["unit_cost"].to_numpy(float)
            yield pd.DataFrame(
                {
                    "sku": frame["sku"],
                    "price_date": frame["date"],
                    "known_sku": frame["sku_idx"].to_numpy() > 0,
                    "current_price": current,
                    "recommended_price": recommended,
                    "price_floor": band["price_floor"].to_numpy(float),
                    "price_ceiling": band["price_ceiling"].to_numpy(float),
                    "floor_reason": band["floor_reason"],
                    "ceiling_reason": band["ceiling_reason"],
                    "band_note": band["band_note"],
                    "unit_cost": cost,
                    "expected_units_current": units_now,
                    "expected_revenue_current": units_now * current,
                    "expected_profit_current": units_now * (current - cost),
                    "expected_units_recommended": units_best,
                    "expected_revenue_recommended": units_best * recommended,
                    "expected_profit_recommended": units_best * (recommended - cost),
                    "elasticity": np.where(usable, interval["elasticity"].to_numpy(float), np.nan),
                    "elasticity_low": np.where(usable, interval["elasticity_low"].to_numpy(float), np.nan),
                    "elasticity_high": np.where(usable, interval["elasticity_high"].to_numpy(float), np.nan),
                    "binding_constraint": binding,
                    "expected_gain": gains["gain"],
                    "expected_gain_low": gains["gain_low"],
                    "expected_gain_high": gains["gain_high"],
                }
            )

    return score


def _one_sided_z(confidence: float) -> float:
    """The standard normal quantile at ``confidence`` (0.9 -> 1.28)."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(confidence)


@dataclass
class ScoreReport:
    """What one scoring night decided."""

    run_id: str
    price_date: date
    model_version: str | None
    skus: int
    by_status: dict[str, int]
    by_binding: dict[str, int]
    expected_profit_current: float
    expected_profit_recommended: float
    seconds: float
    expected_gain: float = 0.0
    expected_gain_low: float = 0.0
    gain_confidence: float = 0.9

    def render(self) -> str:
        uplift = (
            self.expected_profit_recommended / self.expected_profit_current - 1
            if self.expected_profit_current
            else 0
        )
        lines = [
            f"priced {self.skus} SKUs for {self.price_date} with model {self.model_version or '(none)'} "
            f"in {self.seconds:.0f}s; status {self.by_status}",
            f"deciding guardrail: {self.by_binding}",
            f"expected profit (model): current prices {self.expected_profit_current:,.0f}, "
            f"recommended {self.expected_profit_recommended:,.0f} ({uplift:+.1%}); gain "
            f"{self.expected_gain:,.0f}, at least {self.expected_gain_low:,.0f} with "
            f"{self.gain_confidence:.0%} confidence per SKU",
        ]
        return "\n".join(lines)


def next_night(spark: SparkSession, lakehouse: Lakehouse) -> date:
    """The day after the gold panel's last day: the night scoring prices by default."""
    last = io.first_value(lakehouse.read(spark, SKU_DAY).agg(F.max("date")))
    if last is None:
        raise RuntimeError("gold/sku_day is empty: run `pricing features` first")
    return last + timedelta(days=1)


def scoring_inputs(
    spark: SparkSession, lakehouse: Lakehouse, cfg: FeaturesConfig, price_date: date, spec: InputSpec | None
) -> DataFrame:
    """Model-input rows for ``price_date`` (one per SKU), priced at the price in force."""
    panel = read_sku_day(spark, lakehouse, cfg)
    rows = feature_rows(panel, cfg, night=price_date)
    if lakehouse.exists(spark, PRICE_RECOMMENDATIONS):
        in_force = prices_in_force(lakehouse.read(spark, PRICE_RECOMMENDATIONS), price_date)
        rows = (
            rows.join(in_force, "sku", "left")
            .withColumn("price", F.coalesce("price_in_force", "price"))
            .drop("price_in_force")
        )
    # Without a published price the panel's is the average paid, and lines sold in other currencies
    # convert back with fractions of a cent: the shelf price it stands for is in whole cents.
    rows = rows.withColumn("price", F.round("price", 2))
    if spec is None:
        # No model yet: only what the band needs, shaped like model inputs.
        return rows.where(F.col("price").isNotNull()).select(
            "sku",
            "date",
            F.lit(0).alias("sku_idx"),
            "price",
            F.coalesce("price_mean_28d", "price").alias("ref_price"),
            "unit_cost",
            *_BAND_COLUMNS,
        )
    embeddings = lakehouse.read_declared(spark, TEXT_EMBEDDINGS)
    rows = rows.join(price_changes(panel), "sku", "left")
    return model_inputs(rows, embeddings, spec, [*_BAND_COLUMNS, "price_changes"])


def decide(
    spark: SparkSession,
    lakehouse: Lakehouse,
    inputs: DataFrame,
    champion: Champion | None,
    cfg: PricingConfig,
    price_date: date,
    run_id: str,
) -> DataFrame:
    """Model-input rows for ``price_date`` -> the night's ``gold/price_recommendations`` rows.

    Controls of tonight's price experiments are held; the scoring batches choose each price inside
    its band; overrides and reviewers' decisions apply. Lazy: nothing runs until it is written.
    """
    # The weights reach each executor once (a broadcast), and each task builds the model once.
    shipped = spark.sparkContext.broadcast(champion) if champion is not None else None

    def loader() -> LoadedModel | None:
        return shipped.value.load() if shipped is not None else None

    # SKUs in the control arm of a price experiment running tonight keep their price (held).
    held = controls_on(spark, lakehouse, price_date).select("sku", F.lit(True).alias("held"))
    scored = inputs.join(held, "sku", "left").mapInPandas(
        score_batches(loader, cfg.policy, cfg.score), SCORED_SCHEMA
    )
    overrides = lakehouse.read_declared(spark, PRICE_OVERRIDES)
    decisions = lakehouse.read_declared(spark, PRICE_DECISIONS)
    return apply_decisions(approve(scored, overrides, cfg.score, price_date), decisions, price_date).select(
        "*",
        F.lit(champion.version if champion else None).cast("string").alias("model_version"),
        F.lit(run_id).alias("run_id"),
        F.current_timestamp().alias("created_at"),
    )


def _write_night(
    spark: SparkSession, lakehouse: Lakehouse, recommendations: DataFrame, cfg: ScoreConfig
) -> None:
    """MERGE the night's rows (re-scoring a night replaces them; other nights stay) and publish them."""
    batch_key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    previous = spark.conf.get(batch_key)
    # The scoring batches run inside the MERGE's source.
    spark.conf.set(batch_key, str(cfg.arrow_batch_size))
    try:
        lakehouse.merge(PRICE_RECOMMENDATIONS, recommendations, "true")
    finally:
        spark.conf.set(batch_key, previous) if previous is not None else spark.conf.unset(batch_key)


def _score_report(
    night: DataFrame, cfg: PricingConfig, run_id: str, price_date: date, version: str | None
) -> ScoreReport:
    """What the written night decided, from ``gold/price_recommendations``' rows of ``price_date``."""
    night = night.cache()
    totals = night.agg(
        F.count("*"),
        F.sum(F.when(F.col("expected_profit_recommended").isNotNull(), F.col("expected_profit_current"))),
        F.sum("expected_profit_recommended"),
        F.sum("expected_gain"),
        F.sum("expected_gain_low"),
    ).first()
    assert totals is not None
    report = ScoreReport(
        run_id=run_id,
        price_date=price_date,
        model_version=version,
        skus=int(totals[0]),
        by_status={r[0]: int(r[1]) for r in night.groupBy("status").count().collect()},
        by_binding={r[0]: int(r[1]) for r in night.groupBy("binding_constraint").count().collect()},
        expected_profit_current=float(totals[1] or 0.0),
        expected_profit_recommended=float(totals[2] or 0.0),
        seconds=0.0,
        expected_gain=float(totals[3] or 0.0),
        expected_gain_low=float(totals[4] or 0.0),
        # The confidence of the recorded low end: the decision's bound for lower_bound, the low end
        # of the central interval at the model's level for posterior.
        gain_confidence=(
            (1 + cfg.train.interval_level) / 2
            if cfg.score.decision == "posterior"
            else cfg.score.gain_confidence
        ),
    )
    night.unpersist()
    return report


def run_score(
    spark: SparkSession,
    lakehouse: Lakehouse,
    cfg: PricingConfig,
    price_date: date | None = None,
    run_id: str | None = None,
) -> ScoreReport:
    """Score every SKU for ``price_date`` (default: the day after the panel) and MERGE the prices.

    Plan (the night, the champion) -> read (each SKU's model row at the price in force) -> transform
    (:func:`decide`) -> write (MERGE, publish ``gold/current_prices``) -> record (the report). A price
    decision joins four sections of ``cfg``: ``score`` (the rule), ``policy`` (the guardrails),
    ``features`` (the model rows) and ``train`` (the registered model and its interval level).
    """
    started = time.monotonic()
    price_date = price_date or next_night(spark, lakehouse)
    run_id = run_id or uuid.uuid4().hex
    champion = load_champion(cfg.train, cfg.score.model_alias, lakehouse.identity(spark))
    if champion is None:
        log.info(f"[score] no model has alias {cfg.score.model_alias!r}: every SKU keeps its price")
    version = champion.version if champion else None

    inputs = scoring_inputs(
        spark, lakehouse, cfg.features, price_date, champion.input_spec if champion else None
    )
    recommendations = decide(spark, lakehouse, inputs, champion, cfg, price_date, run_id)
    _write_night(spark, lakehouse, recommendations, cfg.score)
    night = lakehouse.read(spark, PRICE_RECOMMENDATIONS).where(F.col("price_date") == F.lit(price_date))
    lakehouse.assert_unique(spark, PRICE_RECOMMENDATIONS)
    publish_current_prices(night, lakehouse)

    report = _score_report(night, cfg, run_id, price_date, version)
    report.seconds = time.monotonic() - started
    log.info(report.render())
    return report


def whatif(
    spark: SparkSession,
    lakehouse: Lakehouse,
    cfg: PricingConfig,
    sku: str,
    prices: list[float],
    price_date: date | None = None,
) -> pd.DataFrame:
    """Expected units, revenue and profit from the champion model for ``sku`` at each of ``prices``.

    Also returns the SKU's guardrail band for that night, so a price outside it is visible as such.
    """
    champion = load_champion(cfg.train, cfg.score.model_alias, lakehouse.identity(spark))
    if champion is None:
        raise RuntimeError(f"no model has alias {cfg.score.model_alias!r} in {cfg.train.model_name}")
    price_date = price_date or next_night(spark, lakehouse)
    row: pd.DataFrame = (
        scoring_inputs(spark, lakehouse, cfg.features, price_date, champion.input_spec)
        .where(F.col("sku") == sku)
        .toPandas()
    )
    if row.empty:
        raise KeyError(f"SKU {sku!r} has no priced history in {lakehouse.root}")
    model = champion.load()
    at_current = model.predict(row)
    band = _band(row, at_current, cfg.policy).iloc[0]
    grid = row.loc[[0] * len(prices)].reset_index(drop=True)
    grid["log_price_ratio"] = np.log(np.asarray(prices, float) / grid["ref_price"].to_numpy(float)).astype(
        np.float32
    )
    predicted = model.predict(grid)
    cost = float(row["unit_cost"].iloc[0])
    units = predicted["expected_units"].to_numpy()
    return pd.DataFrame(
        {
            "sku": sku,
            "price_date": price_date,
            "price": prices,
            "expected_units": units,
            "expected_revenue": units * np.asarray(prices),
            "expected_profit": units * (np.asarray(prices) - cost),
            "elasticity": predicted["elasticity"].to_numpy(),
            "current_price": float(row["price"].iloc[0]),
            "price_floor": float(band["price_floor"]),
            "price_ceiling": float(band["price_ceiling"]),
            "inside_band": (np.asarray(prices) >= band["price_floor"] - 1e-9)
            & (np.asarray(prices) <= band["price_ceiling"] + 1e-9),
            "model_version": champion.version,
        }
    )
