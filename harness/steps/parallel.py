"""Per-machine work within a step, run on every machine at once: each machine has its own SSH
connection, so uploads and restarts overlap instead of queueing (issue: the fast loop).

`ctx.serial` (`up --serial`) keeps the old one-machine-after-another order, for comparison and
for trainees who want to follow one machine at a time. Either way each machine's part gets its
own progress line, ` ✓ [step > machine] (1.2s)`, and a failure on any machine is raised once all
have finished, the first in lab order, so the error still names its step and machine.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

from harness.lab import Machine
from harness.progress import report
from harness.steps.context import StepContext

T = TypeVar("T")


def for_each(ctx: StepContext, step: str, machines: list[Machine], work: Callable[[Machine], T],
             what: str = "", quiet: bool = False) -> dict[str, T]:
    """`work(machine)` for every machine, concurrently unless ctx.serial; machine name -> result.
    `quiet`: no line per machine unless it fails (for questions, not for work)."""
    machines = list(machines)
    if not machines:
        return {}
    for m in machines:      # open every connection before the threads share the context
        ctx.on(m)
    label = f" {what}" if what else ""

    def timed(m: Machine) -> tuple[T | None, BaseException | None]:
        started = time.monotonic()
        try:
            result = work(m)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after the others finish
            report(f"[{step} > {m.name}]{label}", time.monotonic() - started,
                   (str(exc).splitlines() or [type(exc).__name__])[0], ok=False)
            return None, exc
        if ctx.verbose_machines and not quiet:
            report(f"[{step} > {m.name}]{label}", time.monotonic() - started)
        return result, None

    if ctx.serial or len(machines) == 1:
        outcomes = []
        for m in machines:
            outcomes.append(timed(m))
            if outcomes[-1][1] is not None:
                break
    else:
        pool = ThreadPoolExecutor(max_workers=len(machines), thread_name_prefix=f"{step}-")
        try:
            outcomes = list(pool.map(timed, machines))
        except BaseException:
            # Only this thread sees Ctrl-C. Cut the other machines' commands off so the pool
            # drains in seconds and teardown starts, instead of waiting for their deadlines.
            ctx.cancel()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    for _, exc in outcomes:
        if exc is not None:
            raise exc
    return {m.name: result for m, (result, _) in zip(machines, outcomes)}
