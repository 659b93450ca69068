"""The review page: a small Dash app over one lakehouse (``pricing review --serve``).

Tonight's proposals, filterable by status, category and review reason; for the selected SKU its
expected-profit curve inside the band (the champion's what-if) and its reasons; approve, reject and
override controls that call :mod:`pricing.decide.review`, so the page refuses exactly what the commands refuse
and every decision lands in ``gold/price_decisions``. It runs as a Databricks App too (Dash serves a
Flask app: ``python -m pricing.review_app --lakehouse ...``). Spark work happens on the server, one
request at a time, and the page only ever holds ``MAX_ROWS`` rows.
"""

from __future__ import annotations

import argparse
import logging
import threading
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import Dash, Input, Output, State, ctx, dash_table, dcc, html, no_update
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pricing.config import PricingConfig
from pricing.decide.review import ReviewError, Selection, change, decide, latest_price_date, override
from pricing.decide.stage import whatif
from pricing.lakehouse.tables import PRICE_RECOMMENDATIONS, SILVER, Lakehouse
from pricing.platform.lock import LockHeld

log = logging.getLogger(__name__)

# Rows the table shows at most (largest expected gain first); the filters narrow the rest.
MAX_ROWS = 500
# Points on the what-if curve across the band.
CURVE_POINTS = 25

COLUMNS = [
    ("sku", "SKU"),
    ("title", "title"),
    ("category", "category"),
    ("status", "status"),
    ("current_price", "current"),
    ("recommended_price", "recommended"),
    ("final_price", "in force"),
    ("change", "change %"),
    ("expected_gain", "gain"),
    ("expected_gain_low", "gain low"),
    ("expected_gain_high", "gain high"),
    ("review_reason", "review reason"),
    ("binding_constraint", "guardrail"),
]


class ReviewPage:
    """The data behind the page: the latest night's rows of one lakehouse, read through Spark."""

    def __init__(self, spark: SparkSession, cfg: PricingConfig, lakehouse: Lakehouse) -> None:
        self.spark, self.cfg, self.lakehouse = spark, cfg, lakehouse
        self.lock = threading.Lock()  # one Spark request at a time from the server's threads

    @property
    def lock_ttl_s(self) -> float:
        return self.cfg.nightly.lock_ttl_minutes * 60

    def night(self) -> date:
        return latest_price_date(self.spark, self.lakehouse)

    def rows(self, price_date: date) -> DataFrame:
        night = self.lakehouse.read(self.spark, PRICE_RECOMMENDATIONS).where(
            F.col("price_date") == F.lit(price_date)
        )
        if self.lakehouse.exists(self.spark, SILVER["catalog"]):
            night = night.join(
                self.lakehouse.read(self.spark, SILVER["catalog"]).select("sku", "title", "category"),
                "sku",
                "left",
            )
        else:
            night = night.withColumn("title", F.lit(None).cast("string")).withColumn(
                "category", F.lit(None).cast("string")
            )
        return night.withColumn("change", F.round(change(night) * 100, 1))

    def options(self, price_date: date) -> dict[str, list[str]]:
        """The values each filter offers (distinct statuses, categories, review reasons)."""
        rows = self.rows(price_date)
        found: dict[str, list[str]] = {}
        for name, column in (
            ("status", F.col("status")),
            ("category", F.coalesce(F.col("category"), F.lit("(none)"))),
            ("reason", F.explode(F.split(F.col("review_reason"), ","))),
        ):
            found[name] = sorted(r[0] for r in rows.select(column.alias("v")).distinct().collect() if r[0])
        return found

    def table(
        self, price_date: date, statuses: list[str], categories: list[str], reasons: list[str]
    ) -> pd.DataFrame:
        rows = self.rows(price_date).where(F.col("status").isin(*statuses))
        rows = rows.where(F.coalesce(F.col("category"), F.lit("(none)")).isin(*categories))
        if reasons:
            listed = F.split(F.coalesce(F.col("review_reason"), F.lit("")), ",")
            rows = rows.where(F.arrays_overlap(listed, F.array(*[F.lit(r) for r in reasons])))
        picked = rows.orderBy(F.desc_nulls_last("expected_gain"), "sku").limit(MAX_ROWS)
        return picked.select([c for c, _ in COLUMNS]).toPandas()

    def detail(self, price_date: date, sku: str) -> tuple[go.Figure, str]:
        """The SKU's expected-profit curve over its band (and a little beyond), and its reasons."""
        row = self.rows(price_date).where(F.col("sku") == sku).first()
        if row is None:
            return _placeholder(), f"{sku} has no price for {price_date}"
        reasons = (
            f"{sku}: {row.status}; current {row.current_price:.2f}, recommended {row.recommended_price:.2f}, "
            f"in force {row.final_price:.2f}; band [{row.price_floor:.2f}, {row.price_ceiling:.2f}] "
            f"(floor: {row.floor_reason or '-'}, ceiling: {row.ceiling_reason or '-'}); guardrail "
            f"{row.binding_constraint}; review reason {row.review_reason or '-'}"
        )
        low, high = 0.9 * row.price_floor, 1.1 * row.price_ceiling
        prices = sorted({round(float(p), 2) for p in np.linspace(low, high, CURVE_POINTS)})
        try:
            curve = whatif(self.spark, self.lakehouse, self.cfg, sku, prices, price_date)
        except (KeyError, RuntimeError) as error:
            return _placeholder(), f"{reasons}. No curve: {error}"
        figure = go.Figure()
        figure.add_vrect(
            x0=row.price_floor, x1=row.price_ceiling, fillcolor="green", opacity=0.12, line_width=0
        )
        figure.add_trace(
            go.Scatter(x=curve["price"], y=curve["expected_profit"], name="expected profit / day")
        )
        for price, label, dash in (
            (row.current_price, "current", "dot"),
            (row.recommended_price, "recommended", "dash"),
        ):
            figure.add_vline(x=price, line_dash=dash, annotation_text=label)
        figure.update_layout(
            title=f"{sku}: expected profit by price (band shaded)",
            xaxis_title="price",
            yaxis_title="expected profit per day",
            height=360,
            margin={"t": 50, "b": 40, "l": 60, "r": 20},
        )
        return figure, reasons


def _placeholder() -> go.Figure:
    figure = go.Figure()
    figure.update_layout(
        title="select a SKU (a row, or type it) to see its expected profit by price",
        height=360,
        xaxis_visible=False,
        yaxis_visible=False,
    )
    return figure


def _checklist(name: str, values: list[str], chosen: list[str]) -> dcc.Checklist:
    return dcc.Checklist(
        id=f"filter-{name}",
        options=[{"label": v, "value": v} for v in values],
        value=chosen,
        inline=True,
        inputStyle={"marginRight": "4px", "marginLeft": "10px"},
    )


def build_app(page: ReviewPage) -> Dash:
    """The Dash app over ``page`` (its layout is read once per page load)."""
    app = Dash(__name__, title="pricing review")

    def layout() -> html.Div:
        with page.lock:
            night = page.night()
            options = page.options(night)
        statuses = ["needs_review"] if "needs_review" in options["status"] else options["status"]
        return html.Div(
            [
                html.H2(f"Price review: prices for {night}"),
                html.P(page.lakehouse.root, style={"color": "#888"}),
                dcc.Store(id="night", data=night.isoformat()),
                dcc.Store(id="version", data=0),
                html.Div([html.B("status"), _checklist("status", options["status"], statuses)]),
                html.Div(
                    [html.B("category"), _checklist("category", options["category"], options["category"])]
                ),
                html.Div([html.B("review reason (any)"), _checklist("reason", options["reason"], [])]),
                html.P(id="count"),
                dash_table.DataTable(  # type: ignore[attr-defined]
                    id="proposals",
                    columns=[{"id": c, "name": n} for c, n in COLUMNS],
                    row_selectable="single",
                    sort_action="native",
                    page_size=20,
                    style_cell={"fontFamily": "sans-serif", "fontSize": 13, "padding": "3px"},
                    style_table={"overflowX": "auto"},
                ),
                html.Hr(),
                html.Div(
                    [
                        html.Label("SKU"),
                        dcc.Input(id="sku", type="text", debounce=True, style={"width": "130px"}),
                        html.Label("author"),
                        dcc.Input(id="author", type="text", style={"width": "110px"}),
                        html.Label("note"),
                        dcc.Input(id="note", type="text", style={"width": "220px"}),
                        html.Button("Approve", id="approve"),
                        html.Button("Reject", id="reject"),
                        html.Label("price"),
                        dcc.Input(id="override-price", type="number", step=0.01, style={"width": "110px"}),
                        html.Button("Override", id="override"),
                    ],
                    style={"display": "flex", "gap": "8px", "alignItems": "center", "flexWrap": "wrap"},
                ),
                html.P(id="message", style={"fontWeight": "bold"}),
                html.P(id="reasons"),
                dcc.Graph(id="curve", figure=_placeholder()),
            ],
            style={"fontFamily": "sans-serif", "margin": "1em 2em"},
        )

    app.layout = layout

    @app.callback(
        Output("proposals", "data"),
        Output("proposals", "selected_rows"),
        Output("count", "children"),
        Input("filter-status", "value"),
        Input("filter-category", "value"),
        Input("filter-reason", "value"),
        Input("version", "data"),
        State("night", "data"),
    )
    def filtered(
        statuses: list[str], categories: list[str], reasons: list[str], _: int, night: str
    ) -> tuple[list[dict[str, Any]], list[int], str]:
        with page.lock:
            frame = page.table(date.fromisoformat(night), statuses or [], categories or [], reasons or [])
        shown = f"{len(frame)} prices shown" + (f" (the first {MAX_ROWS})" if len(frame) == MAX_ROWS else "")
        return frame.round(2).to_dict("records"), [], shown

    @app.callback(
        Output("sku", "value"),
        Input("proposals", "selected_rows"),
        State("proposals", "data"),
        prevent_initial_call=True,
    )
    def selected(rows: list[int] | None, data: list[dict[str, Any]]) -> Any:
        return data[rows[0]]["sku"] if rows else no_update

    @app.callback(
        Output("curve", "figure"),
        Output("reasons", "children"),
        Input("sku", "value"),
        Input("version", "data"),
        State("night", "data"),
        prevent_initial_call=True,
    )
    def detail(sku: str | None, _: int, night: str) -> tuple[Any, str]:
        if not sku:
            return _placeholder(), ""
        with page.lock:
            return page.detail(date.fromisoformat(night), sku.strip())

    @app.callback(
        Output("message", "children"),
        Output("version", "data"),
        Input("approve", "n_clicks"),
        Input("reject", "n_clicks"),
        Input("override", "n_clicks"),
        State("sku", "value"),
        State("author", "value"),
        State("note", "value"),
        State("override-price", "value"),
        State("night", "data"),
        State("version", "data"),
        prevent_initial_call=True,
    )
    def act(
        _a: int | None,
        _r: int | None,
        _o: int | None,
        sku: str | None,
        author: str | None,
        note: str | None,
        price: float | None,
        night: str,
        version: int,
    ) -> tuple[str, Any]:
        action = ctx.triggered_id
        if not sku:
            return "choose a SKU first (select a row or type it)", no_update
        day = date.fromisoformat(night)
        try:
            with page.lock:
                if action == "override":
                    if price is None:
                        return "give the price to put in force", no_update
                    report = override(
                        page.spark,
                        page.lakehouse,
                        sku.strip(),
                        float(price),
                        author or "",
                        note,
                        day,
                        page.lock_ttl_s,
                    )
                else:
                    decision = "approved" if action == "approve" else "rejected"
                    report = decide(
                        page.spark,
                        page.lakehouse,
                        decision,
                        Selection(skus=(sku.strip(),)),
                        author or "",
                        note,
                        day,
                        page.lock_ttl_s,
                    )
        except (ReviewError, LockHeld) as error:
            return f"refused: {error}", no_update
        return report.render(), version + 1

    return app


def main(argv: list[str] | None = None) -> None:
    """``python -m pricing.review_app --lakehouse L [--host H] [--port P]`` (what ``pricing review
    --serve`` runs; a Databricks App's command)."""
    from pricing.config import load_config
    from pricing.platform.spark import build_spark

    parser = argparse.ArgumentParser(prog="pricing-review-app")
    parser.add_argument("--lakehouse", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8050)
    parser.add_argument("--env", default="local")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    cfg = load_config(args.env, overrides=[f"paths.lakehouse={args.lakehouse}", *args.overrides])
    spark = build_spark(cfg.spark)
    serve(spark, cfg, Lakehouse.at(spark, args.lakehouse), args.host, args.port)


def serve(spark: SparkSession, cfg: PricingConfig, lakehouse: Lakehouse, host: str, port: int) -> None:
    """Serve the review page until interrupted."""
    app = build_app(ReviewPage(spark, cfg, lakehouse))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    log.info("review page for %s on http://%s:%d/", lakehouse.root, host, port)
    app.run(host=host, port=port, debug=False)


if __name__ == "__main__":
    main()
