"""Runs one scenario inside the probe, restores the lab, re-runs the steps and the core checks,
judges the result, and writes it (JSON, Markdown and HTML) to the run's artifacts folder."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.failover import bounds
from harness.failover.probe import Probe, ProbeResult
from harness.failover.scenarios import SCENARIOS, Env, require_power

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
    bound_direction: str = bounds.UPPER
    measure: str = ""             # which figure the bound governs
    events: dict = field(default_factory=dict)     # break / restore / end, seconds since probe start
    convergence_error: str = ""
    started_at: str = ""          # wall clock, UTC, for the trend page
    haproxy_profile: str = "seed"  # the lab's haproxy profile (seed or tuned), for `scenario compare`

    @property
    def bound(self) -> bounds.Bound:
        return bounds.Bound(self.bound_s, self.bound_formula, self.bound_direction)

    @property
    def measured(self) -> float | None:
        value = {**self.probe, **self.facts}.get(self.measure)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    @property
    def verdict(self) -> bounds.Verdict:
        return bounds.judge(self.bound, self.measured, self.measure or "measured")

    def to_json(self) -> dict:
        data = dict(self.__dict__)
        data["verdict"] = self.verdict.to_json()
        data["problems"] = problems(self)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "ScenarioResult":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def problems(result: ScenarioResult) -> list[str]:
    """Everything that makes the scenario fail, one line each; empty: it passed. The scenario
    tests assert on this, and the reports show it."""
    out = []
    if result.error:
        out.append(f"the scenario itself failed: {result.error}")
    if not result.converged:
        out.append(f"the lab did not converge back: {result.convergence_error or 'not run'}")
    probe = result.probe
    if probe.get("lost_writes", 0):
        out.append(f"{probe['lost_writes']} acknowledged writes were lost")
    if probe.get("acknowledged_writes", 0) <= 0:
        out.append("the probe wrote nothing: it measured nothing")
    verdict = result.verdict
    if not verdict.ok:
        out.append(verdict.text)
    scenario = SCENARIOS.get(result.name)
    if scenario is not None:
        out += scenario.invariants(result.facts, probe)
    return out


def rolled_back(result: ProbeResult, restore_point: float) -> list[int]:
    """A scenario that restores a snapshot takes the cluster back to it (its fact
    `restore_point_after_break_s`): a probe write acknowledged after that point is rolled back
    by design, so it leaves `missing`; one acknowledged before it stays there and fails the run.
    The probe has one writer, so its n-th acknowledged sequence number is its n-th successful
    write sample."""
    acked_at = dict(zip(result.acknowledged, (s.at for s in result.stream("write") if s.ok)))
    rolled = [seq for seq in result.missing if acked_at.get(seq, restore_point) > restore_point]
    result.missing = [seq for seq in result.missing if seq not in rolled]
    return rolled


# What a scenario's re-run and converge cover: "lab", every step and every quick check (the
# default: the next scenario gets a whole, checked lab); "core", the guide's steps and core
# checks and the scenario's own add-on only (a trainee's fast loop, issue 14).
CONVERGE_SCOPES = ("lab", "core")


def run_scenario(env: Env, name: str, out_dir: Path | None = None, scope: str = "lab") -> ScenarioResult:
    import checks
    from harness.steps.runner import run_steps

    scenario = SCENARIOS[name]
    addons = None if scope == "lab" else [scenario.addon] if scenario.addon else []
    require_power(env, scenario)   # before the probe starts: a provider without power control refuses
    bound = scenario.bound(env)
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    probe = Probe(env.lab, env.ctx.pki_dir).start()
    facts, errors, events = {}, [], {}
    try:
        time.sleep(BASELINE_S)
        events["break"] = probe.elapsed()
        facts = scenario.act(env)
        time.sleep(SETTLE_S)
    except Exception as exc:  # noqa: BLE001 - recorded; the lab is restored either way
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        events["restore"] = probe.elapsed()
        restore_started = time.monotonic()
        try:
            scenario.restore(env)
        except Exception as exc:  # noqa: BLE001 - recorded (it fails the run); the steps' re-run below may still repair
            errors.append(f"restore failed: {type(exc).__name__}: {exc}")
        finally:
            restore_s = time.monotonic() - restore_started
            result = probe.stop()
    events["end"] = round(result.duration_s, 3)
    listed = True
    try:
        probe.find_missing(result)
    except TimeoutError as exc:   # the API never came back: lost writes are unknown, and that fails the run
        listed = False
        errors.append(f"the probe's writes could not be listed, so lost writes are unknown: {exc}")
    error = "; ".join(errors)
    if isinstance(facts.get("restore_point_after_break_s"), (int, float)) and "break" in events:
        facts["probe_writes_rolled_back"] = len(
            rolled_back(result, events["break"] + facts["restore_point_after_break_s"]))
    probe.cleanup()
    summary = {**result.summary(), **({} if listed else {"lost_writes": None})}
    outcome = ScenarioResult(name, scenario.title, bound.seconds, bound.formula, facts, summary,
                             [(s.at, s.stream, s.ok) for s in result.samples], error=error,
                             bound_direction=bound.direction, measure=scenario.measure, events=events,
                             started_at=started_at, haproxy_profile=env.lab.haproxy.profile)
    try:
        rerun_started = time.monotonic()
        run_steps(env.ctx, addons=addons)                           # the lab converges back...
        converge_started = time.monotonic()
        outcome.facts["converged_checks_s"] = round(sum(checks.converge(env.ctx, addons=addons).values()), 1)
        outcome.converged = True                                    # ...and its checks pass
        done = time.monotonic()
        # the fast loop's "restore and converge" (issue 14): the scenario's own restore, the
        # steps' re-run and the core checks passing, as wall times (the probe's stop between
        # the restore and the re-run is left out: it is the measurement's, not the lab's)
        outcome.facts.update(restore_s=round(restore_s, 1), rerun_s=round(converge_started - rerun_started, 1),
                             converge_s=round(done - converge_started, 1),
                             back_in_s=round(restore_s + done - rerun_started, 1), converge_scope=scope)
    except Exception as exc:  # noqa: BLE001 - a scenario that broke the lab for good fails on it
        outcome.convergence_error = f"{type(exc).__name__}: {str(exc)[:600]}"
    if out_dir:
        write_reports(outcome, out_dir)
    return outcome


def write_reports(result: ScenarioResult, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{result.name}.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    (out_dir / f"{result.name}.md").write_text(markdown(result))
    try:
        from harness.failover.report import write_run_pages
        write_run_pages(out_dir, only=result.name)
    except ImportError:   # the `reports` extra (matplotlib) is not installed: JSON and Markdown only
        pass


def read_result(path: Path) -> dict | None:
    """A scenario JSON the runner wrote, or None for any other file (a run's folder holds more)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and {"name", "bound_s", "facts", "probe"} <= set(data) else None


def load_results(folder: Path) -> list[ScenarioResult]:
    """Every scenario result in one run's folder, by file name."""
    results = []
    for path in sorted(Path(folder).glob("*.json")):
        data = read_result(path)
        if data is not None:
            results.append(ScenarioResult.from_json(data))
    return results


def markdown(result: ScenarioResult) -> str:
    p = result.probe
    verdict = result.verdict
    found = problems(result)
    lines = [f"# {result.title} (`{result.name}`)", "",
             f"- verdict: **{'PASS' if not found else 'FAIL'}**",
             f"- bound: **{result.bound_s} s** ({result.bound_direction}; {result.bound_formula})",
             f"- judged: {verdict.text}",
             *(f"- {key}: **{value}**" for key, value in result.facts.items()),
             f"- longest API gap: new connections {p['longest_gap_new_s']} s, reused connection "
             f"{p['longest_gap_reused_s']} s, writes {p['longest_gap_write_s']} s",
             f"- requests: {p['requests']}, failed: {p['failed_requests']}",
             f"- acknowledged writes: {p['acknowledged_writes']}, lost: **{p['lost_writes']}**",
             f"- lab converged back and passed the core checks: {result.converged}"]
    if result.error:
        lines.append(f"- error during the scenario: `{result.error}`")
    lines += [f"- problem: {line}" for line in found]
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
