"""How every benchmark ends: the machine it ran on, the ratios printed, all figures as JSON."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def write_results(results: dict[str, Any], out: str, headline: list[str], **machine: Any) -> None:
    """Add the machine (cpus, python, plus ``machine``), print ``headline`` keys, write ``out``."""
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), **machine}
    print(json.dumps({key: results[key] for key in headline}, indent=2))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
