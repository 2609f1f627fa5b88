"""Break-and-fix drills: `python -m harness scenario break|verify|restore NAME`.

`break` breaks the lab the way scenario NAME does, prints what the trainee should observe and
where to look (never the answer) and leaves it broken. `verify` tells the trainee whether their
fix brought the lab back: every core check once, then the scenario's own condition. `restore`
repairs it automatically. Which drill is broken is kept in the lab's state folder
(`drill.json`), so the three commands can run hours apart; each refuses with one line and exit
status 2 when the lab is not in the state it needs, and every finished drill is appended to
`drills.log` there.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.errors import UserError

STATE_FILE = "drill.json"
HISTORY_FILE = "drills.log"


@dataclass
class Lab:
    """What the drill commands need from a lab: its name, its state folder, an Env on demand, and
    two ways to look at it. The CLI builds the real one; tests pass fakes."""
    name: str
    state_dir: Path
    env: Callable[[], object]                               # -> harness.failover.scenarios.Env
    core_checks: Callable[[object], list[tuple[str, str]]]  # env -> [(check, "" or what failed)]
    converge: Callable[[object], None]                      # env -> steps re-run, checks pass, or raises


def _state_path(lab: Lab) -> Path:
    return Path(lab.state_dir) / STATE_FILE


def current(lab: Lab) -> dict | None:
    path = _state_path(lab)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise UserError(f"drill state {path} is unreadable; remove it and run `scenario restore` by hand") from None


def _save(lab: Lab, state: dict) -> None:
    path = _state_path(lab)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(path)


def _finish(lab: Lab, state: dict, outcome: str) -> None:
    entry = {**state, "outcome": outcome, "finished_at": _now()}
    with open(Path(lab.state_dir) / HISTORY_FILE, "a") as log:
        log.write(json.dumps(entry) + "\n")
    _state_path(lab).unlink(missing_ok=True)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _scenario(name: str, registry: dict):
    if name not in registry:
        raise UserError(f"scenario: unknown name {name!r} (known: {', '.join(registry)})")
    scenario = registry[name]
    if scenario.drill is None:
        drills = ", ".join(n for n, s in registry.items() if s.drill)
        raise UserError(f"scenario {name} has no drill (drills: {drills})")
    return scenario


def _require_broken(lab: Lab, name: str, command: str) -> dict:
    state = current(lab)
    if state is None:
        raise UserError(f"scenario {command} {name}: no drill is broken on lab {lab.name}; "
                        f"start one with `scenario break {name}`")
    if state["name"] != name:
        raise UserError(f"scenario {command} {name}: the drill broken on lab {lab.name} is {state['name']} "
                        f"(since {state['broken_at']}), not {name}")
    return state


def break_drill(lab: Lab, name: str, registry: dict, out=print) -> int:
    scenario = _scenario(name, registry)
    state = current(lab)
    if state is not None:
        raise UserError(f"scenario break {name}: drill {state['name']} is already broken on lab {lab.name} "
                        f"(since {state['broken_at']}); `scenario verify` or `scenario restore` it first")
    env = lab.env()
    from harness.failover.scenarios import require_power
    require_power(env, scenario)   # a provider without power control refuses before anything breaks
    already = scenario.drill.fixed(env)
    if already:
        raise UserError(f"scenario break {name}: lab {lab.name} is not healthy to start from: {already[0]}")
    _save(lab, {"name": name, "lab": lab.name, "broken_at": _now(), "verify_attempts": 0})
    scenario.drill.breaks(env)
    out(f"Broke lab {lab.name}: {scenario.title}.")
    out("")
    out(f"What to observe: {scenario.drill.observe}")
    out("")
    out(f"When you think you have fixed it: python -m harness scenario verify {name}")
    out(f"To have it repaired for you:      python -m harness scenario restore {name}")
    return 0


def verify_drill(lab: Lab, name: str, registry: dict, out=print) -> int:
    scenario = _scenario(name, registry)
    state = _require_broken(lab, name, "verify")
    env = lab.env()
    failed = []
    for check, problem in lab.core_checks(env):
        out(f"{'✗' if problem else '✓'} {check}" + (f": {problem}" if problem else ""))
        if problem:
            failed.append(check)
    try:
        own = scenario.drill.fixed(env)
    except Exception as exc:  # noqa: BLE001 - a machine still down cannot answer: not fixed
        own = [f"{type(exc).__name__}: {exc}"]
    for problem in own:
        out(f"✗ {name}: {problem}")
    if not own:
        out(f"✓ {name}: the scenario's own condition holds")
    state["verify_attempts"] = state.get("verify_attempts", 0) + 1
    if failed or own:
        _save(lab, state)
        out(f"Not fixed yet ({len(failed) + len(own)} problems, attempt {state['verify_attempts']}).")
        return 1
    _finish(lab, state, "fixed by the trainee")
    out(f"Fixed: lab {lab.name} passes every core check and {name}'s own condition.")
    return 0


def restore_drill(lab: Lab, name: str, registry: dict, out=print) -> int:
    scenario = _scenario(name, registry)
    state = _require_broken(lab, name, "restore")
    env = lab.env()
    (scenario.drill.restore or scenario.restore)(env)
    lab.converge(env)
    _finish(lab, state, "restored")
    out(f"Restored lab {lab.name} after {name}: steps re-run, core checks pass.")
    return 0


def core_checks_once(env) -> list[tuple[str, str]]:
    """Every core check, once, in order: (name, "" when it passed, else what it saw). The same
    set the runner and `restore` converge on: the core checks plus the lab's add-ons' quick ones."""
    import checks

    results = []
    checks.run_checks(env.ctx, checks.checks_for(env.lab), lambda name, _, error: results.append(
        (name, (str(error).strip().splitlines() or [type(error).__name__])[0][:300] if error else "")),
        catch=Exception)
    return results


def converge(env) -> None:
    import checks
    from harness.steps.runner import run_steps

    run_steps(env.ctx)
    checks.converge(env.ctx)
