"""Where a re-run's time goes: every step on a running lab, with each remote command timed.

    python benchmarks/step_profile.py [LAB] [--serial] [--top N]

For each step it prints the wall time, how many commands went over SSH, the busiest machine's
time inside its commands (machines work at once, so that is the step's floor on the wire), and
the rest: waits between polls and the harness's own work. Then the N slowest commands. The lab
must be up; nothing is destroyed. Figures are written to artifacts/bench-profile-<time>.json.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from benchmarks import write_figures  # noqa: E402
from harness.labfile import load_lab  # noqa: E402
from harness.steps import steps_until  # noqa: E402
from harness.steps.context import build_context  # noqa: E402
from harness.steps.runner import run_one  # noqa: E402
from harness.transport import Transport  # noqa: E402


class CommandClock:
    """Wraps Transport.execute: (machine, command, seconds) for every remote command."""

    def __init__(self):
        self.records: list[tuple[str, str, float]] = []
        self._lock = threading.Lock()
        self._original = Transport.execute

    def __enter__(self):
        clock, original = self, self._original

        def execute(transport, command, *args, **kwargs):
            started = time.monotonic()
            try:
                return original(transport, command, *args, **kwargs)
            finally:
                with clock._lock:
                    clock.records.append((transport.name, command, time.monotonic() - started))

        Transport.execute = execute
        return self

    def __exit__(self, *exc):
        Transport.execute = self._original

    def since(self, mark: int) -> list[tuple[str, str, float]]:
        with self._lock:
            return self.records[mark:]


def summarize(step: str, wall: float, records) -> dict:
    per_machine: dict[str, float] = defaultdict(float)
    for machine, _, seconds in records:
        per_machine[machine] += seconds
    busiest = max(per_machine.items(), key=lambda kv: kv[1], default=("-", 0.0))
    return {"step": step, "wall_s": round(wall, 2), "commands": len(records),
            "busiest_machine": busiest[0], "busiest_in_commands_s": round(busiest[1], 2),
            "rest_s": round(max(wall - busiest[1], 0.0), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lab", nargs="?", default="labs/seed.yaml")
    parser.add_argument("--serial", action="store_true", help="one machine after another")
    parser.add_argument("--top", type=int, default=10, help="how many of the slowest commands to list")
    args = parser.parse_args()
    lab = load_lab(args.lab)
    ctx = build_context(lab)
    ctx.serial = args.serial
    rows, timings, slowest = [], {}, []
    try:
        with CommandClock() as clock:
            for step in steps_until(None):
                if step.name == "machines":
                    continue
                mark, started = len(clock.records), time.monotonic()
                run_one(ctx, step, timings)
                records = clock.since(mark)
                rows.append(summarize(step.name, time.monotonic() - started, records))
                slowest += [(step.name, *r) for r in records]
    finally:
        ctx.close()
    print(f"{'step':<9} {'wall s':>7} {'commands':>8} {'busiest machine':<16} {'in commands s':>13} {'rest s':>7}")
    for r in rows:
        print(f"{r['step']:<9} {r['wall_s']:>7.2f} {r['commands']:>8} {r['busiest_machine']:<16} "
              f"{r['busiest_in_commands_s']:>13.2f} {r['rest_s']:>7.2f}")
    total = sum(r["wall_s"] for r in rows)
    n = sum(r["commands"] for r in rows)
    print(f"{'total':<9} {total:>7.2f} {n:>8}")
    slowest.sort(key=lambda r: r[3], reverse=True)
    print(f"the {args.top} slowest commands:")
    for step, machine, command, seconds in slowest[: args.top]:
        print(f"  {seconds:6.2f} s  {step:<9} {machine:<9} {command[:110]}")
    write_figures("profile", {"lab": lab.name, "serial": args.serial, "steps": rows, "total_s": round(total, 2),
                              "commands": n, "slowest": [
                                  {"step": s, "machine": m, "command": c, "s": round(t, 2)}
                                  for s, m, c, t in slowest[: args.top]]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
