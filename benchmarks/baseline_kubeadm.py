"""The harness's bring-up against a kubeadm bring-up on the same machines, in one run.

    python benchmarks/baseline_kubeadm.py [LAB] [--order harness,kubeadm] [--keep]

Both clusters start from no machines at all: the lab is destroyed, brought up by the provider,
deployed (the harness's core steps, add-ons off; or kubeadm's phases, harness.kubeadm_baseline),
checked with the core checks (as they are, or in their kubeadm form, or not at all where they
do not apply: harness.kubeadm_baseline.checks), and destroyed again before the other one. The
host is noisy, so the load average is printed before each run. Every binary and image is built
(or found in the cache) before the first run, so no build is timed.

Prints both totals, a row per phase with the ratio kubeadm / harness, and each check's outcome
on both; the figures go to artifacts/bench-baseline-kubeadm-<time>.json. It destroys the lab
first: never point it at a lab you need.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import checks  # noqa: E402
from benchmarks import write_figures  # noqa: E402
from harness import machines  # noqa: E402
from harness.kubeadm_baseline import bringup  # noqa: E402
from harness.kubeadm_baseline.artifacts import ensure_all  # noqa: E402
from harness.kubeadm_baseline.checks import COMPARISON, run_all  # noqa: E402
from harness.labfile import load_lab  # noqa: E402
from harness.steps.context import build_context  # noqa: E402
from harness.steps.runner import run_steps  # noqa: E402

CORE_UNTIL = "workload"   # machines to nginx reachable: every core step


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)"


def timed(fn):
    started = time.monotonic()
    result = fn()
    return round(time.monotonic() - started, 1), result


def harness_checks(ctx) -> list[dict]:
    results = []
    for name, target in checks.CORE_CHECKS:
        started, ok, why = time.monotonic(), True, ""
        try:
            checks.resolve(target)(ctx)
        except AssertionError as exc:
            ok, why = False, (str(exc).splitlines() or ["assertion failed"])[0][:300]
        results.append({"name": name, "ok": ok, "seconds": round(time.monotonic() - started, 2), "why": why})
    return results


def run_harness(lab) -> dict:
    print(f"== harness: {load_average()}", flush=True)
    machines.down(lab)
    machines_s, _ = timed(lambda: machines.up(lab))
    render_s, ctx = timed(lambda: build_context(lab))
    try:
        steps = run_steps(ctx, until=CORE_UNTIL)
        checks_s, results = timed(lambda: harness_checks(ctx))
    finally:
        ctx.close()
    rows = {"machines": machines_s, "render": render_s, **bringup.rows_from_harness(steps)}
    return {"rows": rows, "steps": steps, "checks_s": checks_s, "checks": results}


def run_kubeadm(lab, art) -> dict:
    print(f"== kubeadm: {load_average()}", flush=True)
    machines.down(lab)
    machines_s, _ = timed(lambda: machines.up(lab))
    render_s, ctx = timed(lambda: build_context(lab))
    try:
        figures = bringup.run_baseline(ctx, art)
        checks_s, results = timed(lambda: run_all(ctx))
    finally:
        ctx.close()
    figures["rows"] = {"machines": machines_s, "render": render_s, **figures["rows"]}
    return {**figures, "checks_s": checks_s, "checks": results}


def ratio(kubeadm: float | None, harness: float | None) -> str:
    return f"{kubeadm / harness:.2f}" if kubeadm is not None and harness else "-"


def print_report(lab, figures: dict) -> None:
    h, k = figures["harness"], figures["kubeadm"]
    print(f"\nlab {lab.name}: {len(lab.machines)} machines, add-ons off on both")
    for side, f in (("harness", h), ("kubeadm", k)):
        if f.get("error"):
            print(f"{side}: FAILED ({f['error']}); its rows below are missing")
    print(f"{'phase':<14} {'harness s':>10} {'kubeadm s':>10} {'kubeadm/harness':>16}")
    for row in bringup.ROWS:
        hs, ks = h["rows"].get(row), k["rows"].get(row)
        print(f"{row:<14} {hs if hs is not None else '-':>10} {ks if ks is not None else '-':>10} "
              f"{ratio(ks, hs):>16}")
    h_total, k_total = round(sum(h["rows"].values()), 1), round(sum(k["rows"].values()), 1)
    print(f"{'bring-up':<14} {h_total:>10} {k_total:>10} {ratio(k_total, h_total):>16}   "
          "(machines to nginx-ds Ready)")
    print(f"{'core checks':<14} {h['checks_s']:>10} {k['checks_s']:>10} {ratio(k['checks_s'], h['checks_s']):>16}   "
          "(not the same set: below)")
    print(f"{'total':<14} {h_total + h['checks_s']:>10.1f} {k_total + k['checks_s']:>10.1f} "
          f"{ratio(k_total + k['checks_s'], h_total + h['checks_s']):>16}")
    print("not like for like: the harness's `nodes` step also installs containerd, the kubelet "
          "and the images, which kubeadm's side does in `host prep`; kubeadm's etcd row is "
          "writing its static-pod manifest (etcd starts inside `control plane`)")
    print("\nkubeadm's own phases (kubeadm init):")
    for name, seconds in k.get("kubeadm_init_phases", {}).items():
        print(f"  [{name}] {seconds} s")
    for machine, phases in k.get("kubeadm_master_joins", {}).items():
        print(f"  join --control-plane {machine}: {round(sum(phases.values()), 1)} s")
    for machine, phases in (k.get("kubeadm_worker_joins") or {}).items():
        print(f"  join {machine}: {round(sum(phases.values()), 1)} s")
    print("\ncore checks:                                      harness  kubeadm")
    by_name_h = {r["name"]: r for r in h["checks"]}
    by_name_k = {r["name"]: r for r in k["checks"]}
    mark = lambda r: "-" if r is None or r["ok"] is None else ("pass" if r["ok"] else "FAIL")  # noqa: E731
    for name, (how, target) in COMPARISON.items():
        note = {"same": "same check", "kubeadm": "kubeadm form", "n/a": f"does not apply: {target}"}[how]
        print(f"  {name:<46} {mark(by_name_h.get(name)):>5} {mark(by_name_k.get(name)):>8}  ({note})")
    for side, results in (("harness", h["checks"]), ("kubeadm", k["checks"])):
        for r in results:
            if r["ok"] is False:
                print(f"  {side} FAIL {r['name']}: {r['why']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lab", nargs="?", default="labs/seed.yaml")
    parser.add_argument("--order", default="harness,kubeadm", help="which bring-up first")
    parser.add_argument("--keep", action="store_true", help="leave the last cluster up")
    args = parser.parse_args()
    order = [o for o in args.order.split(",") if o]
    if sorted(order) != ["harness", "kubeadm"]:
        print("error: --order: give both harness and kubeadm, e.g. harness,kubeadm", file=sys.stderr)
        return 2
    # add-ons off on both: kubeadm's side installs CoreDNS (kubeadm's own addon) and nothing else
    lab = dataclasses.replace(load_lab(args.lab), addons=())
    print(f"artifacts: {load_average()}", flush=True)
    art = ensure_all(lab.versions)
    figures: dict = {"lab": lab.name, "order": order}
    try:
        for side in order:
            try:
                figures[side] = run_harness(lab) if side == "harness" else run_kubeadm(lab, art)
            except Exception as exc:  # noqa: BLE001 - say why, keep the other side's figures
                why = (str(exc).splitlines() or [type(exc).__name__])[0]
                print(f"== {side} failed: {type(exc).__name__}: {why}", flush=True)
                figures[side] = {"error": f"{type(exc).__name__}: {why}", "rows": {}, "checks_s": 0.0,
                                 "checks": []}
    finally:
        if not args.keep:
            machines.down(lab)
    print_report(lab, figures)
    write_figures("baseline-kubeadm", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
