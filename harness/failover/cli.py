"""`python -m harness scenario list|run NAME [--explain]` for trainees."""

from __future__ import annotations

import re
import time
from pathlib import Path

from harness import REPO_ROOT
from harness.errors import UserError

DOC = REPO_ROOT / "docs" / "scenarios.md"


def explanation(name: str) -> str:
    """The scenario's section of docs/scenarios.md: what happens inside, who notices first,
    which log line shows it."""
    text = DOC.read_text()
    match = re.search(rf"^## `{re.escape(name)}`.*?(?=^## |\Z)", text, re.S | re.M)
    if not match:
        raise UserError(f"scenario {name}: no explanation in {DOC}")
    return match.group(0).strip()


def _names() -> list[str]:
    from harness.failover.scenarios import SCENARIOS
    return list(SCENARIOS)


def cmd_list(args) -> int:
    from harness.failover.scenarios import SCENARIOS
    for scenario in SCENARIOS.values():
        print(f"{scenario.name:<32} {scenario.title}")
    return 0


def cmd_run(args) -> int:
    from harness.failover.runner import run_scenario
    from harness.failover.scenarios import Env
    from harness.lab import load_lab
    from harness.providers import resolve_provider
    from harness.state import lab_state_dir
    from harness.steps.context import build_context

    if args.name not in _names():
        raise UserError(f"scenario: unknown name {args.name!r} (known: {', '.join(_names())})")
    if args.explain:
        print(explanation(args.name))
        print()
    lab = load_lab(args.lab)
    ctx = build_context(lab)
    out = Path("artifacts") / f"scenario-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        result = run_scenario(Env(ctx, resolve_provider(lab, lab_state_dir(lab))), args.name, out)
    finally:
        ctx.close()
    print((out / f"{args.name}.md").read_text())
    return 0 if result.probe["lost_writes"] == 0 and not result.error else 1


def register(subparsers) -> None:
    parser = subparsers.add_parser("scenario", help="HA failure scenarios, measured")
    sub = parser.add_subparsers(dest="scenario_command", required=True)
    p = sub.add_parser("list", help="the scenarios")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("run", help="run one scenario against a running lab")
    p.add_argument("name")
    p.add_argument("--lab", default=str(REPO_ROOT / "labs" / "seed.yaml"))
    p.add_argument("--explain", action="store_true", help="print what happens inside, first")
    p.set_defaults(func=cmd_run)
