"""Typed configuration: YAML files in ``conf/`` validated once at start-up.

A run's configuration is ``conf/base.yaml``, then the environment overlay ``conf/<env>.yaml``
(``local`` or ``cluster``), then any ``--conf FILE`` the user passes, then ``key=value``
overrides from the command line (dotted keys, values parsed as YAML scalars).
Unknown keys are rejected at every level so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class _Strict(BaseModel):
    # Defaults pass the validators too, so a default and the same value from YAML are equal.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


LAKEHOUSE_STORE = "lakehouse"


class SparkConfig(_Strict):
    """How the one SparkSession of a run is built (see ``pricing.platform.spark``)."""

    app_name: str = "pricing-lakehouse"
    master: str | None = "local[2]"
    shuffle_partitions: int = Field(4, ge=1)
    ui_enabled: bool = False
    driver_memory: str | None = "4g"
    configure_delta: bool = True
    delta_version: str | None = None  # None: the installed delta-spark package's version
    # None: the user cache folder ($XDG_CACHE_HOME or ~/.cache)/pricing-lakehouse/ivy, never the working one.
    jar_cache_dir: str | None = None
    # False: no console progress bars, Spark's own log lines only from ERROR up (`--verbose` sets True).
    verbose: bool = False
    extra_conf: dict[str, str] = Field(default_factory=dict)


class PathsConfig(_Strict):
    """Where raw files land, where the lakehouse lives and where simulated ground truth goes."""

    landing: str = "demo/landing"
    lakehouse: str = "demo/lakehouse"
    truth: str = "demo/truth"


class AnomalyConfig(_Strict):
    """Hard rules and robust per-SKU outlier detection applied on the way to silver."""

    max_abs_quantity: int = Field(500, ge=1)
    max_price: float = Field(100_000.0, gt=0)
    robust_z_threshold: float = Field(8.0, gt=0)
    # Prices of one SKU are often constant for weeks (MAD = 0); the floor keeps ordinary discounts
    # from being flagged. In natural-log units: 0.1 ~ a 10% spread.
    min_log_price_scale: float = Field(0.1, gt=0)
    min_quantity_scale: float = Field(2.0, gt=0)
    min_observations: int = Field(8, ge=1)
    history_days: int = Field(90, ge=1)


# The names of pricing.schemas.SOURCES, as a Literal so that a misspelt source fails validation
# (tests/unit/test_config.py checks that the two agree).
SourceName = Literal["catalog", "transactions", "clickstream", "competitor_prices", "inventory", "fx_rates"]


def _catalog_only() -> list[SourceName]:
    return ["catalog"]


class IngestConfig(_Strict):
    """Landing -> bronze -> silver behaviour."""

    base_currency: str = "USD"
    required_sources: list[str] = Field(default_factory=lambda: ["transactions", "catalog"])
    fx_max_staleness_days: int = Field(7, ge=0)
    # A night stops before training and scoring when a required source with dated rows has none in
    # the last this many days up to the run date (0: never): missing days are not days without sales.
    max_staleness_days: int = Field(1, ge=0)
    pii_salt_env: str = "PRICING_PII_SALT"
    min_pii_salt_length: int = Field(16, ge=8)
    # Sources ingested at the same time once FX rates (which priced sources convert with) are in: a
    # small source's cost is Spark jobs and Delta commits, not rows, so they overlap well. 1: one by one.
    parallel_sources: int = Field(4, ge=1)
    # Sources whose quoted CSV fields may hold line breaks (Spark's multiLine; the catalog's titles and
    # descriptions): each such file is parsed by one task, and a stray unclosed quote runs on to the
    # next quote, taking the lines between into one quarantined record. Elsewhere a line break always
    # ends a row (a stray quote spoils only its own line) and Spark splits large files across tasks.
    csv_multiline_sources: list[SourceName] = Field(default_factory=_catalog_only)
    anomaly: AnomalyConfig = Field(default_factory=AnomalyConfig)


class CatalogConfig(_Strict):
    """Assumptions about the catalog used downstream."""

    # Used when unit_cost is missing: cost = reference price * (1 - default_margin), flagged.
    default_margin: float = Field(0.35, ge=0, lt=1)


# The US's public and main retail holidays, 2026-2027: features.holidays' default (and conf/base.yaml's).
US_HOLIDAYS = tuple(
    date(year, month, day)
    for year, days in {
        2026: [(1, 1), (5, 25), (7, 4), (9, 7), (11, 26), (11, 27), (12, 25)],
        2027: [(1, 1), (5, 31), (7, 5), (9, 6), (11, 25), (11, 26), (12, 24)],
    }.items()
    for month, day in days
)


class FeaturesConfig(_Strict):
    """The gold SKU x day panel: window lengths, forward-fill horizon, holidays, text encoder."""

    lags: list[int] = Field(default_factory=lambda: [1, 7, 28])
    windows: list[int] = Field(default_factory=lambda: [7, 28])
    # Observations (competitor prices, stock, prices) older than this are not carried forward.
    # It also bounds how far back a change can reach, which makes incremental runs exact.
    max_ffill_days: int = Field(28, ge=1)
    # A promoted day that sold nothing shows no promoted line: it is recognised as part of the
    # promotion when its (discounted) price is that of a day with promoted sales up to this many days
    # later or earlier in the same run of one price. Later sales can thus change an earlier day's flag,
    # so each incremental run recomputes this many more days.
    promo_reach_days: int = Field(7, ge=0)
    holidays: list[date] = Field(default_factory=lambda: list(US_HOLIDAYS))
    text_encoder: Literal["auto", "minilm", "hashed"] = "auto"
    hashed_text_dim: int = Field(64, ge=8)
    embedding_batch_size: int = Field(64, ge=1)

    @field_validator("lags", "windows")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if not value or any(v < 1 for v in value):
            raise ValueError("must be a non-empty list of positive day counts")
        return sorted(set(value))

    @property
    def lookback_days(self) -> int:
        """How many earlier days one day's features can depend on.

        A lag or window (the longest, or the 7-day price change) of a forward-filled value reaches
        back its own length plus the forward-fill horizon.
        """
        return max(*self.lags, *self.windows, 7, self.promo_reach_days) + self.max_ffill_days


class TrainConfig(_Strict):
    """Demand model training: backend, processes, network size, holdout and MLflow."""

    backend: Literal["torch_distributor", "horovod"] = "torch_distributor"
    num_processes: int = Field(2, ge=1)
    local_mode: bool = True  # TorchDistributor: torchrun on the driver (True) or a barrier job on executors
    use_gpu: bool = False  # CUDA + NCCL when True (falls back to CPU + Gloo when no GPU is visible)
    epochs: int = Field(25, ge=1)
    # The group's batch, split over num_processes (so a fit takes the same steps on any number of
    # processes). 512 is what the default 2 processes took before the split (256 each); 256 was
    # measured too and lost 0.86 % on one evaluation market (docs/training.md, "Large panels").
    batch_size: int = Field(512, ge=1)
    learning_rate: float = Field(0.01, gt=0)
    # A panel larger than this many batches an epoch trains on larger batches (the learning rate
    # scaled by the square root of the growth) instead of more steps; smaller panels are untouched.
    # The batch is the group's, split over the processes (docs/training.md, "Large panels").
    max_steps_per_epoch: int = Field(200, ge=1)
    # "linear": the rate falls to 0 over the epochs. At a constant rate the last steps' noise stays in
    # the weights, most in those only a little price variation pins down (elasticities), docs/training.md.
    lr_decay: Literal["linear", "none"] = "linear"
    weight_decay: float = Field(1e-4, ge=0)
    ensemble_size: int = Field(3, ge=1)
    # The title's text vector reaches the network as its first this many principal components (fitted
    # on the training SKUs' titles, saved with the model); 0: the whole vector. The vector's matrix
    # product was 40 % of a large panel's training step (docs/training.md, "Large panels").
    text_components: int = Field(0, ge=0)
    hidden: int = Field(64, ge=4)
    embedding_dim: int = Field(8, ge=1)
    holdout_days: int = Field(14, ge=1)
    # Double ML (residual on residual). Off by default: measured worse than the naive fit of the same
    # network, offline and in the backtest (docs/training.md), once promotions are observable.
    debias: bool = False
    # Prior sd of a SKU's elasticity around similar products' (a random effect): smaller pools more.
    sku_elasticity_sd: float = Field(0.35, gt=0)
    # Estimate that sd from the shop's own price variation while training (empirical Bayes), never
    # below sku_elasticity_sd: where SKUs differ more than that, their intervals widen to say so
    # (docs/training.md, "How far a SKU strays from its category").
    fit_sku_elasticity_sd: bool = False
    # What the elasticity head reads (besides that random effect); each SKU's own deviation is left
    # to the random effect, whose prior an input unique to each SKU (its title's text vector) bypasses.
    elasticity_inputs: list[Literal["category", "brand", "text"]] = Field(["category"], min_length=1)
    # Each SKU's elasticity interval: the ensemble's min-max, or "laplace": the random effect's posterior
    # sd (prior precision plus the SKU's own price information) with the members' spread, at
    # ``interval_level`` (docs/training.md).
    elasticity_interval: Literal["ensemble", "laplace"] = "laplace"
    # Each SKU's own weekly profile in the base (a random effect with this prior sd; 0 turns it off):
    # a retailer that discounts on each SKU's weak weekdays makes the weekly pattern look like price
    # response unless the base can explain it per SKU (docs/training.md).
    sku_weekday_sd: float = Field(0.3, ge=0)
    interval_level: float = Field(0.9, gt=0, lt=1)
    # Stretch every SKU's interval by the holdout's price response slope s (to [min(low, s low),
    # max(high, s high)]) where s is this many standard errors from 1; 0 turns it off. A slope clear of 1
    # says the elasticities are biased and the intervals do not know it. At 1.5 on the family's 30
    # markets and a held-out shop (docs/benchmarks.md, "What the holdout's price moves can tell"): it
    # fired on 6 of 30, coverage inside 0.85-0.95 on 7 -> 9, mean share 0.643 -> 0.654, one market
    # 0.16 points lower; on the held-out shop +2.55 -> +3.35 % and +1.21 -> +1.32 % of profit.
    interval_stretch_z: float = Field(1.5, ge=0)
    # The system's own price tests (score.exploration_share) replace the elasticity level the history
    # taught where the level they call for is this many standard errors from it (0: never). A history
    # whose prices followed demand the data does not hold teaches a wrong level with confidence, and
    # only prices the retailer did not choose can tell (docs/training.md, "The system's own price tests").
    # Where the shift does not count, the tested days go back into the fit: the model is then the one a
    # run without this makes. At 2 on four closed loops: -0.62 -> +2.06 % of profit where the history
    # lied, the same profit to the last digit on three where it did not (docs/training.md). Only acts
    # where the system explores (score.exploration_share).
    own_test_z: float = Field(2.0, ge=0)
    # The Laplace interval's prior sd of a category's elasticity (in the softplus's argument): where no
    # price of the category ever moved, the head's value is a guess, and an interval this wide spans
    # the elasticities retail demand shows, from about -0.3 to -5 (docs/training.md).
    category_elasticity_sd: float = Field(3.0, gt=0)
    # Where prices say little, the elasticity stays near this prior centre (docs/training.md): retail
    # price elasticities centre around -2 in the published meta-analyses (Tellis 1988: -1.76; Bijmolt,
    # van Heerde & Pieters 2005: -2.62). Before this setting the centre was implicit, -0.69 (the
    # untrained head's), which made every weakly identified product look inelastic.
    elasticity_prior: float = Field(-2.0, lt=0)
    # The base reads the SKU's own recent units (yesterday's, a week's and four weeks' ago, 7- and
    # 28-day means). Where a price holds for days they already carry its effect, so the elasticity
    # keeps less of it; but without them the family's decisions were worse (mean share of achievable
    # uplift 0.69 -> 0.60) though its elasticities were closer (docs/training.md, "Yesterday's units").
    units_lags: bool = True
    seed: int = 7
    start_timeout_s: int = Field(600, ge=10)
    model_name: str = "pricing-demand"
    experiment: str = "pricing-demand"
    # "lakehouse": the lakehouse's own MLflow store (lakehouse_mlflow), so two shops never share a champion.
    tracking_uri: str = LAKEHOUSE_STORE
    artifact_location: str | None = None


class PolicyConfig(_Strict):
    """Pricing guardrails: hard limits no recommended price may break (see docs/pricing-policy.md)."""

    min_margin: float = Field(0.05, ge=0)  # floor = unit_cost * (1 + min_margin)
    respect_map: bool = True
    max_change: float = Field(0.10, gt=0, lt=1)  # per run, vs the current price, both directions
    max_premium_over_competitors: float | None = Field(0.15, ge=0)  # ceiling vs competitor median
    price_endings: list[float] = Field(default_factory=lambda: [0.99, 0.49])
    low_cover_days: float = Field(7.0, ge=0)  # below: no discount (stock would run out)
    clearance_cover_days: float = Field(120.0, ge=0)  # above: discounts up to clearance_max_change
    clearance_max_change: float = Field(0.25, gt=0, lt=1)
    max_elasticity_interval: float = Field(1.0, gt=0)  # wider: allowed change is scaled down
    uncertain_change_factor: float = Field(0.5, gt=0, le=1)

    @field_validator("price_endings")
    @classmethod
    def _cents(cls, value: list[float]) -> list[float]:
        if any(not 0 <= e < 1 for e in value):
            raise ValueError("price endings are the cents part, in [0, 1)")
        return sorted(set(round(e, 2) for e in value))


class MatchingConfig(_Strict):
    """Competitor listings matched to our SKUs by their text (docs/matching.md)."""

    # Calibrated on simulated listings (bench/listing_match.py): the cosine a match needs, and its lead
    # over the runner-up that passes the same checks.
    threshold: float = Field(0.5, ge=-1, le=1)
    min_margin: float = Field(0.05, gt=0, le=2)
    size_tolerance: float = Field(0.02, ge=0, lt=1)
    # A brand word in more than this share of the catalogue's brands (and in 3 or more), such as ``brand`` in
    # ``Brand Acme``, is no evidence of a brand.
    brand_stop_share: float = Field(0.5, gt=0, le=1)
    hashed_dim: int = Field(
        1024, ge=64
    )  # the hashed n-gram fallback's size (the encoder: features.text_encoder)


class ScoreConfig(_Strict):
    """Nightly scoring: candidate grid, objective, approval (see docs/pricing-policy.md)."""

    grid_points: int = Field(21, ge=2)  # candidate prices per SKU, spread over its band
    arrow_batch_size: int = Field(2000, ge=1)  # SKU rows per Arrow batch (x grid_points predictions)
    model_alias: str = "champion"
    objective: Literal["profit", "profit_with_revenue_floor"] = "profit"
    # profit_with_revenue_floor: only candidates whose expected revenue is at least this share of the
    # expected revenue at the current price (when none is, plain profit decides).
    min_revenue_ratio: float = Field(1.0, gt=0)
    auto_approve_max_change: float = Field(0.05, ge=0)  # larger changes need review
    review_skus: list[str] = Field(default_factory=list)  # flagged SKUs: every change needs review
    review_unknown_skus: bool = True  # SKUs the model never saw in training need review
    # Price exploration: each night this share of SKUs (drawn afresh from a hash of SKU and date) gets
    # a random candidate from its guardrail band instead of the best one, so that prices keep moving
    # independently of demand and elasticities stay identifiable. 0 turns it off.
    exploration_share: float = Field(0.0, ge=0, le=1)
    exploration_seed: int = 0
    # Which SKUs exploration draws from: "all", or "no_price_history": only those that
    # min_price_changes keeps for want of price history (fewer than max(1, min_price_changes) changes),
    # so tests go where the model cannot price and no SKU it can price pays for them.
    exploration_scope: Literal["all", "no_price_history"] = "all"
    # How a candidate wins (docs/pricing-policy.md): "lower_bound": the highest lower confidence bound
    # of the profit gain over the current price, taken over the elasticity's uncertainty, so a price
    # moves only where the gain is clearly positive, and less where the interval is wide;
    # "posterior": the highest expected gain integrated over the elasticity's posterior, among the moves
    # whose gain is positive with gain_confidence (else the price stays);
    # "expected": the highest expected profit at the model's point estimate.
    decision: Literal["lower_bound", "posterior", "expected"] = "posterior"
    # How sure "posterior" must be that a move gains (0.8: the gain is positive with probability 0.8);
    # for "lower_bound", the one-sided confidence of that bound. Chosen on all evaluation families
    # (docs/benchmarks.md, "Robustness"): 0.6 and 0.75 lost more than 0.5 % on a rigid-price market,
    # 0.9 kept too much.
    gain_confidence: float = Field(0.8, ge=0.5, lt=1)
    # A SKU whose own price moved fewer times than this in the panel's history keeps its price (unless
    # a guardrail or a price test moves it): a move there would rest on similar products and the prior
    # alone. On the evaluation family such moves went the right way 70 % of the time and cost the worst
    # market 0.3 % of its profit (docs/benchmarks.md, "Which way the best price lies"). 0 turns it off.
    min_price_changes: int = Field(1, ge=0)


class NightlyConfig(_Strict):
    """The nightly job: when to retrain, how long its lock lives, table maintenance cadence."""

    # Retrain when the champion's training data ends this many days before the run date (or earlier).
    retrain_every_days: int = Field(7, ge=1)
    # ... or when the champion's WAPE over the last drift_window_days exceeds its holdout WAPE x ratio.
    drift_window_days: int = Field(7, ge=1)
    drift_max_wape_ratio: float = Field(1.5, gt=1)
    # A crashed run's lock is taken over after this long without a heartbeat (at once when its
    # process is known to be dead on this host).
    lock_ttl_minutes: float = Field(60.0, gt=0)
    optimize_every_days: int = Field(7, ge=0)  # 0: never
    vacuum_every_days: int = Field(7, ge=0)  # 0: never
    # Files older than this are deleted by VACUUM; time travel reaches back no further.
    vacuum_retain_hours: int = Field(168, ge=0)
    # lite: files the Delta log removed (fast); full: also lists storage for files no commit
    # references (left by killed writers), slower.
    vacuum_mode: Literal["lite", "full"] = "lite"
    # Tables optimized and vacuumed at the same time (1: one by one; the tables end the same).
    parallel_maintenance: int = Field(4, ge=1)
    # Write the night's HTML report (pricing.nightly.report) at the end of every successful night, into
    # report_dir (default <lakehouse>/reports; any Hadoop file system).
    report: bool = True
    report_dir: str | None = None


class DirtConfig(_Strict):
    """Share of rows the simulator makes dirty, by kind (see docs/data-contract.md)."""

    duplicate_rate: float = Field(0.01, ge=0, le=1)
    null_key_rate: float = Field(0.002, ge=0, le=1)
    absurd_quantity_rate: float = Field(0.001, ge=0, le=1)
    outlier_price_rate: float = Field(0.001, ge=0, le=1)
    wrong_type_rate: float = Field(0.001, ge=0, le=1)
    unknown_currency_rate: float = Field(0.001, ge=0, le=1)
    missing_cost_rate: float = Field(0.03, ge=0, le=1)
    unparseable_rows: int = Field(5, ge=0)
    late_file_days: int = Field(2, ge=0)
    corrupt_files: bool = True


class SimulateConfig(_Strict):
    """The synthetic market: sizes, seed and the shape of true demand."""

    n_skus: int = Field(200, ge=1)
    n_days: int = Field(90, ge=1)
    start_date: date = date(2026, 6, 1)
    seed: int = 42
    n_competitors: int = Field(3, ge=0)
    n_categories: int = Field(8, ge=1)
    n_brands: int = Field(20, ge=1)
    base_demand_median: float = Field(4.0, gt=0)
    elasticity_range: tuple[float, float] = (-3.5, -0.6)
    price_test_share: float = Field(0.1, ge=0, le=1)
    weak_day_discount_prob: float = Field(0.35, ge=0, lt=1)
    shock_sd: float = Field(0.3, ge=0)
    shock_persistence: float = Field(0.7, ge=0, lt=1)
    views_per_unit: float = Field(6.0, ge=0)
    stockout_sku_share: float = Field(0.15, ge=0, le=1)
    return_rate: float = Field(0.02, ge=0, le=1)
    foreign_currency_rate: float = Field(0.01, ge=0, le=1)
    # The last this-many competitors deliver listings (their id, title, brand, size) instead of our SKU,
    # plus look-alike listings of products we do not sell for this share of SKUs.
    listing_competitors: int = Field(0, ge=0)
    listing_decoy_share: float = Field(0.15, ge=0, le=1)
    dirt: DirtConfig = Field(default_factory=DirtConfig)

    @field_validator("elasticity_range")
    @classmethod
    def _negative_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not low < high < 0:
            raise ValueError("elasticity_range must be (low, high) with low < high < 0")
        return value


BACKTEST_POLICIES = (
    "keep",
    "cost_plus",
    "competitor_median",
    "model_naive",
    "model_debiased",
    "model_explore",
    "oracle",
)
# Also allowed, not run unless asked: model_explore with exploration only where a SKU has no price history.
EXTRA_BACKTEST_POLICIES = ("model_explore_unpriced",)


class BacktestConfig(_Strict):
    """``pricing backtest``: policies compared night by night on one simulated market (closed loop)."""

    history_days: int = Field(60, ge=30)  # simulated days before the first backtest night
    nights: int = Field(14, ge=1)
    policies: list[str] = Field(default_factory=lambda: list(BACKTEST_POLICIES))
    # Which of the system's prices the market sees: recommended (every change approved) or final
    # (only auto-approved changes; the rest keep yesterday's price).
    apply: Literal["recommended", "final"] = "recommended"
    cost_plus_markup: float = Field(0.6, gt=0)  # cost_plus targets unit_cost x (1 + markup)
    # score.exploration_share of model_explore and model_explore_unpriced
    exploration_share: float = Field(0.2, gt=0, le=1)
    report_skus: int = Field(4, ge=1)  # SKUs whose demand and profit curves the report draws
    # The market: "simulator" (pricing simulate) or an evaluation family (pricing.evaluation.families).
    family: str = "simulator"

    @field_validator("policies")
    @classmethod
    def _known_policies(cls, value: list[str]) -> list[str]:
        known = (*BACKTEST_POLICIES, *EXTRA_BACKTEST_POLICIES)
        unknown = sorted(set(value) - set(known))
        if unknown or not value:
            raise ValueError(f"unknown policies {unknown}; choose from {list(known)}")
        return value


class PricingConfig(_Strict):
    """The whole configuration of one run."""

    env: Literal["local", "cluster", "test"] = "local"
    spark: SparkConfig = Field(default_factory=SparkConfig)
    paths: PathsConfig = Field(default_factory=PathsConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    score: ScoreConfig = Field(default_factory=ScoreConfig)
    matching: MatchingConfig = Field(default_factory=MatchingConfig)
    nightly: NightlyConfig = Field(default_factory=NightlyConfig)
    simulate: SimulateConfig = Field(default_factory=SimulateConfig)
    backtest: BacktestConfig = Field(default_factory=BacktestConfig)

    @model_validator(mode="before")
    @classmethod
    def _mlflow_in_the_lakehouse(cls, data: Any) -> Any:
        # Resolved once, here, from the lakehouse this run uses (after --lakehouse and overrides).
        if not isinstance(data, dict):
            return data
        train = dict(data.get("train") or {})
        if train.get("tracking_uri", LAKEHOUSE_STORE) != LAKEHOUSE_STORE:
            return data
        lakehouse = str(dict(data.get("paths") or {}).get("lakehouse") or PathsConfig().lakehouse)
        store = lakehouse_mlflow(lakehouse)
        if train.get("artifact_location"):
            store.pop("artifact_location", None)
        return {**data, "train": {**train, **store}}


def local_path(location: str) -> str | None:
    """The filesystem path of a local location (``demo/x``, ``/x``, ``file:/x``, ``file:///x``), else None."""
    if location.startswith("file:"):
        return "/" + location[len("file:") :].lstrip("/")
    return None if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", location) else location


def lakehouse_mlflow(lakehouse: str) -> dict[str, str]:
    """The MLflow store that belongs to a lakehouse: ``sqlite:///<lakehouse>/_mlflow/mlflow.db``, artifacts
    in ``<lakehouse>/_mlflow/artifacts``; on a Databricks runtime, ``databricks`` (the workspace's
    tracking and registry).

    Raises:
        ValueError: a lakehouse on remote storage outside Databricks, which needs ``train.tracking_uri``.
    """
    if os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        return {"tracking_uri": "databricks"}
    local = local_path(lakehouse)
    if local is None:
        raise ValueError(
            f"the lakehouse {lakehouse} is not on a local disk: set train.tracking_uri to an MLflow "
            "tracking server (and train.artifact_location to storage it can reach)"
        )
    store = Path(os.path.abspath(local)) / "_mlflow"
    return {"tracking_uri": f"sqlite:///{store}/mlflow.db", "artifact_location": str(store / "artifacts")}


class ConfigError(ValueError):
    """Raised when configuration files or overrides are invalid."""


def default_conf_dir() -> Path:
    """``$PRICING_CONF_DIR`` if set, else ``conf/`` beside the package's repository checkout."""
    env_dir = os.environ.get("PRICING_CONF_DIR")
    if env_dir:
        return Path(env_dir)
    return Path(__file__).resolve().parent.parent / "conf"


def _deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"configuration file not found: {path}")
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(loaded).__name__}")
    return loaded


# Maps from setting names to text values, whose names have dots of their own.
SETTING_MAPS = ("spark.extra_conf",)


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=x"]`` into ``{"a": {"b": 1}, "c": "x"}`` (values parsed as YAML).

    Under ``spark.extra_conf.`` the rest of the key is one Spark setting and its value stays text:
    ``spark.extra_conf.spark.sql.adaptive.enabled=true`` sets ``{"spark.sql.adaptive.enabled": "true"}``.
    """
    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw_value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override must look like key=value, got {item!r}")
        name = key.strip()
        value: Any
        prefix = next((p for p in SETTING_MAPS if name.startswith(f"{p}.") and len(name) > len(p) + 1), None)
        if prefix:
            # A Spark setting's own name has dots: all of it after the prefix is one key, its value text
            # (which need not be YAML: "-XX:OnOutOfMemoryError=kill: %p" is not).
            parts, value = [*prefix.split("."), name[len(prefix) + 1 :]], raw_value.strip()
        else:
            parts, value = name.split("."), (yaml.safe_load(raw_value) if raw_value.strip() else None)
        node = nested
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r} conflicts with another override")
            node = child
        node[parts[-1]] = value
    return nested


_Config = TypeVar("_Config", bound=BaseModel)


def derive(config: _Config, changes: dict[str, Any]) -> _Config:
    """``config`` with ``changes`` (nested like :func:`parse_overrides`' result) merged in and validated
    again, so a configuration derived in code obeys the rules a loaded one does (pydantic's
    ``model_copy(update=...)`` checks nothing).

    Raises:
        ConfigError: a changed key is unknown or its value invalid.
    """
    try:
        return type(config).model_validate(_deep_merge(config.model_dump(), changes))
    except ValidationError as error:
        raise ConfigError(str(error)) from error


def load_config(
    env: str = "local",
    conf_files: list[str] | None = None,
    overrides: list[str] | None = None,
    conf_dir: Path | None = None,
) -> PricingConfig:
    """Load ``base.yaml`` + ``<env>.yaml`` + extra files + ``key=value`` overrides, validated.

    Raises:
        ConfigError: a file is missing, a key is unknown or a value has the wrong type.
    """
    directory = conf_dir or default_conf_dir()
    raw = _read_yaml(directory / "base.yaml")
    env_file = directory / f"{env}.yaml"
    if env_file.is_file():
        raw = _deep_merge(raw, _read_yaml(env_file))
    elif env != "test":
        raise ConfigError(f"no overlay for env {env!r} in {directory}")
    for extra in conf_files or []:
        raw = _deep_merge(raw, _read_yaml(Path(extra)))
    raw = _deep_merge(raw, parse_overrides(overrides or []))
    raw["env"] = env
    try:
        return PricingConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(str(error)) from error
