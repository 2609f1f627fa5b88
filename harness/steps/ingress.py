"""The guide's traefik ingress, today traefik v3: a DaemonSet on the nodes that binds ports 80
and 443 of each node's own address, and an Ingress that publishes nginx-ds as nginx.<domain>
(harness.render.ingress says what runs and why).

The image is imported on every node; the manifest is applied on a diff. Done when every node's
traefik is ready and answers for nginx.<domain> over HTTP and over HTTPS (checked against the
lab CA), each node asked by its own address.
"""

from __future__ import annotations

import json
import shlex

from harness.render import SSL_DIR
from harness.render.ingress import APP, MANIFEST, NAMESPACE, NGINX_APP
from harness.render.manifests import NGINX_WELCOME
from harness.steps.actions import NotYet, kubectl, kubectl_apply, run, sync_files, wait_until
from harness.steps.context import StepContext
from harness.steps.nodes import import_images_on_nodes

NAME = "ingress"
IMAGES = ("traefik",)
CA = f"{SSL_DIR}/ca.pem"


def curl_via(lab, url: str, node_ip: str, *, max_time: float = 5.0) -> str:
    """curl of `url` by name, with the name pinned to one node's address (--resolve), checking
    HTTPS against the lab CA. Prints the body, then the status code on a line of its own."""
    host = url.split("/")[2]
    port = lab.ingress.https_port if url.startswith("https:") else lab.ingress.http_port
    return (f"curl -sS --max-time {max_time:g} --cacert {CA} --resolve {shlex.quote(f'{host}:{port}:{node_ip}')} "
            f"-w '\\n%{{http_code}}' {shlex.quote(url)}")


def urls(lab, app: str = NGINX_APP) -> list[str]:
    host = lab.ingress_host(app)
    ing = lab.ingress
    http = f"http://{host}/" if ing.http_port == 80 else f"http://{host}:{ing.http_port}/"
    https = f"https://{host}/" if ing.https_port == 443 else f"https://{host}:{ing.https_port}/"
    return [http, https]


def _daemonset_ready(ctx: StepContext) -> int:
    ds = json.loads(kubectl(ctx, NAME, f"-n {NAMESPACE} get daemonset {APP} -o json").stdout)
    status, want = ds.get("status", {}), len(ctx.lab.nodes)
    if status.get("observedGeneration", 0) < ds["metadata"]["generation"]:
        raise NotYet(f"{APP}: the controller has not seen generation {ds['metadata']['generation']}")
    got = {k: status.get(k, 0) for k in ("desiredNumberScheduled", "updatedNumberScheduled", "numberReady")}
    if any(v != want for v in got.values()):
        raise NotYet(f"daemonset {APP}: {got}, want {want} of each (one per node)")
    return want


def _every_node_serves(ctx: StepContext) -> None:
    """nginx's page through each node's traefik, by name, over HTTP and HTTPS. traefik is
    ready before it has read the Ingresses, so readiness alone is not enough."""
    first = ctx.lab.masters[0]
    for node in ctx.lab.nodes:
        for url in urls(ctx.lab):
            out = run(ctx, NAME, first, curl_via(ctx.lab, url, str(node.ip)), check=False)
            body, _, code = out.stdout.rpartition("\n")
            if out.exit_status != 0 or code != "200" or NGINX_WELCOME not in body:
                raise NotYet(f"{url} through {node.node_name} ({node.ip}): exit {out.exit_status}, "
                             f"HTTP {code or '-'}: {(out.stderr or body).strip()[-200:]}")


def run_step(ctx: StepContext) -> None:
    if not ctx.lab.has_addon(NAME):
        return
    import_images_on_nodes(ctx, NAME, IMAGES)
    first = ctx.lab.masters[0]
    sync_files(ctx, NAME, first)
    kubectl_apply(ctx, NAME, MANIFEST)
    wait_until(ctx, NAME, first, f"daemonset {NAMESPACE}/{APP} ready on every node",
               lambda: _daemonset_ready(ctx), timeout=180, interval=3,
               command=f"kubectl -n {NAMESPACE} get daemonset {APP}")
    wait_until(ctx, NAME, first, f"{ctx.lab.ingress_host(NGINX_APP)} through every node's traefik",
               lambda: _every_node_serves(ctx), timeout=90, interval=2,
               command=f"kubectl -n {NAMESPACE} logs -l app={APP} --tail=20")
