"""Self-contained HTML pages with embedded PNG plots, shared by the backtest and nightly reports.

Everything that comes from data goes through :func:`html.escape` (``section`` titles and notes) or
pandas' escaping ``to_html`` (``table``), so a product title cannot inject markup.
"""

from __future__ import annotations

import base64
import html
import io as _io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on a cluster driver

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}"
    "img{max-width:100%}.t{border-collapse:collapse;font-size:13px}"
    ".t td,.t th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}"
    ".file{color:#888;font-size:11px}.bad{color:#b00}"
)


def png(fig: Any, folder: Path | None, name: str) -> tuple[str, str]:
    """Render ``fig`` as PNG (also saved as ``folder/name.png`` when a folder is given); return (file
    name, base64 data) for embedding."""
    buffer = _io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = buffer.getvalue()
    if folder is not None:
        (folder / f"{name}.png").write_bytes(data)
    return f"{name}.png", base64.b64encode(data).decode()


def table(frame: pd.DataFrame, digits: int = 3) -> str:
    """An HTML table of a small frame; cell text is escaped."""
    return frame.to_html(
        index=False, border=0, classes="t", float_format=lambda v: f"{v:,.{digits}f}", na_rep="", escape=True
    )


def section(title: str, body: str = "", image: tuple[str, str] | None = None, note: str = "") -> str:
    """One titled section: an optional note, an embedded plot and an HTML body (already escaped)."""
    figure = (
        f'<img alt="{html.escape(title)}" src="data:image/png;base64,{image[1]}">'
        f'<p class="file">{html.escape(image[0])}</p>'
        if image
        else ""
    )
    text = f"<p>{html.escape(note)}</p>" if note else ""
    return f"<h2>{html.escape(title)}</h2>{text}{figure}{body}"


def page(title: str, sections: list[str]) -> str:
    """The whole document: one file, nothing fetched from elsewhere."""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        + "".join(sections)
        + "</body></html>"
    )
