"""Progress lines, the same for every command: ` ✓ label (1.2s) — note` or ` ✗ label (1.2s): why`.

On a terminal the line shows ` • label ...` while the work runs; without one (CI) only the final
line is written, so logs stay plain.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Iterator


@contextlib.contextmanager
def phase(label: str, out=None) -> Iterator[Callable[[str], None]]:
    """Prints `✓ label (1.2s)` or `✗ label (1.2s): why`; the body may add a note to the line."""
    out = out or sys.stdout
    tty = out.isatty()
    notes: list[str] = []
    if tty:
        out.write(f" • {label} ...\r")
        out.flush()
    started = time.monotonic()
    try:
        yield notes.append
    except BaseException as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        out.write(f" ✗ {label} ({time.monotonic() - started:.1f}s): {first}\n")
        out.flush()
        raise
    note = f" — {'; '.join(notes)}" if notes else ""
    clear = "\033[K" if tty else ""
    out.write(f" ✓ {label} ({time.monotonic() - started:.1f}s){note}{clear}\n")
    out.flush()


def report(label: str, seconds: float, note: str = "", ok: bool = True, out=None) -> None:
    out = out or sys.stdout
    sep = " — " if ok else ": "   # the same shapes as phase()'s lines
    out.write(f" {'✓' if ok else '✗'} {label} ({seconds:.1f}s){sep + note if note else ''}\n")
    out.flush()

