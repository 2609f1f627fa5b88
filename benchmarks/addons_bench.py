"""Add-ons benchmark: the `dns` and `metrics` steps cold and warm, DNS lookup latency from a pod
(p50/p99 over 1,000 queries), the time from `kubectl apply` of a fresh Deployment until
`kubectl top` shows it, and the lab's memory with the add-ons against the core alone.

    python benchmarks/addons_bench.py [LAB] [--queries N] [--keep]

It needs the machines up (`python -m harness up LAB --until workload` is enough; the core steps
are run here anyway, idempotently). To time the add-on steps cold it deletes their objects first,
so never point it at a lab you need as it is. Figures are printed and written to
artifacts/bench-addons-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from benchmarks import write_figures  # noqa: E402
from checks.workloads import apply, exec_in, toolbox_pods  # noqa: E402
from harness.labfile import load_lab  # noqa: E402
from harness.providers import resolve_provider  # noqa: E402
from harness.render.check_workloads import NAMESPACE  # noqa: E402
from harness.state import lab_state_dir  # noqa: E402
from harness.steps import STEPS  # noqa: E402
from harness.steps import dns, metrics  # noqa: E402
from harness.steps.actions import kubectl  # noqa: E402
from harness.steps.context import build_context  # noqa: E402
from harness.steps.runner import run_steps  # noqa: E402

BENCH = "bench-top"


def timed(fn):
    started = time.monotonic()
    fn()
    return round(time.monotonic() - started, 1)


def memory_mib(provider, settle: float = 20.0) -> dict[str, int]:
    """The lab's memory two ways: as `docker stats` counts it (page cache that is in use
    included, so it moves with what was just read or written) and the processes' own (rss)."""
    time.sleep(settle)
    figures = {"docker_stats_mib": round(sum(provider.memory_usage_bytes().values()) / 2**20)}
    rss = getattr(provider, "memory_rss_bytes", None)
    if rss:
        figures["rss_mib"] = round(sum(rss().values()) / 2**20)
    return figures


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def dns_latency(ctx, queries: int) -> dict:
    """dig's batch mode from a toolbox pod: one query per line, each with its own Query time."""
    lab = ctx.lab
    pod = next(iter(toolbox_pods(ctx).values()))
    names = ["kubernetes.default.svc", "nginx-ds.default.svc", "kube-dns.kube-system.svc"]
    lines = "\n".join(f"{names[i % len(names)]}.{lab.dns_domain} A +time=2 +tries=1" for i in range(queries))
    script = f"cat > /tmp/q <<'EOF'\n{lines}\nEOF\ndig -f /tmp/q +noall +stats | grep -E 'Query time|status'"
    out = exec_in(ctx, pod, f"{script}; dig -f /tmp/q +noall +comments | grep -c 'status: NOERROR'", timeout=600)
    times = [int(m) for m in re.findall(r"Query time: (\d+) msec", out.stdout)]
    answered = int(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else 0
    return {"queries": queries, "timed": len(times), "noerror": answered,
            "p50_ms": percentile(times, 50) if times else None, "p99_ms": percentile(times, 99) if times else None,
            "max_ms": max(times) if times else None, "resolution": "1 ms (dig's Query time)"}


def apply_to_top(ctx) -> float:
    """Seconds from applying a fresh Deployment until `kubectl top pod` has a row for it."""
    lab = ctx.lab
    doc = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": BENCH, "namespace": NAMESPACE},
           "spec": {"selector": {"matchLabels": {"app": BENCH}},
                    "template": {"metadata": {"labels": {"app": BENCH}}, "spec": {
                        "terminationGracePeriodSeconds": 1,
                        "containers": [{"name": BENCH, "image": lab.versions.toolbox.image_ref,
                                        "imagePullPolicy": "Never", "command": ["sleep", "2147483647"]}]}}}}
    kubectl(ctx, "bench", f"-n {NAMESPACE} delete deployment {BENCH} --ignore-not-found --wait=true")
    started = time.monotonic()
    apply(ctx, BENCH, json.dumps(doc), "bench")
    while time.monotonic() - started < 300:
        out = kubectl(ctx, "bench", f"-n {NAMESPACE} top pod -l app={BENCH} --no-headers", check=False)
        if out.exit_status == 0 and out.stdout.strip():
            break
        time.sleep(1)
    else:
        raise SystemExit("kubectl top never showed the fresh Deployment within 300 s")
    seconds = round(time.monotonic() - started, 1)
    kubectl(ctx, "bench", f"-n {NAMESPACE} delete deployment {BENCH} --wait=false")
    return seconds


def remove_addons(ctx) -> None:
    """Back to the core: the add-ons' objects deleted and their images removed from the nodes."""
    for manifest in (metrics.MANIFEST, dns.MANIFEST):
        kubectl(ctx, "bench", f"delete -f {manifest} --ignore-not-found --wait=true", timeout=180)
    refs = " ".join(ctx.lab.versions[c].image_ref for c in (*dns.IMAGES, "metrics_server"))
    for m in ctx.lab.nodes:
        ctx.on(m).run(f"ctr -n k8s.io images rm {refs}", check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lab", nargs="?", default="labs/seed.yaml")
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    lab = load_lab(args.lab)
    provider = resolve_provider(lab, lab_state_dir(lab))
    ctx = build_context(lab)
    figures: dict = {"lab": lab.name}
    try:
        run_steps(ctx, until="workload")
        remove_addons(ctx)  # the add-ons may be up from an earlier run: time them cold
        kubectl(ctx, "bench", f"delete namespace {NAMESPACE} --ignore-not-found --wait=true", timeout=180)
        figures["core_only_memory_mib"] = memory_mib(provider)
        step = {s.name: s for s in STEPS}
        from harness.steps.runner import run_one

        cold: dict[str, float] = {}
        for name in ("dns", "metrics"):
            run_one(ctx, step[name], cold)
        figures["cold_s"] = cold
        warm: dict[str, float] = {}
        for name in ("dns", "metrics"):
            run_one(ctx, step[name], warm)
        figures["warm_s"] = warm
        figures["with_addons_memory_mib"] = memory_mib(provider)
        figures["dns_latency"] = dns_latency(ctx, args.queries)
        figures["apply_to_top_s"] = apply_to_top(ctx)
    finally:
        ctx.close()
    lat = figures["dns_latency"]
    print(f"dns step:     cold {figures['cold_s']['dns']} s, warm {figures['warm_s']['dns']} s")
    print(f"metrics step: cold {figures['cold_s']['metrics']} s, warm {figures['warm_s']['metrics']} s")
    print(f"DNS lookups from a pod: {lat['noerror']} of {lat['queries']} NOERROR; "
          f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms ({lat['resolution']})")
    print(f"kubectl apply of a fresh Deployment to kubectl top showing it: {figures['apply_to_top_s']} s")
    core, full = figures["core_only_memory_mib"], figures["with_addons_memory_mib"]
    for key, label in (("rss_mib", "processes' own (rss)"), ("docker_stats_mib", "docker stats")):
        if key in core:
            print(f"lab memory, {label}: core only {core[key]} MiB, with the add-ons {full[key]} MiB")
    write_figures("addons", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
