"""Figures rounded for people, the same in the HTML reports and the closing table."""

from __future__ import annotations


def seconds(value, unit: str = " s") -> str:
    """Hundredths under 10 s (0.61 s, 3.61 s: a bound's slack is that fine), tenths under 100 s
    (19.4 s), whole seconds above; no trailing zeros; '—' for none. A value that is not a number
    is returned as its text."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    magnitude = abs(value)
    text = f"{value:.2f}" if magnitude < 10 else f"{value:.1f}" if magnitude < 100 else f"{value:.0f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text}{unit}"
