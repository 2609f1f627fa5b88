"""The workload as the guide checks it: one nginx-ds pod per node, and the welcome page on the
ClusterIP and on every node's NodePort, asked from every machine."""

from __future__ import annotations

import json
import shlex

from harness.render.manifests import NGINX_WELCOME
from harness.steps.actions import kubectl, run
from harness.steps.context import StepContext


def pods_per_node(ctx: StepContext) -> dict[str, str]:
    __tracebackhide__ = True
    listing = json.loads(kubectl(ctx, "check:nginx", "get pods -l app=nginx-ds -o json").stdout)
    running: dict[str, list[str]] = {}
    for pod in listing["items"]:
        if pod["status"].get("phase") == "Running":
            running.setdefault(pod["spec"]["nodeName"], []).append(pod["metadata"]["name"])
    want = {m.node_name for m in ctx.lab.nodes}
    assert set(running) == want and all(len(p) == 1 for p in running.values()), \
        f"running nginx-ds pods by node: {running}, want one on each of {sorted(want)}"
    return {node: pods[0] for node, pods in running.items()}


def service_endpoints(ctx: StepContext) -> tuple[str, int]:
    svc = json.loads(kubectl(ctx, "check:nginx", "get svc nginx-ds -o json").stdout)["spec"]
    return svc["clusterIP"], next(p["nodePort"] for p in svc["ports"] if p["port"] == 80)


def _get(ctx: StepContext, machine, url: str) -> str:
    out = run(ctx, "check:nginx", machine, f"curl -s -m 5 {shlex.quote(url)}", check=False)
    return out.stdout


def cluster_ip_from_every_machine(ctx: StepContext) -> dict[str, int]:
    """`curl http://<ClusterIP>` on every node (kube-proxy's rules live there) returns the page."""
    __tracebackhide__ = True
    cluster_ip, _ = service_endpoints(ctx)
    sizes = {}
    for m in ctx.lab.nodes:
        body = _get(ctx, m, f"http://{cluster_ip}/")
        assert NGINX_WELCOME in body, f"{m.name}: http://{cluster_ip}/ returned {body[:200]!r}"
        sizes[m.name] = len(body)
    return sizes


def node_port_from_every_machine(ctx: StepContext) -> dict[str, int]:
    """`curl http://<nodeIP>:<NodePort>` for every node, asked from every machine in the lab."""
    __tracebackhide__ = True
    _, node_port = service_endpoints(ctx)
    lo, hi = ctx.lab.cluster.node_port_range
    assert lo <= node_port <= hi, f"NodePort {node_port} outside {lo}-{hi}"
    seen = {}
    for source in ctx.lab.machines:
        for target in ctx.lab.nodes:
            url = f"http://{target.ip}:{node_port}/"
            body = _get(ctx, source, url)
            assert NGINX_WELCOME in body, f"from {source.name}: {url} returned {body[:200]!r}"
            seen[f"{source.name}->{target.node_name}"] = len(body)
    return seen
