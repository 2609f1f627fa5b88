"""The intro's kubedns, today CoreDNS: on the lab's DNS service IP and domain, two replicas on
different nodes, answering for the cluster and for the lab's machines, forwarding nowhere.

The kubelets already point pods at this address (clusterDNS and clusterDomain in their config,
both from the lab), so pods started before this step resolve as soon as it is done.
"""

from __future__ import annotations

import json

from harness.render import K8S_DIR
from harness.render.addons import DNS_APP, DNS_SERVICE, NAMESPACE
from harness.steps.actions import NotYet, kubectl, kubectl_apply, sync_files, wait_deployment, wait_until
from harness.steps.context import StepContext
from harness.steps.nodes import import_images_on_nodes

NAME = "dns"
MANIFEST = f"{K8S_DIR}/addons/coredns.yaml"
# The checks' client image (dig, host, getent, busybox) travels with the DNS step: it is what a
# trainee runs to look at DNS from a pod.
IMAGES = ("coredns", "toolbox")


def ready_endpoints(ctx: StepContext, step: str = NAME) -> list[str]:
    """The pod IPs behind the DNS Service that are ready to answer."""
    listing = json.loads(kubectl(ctx, step, f"-n {NAMESPACE} get endpointslices "
                                            f"-l kubernetes.io/service-name={DNS_SERVICE} -o json").stdout)
    ips = []
    for item in listing.get("items", []):
        for endpoint in item.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready"):
                ips += endpoint.get("addresses", [])
    return sorted(set(ips))


def run_step(ctx: StepContext) -> None:
    if not ctx.lab.has_addon(NAME):
        return
    import_images_on_nodes(ctx, NAME, IMAGES)
    first = ctx.lab.masters[0]
    sync_files(ctx, NAME, first)
    kubectl_apply(ctx, NAME, MANIFEST)
    want = wait_deployment(ctx, NAME, NAMESPACE, "coredns")

    def served():
        ips = ready_endpoints(ctx)
        if len(ips) < want:
            raise NotYet(f"{DNS_SERVICE} has {len(ips)} ready endpoint(s) {ips}, want {want} ({DNS_APP} pods)")
    wait_until(ctx, NAME, first, f"{want} CoreDNS endpoints behind {ctx.lab.cluster.dns_service_ip}", served,
               timeout=120, interval=2, command=f"kubectl -n {NAMESPACE} get endpointslices")
