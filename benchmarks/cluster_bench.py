"""Cluster benchmark: time per step and total cold bring-up (machines to nginx reachable, and to
the last add-on), a warm re-run on the deployed lab, the quick check suite, and the peak memory of
the running lab; once with the steps serial and once parallel, in one run so the two compare on
the same (noisy) host, with their ratios.

    python benchmarks/cluster_bench.py [LAB] [--keep] [--modes serial,parallel]

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
from harness.labfile import load_lab  # noqa: E402
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


def _must_pass(name: str, _seconds: float, error) -> None:
    if error:
        raise error


def bring_up(lab, serial: bool) -> tuple[dict, object]:
    """A cold bring-up (the lab destroyed first), a warm re-run and the quick checks, in one mode."""
    figures: dict = {}
    machines.down(lab)
    machines_s, _ = timed(lambda: machines.up(lab))
    provider = resolve_provider(lab, lab_state_dir(lab))
    sampler = MemorySampler(provider)
    sampler.start()
    ctx = build_context(lab)
    ctx.serial = serial
    try:
        steps_s, cold = timed(lambda: run_steps(ctx))
        figures["cold_steps_s"] = {"machines": round(machines_s, 1), **cold}
        figures["cold_total_s"] = round(machines_s + steps_s, 1)
        figures["cold_core_s"] = round(machines_s + sum(core_steps(cold).values()), 1)
        warm_s, warm = timed(lambda: run_steps(ctx))
        figures["warm_rerun_s"] = round(warm_s, 1)
        figures["warm_steps_s"] = warm
        figures["warm_core_s"] = round(sum(core_steps(warm).values()), 1)
        core_s, _ = timed(lambda: checks.run_checks(ctx, checks.CORE_CHECKS, _must_pass, serial=serial))
        figures["core_checks_s"] = round(core_s, 1)
        check_s, _ = timed(lambda: checks.run_checks(ctx, checks.checks_for(lab), _must_pass, serial=serial))
        figures["check_suite_s"] = round(check_s, 1)
    finally:
        sampler.stop_flag.set()
        sampler.join()
        ctx.close()
    figures["idle_lab_memory_mib"] = round(sum(provider.memory_usage_bytes().values()) / 2**20)
    figures["peak_lab_memory_mib"] = round(max(sampler.peak, 0) / 2**20)
    return figures, provider


CORE_LAST_STEP = "workload"  # nginx answers on its ClusterIP and NodePort after this step


def core_steps(timings: dict) -> dict:
    """The steps up to nginx reachable, in the order they ran; the add-ons after it are not."""
    core: dict = {}
    for step, seconds in timings.items():
        core[step] = seconds
        if step == CORE_LAST_STEP:
            break
    return core


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lab", nargs="?", default="labs/seed.yaml")
    parser.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    parser.add_argument("--modes", default="serial,parallel",
                        help="which bring-ups to run, in order (default: serial,parallel)")
    args = parser.parse_args()
    lab = load_lab(args.lab)
    figures: dict = {"lab": lab.name}
    modes = [m for m in args.modes.split(",") if m]
    for mode in modes:
        figures[mode], _ = bring_up(lab, serial=(mode == "serial"))
    if not args.keep:
        machines.down(lab)

    n_checks = len(checks.checks_for(lab))
    for mode in modes:
        f = figures[mode]
        print(f"[{mode}] cold bring-up, machines to the last add-on: {f['cold_total_s']} s "
              f"(machines to nginx reachable: {f['cold_core_s']} s)")
        for step, seconds in f["cold_steps_s"].items():
            print(f"  {step:<9} {seconds:>7.1f} s")
        print(f"[{mode}] warm re-run of every step: {f['warm_rerun_s']} s (up to nginx: {f['warm_core_s']} s)")
        print(f"[{mode}] core checks ({len(checks.CORE_CHECKS)}): {f['core_checks_s']} s; "
              f"quick check suite ({n_checks} checks): {f['check_suite_s']} s")
        print(f"[{mode}] lab memory: peak {f['peak_lab_memory_mib']} MiB, after the run {f['idle_lab_memory_mib']} MiB")
    if {"serial", "parallel"} <= set(modes):
        s, p = figures["serial"], figures["parallel"]
        for key in ("cold_core_s", "cold_total_s", "warm_rerun_s", "warm_core_s", "core_checks_s"):
            figures.setdefault("ratios", {})[key] = round(s[key] / p[key], 2) if p[key] else None
            print(f"serial / parallel, {key}: {s[key]} / {p[key]} = {figures['ratios'][key]}")
    write_figures("cluster", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
