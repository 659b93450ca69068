"""``pricing evaluate``: the nightly job from scratch on every family x seed, judged by true demand.

For each family and seed: generate the market (:mod:`pricing.evaluation.families`), deliver its
history into a fresh landing area, run ``pricing nightly`` for the history's last day in a fresh
lakehouse with its own MLflow store (the product sees only landing files), then judge the night's
``gold/price_recommendations`` (:mod:`pricing.evaluation.judge`). Each extra decision rule in
``decisions`` re-scores the same night with the same model (``score.decision``) and is judged too,
so rules are compared side by side on identical models.

Rows go to ``<out>`` (``{"rows": [...], ...}``) one per family x seed x decision, and a report with
plots to ``<workdir>/report``.

With ``jobs`` > 1 the markets are shared among that many worker processes
(:mod:`pricing.evaluation.worker`), each with its own SparkSession, which claim them in the plan's
order; the rows are the same as one process's, in the same order. A night leaves a core idle much of
its time (one-task Spark jobs, Delta commits, the driver's planning), which a second market fills.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, get_args

from pyspark.sql import DataFrame, SparkSession

from pricing.config import PricingConfig, ScoreConfig
from pricing.evaluation.families import ALL_FAMILIES, FamilyMarket, generate_market
from pricing.evaluation.judge import judged_skus, summarise

log = logging.getLogger(__name__)

# The decision rules score.decision accepts.
RULES: tuple[str, ...] = get_args(ScoreConfig.model_fields["decision"].annotation)

ROW_KEYS = (
    "family",
    "seed",
    "decision",
    "profit_vs_keep",
    "uplift_share",
    "interval_coverage",
    "elasticity_mae",
    "elasticity_bias",
    "wape",
    "seasonal_naive_wape",
)


@dataclass(frozen=True)
class EvaluationPlan:
    """What ``pricing evaluate`` runs."""

    families: tuple[str, ...]
    seeds: tuple[int, ...]
    n_skus: int
    n_days: int
    # Extra score.decision rules judged on the same models: "expected", "lower_bound:0.75" (a rule
    # with its score.gain_confidence).
    decisions: tuple[str, ...] = ()
    # Reuse a market whose nightly job already succeeded in the work folder: score and judge it again
    # (other decision rules or guardrails on the same models) instead of building it from scratch.
    reuse: bool = False
    # Worker processes that evaluate markets side by side (1: all in this process).
    jobs: int = 1

    def __post_init__(self) -> None:
        unknown = sorted(set(self.families) - set(ALL_FAMILIES))
        if unknown:
            raise ValueError(f"unknown families {unknown}; choose from {sorted(ALL_FAMILIES)}")
        for decision in self.decisions:
            rule, _, confidence = decision.partition(":")
            if rule not in RULES or (confidence and not 0.5 <= float(confidence) < 1):
                raise ValueError(f"unknown decision {decision!r}: one of {', '.join(RULES)}[:confidence]")
        if self.jobs < 1:
            raise ValueError(f"jobs must be at least 1, not {self.jobs}")

    @property
    def markets(self) -> list[tuple[str, int]]:
        """(family, seed) in the order they are run and reported."""
        return [(family, seed) for family in self.families for seed in self.seeds]

    def to_json(self) -> str:
        return json.dumps({**self.__dict__, "families": list(self.families), "seeds": list(self.seeds)})

    @classmethod
    def from_json(cls, text: str) -> EvaluationPlan:
        raw = json.loads(text)
        return cls(**{**raw, **{k: tuple(raw[k]) for k in ("families", "seeds", "decisions")}})


def _run_config(cfg: PricingConfig, seed: int, workdir: Path, plan: EvaluationPlan) -> PricingConfig:
    overrides: dict[str, dict[str, Any]] = {
        "simulate": {"seed": seed, "n_skus": plan.n_skus, "n_days": plan.n_days},
        "train": {
            "tracking_uri": f"sqlite:///{(workdir / 'mlflow.db').resolve()}",
            "artifact_location": str((workdir / "mlartifacts").resolve()),
        },
        # Judged from the tables; a report per market would only add time to every run.
        "nightly": {"report": False},
    }
    merged = cfg.model_dump()
    for section, values in overrides.items():
        merged[section] = {**merged[section], **values}
    return PricingConfig.model_validate(merged)


def _reusable(workdir: Path, family: str, plan: EvaluationPlan) -> tuple[FamilyMarket, float] | None:
    """The market of an earlier run in ``workdir`` whose nightly job succeeded, if it is this plan's."""
    try:
        found = json.loads((workdir / "truth" / "family.json").read_text())
        seconds = json.loads((workdir / "nightly.json").read_text())["nightly_seconds"]
    except (OSError, ValueError, KeyError):
        return None
    market = FamilyMarket(**{k: found[k] for k in FamilyMarket.__dataclass_fields__})
    size = (found.get("n_skus", found.get("summary", {}).get("catalog")), found.get("n_days"))
    if size[1] is None:  # markets written before family.json recorded their size
        import pyarrow.parquet as pq

        first = min(pq.read_table(f"{market.truth}/sku_day", columns=["date"]).column("date").to_pylist())
        size = (size[0], (date.fromisoformat(market.history_end) - first).days + 1)
    same = found.get("name") == family and size == (plan.n_skus, plan.n_days)
    return (market, float(seconds)) if same else None


def judged_market(spark: SparkSession, cfg: PricingConfig, market: Path) -> tuple[dict[str, Any], DataFrame]:
    """An evaluated market's folder (``<workdir>/<family>/seed<n>``): its ``family.json`` record and the
    judge's rows of the night its nightly job priced (:func:`judged_skus`), judged again from the tables."""
    found = json.loads((market / "truth" / "family.json").read_text())
    judged = judged_skus(
        spark,
        str(market / "lakehouse"),
        found["truth"],
        date.fromisoformat(found["price_date"]),
        cfg.policy,
        cfg.simulate,
    )
    return found, judged


def _champion_version(cfg: PricingConfig) -> str | None:
    import mlflow

    client = mlflow.MlflowClient(cfg.train.tracking_uri)
    try:
        return str(client.get_model_version_by_alias(cfg.train.model_name, cfg.score.model_alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def _judge(
    spark: SparkSession, cfg: PricingConfig, lakehouse: str, truth: str, price_date: date
) -> dict[str, Any]:
    judged = judged_skus(spark, lakehouse, truth, price_date, cfg.policy, cfg.simulate).cache()
    try:
        return summarise(judged)
    finally:
        judged.unpersist()


def evaluate_market(
    spark: SparkSession, cfg: PricingConfig, family: str, seed: int, workdir: Path, plan: EvaluationPlan
) -> list[dict[str, Any]]:
    """One family x seed: market, nightly job from scratch, judge (and re-score per extra decision)."""
    from pricing.decide.stage import run_score
    from pricing.lakehouse.tables import Lakehouse
    from pricing.nightly.job import run_nightly
    from pricing.sim.deliver import deliver

    run_cfg = _run_config(cfg, seed, workdir, plan)
    landing, lakehouse = str(workdir / "landing"), str(workdir / "lakehouse")
    tables = Lakehouse.at(spark, lakehouse)
    started = time.monotonic()
    reused = _reusable(workdir, family, plan) if plan.reuse else None
    if reused is not None:
        # The same market and night, trained before: only the prices are chosen and judged again.
        market, nightly_seconds = reused
        generated = started
        run_score(spark, tables, run_cfg, price_date=date.fromisoformat(market.price_date))
        night_version = _champion_version(run_cfg)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        market = generate_market(
            spark, ALL_FAMILIES[family], run_cfg.simulate, str(workdir / "market"), str(workdir / "truth")
        )
        history_end = date.fromisoformat(market.history_end)
        deliver(spark, market.market, landing, history_end)
        generated = time.monotonic()
        night = run_nightly(spark, run_cfg, history_end, landing, lakehouse)
        if night.status != "succeeded":
            raise RuntimeError(f"{family} seed {seed}: the nightly run failed: {night.error}")
        nightly_seconds = time.monotonic() - generated
        night_version = night.model_version
        (workdir / "nightly.json").write_text(json.dumps({"nightly_seconds": nightly_seconds}))
    price_date = date.fromisoformat(market.price_date)
    base = {
        "family": family,
        "seed": seed,
        "skus_simulated": plan.n_skus,
        "days": plan.n_days,
        "nightly_seconds": round(nightly_seconds, 1),
        "market_seconds": round(generated - started, 1),
        "model_version": night_version,
        "reused": reused is not None,
    }
    rows = [
        {
            **base,
            "decision": run_cfg.score.decision,
            **_judge(spark, run_cfg, lakehouse, market.truth, price_date),
        }
    ]
    for decision in plan.decisions:
        if decision == run_cfg.score.decision:
            continue
        rule, _, confidence = decision.partition(":")
        score = {**run_cfg.score.model_dump(), "decision": rule}
        if confidence:
            score["gain_confidence"] = float(confidence)
        # A derived configuration is validated like any other.
        alt = PricingConfig.model_validate({**run_cfg.model_dump(), "score": score})
        run_score(spark, tables, alt, price_date=price_date, run_id=f"evaluate-{decision}")
        rows.append({**base, "decision": decision, **_judge(spark, alt, lakehouse, market.truth, price_date)})
    return rows


def run_evaluation(
    spark: SparkSession | None,
    cfg: PricingConfig,
    plan: EvaluationPlan,
    workdir: str,
    out: str,
    progress: Callable[[str], None] = log.info,
) -> dict[str, Any]:
    """Every family x seed of ``plan`` (see the module docstring); returns and writes the results.

    ``spark`` may be None when ``plan.jobs`` > 1: the workers start their own sessions.
    """
    root = Path(workdir)
    started = time.monotonic()
    if plan.jobs > 1:
        rows = _run_workers(cfg, plan, root, progress)
    else:
        if spark is None:
            raise ValueError("one process evaluates in the caller's SparkSession: pass it")
        rows = []
        total = len(plan.markets)
        for k, (family, seed) in enumerate(plan.markets, 1):
            progress(f"[evaluate] {k}/{total}: {family} seed {seed}")
            market_rows = evaluate_market(spark, cfg, family, seed, root / family / f"seed{seed}", plan)
            progress_rows(market_rows, progress)
            rows += market_rows
            _write(out, plan, rows, time.monotonic() - started, cfg)
    from pricing.evaluation.report import write_evaluation_report

    result = _write(out, plan, rows, time.monotonic() - started, cfg)
    report = write_evaluation_report(result, str(root / "report"))
    result = _write(out, plan, rows, time.monotonic() - started, cfg, report)
    progress(f"[evaluate] {len(rows)} rows in {out}; report {result['report']}")
    return result


def progress_rows(rows: list[dict[str, Any]], progress: Callable[[str], None], prefix: str = "") -> None:
    for row in rows:
        progress(
            f"[evaluate{prefix}]   {row['family']} seed {row['seed']}, {row['decision']}: "
            f"profit vs keep {_pct(row['profit_vs_keep'])}, "
            f"share of achievable uplift {_num(row['uplift_share'])}, moved {_pct(row['moved_share'])}, "
            f"elasticity MAE {_num(row['elasticity_mae'])} (bias {_num(row['elasticity_bias'])}), "
            f"coverage {_num(row['interval_coverage'])}"
        )


def claim_market(root: Path, family: str, seed: int) -> bool:
    """True for the one worker that claims (family, seed) first (an exclusive create)."""
    try:
        os.close(os.open(root / "_claims" / f"{family}-seed{seed}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def _run_workers(
    cfg: PricingConfig, plan: EvaluationPlan, root: Path, progress: Callable[[str], None]
) -> list[dict[str, Any]]:
    """``plan.jobs`` worker processes share the markets; their rows in the plan's order."""
    shutil.rmtree(root / "_claims", ignore_errors=True)
    (root / "_claims").mkdir(parents=True)
    (root / "_plan.json").write_text(plan.to_json())
    (root / "_config.json").write_text(cfg.model_dump_json())
    outs = [root / "_claims" / f"worker{k}.json" for k in range(plan.jobs)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "pricing.evaluation.worker", str(root), str(k), str(outs[k])],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        for k in range(plan.jobs)
    ]
    progress(f"[evaluate] {len(plan.markets)} markets shared by {plan.jobs} worker processes")
    try:
        # A failed market stops the run, as it does in one process.
        while (codes := [w.poll() for w in workers]) != [0] * len(workers):
            broken = [k for k, code in enumerate(codes) if code not in (None, 0)]
            if broken:
                raise RuntimeError(f"evaluation worker {broken[0]} failed (exit {codes[broken[0]]})")
            time.sleep(1)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
                worker.wait()
    found = [row for path in outs if path.is_file() for row in json.loads(path.read_text())]
    order = {market: k for k, market in enumerate(plan.markets)}
    rows = sorted(found, key=lambda r: order[(r["family"], r["seed"])])  # stable: decisions keep their order
    judged = {(r["family"], r["seed"]) for r in rows}
    missing = [m for m in plan.markets if m not in judged]
    if missing:
        raise RuntimeError(f"no rows for {missing}: a worker stopped without evaluating them")
    return rows


def _write(
    out: str,
    plan: EvaluationPlan,
    rows: list[dict[str, Any]],
    seconds: float,
    cfg: PricingConfig,
    report: str | None = None,
) -> dict[str, Any]:
    result = {
        "report": report,
        "plan": {
            "families": list(plan.families),
            "seeds": list(plan.seeds),
            "n_skus": plan.n_skus,
            "n_days": plan.n_days,
            "decisions": [cfg.score.decision, *[d for d in plan.decisions if d != cfg.score.decision]],
        },
        "defaults": {
            "score.decision": cfg.score.decision,
            "score.gain_confidence": cfg.score.gain_confidence,
            "train.debias": cfg.train.debias,
            "train.elasticity_interval": cfg.train.elasticity_interval,
            "train.text_components": cfg.train.text_components,
            "train.interval_stretch_z": cfg.train.interval_stretch_z,
            "train.own_test_z": cfg.train.own_test_z,
        },
        "seconds": round(seconds, 1),
        "rows": rows,
        "families": {name: ALL_FAMILIES[name].description for name in plan.families},
    }
    write_json(Path(out), result)
    return result


def write_json(path: Path, value: Any) -> None:
    """``value`` as JSON at ``path``, replaced whole: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.partial")
    tmp.write_text(json.dumps(value, indent=2, default=str))
    os.replace(tmp, path)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2%}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def parse_list(text: str | None, default: Sequence[Any], cast: Callable[[str], Any] = str) -> tuple[Any, ...]:
    """``"a,b"`` -> ``("a", "b")``; None -> ``default``."""
    if not text:
        return tuple(default)
    return tuple(cast(part.strip()) for part in text.split(",") if part.strip())
