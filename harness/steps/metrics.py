"""The intro's heapster, today metrics-server: behind the API aggregation layer, serving a cert
from the cluster CA, and verifying every kubelet's serving cert against the same CA.

Done when the aggregated API answers with a sample for every node, so `kubectl top nodes` and
the HorizontalPodAutoscaler work as soon as the step returns.
"""

from __future__ import annotations

import json

from harness.render import K8S_DIR
from harness.render.addons import METRICS_APP, NAMESPACE
from harness.steps.actions import NotYet, kubectl, kubectl_apply, sync_files, wait_deployment, wait_until
from harness.steps.context import StepContext
from harness.steps.nodes import import_images_on_nodes

NAME = "metrics"
MANIFEST = f"{K8S_DIR}/addons/metrics-server.yaml"
API_SERVICE = "v1beta1.metrics.k8s.io"


def node_metrics(ctx: StepContext, step: str = NAME) -> dict[str, dict]:
    """node name -> its usage ({"cpu": "123m", "memory": "456Ki"}) from the aggregated API."""
    out = kubectl(ctx, step, "get --raw /apis/metrics.k8s.io/v1beta1/nodes", check=False)
    if out.exit_status != 0:
        raise NotYet((out.stderr or out.stdout).strip()[-300:])
    return {item["metadata"]["name"]: item["usage"] for item in json.loads(out.stdout).get("items", [])}


def run_step(ctx: StepContext) -> None:
    if not ctx.lab.has_addon(NAME):
        return
    import_images_on_nodes(ctx, NAME, ("metrics_server",))
    first = ctx.lab.masters[0]
    sync_files(ctx, NAME, first)
    kubectl_apply(ctx, NAME, MANIFEST)
    wait_deployment(ctx, NAME, NAMESPACE, METRICS_APP)

    def available():
        status = json.loads(kubectl(ctx, NAME, f"get apiservice {API_SERVICE} -o json").stdout).get("status", {})
        cond = next((c for c in status.get("conditions", []) if c["type"] == "Available"), {})
        if cond.get("status") != "True":
            raise NotYet(f"{API_SERVICE} Available={cond.get('status')}: {cond.get('message', '')[:200]}")
    wait_until(ctx, NAME, first, f"APIService {API_SERVICE} Available", available, timeout=120,
               command=f"kubectl get apiservice {API_SERVICE}")
    want = {m.node_name for m in ctx.lab.nodes}

    def sampled():
        missing = sorted(want - set(node_metrics(ctx)))
        if missing:
            raise NotYet(f"no metrics yet for {', '.join(missing)}")
    # metrics-server scrapes every 15 s and needs two scrapes for a CPU rate.
    wait_until(ctx, NAME, first, "a metrics sample for every node", sampled, timeout=120, interval=3,
               command="kubectl get --raw /apis/metrics.k8s.io/v1beta1/nodes")
