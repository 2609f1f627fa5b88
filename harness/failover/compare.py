"""Two failover runs side by side (the seed haproxy profile against the tuned one): per scenario,
the bound and each API stream's longest gap in both runs, as a multiple of the bound.

`python -m harness scenario compare RUN_A RUN_B` prints it as Markdown. The lesson for trainees
is in the columns: the VIP moves within its bound in both profiles, but what a client sees (a
reused connection hanging on a dead server, a write retried into a cut-off apiserver) depends on
timeouts the guide leaves at their defaults. docs/failover-tuning.md explains each one.
"""

from __future__ import annotations

from pathlib import Path

from harness.failover import bounds
from harness.failover.rounding import seconds
from harness.failover.runner import ScenarioResult, load_results
from harness.failover.table import _order, scenario_folder

STREAMS = (("new", "longest_gap_new_s"), ("reused", "longest_gap_reused_s"), ("write", "longest_gap_write_s"))
GOAL = 1.2  # issue 14: with the tuned profile, every stream's gap within 1.2 × the bound


def _label(results: list[ScenarioResult], folder: Path) -> str:
    profiles = sorted({r.haproxy_profile for r in results})
    return "/".join(profiles) if profiles else folder.name


def _gaps(result: ScenarioResult | None, bound: float) -> str:
    if result is None:
        return "—"
    cells = []
    for stream, key in STREAMS:
        gap = result.probe.get(key)
        ratio = f" ({gap / bound:.2f}×)" if isinstance(gap, (int, float)) and bound else ""
        cells.append(f"{seconds(gap)}{ratio}")
    return " / ".join(cells)


def worst_ratio(result: ScenarioResult | None) -> float | None:
    """The longest gap of any stream, as a multiple of the scenario's bound (upper bounds only:
    a lower bound is a minimum outage, not a gap to shrink)."""
    if result is None or result.bound_direction != bounds.UPPER or not result.bound_s:
        return None
    gaps = [result.probe.get(key) for _, key in STREAMS]
    gaps = [g for g in gaps if isinstance(g, (int, float))]
    return round(max(gaps) / result.bound_s, 2) if gaps else None


def render(run_a: Path, run_b: Path) -> str:
    folder_a, folder_b = scenario_folder(run_a), scenario_folder(run_b)
    a, b = load_results(folder_a), load_results(folder_b)
    label_a, label_b = _label(a, folder_a), _label(b, folder_b)
    by_a, by_b = {r.name: r for r in a}, {r.name: r for r in b}
    names = [r.name for r in _order(list({**by_b, **by_a}.values()))]
    lines = [f"| scenario | bound | {label_a}: new / reused / write | {label_b}: new / reused / write "
             f"| worst / bound, {label_a} → {label_b} |",
             "|---|---:|---|---|---|"]
    within = []
    for name in names:
        ra, rb = by_a.get(name), by_b.get(name)
        bound = (ra or rb).bound_s
        wa, wb = worst_ratio(ra), worst_ratio(rb)
        lines.append(f"| {name} | {seconds(bound)} | {_gaps(ra, bound)} | {_gaps(rb, bound)} | "
                     f"{'—' if wa is None else f'{wa:.2f}×'} → {'—' if wb is None else f'{wb:.2f}×'} |")
        if wb is not None:
            within.append(wb <= GOAL)
    lines += ["", f"Gaps are the longest time without a success on each probe stream; (n×) is that gap "
                  f"divided by the scenario's bound. Runs: {label_a} = {folder_a}, {label_b} = {folder_b}.",
              f"{label_b}: {sum(within)} of {len(within)} scenarios with an upper bound have every stream "
              f"within {GOAL}× their bound."]
    return "\n".join(lines) + "\n"
