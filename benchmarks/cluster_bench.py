"""Cluster benchmark: time per step and total cold bring-up (machines to nginx reachable), a warm
re-run on the deployed lab, the full check suite, and the peak memory of the running lab.

    python benchmarks/cluster_bench.py [LAB] [--keep]

It destroys the lab first (a cold run), so never point it at a lab you need. Figures are printed
and written to artifacts/bench-cluster-<time>.json.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import checks  # noqa: E402
from benchmarks import write_figures  # noqa: E402
from harness import machines  # noqa: E402
from harness.lab import load_lab  # noqa: E402
from harness.providers import resolve_provider  # noqa: E402
from harness.state import lab_state_dir  # noqa: E402
from harness.steps.context import build_context  # noqa: E402
from harness.steps.runner import run_steps  # noqa: E402


class MemorySampler(threading.Thread):
    """Samples the lab's total memory every few seconds; keeps the peak."""

    def __init__(self, provider, every: float = 5.0):
        super().__init__(daemon=True)
        self.provider, self.every, self.peak, self.stop_flag = provider, every, 0, threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            try:
                self.peak = max(self.peak, sum(self.provider.memory_usage_bytes().values()))
            except Exception:  # noqa: BLE001 - a sample missed while machines restart is fine
                pass
            self.stop_flag.wait(self.every)


def timed(fn):
    started = time.monotonic()
    result = fn()
    return time.monotonic() - started, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lab", nargs="?", default="labs/seed.yaml")
    parser.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    args = parser.parse_args()
    lab = load_lab(args.lab)
    figures: dict = {"lab": lab.name}

    machines.down(lab)
    machines_s, _ = timed(lambda: machines.up(lab))
    provider = resolve_provider(lab, lab_state_dir(lab))
    sampler = MemorySampler(provider)
    sampler.start()
    ctx = build_context(lab)
    try:
        steps_s, cold = timed(lambda: run_steps(ctx))
        figures["cold_steps_s"] = {"machines": round(machines_s, 1), **cold}
        figures["cold_total_s"] = round(machines_s + steps_s, 1)
        warm_s, warm = timed(lambda: run_steps(ctx))
        figures["warm_rerun_s"] = round(warm_s, 1)
        figures["warm_steps_s"] = warm
        check_s, _ = timed(lambda: [checks.resolve(t)(ctx) for _, t in checks.CORE_CHECKS])
        figures["check_suite_s"] = round(check_s, 1)
    finally:
        sampler.stop_flag.set()
        sampler.join()
        ctx.close()
    figures["idle_lab_memory_mib"] = round(sum(provider.memory_usage_bytes().values()) / 2**20)
    figures["peak_lab_memory_mib"] = round(max(sampler.peak, 0) / 2**20)
    if not args.keep:
        machines.down(lab)

    print(f"cold bring-up, machines to nginx reachable: {figures['cold_total_s']} s")
    for step, seconds in figures["cold_steps_s"].items():
        print(f"  {step:<9} {seconds:>7.1f} s")
    print(f"warm re-run of every step: {figures['warm_rerun_s']} s")
    print(f"core check suite ({len(checks.CORE_CHECKS)} checks): {figures['check_suite_s']} s")
    print(f"lab memory: peak {figures['peak_lab_memory_mib']} MiB, after the run {figures['idle_lab_memory_mib']} MiB")
    write_figures("cluster", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
