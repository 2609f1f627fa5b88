"""`python -m harness scenario list|run NAME [--explain]|report DIR|table [RUN]|compare A B|break|verify|restore NAME`."""

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
        drill = "  (drill)" if scenario.drill else ""
        print(f"{scenario.name:<32} {scenario.title}{drill}")
    return 0


def cmd_report(args) -> int:
    """Rebuild a run's HTML pages (scenario pages, index, trend) from its JSON files."""
    folder = Path(args.folder)
    if not folder.is_dir() or not any(folder.glob("*.json")):
        raise UserError(f"scenario report: {folder} holds no scenario JSON (a run's folder, e.g. "
                        "artifacts/<run>/scenarios)")
    try:
        from harness.failover.report import write_run_pages
    except ImportError as exc:
        raise UserError(f"scenario report: {exc.name} is missing; pip install -e '.[reports]'") from None
    index = write_run_pages(folder, Path(args.history) if args.history else None)
    print(f"wrote {index} and {index.parent / 'trend.html'}")
    return 0


def cmd_table(args) -> int:
    """The run's scenario | bound | measured | verdict table, for a closing note."""
    from harness.failover import table

    from harness.failover.runner import load_results

    folder = table.scenario_folder(Path(args.run) if args.run else None)
    print(table.render(load_results(folder), folder), end="")
    return 0


def cmd_compare(args) -> int:
    """Two runs side by side: each stream's longest gap against the bound (seed versus tuned)."""
    from harness.failover import compare

    print(compare.render(Path(args.run_a), Path(args.run_b)), end="")
    return 0


def _drill_lab(args, opened: list):
    from harness.failover import drills
    from harness.failover.scenarios import Env
    from harness.lab import load_lab
    from harness.providers import resolve_provider
    from harness.state import lab_state_dir
    from harness.steps.context import build_context

    lab = load_lab(args.lab)
    state_dir = lab_state_dir(lab)

    def env():
        if not opened:
            opened.append(Env(build_context(lab, state_dir), resolve_provider(lab, state_dir)))
        return opened[0]
    return drills.Lab(lab.name, state_dir, env, drills.core_checks_once, drills.converge)


def _drill(command: str):
    def run(args) -> int:
        from harness.failover import drills
        from harness.failover.scenarios import SCENARIOS
        opened: list = []
        try:
            return getattr(drills, f"{command}_drill")(_drill_lab(args, opened), args.name, SCENARIOS)
        finally:
            for env in opened:
                env.ctx.close()
    return run


def cmd_run(args) -> int:
    from harness.failover.runner import problems, run_scenario
    from harness.failover.scenarios import Env
    from harness.lab import load_lab
    from harness.providers import resolve_provider
    from harness.state import lab_state_dir
    from harness.steps.context import build_context

    unknown = [name for name in args.names if name not in _names()]
    if unknown:
        raise UserError(f"scenario: unknown name {unknown[0]!r} (known: {', '.join(_names())})")
    lab = load_lab(args.lab)
    # one folder for every scenario of this command, so `scenario table` and `compare` read them together
    out = Path(args.out) if args.out else Path("artifacts") / f"scenario-{time.strftime('%Y%m%d-%H%M%S')}"
    failed = 0
    for name in args.names:
        if args.explain:
            print(explanation(name))
            print()
        ctx = build_context(lab)
        try:
            result = run_scenario(Env(ctx, resolve_provider(lab, lab_state_dir(lab))), name, out,
                                  scope=args.converge)
        finally:
            ctx.close()
        print((out / f"{name}.md").read_text())
        if (out / f"{name}.html").exists():
            print(f"report: {out / (name + '.html')} (index: {out / 'index.html'})")
        failed += bool(problems(result))
    if len(args.names) > 1:
        print(f"{len(args.names) - failed} of {len(args.names)} scenarios passed; "
              f"table: python -m harness scenario table {out}")
    return 0 if not failed else 1


def register(subparsers) -> None:
    from harness.failover.runner import CONVERGE_SCOPES

    parser = subparsers.add_parser("scenario", help="HA failure scenarios, measured")
    sub = parser.add_subparsers(dest="scenario_command", required=True)
    p = sub.add_parser("list", help="the scenarios")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("run", help="run scenarios against a running lab, one after another")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--out", help="the run's folder (default: artifacts/scenario-<time>)")
    p.add_argument("--lab", default=str(REPO_ROOT / "labs" / "seed.yaml"))
    p.add_argument("--explain", action="store_true", help="print what happens inside, first")
    p.add_argument("--converge", choices=CONVERGE_SCOPES, default="lab",
                   help="after each scenario, re-run and check the whole lab (lab, the default) or "
                        "only the guide's core and the scenario's own add-on (core: faster, for "
                        "repeating one scenario; the add-ons are not re-checked)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("report", help="rebuild a run's HTML report from its JSON")
    p.add_argument("folder", help="the run's scenario folder, e.g. artifacts/<run>/scenarios")
    p.add_argument("--history", help="where earlier runs' JSON lives (default: the artifacts folder above)")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("table", help="print a run's scenario | bound | measured | verdict table (Markdown)")
    p.add_argument("run", nargs="?", help="artifacts/<run> or its scenarios folder (default: the newest run)")
    p.set_defaults(func=cmd_table)
    p = sub.add_parser("compare", help="two runs side by side: each API stream's gap against the bound "
                                       "(e.g. the seed haproxy profile against the tuned one)")
    p.add_argument("run_a", help="artifacts/<run> of the first run (e.g. the seed profile)")
    p.add_argument("run_b", help="artifacts/<run> of the second run (e.g. the tuned profile)")
    p.set_defaults(func=cmd_compare)
    for command, text in (("break", "break the lab as NAME does and leave it broken (a drill)"),
                          ("verify", "did the trainee's fix bring the lab back? core checks + NAME's own"),
                          ("restore", "repair a drill's breakage automatically")):
        p = sub.add_parser(command, help=text)
        p.add_argument("name")
        p.add_argument("--lab", default=str(REPO_ROOT / "labs" / "seed.yaml"))
        # break needs every machine up (one line, exit 2, otherwise); verify and restore must work
        # on a lab a drill left with a machine down
        p.set_defaults(func=_drill(command), needs_running_lab=command == "break")
