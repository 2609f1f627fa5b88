"""Benchmark scripts: they print figures and keep them as JSON under artifacts/; nothing here asserts."""

from __future__ import annotations

import json
import time
from pathlib import Path


def write_figures(kind: str, figures: dict) -> Path:
    """artifacts/bench-<kind>-<time>.json, and a line saying where it went."""
    out = Path("artifacts") / f"bench-{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written to {out}")
    return out
