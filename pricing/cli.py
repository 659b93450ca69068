"""The ``pricing`` console script: one subcommand per stage, all calling the library.

Every subcommand takes ``--env`` (conf overlay), ``--conf FILE`` (repeatable) and trailing
``key=value`` overrides, e.g. ``pricing simulate --skus 50 simulate.seed=7``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING

from pricing.config import ConfigError, PricingConfig, load_config
from pricing.ingest import IngestError, ReconciliationError
from pricing.lakehouse.tables import Lakehouse
from pricing.platform.console import configure_console

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default="local", help="configuration overlay: local or cluster")
    parser.add_argument("--conf", action="append", default=[], metavar="FILE", help="extra YAML config")
    parser.add_argument(
        "--verbose", action="store_true", help="Spark's progress bars and WARN log lines on the console"
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="configuration overrides")


def _config(args: argparse.Namespace, extra: list[str]) -> PricingConfig:
    verbose = ["spark.verbose=true"] if args.verbose else []
    return load_config(args.env, args.conf, [*extra, *verbose, *args.overrides])


def _lakehouse(args: argparse.Namespace) -> list[str]:
    return [f"paths.lakehouse={args.lakehouse}"] if args.lakehouse else []


def _tables(spark: SparkSession, cfg: PricingConfig) -> Lakehouse:
    """The configured lakehouse (``paths.lakehouse``, after ``--lakehouse``), its root qualified."""
    return Lakehouse.at(spark, cfg.paths.lakehouse)


def _session(args: argparse.Namespace, extra: list[str]) -> tuple[PricingConfig, SparkSession]:
    """The validated configuration and the SparkSession it describes."""
    from pricing.platform.spark import build_spark

    cfg = _config(args, extra)
    return cfg, build_spark(cfg.spark)


def _cmd_setup_jars(args: argparse.Namespace) -> int:
    from pricing.platform.spark import jar_cache_dir, prefetch_delta_jars

    cfg = _config(args, [])
    jars = prefetch_delta_jars(cfg.spark)
    print(f"Delta JARs cached in {jar_cache_dir(cfg.spark)}: {len(jars)} files")
    return 0


def _cmd_spark_conf(args: argparse.Namespace) -> int:
    """Print spark-submit --conf flags for the configured session (Delta JARs, extensions, defaults).

    spark-submit starts the driver JVM before any Python runs, so Delta's JARs and SQL extensions
    must be on its command line: ``spark-submit $(pricing spark-conf) jobs/ingest.py ...``.
    """
    import shlex

    from pricing.platform.spark import session_conf

    cfg = _config(args, [])
    print(
        " ".join(f"--conf {shlex.quote(f'{key}={value}')}" for key, value in session_conf(cfg.spark).items())
    )
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from pricing.sim import simulate_market

    extra = [f"paths.{k}={v}" for k, v in (("landing", args.landing), ("truth", args.truth)) if v]
    extra += [
        f"simulate.{k}={v}"
        for k, v in (("n_skus", args.skus), ("n_days", args.days), ("seed", args.seed))
        if v is not None
    ]
    cfg, spark = _session(args, extra)
    started = time.monotonic()
    print(
        f"[simulate] {cfg.simulate.n_skus} SKUs x {cfg.simulate.n_days} days -> {cfg.paths.landing}",
        flush=True,
    )
    summary = simulate_market(spark, cfg.simulate, cfg.paths.landing, cfg.paths.truth)
    print(summary.to_json())
    print(
        f"[simulate] done in {time.monotonic() - started:.1f}s; ground truth in {cfg.paths.truth}", flush=True
    )
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    from pricing.ingest import run_ingest

    extra = [f"paths.{k}={v}" for k, v in (("landing", args.landing), ("lakehouse", args.lakehouse)) if v]
    cfg, spark = _session(args, extra)
    run_ingest(spark, _tables(spark, cfg), cfg.ingest, cfg.paths.landing)
    return 0


def _cmd_features(args: argparse.Namespace) -> int:
    from pricing.features import run_features

    cfg, spark = _session(args, _lakehouse(args))
    run_features(
        spark, _tables(spark, cfg), cfg.features, cfg.catalog, run_date=args.run_date, full=args.full
    )
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from pricing.model.train import run_train

    extra = [f"train.backend={args.backend}"] if args.backend else []
    cfg, spark = _session(args, _lakehouse(args) + extra)
    report = run_train(spark, _tables(spark, cfg), cfg.train, cfg.features)
    if args.truth:
        from pricing.sim.truth import training_vs_truth

        # Judged from what the run wrote, after it: training itself never reads ground truth.
        if training_vs_truth(spark, report, cfg.paths.lakehouse, args.truth, cfg.train.tracking_uri):
            log.info(report.render_truth())
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from pricing.decide.stage import run_score

    cfg, spark = _session(args, _lakehouse(args))
    report = run_score(spark, _tables(spark, cfg), cfg, price_date=args.price_date)
    if args.truth:
        from pricing.sim.truth import night_vs_truth, render_night

        truth = night_vs_truth(spark, cfg.paths.lakehouse, report.price_date, args.truth, cfg.simulate)
        log.info(render_night(truth))
    return 0


def _cmd_nightly(args: argparse.Namespace) -> int:
    from pricing.nightly.job import NightlyError, run_nightly
    from pricing.platform.lock import LockHeld

    extra = [f"paths.{k}={v}" for k, v in (("landing", args.landing), ("lakehouse", args.lakehouse)) if v]
    cfg, spark = _session(args, extra)
    try:
        night = run_nightly(spark, cfg, args.run_date)
    except LockHeld as error:
        print(f"pricing nightly refused: {error}", file=sys.stderr)
        return 3
    except NightlyError as error:
        print(f"pricing nightly failed: {error}", file=sys.stderr)
        return 1
    if args.truth:
        from pricing.sim.truth import night_vs_truth, priced_day, render_night

        # The simulator's expected profit is for the day right after its last simulated day.
        if priced_day(spark, args.truth) == night.price_date:
            truth = night_vs_truth(spark, cfg.paths.lakehouse, night.price_date, args.truth, cfg.simulate)
            log.info(f"[nightly] {render_night(truth)}")
    return 0


def _cmd_deliver(args: argparse.Namespace) -> int:
    from pricing.sim.deliver import deliver

    cfg, spark = _session(args, [f"paths.landing={args.landing}"] if args.landing else [])
    copied = deliver(spark, args.market, cfg.paths.landing, args.through)
    print(f"[deliver] {copied} new files for days up to {args.through} -> {cfg.paths.landing}", flush=True)
    return 0


def _cmd_backtest(args: argparse.Namespace) -> int:
    from pricing.sim.backtest import run_backtest

    extra = [f"backtest.{k}={v}" for k, v in (("nights", args.nights), ("policies", args.policies)) if v]
    if args.policies:
        extra[-1] = f"backtest.policies=[{args.policies}]"
    cfg, spark = _session(args, extra)
    report = run_backtest(spark, cfg, args.workdir)
    print(report.render(), flush=True)
    print(f"[backtest] results in {args.workdir}/results; MLflow run {report.mlflow_run_id}", flush=True)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from pricing.evaluation.families import FAMILIES
    from pricing.evaluation.robustness import EvaluationPlan, parse_list, run_evaluation

    try:
        plan = EvaluationPlan(
            families=parse_list(args.families, sorted(FAMILIES)),
            seeds=parse_list(args.seeds, (1, 2, 3), int),
            n_skus=args.skus,
            n_days=args.days,
            decisions=parse_list(args.decisions, ()),
            reuse=args.reuse,
            jobs=args.jobs,
        )
    except ValueError as error:
        print(f"pricing evaluate: {error}", file=sys.stderr)
        return 2
    # Worker processes start their own sessions: this one needs none.
    cfg, spark = (_config(args, []), None) if plan.jobs > 1 else _session(args, [])
    run_evaluation(spark, cfg, plan, args.workdir, args.out or f"{args.workdir}/robustness.json")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    if bool(args.backtest) == bool(args.lakehouse):
        print("pricing report: give either --lakehouse (a night) or --backtest (a backtest)", file=sys.stderr)
        return 2
    if args.backtest:
        from pricing.sim.report import write_report

        cfg, spark = _session(args, [])
        path = str(write_report(spark, cfg, args.backtest, args.out))
    else:
        from pricing.nightly.job import NightlyError, report_night
        from pricing.platform.lock import LockHeld

        cfg, spark = _session(args, _lakehouse(args))
        try:
            path = report_night(spark, cfg, args.run_date, out=args.out)
        except NightlyError as error:
            print(f"pricing report: {error}", file=sys.stderr)
            return 1
        except LockHeld as error:
            print(f"pricing report refused: {error}", file=sys.stderr)
            return 3
    print(f"[report] {path}", flush=True)
    return 0


def _cmd_whatif(args: argparse.Namespace) -> int:
    from pricing.decide.stage import whatif

    cfg, spark = _session(args, _lakehouse(args))
    try:
        table = whatif(spark, _tables(spark, cfg), cfg, args.sku, args.price, price_date=args.price_date)
    except (KeyError, RuntimeError) as error:
        print(f"pricing whatif: {error}", file=sys.stderr)
        return 1
    print(table.drop(columns=["sku"]).to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    return 0


def _cmd_override(args: argparse.Namespace) -> int:
    from pricing.decide.approval import add_override, remove_overrides

    if not args.remove and (args.price is None or not args.reason or not args.author):
        print("pricing override: --price, --reason and --author are required", file=sys.stderr)
        return 2
    cfg, spark = _session(args, _lakehouse(args))
    when = args.price_date.isoformat() if args.price_date else "every night"
    if args.remove:
        removed = remove_overrides(spark, _tables(spark, cfg), args.sku, args.price_date)
        print(f"removed {removed} override(s) of {args.sku} for {when}")
        return 0
    try:
        add_override(
            spark, _tables(spark, cfg), args.sku, args.price, args.reason, args.author, args.price_date
        )
    except ValueError as error:
        print(f"pricing override: {error}", file=sys.stderr)
        return 2
    print(f"{args.sku} priced {args.price:.2f} for {when} by {args.author}: re-run `pricing score` to apply")
    return 0


def _cmd_review(args: argparse.Namespace) -> int:
    import pandas as pd

    from pricing.decide.review import ReviewError, latest_price_date, review_queue
    from pricing.lakehouse.tables import PRICE_RECOMMENDATIONS

    cfg, spark = _session(args, _lakehouse(args))
    lakehouse = _tables(spark, cfg)
    if args.serve:
        from pricing.review_app import serve

        print(
            f"[review] the review page of {lakehouse.root}: http://{args.host}:{args.port}/ "
            "(Ctrl-C stops it)",
            flush=True,
        )
        serve(spark, cfg, lakehouse, args.host, args.port)
        return 0
    try:
        latest = latest_price_date(spark, lakehouse)
    except ReviewError as error:
        print(f"pricing review: {error}", file=sys.stderr)
        return 1
    night = args.price_date or latest
    recommendations = lakehouse.read(spark, PRICE_RECOMMENDATIONS)
    statuses: dict[str, int] = {
        r[0]: int(r[1])
        for r in recommendations.where(f"price_date = DATE'{night}'")
        .groupBy("status")
        .count()
        .orderBy("status")
        .collect()
    }
    queue = review_queue(recommendations, night)
    waiting = statuses.get("needs_review", 0)
    print(f"prices for {night}: {statuses or 'none'}; {waiting} wait for review")
    if waiting:
        table: pd.DataFrame = queue.limit(args.limit).toPandas()
        table["change"] = table["change"].map(lambda v: f"{v:+.1%}")
        print(table.drop(columns=["status"]).to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
        if waiting > args.limit:
            print(f"... and {waiting - args.limit} more (--limit)")
    return 0


def _cmd_decide(args: argparse.Namespace) -> int:
    from pricing.decide.review import ReviewError, Selection, decide
    from pricing.platform.lock import LockHeld

    decision = {"approve": "approved", "reject": "rejected"}[args.command]
    try:
        selection = Selection(tuple(args.sku), args.max_change, args.all)
    except ReviewError as error:
        print(f"pricing {args.command}: {error}", file=sys.stderr)
        return 2
    cfg, spark = _session(args, _lakehouse(args))
    try:
        report = decide(
            spark,
            _tables(spark, cfg),
            decision,
            selection,
            args.author,
            args.note,
            args.price_date,
            lock_ttl_s=cfg.nightly.lock_ttl_minutes * 60,
        )
    except ReviewError as error:
        print(f"pricing {args.command}: {error}", file=sys.stderr)
        return 2
    except LockHeld as error:
        print(f"pricing {args.command} refused: {error}", file=sys.stderr)
        return 3
    print(report.render())
    return 0


def _prices(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a price or comma-separated prices: {text!r}") from error


def _cmd_experiment(args: argparse.Namespace) -> int:
    from pricing.decide.experiment import (
        ExperimentError,
        list_experiments,
        readout,
        render_readout,
        start_experiment,
    )

    cfg, spark = _session(args, _lakehouse(args))
    try:
        if args.action == "start":
            start_experiment(  # its summary is the library's INFO line on stdout
                spark,
                _tables(spark, cfg),
                args.name,
                args.share,
                getattr(args, "from"),
                args.days,
                unit=args.by,
                seed=args.seed,
                pre_days=args.pre_days,
            )
        elif args.action == "readout":
            effects = readout(
                spark,
                _tables(spark, cfg),
                args.name,
                through=args.through,
                level=args.level,
                exploration_scope=cfg.score.exploration_scope,
            )
            print(f"experiment {args.name}")
            print(render_readout(effects, args.estimator))
        else:
            table = list_experiments(spark, _tables(spark, cfg))
            print(table.to_string(index=False) if not table.empty else "no experiments")
    except ExperimentError as error:
        print(f"pricing experiment {args.action}: {error}", file=sys.stderr)
        return 2
    return 0


def _cmd_listings(args: argparse.Namespace) -> int:
    from pricing.matching import MatchingError, decide_listing, review_queue, run_matching

    cfg, spark = _session(args, _lakehouse(args))
    try:
        if args.action == "match":
            print(run_matching(spark, _tables(spark, cfg), cfg.matching, cfg.features).render())
        elif args.action == "review":
            queue = review_queue(spark, _tables(spark, cfg), args.limit)
            print(queue.to_string(index=False) if not queue.empty else "no unmatched listings")
        else:
            sku = args.sku if args.action == "confirm" else None
            decide_listing(
                spark, _tables(spark, cfg), args.competitor, args.competitor_sku, sku, args.author, args.note
            )
            what = f"is {sku}" if sku else "is not a product we sell"
            print(
                f"{args.competitor} {args.competitor_sku} {what} (by {args.author}); "
                "the next matching run (each night, or `pricing listings match`) applies it"
            )
    except MatchingError as error:
        print(f"pricing listings {args.action}: {error}", file=sys.stderr)
        return 2
    return 0


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pricing", description="pricing-lakehouse: one subcommand per stage"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    setup = sub.add_parser("setup-jars", help="resolve Delta's JARs through Ivy into the local cache")
    _common(setup)
    setup.set_defaults(func=_cmd_setup_jars)

    spark_conf = sub.add_parser("spark-conf", help="print spark-submit --conf flags for this configuration")
    _common(spark_conf)
    spark_conf.set_defaults(func=_cmd_spark_conf)

    simulate = sub.add_parser("simulate", help="write a synthetic market's landing files and ground truth")
    simulate.add_argument("--landing", help="landing root to write (default: paths.landing)")
    simulate.add_argument("--truth", help="ground-truth folder (default: paths.truth)")
    simulate.add_argument("--skus", type=int, help="number of SKUs (simulate.n_skus)")
    simulate.add_argument("--days", type=int, help="number of days (simulate.n_days)")
    simulate.add_argument("--seed", type=int, help="random seed (simulate.seed)")
    _common(simulate)
    simulate.set_defaults(func=_cmd_simulate)

    ingest = sub.add_parser("ingest", help="landing -> bronze -> silver, quarantine and reconciliation")
    ingest.add_argument("--landing", help="landing root to read (default: paths.landing)")
    ingest.add_argument("--lakehouse", help="lakehouse root (default: paths.lakehouse)")
    _common(ingest)
    ingest.set_defaults(func=_cmd_ingest)

    features = sub.add_parser("features", help="silver -> gold/sku_day panel, incremental by default")
    features.add_argument("--lakehouse", help="lakehouse root (default: paths.lakehouse)")
    features.add_argument("--run-date", type=_date, help="last day of the panel (default: latest sale)")
    features.add_argument("--full", action="store_true", help="rebuild the whole panel from scratch")
    _common(features)
    features.set_defaults(func=_cmd_features)

    train = sub.add_parser("train", help="train the demand model (distributed), evaluate, register in MLflow")
    train.add_argument("--lakehouse", help="lakehouse root (default: paths.lakehouse)")
    train.add_argument("--backend", choices=["torch_distributor", "horovod"], help="train.backend")
    train.add_argument("--truth", help="simulated ground truth folder: also report elasticity error")
    _common(train)
    train.set_defaults(func=_cmd_train)

    score = sub.add_parser("score", help="price every SKU for the next day and MERGE the price tables")
    score.add_argument("--lakehouse", help="lakehouse root (default: paths.lakehouse)")
    score.add_argument("--price-date", type=_date, help="night to price (default: day after the panel)")
    score.add_argument("--truth", help="simulated ground truth folder: also report profit under true demand")
    _common(score)
    score.set_defaults(func=_cmd_score)

    nightly = sub.add_parser(
        "nightly", help="one night: ingest, features, retrain when due, score, reconcile (locked, idempotent)"
    )
    nightly.add_argument("--landing", help="landing root to read (default: paths.landing)")
    nightly.add_argument("--lakehouse", help="lakehouse root (default: paths.lakehouse)")
    nightly.add_argument(
        "--run-date", required=True, type=_date, help="the night: data through this day; prices for the next"
    )
    nightly.add_argument("--truth", help="simulated truth: true-demand profit on its last night")
    _common(nightly)
    nightly.set_defaults(func=_cmd_nightly)

    deliver = sub.add_parser(
        "deliver", help="simulator: copy a simulated market's files up to a day into landing, as if delivered"
    )
    deliver.add_argument("--market", required=True, help="folder `pricing simulate` wrote")
    deliver.add_argument("--landing", help="landing root (default: paths.landing)")
    deliver.add_argument("--through", required=True, type=_date, help="last day to deliver")
    _common(deliver)
    deliver.set_defaults(func=_cmd_deliver)

    backtest = sub.add_parser(
        "backtest", help="compare pricing policies night by night on a simulated market (closed loop)"
    )
    backtest.add_argument("--workdir", required=True, help="folder for the market, each policy and results")
    backtest.add_argument("--nights", type=int, help="backtest.nights")
    backtest.add_argument("--policies", help="backtest.policies, comma-separated")
    _common(backtest)
    backtest.set_defaults(func=_cmd_backtest)

    evaluate = sub.add_parser(
        "evaluate",
        help="evaluation: the nightly job from scratch on every market family x seed, judged by true demand",
    )
    evaluate.add_argument("--workdir", required=True, help="folder for the markets, lakehouses and report")
    evaluate.add_argument(
        "--families", help="comma-separated families (default: all but the held-out ones, HELD_OUT_FAMILIES)"
    )
    evaluate.add_argument("--seeds", help="comma-separated seeds (default: 1,2,3)")
    evaluate.add_argument("--skus", type=int, default=120, help="SKUs per market")
    evaluate.add_argument("--days", type=int, default=90, help="days of history per market")
    evaluate.add_argument(
        "--decisions", help="extra score.decision rules judged on the same models (e.g. expected)"
    )
    evaluate.add_argument(
        "--reuse",
        action="store_true",
        help="markets whose nightly job already succeeded in --workdir are scored and judged again",
    )
    evaluate.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="worker processes that evaluate markets side by side, each with its own Spark session",
    )
    evaluate.add_argument(
        "--out", help="the results, JSON with a list `rows` (default: <workdir>/robustness.json)"
    )
    _common(evaluate)
    evaluate.set_defaults(func=_cmd_evaluate)

    report = sub.add_parser(
        "report", help="HTML report of a night (--lakehouse) or of a backtest (--backtest), logged to MLflow"
    )
    report.add_argument("--lakehouse", help="a night's report: the lakehouse it ran on")
    report.add_argument("--run-date", type=_date, help="with --lakehouse: the night (default: the latest)")
    report.add_argument("--backtest", help="a backtest's report: the backtest's --workdir")
    report.add_argument(
        "--out", help="report folder (default: nightly.report_dir or <lakehouse>/reports; <backtest>/report)"
    )
    _common(report)
    report.set_defaults(func=_cmd_report)

    what = sub.add_parser("whatif", help="expected units, revenue and profit of a SKU at any prices")
    what.add_argument("--sku", required=True)
    what.add_argument(
        "--price",
        required=True,
        type=_prices,
        action="extend",
        help="price(s): repeat the flag or give a comma-separated list",
    )
    what.add_argument("--lakehouse", help="lakehouse root (default: paths.lakehouse)")
    what.add_argument("--price-date", type=_date, help="day to price (default: day after the panel)")
    _common(what)
    what.set_defaults(func=_cmd_whatif)

    override = sub.add_parser("override", help="set (or --remove) a manual price that wins over the model")
    override.add_argument("--lakehouse", help="lakehouse root (default: paths.lakehouse)")
    override.add_argument("--sku", required=True)
    override.add_argument("--price", type=float)
    override.add_argument("--reason")
    override.add_argument("--author")
    override.add_argument(
        "--price-date", type=_date, help="one night only (default: every night until removed)"
    )
    override.add_argument("--remove", action="store_true", help="delete the SKU's override(s) instead")
    _common(override)
    override.set_defaults(func=_cmd_override)
    review = sub.add_parser(
        "review", help="the night's prices waiting for review, largest expected gain first"
    )
    review.add_argument("--lakehouse", help="lakehouse root (default: paths.lakehouse)")
    review.add_argument("--price-date", type=_date, help="night (default: the latest priced night)")
    review.add_argument("--limit", type=int, default=50, help="rows to show (default 50)")
    review.add_argument(
        "--serve", action="store_true", help="serve the review page (a small web app) instead"
    )
    review.add_argument("--host", default="127.0.0.1", help="with --serve: address to listen on")
    review.add_argument("--port", type=int, default=8050, help="with --serve: port (default 8050)")
    _common(review)
    review.set_defaults(func=_cmd_review)

    experiment = sub.add_parser(
        "experiment", help="price experiments: start a split, read out its effect, list them"
    )
    actions = experiment.add_subparsers(dest="action", required=True)
    start = actions.add_parser(
        "start", help="split part of the catalogue into treatment (system prices) and control (kept)"
    )
    start.add_argument("--name", required=True)
    start.add_argument(
        "--share", type=float, required=True, help="share of the units that take part, half in each arm"
    )
    start.add_argument(
        "--by", choices=["sku", "category", "store"], default="sku", help="what is randomised (default sku)"
    )
    start.add_argument("--from", type=_date, required=True, help="first night of the experiment")
    start.add_argument("--days", type=int, required=True, help="nights it runs")
    start.add_argument("--seed", type=int, default=0, help="randomisation seed (default 0)")
    start.add_argument(
        "--pre-days", type=int, default=28, help="days before the start that stratify and adjust (default 28)"
    )
    read = actions.add_parser(
        "readout", help="the effect on profit, revenue and units per day, with intervals"
    )
    read.add_argument(
        "--name", required=True, help="an experiment, or `exploration` (score.exploration_share)"
    )
    read.add_argument("--through", type=_date, help="last day to include (default: the panel's last day)")
    read.add_argument("--level", type=float, default=0.9, help="interval level (default 0.9)")
    read.add_argument(
        "--estimator",
        choices=["cuped", "did"],
        default="cuped",
        help="which estimate to print (both are kept)",
    )
    listed = actions.add_parser("list", help="every experiment of the lakehouse")
    for action in (start, read, listed):
        action.add_argument("--lakehouse", help="lakehouse root (default: paths.lakehouse)")
        _common(action)
        action.set_defaults(func=_cmd_experiment)

    listings = sub.add_parser(
        "listings", help="competitor listings matched to our SKUs by their text: match, review, decide"
    )
    listing_actions = listings.add_subparsers(dest="action", required=True)
    match = listing_actions.add_parser(
        "match", help="match every listing in silver (the nightly job does too)"
    )
    queue = listing_actions.add_parser("review", help="the unmatched listings, with the closest SKU and why")
    queue.add_argument("--limit", type=int, default=50, help="rows to show (default 50)")
    confirm = listing_actions.add_parser("confirm", help="a listing is this SKU (wins over the matcher)")
    confirm.add_argument("--sku", required=True, help="our SKU")
    reject = listing_actions.add_parser("reject", help="a listing is not a product we sell")
    for action in (confirm, reject):
        action.add_argument("--competitor", required=True)
        action.add_argument("--competitor-sku", required=True, help="the competitor's id of the listing")
        action.add_argument("--author", required=True, help="who decides (kept with the decision)")
        action.add_argument("--note", help="why (kept with the decision)")
    for action in (match, queue, confirm, reject):
        action.add_argument("--lakehouse", help="lakehouse root (default: paths.lakehouse)")
        _common(action)
        action.set_defaults(func=_cmd_listings)

    for name, does in (
        ("approve", "put recommended prices in force (status approved), without re-scoring"),
        ("reject", "keep the current prices instead of the recommendations (status rejected)"),
    ):
        decide = sub.add_parser(name, help=does)
        decide.add_argument("--lakehouse", help="lakehouse root (default: paths.lakehouse)")
        decide.add_argument("--price-date", type=_date, help="night (default and only choice: the latest)")
        decide.add_argument("--sku", action="append", default=[], help="a SKU (repeat the flag for more)")
        decide.add_argument(
            "--max-change", type=float, help="every decidable price whose change is at most this fraction"
        )
        decide.add_argument("--all", action="store_true", help="every decidable price of the night")
        decide.add_argument("--author", required=True, help="who decides (kept in gold/price_decisions)")
        decide.add_argument("--note", help="why (kept with the decision)")
        _common(decide)
        decide.set_defaults(func=_cmd_decide)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_console(verbose=getattr(args, "verbose", False))
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        return handler(args)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    except (IngestError, ReconciliationError) as error:
        print(f"pricing {args.command} failed: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
