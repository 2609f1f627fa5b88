"""The closing table of a failover run: every scenario's bound, its direction, what the slack rule
allows, what was measured and the verdict, read back from the run's JSON (the runner writes one
per scenario into `artifacts/<run>/scenarios/`).

`python -m harness scenario table [RUN]` prints it; the failover suite prints it at the end of
its session and leaves it beside the reports as `table.md`. Markdown, so it can be pasted as is.
"""

from __future__ import annotations

from pathlib import Path

from harness import artifacts_root
from harness.errors import UserError
from harness.failover import bounds
from harness.failover.rounding import seconds
from harness.failover.runner import ScenarioResult, load_results, problems, read_result

TABLE_FILE = "table.md"
HEADER = ("scenario", "figure", "bound", "direction", "allowed (slack rule)", "measured", "verdict")


def _holds_results(folder: Path) -> bool:
    return folder.is_dir() and any(read_result(path) is not None for path in folder.glob("*.json"))


def scenario_folder(path: Path | None = None, root: Path | None = None) -> Path:
    """The folder with a run's scenario JSON: `path` itself or its `scenarios/` (so both
    artifacts/<run> and artifacts/<run>/scenarios do); without a path, the run under the
    artifacts root whose newest scenario JSON is newest (the nightly's history/ left out)."""
    if path is not None:
        path = Path(path)
        for folder in (path, path / "scenarios"):
            if _holds_results(folder):
                return folder
        raise UserError(f"scenario table: {path} holds no scenario JSON (a run's folder, e.g. artifacts/<run> "
                        "or artifacts/<run>/scenarios)")
    root = Path(root) if root is not None else artifacts_root()
    runs = [folder for child in (sorted(root.iterdir()) if root.is_dir() else []) if child.name != "history"
            for folder in (child, child / "scenarios") if _holds_results(folder)]
    if not runs:
        raise UserError(f"scenario table: no run with scenario JSON under {root} (run `tox -e failover` "
                        "or `python -m harness scenario run NAME` first)")
    return max(runs, key=lambda folder: max(p.stat().st_mtime for p in folder.glob("*.json")))


def _order(results: list[ScenarioResult]) -> list[ScenarioResult]:
    """In the registry's order (the order the suite runs them), unknown names last."""
    from harness.failover.scenarios import SCENARIOS

    known = list(SCENARIOS)
    return sorted(results, key=lambda r: (known.index(r.name) if r.name in known else len(known), r.name))


def row(result: ScenarioResult) -> tuple[str, ...]:
    verdict = result.verdict
    sign = "≤" if result.bound_direction == bounds.UPPER else "≥"
    return (result.name, f"`{result.measure or '—'}`", seconds(result.bound_s), result.bound_direction,
            f"{sign} {seconds(verdict.allowed)}", seconds(verdict.measured),
            "PASS" if not problems(result) else "FAIL")


def render(results: list[ScenarioResult], source: Path | None = None) -> str:
    """The Markdown table, then the slack rule, the count, and why each failed scenario failed."""
    from harness.failover.scenarios import SCENARIOS

    results = _order(results)
    lines = ["| " + " | ".join(HEADER) + " |", "|---|---|---:|---|---:|---:|---|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row(r)) + " |" for r in results]
    failed = [r for r in results if problems(r)]
    ratio, slack = bounds.SLACK_RATIO, bounds.SLACK_S
    lines += ["", f"Slack rule (harness/failover/bounds.py): upper: measured ≤ bound × {1 + ratio:g} + {slack:g} s; "
                  f"lower: measured ≥ bound × {1 - ratio:g} − {slack:g} s.",
              f"{len(results) - len(failed)} of {len(results)} scenarios passed"
              + (f" ({source})." if source is not None else ".")]
    for result in failed:
        lines.append(f"- {result.name} failed: " + "; ".join(problems(result)))
    missing = [name for name in SCENARIOS if name not in {r.name for r in results}]
    if missing:
        lines.append(f"Not in this run: {', '.join(missing)}.")
    return "\n".join(lines) + "\n"


def write_table(folder: Path) -> str | None:
    """The table of the run in `folder`, also written there as table.md; None when no scenario
    of the run wrote its JSON."""
    folder = Path(folder)
    results = load_results(folder) if folder.is_dir() else []
    if not results:
        return None
    text = render(results, folder)
    (folder / TABLE_FILE).write_text(text)
    return text


class TerminalSummary:
    """A pytest plugin that prints the table under the test summary (a fixture's own output is
    captured); the failover suite registers it when its session ends."""

    def __init__(self, text: str, path: Path):
        self.text, self.path = text, path

    def pytest_terminal_summary(self, terminalreporter) -> None:
        terminalreporter.write_sep("=", f"failover: measured versus bound ({self.path})")
        terminalreporter.write(self.text)
