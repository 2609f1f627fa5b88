"""Progress lines for the artifacts CLI: a check mark on a terminal, plain words otherwise."""

from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def _mark(self, ok: bool) -> str:
        if self.tty:
            return "✓" if ok else "✗"
        return "ok  " if ok else "FAIL"

    def line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def step(self, text: str) -> None:
        """Something long is starting (a Go build takes minutes): say so before, not after."""
        self.line(f"{'…' if self.tty else '..'} {text}")

    def done(self, name: str, version: str, detail: str, ok: bool = True) -> None:
        label = f"{name} {version}" if version else name
        self.line(f"{self._mark(ok)} {label} ({detail})")


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{size} B"
        value /= 1024
    return f"{size} B"
