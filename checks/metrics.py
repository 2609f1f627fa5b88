"""Resource metrics as users see them: `kubectl top`, served by metrics-server through the
aggregation layer, and a HorizontalPodAutoscaler that acts on them."""

from __future__ import annotations

import json
import re
import time

from checks.workloads import apply, await_state
from harness.render.addons import NAMESPACE as SYSTEM
from harness.render.check_workloads import BURNER, HPA_MAX, NAMESPACE, autoscaling_yaml
from harness.steps.actions import NotYet, kubectl
from harness.steps.context import StepContext

STEP = "check:metrics"


def _quantity(text: str) -> float:
    """kubectl top's CPU (123m, 1) or memory (456Mi) as a number of its smallest unit."""
    match = re.fullmatch(r"(\d+)(m|Ki|Mi|Gi)?", text)
    assert match, f"not a quantity: {text!r}"
    scale = {None: 1000, "m": 1, "Ki": 1, "Mi": 1024, "Gi": 1024 * 1024}
    return int(match[1]) * scale[match[2]]


def top_nodes(ctx: StepContext) -> dict[str, tuple[str, str]]:
    """`kubectl top nodes` lists every lab node with non-zero CPU and memory."""
    __tracebackhide__ = True
    out = kubectl(ctx, STEP, "top nodes --no-headers", check=False)
    assert out.exit_status == 0, f"kubectl top nodes failed: {(out.stderr or out.stdout).strip()[-300:]}"
    rows = {}
    for line in out.stdout.splitlines():
        cols = line.split()
        if len(cols) >= 4:
            rows[cols[0]] = (cols[1], cols[3])
    want = {m.node_name for m in ctx.lab.nodes}
    assert set(rows) == want, f"kubectl top nodes lists {sorted(rows)}, want {sorted(want)}"
    for node, (cpu, memory) in rows.items():
        assert _quantity(cpu) > 0 and _quantity(memory) > 0, f"{node}: cpu {cpu}, memory {memory}"
    return rows


def top_pods_include_coredns(ctx: StepContext, timeout: float = 60.0) -> dict[str, tuple[str, str]]:
    """`kubectl top pods -A` has a row for every running CoreDNS pod. A pod started moments ago
    has no sample until metrics-server's next scrapes (15 s resolution), so wait up to `timeout`."""
    __tracebackhide__ = True

    def listed():
        out = kubectl(ctx, STEP, "top pods -A --no-headers", check=False)
        if out.exit_status != 0:
            raise NotYet(f"kubectl top pods -A failed: {(out.stderr or out.stdout).strip()[-300:]}")
        rows = {}
        for line in out.stdout.splitlines():
            cols = line.split()
            if len(cols) >= 4:
                rows[f"{cols[0]}/{cols[1]}"] = (cols[2], cols[3])
        pods = json.loads(kubectl(ctx, STEP, f"-n {SYSTEM} get pods -l k8s-app=kube-dns -o json").stdout)["items"]
        names = {f"{SYSTEM}/{p['metadata']['name']}" for p in pods if p["status"].get("phase") == "Running"}
        if not names or not names <= set(rows):
            raise NotYet(f"kubectl top pods -A lists {sorted(rows)}, want {sorted(names)}")
        return {name: rows[name] for name in sorted(names)}
    return await_state(ctx, STEP, "a kubectl top row for every CoreDNS pod", listed, timeout=timeout)


def _hpa(ctx: StepContext) -> dict:
    return json.loads(kubectl(ctx, STEP, f"-n {NAMESPACE} get hpa {BURNER} -o json").stdout)


def _ready_replicas(ctx: StepContext) -> int:
    dep = json.loads(kubectl(ctx, STEP, f"-n {NAMESPACE} get deployment {BURNER} -o json").stdout)
    return dep.get("status", {}).get("readyReplicas", 0)


def hpa_scales_up_and_down(ctx: StepContext, timeout: float = 300.0) -> dict[str, float]:
    """An HPA (50% of a 100m request) on a CGI that burns CPU per request: load from pods in the
    lab takes it from 1 to at least 2 ready replicas, and without load it returns to 1 within the
    lab's downscale window plus a few sync periods. Returns how long each way took."""
    __tracebackhide__ = True
    lab = ctx.lab
    apply(ctx, "autoscaling", autoscaling_yaml(lab, load_replicas=0), STEP)

    def settled_at_one():
        hpa = _hpa(ctx).get("status", {})
        if hpa.get("currentReplicas") != 1 or _ready_replicas(ctx) != 1:
            raise NotYet(f"{BURNER}: {hpa.get('currentReplicas')} replicas, {_ready_replicas(ctx)} ready")
    window = lab.autoscaling.downscale_stabilization_s + 4 * lab.autoscaling.sync_period_s + 60
    await_state(ctx, STEP, f"{BURNER} at rest with 1 replica", settled_at_one, timeout=window + timeout / 2)
    started = time.monotonic()
    apply(ctx, "autoscaling", autoscaling_yaml(lab, load_replicas=1), STEP)

    def scaled_up():
        hpa = _hpa(ctx).get("status", {})
        ready = _ready_replicas(ctx)
        if hpa.get("desiredReplicas", 0) < 2 or ready < 2:
            raise NotYet(f"HPA wants {hpa.get('desiredReplicas')} (max {HPA_MAX}), {ready} ready; "
                         f"metrics: {hpa.get('currentMetrics')}")
        return ready
    peak = await_state(ctx, STEP, f"{BURNER} scaled to 2 or more", scaled_up, timeout=timeout)
    up = time.monotonic() - started
    apply(ctx, "autoscaling", autoscaling_yaml(lab, load_replicas=0), STEP)
    started = time.monotonic()
    await_state(ctx, STEP, f"{BURNER} back to 1 replica", settled_at_one, timeout=window + timeout / 2)
    return {"scale_up_s": round(up, 1), "peak_ready": peak, "scale_down_s": round(time.monotonic() - started, 1),
            "downscale_window_s": lab.autoscaling.downscale_stabilization_s}
