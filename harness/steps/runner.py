"""Runs the guide's steps in order with a ✓/✗ line and a duration each, and records timings.

Used by `python -m harness up` and by the pytest fixtures, so both run exactly the same code.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Collection
from pathlib import Path

from harness.lab import ADDONS
from harness.steps import StepInfo, steps_until
from harness.steps.context import StepContext

# step name -> module under harness.steps; "machines" is the provider's job, not a module here.
MODULES = {"hosts": "hosts", "pki": "pki", "etcd": "etcd", "kubectl": "kubectl",
           "flannel": "flannel", "masters": "masters", "api-ha": "api_ha", "nodes": "nodes",
           "workload": "workload", "dns": "dns", "metrics": "metrics",
           "ingress": "ingress", "registry": "registry", "logs": "logs"}


def step_function(name: str):
    return importlib.import_module(f"harness.steps.{MODULES[name]}").run_step


def run_one(ctx: StepContext, step: StepInfo, timings: dict[str, float]) -> None:
    from harness.progress import phase
    from harness.steps import facts

    with phase(f"{step.name:<9} {step.summary}") as note:
        started = time.monotonic()
        before = len(ctx.changes.get(step.name, []))
        try:
            facts.gather_for_step(ctx, step.name)   # one round trip per machine (harness.steps.facts)
            step_function(step.name)(ctx)
        finally:
            facts.forget_all(ctx)
        timings[step.name] = round(time.monotonic() - started, 1)
        changed = len(ctx.changes.get(step.name, [])) - before
        note("no change" if changed == 0 else f"{changed} change(s)")


def run_steps(ctx: StepContext, until: str | None = None, skip_machines: bool = True,
              timings_file: Path | None = None, addons: Collection[str] | None = None) -> dict[str, float]:
    """Every step after `machines` up to `until`, in the guide's order; with `addons`, of the
    add-ons' steps (harness.lab.ADDONS) only those (None: all of the lab's)."""
    timings: dict[str, float] = {}
    try:
        for step in steps_until(until):
            if step.name == "machines" and skip_machines:
                continue
            if addons is not None and step.name in ADDONS and step.name not in addons:
                continue
            run_one(ctx, step, timings)
    finally:
        if timings_file:
            timings_file.parent.mkdir(parents=True, exist_ok=True)
            timings_file.write_text(json.dumps(timings, indent=2) + "\n")
    return timings

