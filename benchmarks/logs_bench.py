"""Logs benchmark: the `logs` step cold and warm, log ingestion lag (from the moment a container
wrote a line to the moment the query API first returned it, p50/p99 over every node and round),
how soon an audit entry is found, and the lab's memory with every add-on up.

    python benchmarks/logs_bench.py [LAB] [--rounds N] [--no-cold]

It needs the lab up with the steps before `logs` done. To time the step cold it first removes
the add-on: its objects, the audit units and vlagent on the masters, its image on the nodes, and
the store's data directory, so the logs collected so far are gone. Figures are printed and
written to artifacts/bench-logs-<time>.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from benchmarks import write_figures  # noqa: E402
from benchmarks.addons_bench import memory_mib, percentile  # noqa: E402
from checks import logs as logs_checks  # noqa: E402
from harness.labfile import load_lab  # noqa: E402
from harness.providers import resolve_provider  # noqa: E402
from harness.render.logs import AUDIT_AGENT_DIR, AUDIT_UNIT, DATA_DIR, NAMESPACE, storage_node  # noqa: E402
from harness.state import lab_state_dir  # noqa: E402
from harness.steps import STEPS  # noqa: E402
from harness.steps import logs as logs_step  # noqa: E402
from harness.steps.actions import kubectl  # noqa: E402
from harness.steps.context import build_context  # noqa: E402
from harness.steps.runner import run_one  # noqa: E402


def remove_logs(ctx) -> None:
    """The add-on gone: objects, audit units, vlagent and its state on the masters, the image on
    the nodes, and the store's data."""
    kubectl(ctx, "bench", f"delete -f {logs_step.MANIFEST} --ignore-not-found --wait=true", timeout=240)
    for m in ctx.lab.masters:
        ctx.on(m).run(f"systemctl disable --now {AUDIT_UNIT}; rm -rf /etc/systemd/system/{AUDIT_UNIT} "
                      f"/usr/local/bin/vlagent {AUDIT_AGENT_DIR}; systemctl daemon-reload", check=False)
    ref = ctx.lab.versions[logs_step.COMPONENT].image_ref
    for m in ctx.lab.nodes:
        ctx.on(m).run(f"ctr -n k8s.io images rm {ref}", check=False)
    ctx.on(storage_node(ctx.lab)).run(f"rm -rf {DATA_DIR}", check=False)


def component_memory_mib(ctx) -> dict[str, int]:
    """What the add-on's own processes hold: the pods (kubectl top) and the masters' audit units
    (their cgroup's memory.current)."""
    figures = {}
    out = kubectl(ctx, "bench", f"-n {NAMESPACE} top pods --no-headers", check=False)
    for line in out.stdout.splitlines():
        name, _, memory = line.split()[:3]
        if name.startswith(("victorialogs", "vlagent")) and memory.endswith("Mi"):
            figures[f"pod {name}"] = int(memory[:-2])
    for m in ctx.lab.masters:
        current = ctx.on(m).run(f"systemctl show -p MemoryCurrent --value {AUDIT_UNIT}", check=False).stdout.strip()
        if current.isdigit():
            figures[f"{m.name} {AUDIT_UNIT}"] = round(int(current) / 2**20)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lab", nargs="?", default="labs/seed.yaml")
    parser.add_argument("--rounds", type=int, default=10, help="probe rounds (one line per node each)")
    parser.add_argument("--no-cold", action="store_true", help="leave the add-on as it is (warm only)")
    args = parser.parse_args()
    lab = load_lab(args.lab)
    provider = resolve_provider(lab, lab_state_dir(lab))
    ctx = build_context(lab)
    step = next(s for s in STEPS if s.name == "logs")
    figures: dict = {"lab": lab.name}
    try:
        timings: dict[str, float] = {}
        if not args.no_cold:
            remove_logs(ctx)
            run_one(ctx, step, timings)
            figures["cold_s"] = round(timings["logs"], 1)
        run_one(ctx, step, timings)
        figures["warm_s"] = round(timings["logs"], 1)
        lags = []
        for _ in range(args.rounds):
            lags += logs_checks.unique_line_from_every_node(ctx).values()
        figures["ingestion_lag_s"] = {"samples": len(lags), "p50": percentile(lags, 50),
                                      "p99": percentile(lags, 99), "max": max(lags),
                                      "resolution": "0.5 s polling plus one SSH round trip"}
        figures["audit_found_after_s"] = logs_checks.audit_entry_of_a_request(ctx)["found_after_s"]
        figures["addon_memory_mib"] = component_memory_mib(ctx)
        figures["lab_memory_mib"] = memory_mib(provider)
    finally:
        ctx.close()
    if "cold_s" in figures:
        print(f"logs step: cold {figures['cold_s']} s, warm {figures['warm_s']} s")
    else:
        print(f"logs step: warm {figures['warm_s']} s")
    lag = figures["ingestion_lag_s"]
    print(f"ingestion lag over {lag['samples']} lines: p50 {lag['p50']} s, p99 {lag['p99']} s, "
          f"max {lag['max']} s ({lag['resolution']})")
    print(f"audit entry found {figures['audit_found_after_s']} s after the request")
    print("add-on memory: " + ", ".join(f"{k} {v} MiB" for k, v in figures["addon_memory_mib"].items()))
    mem = figures["lab_memory_mib"]
    print(f"lab memory with every add-on: {mem.get('rss_mib')} MiB rss, {mem['docker_stats_mib']} MiB docker stats "
          f"(goal: under {4 * 1024} MiB)")
    write_figures("logs", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
