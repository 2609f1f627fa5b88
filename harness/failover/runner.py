"""Runs one scenario inside the probe, restores the lab, re-runs the steps and the core checks,
and writes the result (JSON + Markdown) to the run's artifacts folder."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import checks
from harness.failover.probe import Probe
from harness.failover.scenarios import SCENARIOS, Env
from harness.steps.runner import run_steps

BASELINE_S = 3.0     # probe time before the break, so the report shows the lab healthy first
SETTLE_S = 8.0       # probe time after the measurement, before restoring


@dataclass
class ScenarioResult:
    name: str
    title: str
    bound_s: float
    bound_formula: str
    facts: dict
    probe: dict
    timeline: list = field(default_factory=list)   # (t, stream, ok)
    converged: bool = False
    error: str = ""

    def to_json(self) -> dict:
        return self.__dict__


def run_scenario(env: Env, name: str, out_dir: Path | None = None) -> ScenarioResult:
    scenario = SCENARIOS[name]
    bound = scenario.bound(env)
    probe = Probe(env.lab, env.ctx.pki_dir).start()
    facts, error = {}, ""
    try:
        time.sleep(BASELINE_S)
        facts = scenario.act(env)
        time.sleep(SETTLE_S)
    except Exception as exc:  # noqa: BLE001 - recorded; the lab is restored either way
        error = f"{type(exc).__name__}: {exc}"
    finally:
        try:
            scenario.restore(env)
        finally:
            result = probe.stop()
    probe.find_missing(result)
    probe.cleanup()
    outcome = ScenarioResult(name, scenario.title, bound.seconds, bound.formula, facts, result.summary(),
                             [(s.at, s.stream, s.ok) for s in result.samples], error=error)
    run_steps(env.ctx)                      # the lab converges back...
    outcome.facts["converged_checks_s"] = sum(checks.converge(env.ctx).values())  # ...checks pass
    outcome.converged = True
    if out_dir:
        write_reports(outcome, out_dir)
    return outcome


def write_reports(result: ScenarioResult, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{result.name}.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    (out_dir / f"{result.name}.md").write_text(markdown(result))


def markdown(result: ScenarioResult) -> str:
    p = result.probe
    lines = [f"# {result.title} (`{result.name}`)", "",
             f"- bound: **{result.bound_s} s** ({result.bound_formula})",
             *(f"- {key}: **{value}**" for key, value in result.facts.items()),
             f"- longest API gap: new connections {p['longest_gap_new_s']} s, reused connection "
             f"{p['longest_gap_reused_s']} s, writes {p['longest_gap_write_s']} s",
             f"- requests: {p['requests']}, failed: {p['failed_requests']}",
             f"- acknowledged writes: {p['acknowledged_writes']}, lost: **{p['lost_writes']}**",
             f"- lab converged back and passed the core checks: {result.converged}"]
    if result.error:
        lines.append(f"- error during the scenario: `{result.error}`")
    lines += ["", "## Probe timeline (one character per second: `.` all ok, `x` some failed, ` ` no sample)", ""]
    for stream in ("new", "reused", "write"):
        lines.append(f"    {stream:<7}{_strip(result.timeline, stream, p['duration_s'])}")
    return "\n".join(lines) + "\n"


def _strip(timeline: list, stream: str, duration: float) -> str:
    cells = [" "] * (int(duration) + 1)
    for at, name, ok in timeline:
        if name != stream:
            continue
        i = int(at)
        if i < len(cells):
            cells[i] = "x" if (not ok or cells[i] == "x") else "."
    return "".join(cells)
