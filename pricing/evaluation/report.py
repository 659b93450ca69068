"""The evaluation report: one HTML page with the table of every family x seed and its plots."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

_COLUMNS = (
    ("family", "family", None),
    ("seed", "seed", None),
    ("decision", "decision", None),
    ("profit_vs_keep", "profit vs keep", "{:+.2%}"),
    ("best_vs_keep", "best in band vs keep", "{:+.2%}"),
    ("uplift_share", "share of achievable uplift", "{:.2f}"),
    ("model_expected_vs_keep", "model expected vs keep", "{:+.2%}"),
    ("moved_share", "moved", "{:.0%}"),
    ("raised_share", "raised", "{:.0%}"),
    ("best_raised_share", "best in band is a raise", "{:.0%}"),
    ("right_direction_share", "moved towards the best", "{:.0%}"),
    ("elasticity_mae", "elasticity MAE", "{:.3f}"),
    ("elasticity_bias", "bias", "{:+.3f}"),
    ("elasticity_corr", "corr", "{:.2f}"),
    ("interval_coverage", "coverage", "{:.2f}"),
    ("wape", "WAPE", "{:.3f}"),
    ("seasonal_naive_wape", "seasonal naive WAPE", "{:.3f}"),
    ("violations", "violations", "{:d}"),
)


def _cell(value: Any, pattern: str | None) -> str:
    if value is None:
        return "-"
    return html.escape(pattern.format(value) if pattern else str(value))


def _plot(rows: list[dict[str, Any]], metric: str, title: str, path: Path, line: float | None) -> None:
    decisions = sorted({r["decision"] for r in rows})
    labels = sorted({(r["family"], r["seed"]) for r in rows})
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(labels) * len(decisions)), 3.6))
    width = 0.8 / max(len(decisions), 1)
    for k, decision in enumerate(decisions):
        values = {(r["family"], r["seed"]): r.get(metric) for r in rows if r["decision"] == decision}
        ax.bar(
            [i + k * width for i in range(len(labels))],
            [values.get(label) or 0.0 for label in labels],
            width,
            label=decision,
        )
    if line is not None:
        ax.axhline(line, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks([i + width * (len(decisions) - 1) / 2 for i in range(len(labels))])
    ax.set_xticklabels([f"{f}\n{s}" for f, s in labels], fontsize=7, rotation=45, ha="right")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_evaluation_report(result: dict[str, Any], out_dir: str) -> str:
    """Write ``<out_dir>/index.html`` with the rows of ``result`` and bar plots; return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = result["rows"]
    plots = [
        ("profit_vs_keep", "profit under true demand vs keeping prices", -0.005),
        ("uplift_share", "share of the achievable uplift inside the bands", 0.6),
        ("interval_coverage", "elasticity interval coverage (nominal 0.9)", 0.9),
        ("elasticity_bias", "elasticity bias (estimate - truth)", 0.0),
    ]
    images = []
    for metric, title, line in plots:
        if rows:
            _plot(rows, metric, title, out / f"{metric}.png", line)
            images.append(f'<h3>{html.escape(title)}</h3><img src="{metric}.png">')
    header = "".join(f"<th>{html.escape(label)}</th>" for _, label, _ in _COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(r.get(key), pattern)}</td>" for key, _, pattern in _COLUMNS) + "</tr>"
        for r in rows
    )
    families = "".join(
        f"<li><b>{html.escape(name)}</b>: {html.escape(text)}</li>"
        for name, text in result["families"].items()
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>pricing evaluate</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}</style></head><body>"
        f"<h1>Evaluation on {len(result['families'])} market families</h1>"
        f"<p>defaults: {html.escape(str(result['defaults']))}; plan: {html.escape(str(result['plan']))}; "
        f"{result['seconds']:.0f} s</p><ul>{families}</ul>"
        f"<table><tr>{header}</tr>{body}</table>{''.join(images)}</body></html>"
    )
    path = out / "index.html"
    path.write_text(page)
    return str(path)
