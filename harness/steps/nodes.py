"""Guide §7: containerd with the CNI config from flannel's subnet, the kubelet with TLS
bootstrapping (token, clusterrolebinding, `kubectl get csr` and approve), kube-proxy."""

from __future__ import annotations

import json
import shlex

from harness.steps.actions import (NotYet, install_binaries, kubectl, push_file, run, start_units,
                                   sync_files, wait_until)
from harness.steps.context import StepContext

NAME = "nodes"
IMAGE_DIR = "/var/lib/k8s-ha-lab/images"
BOOTSTRAP_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"


def import_images(ctx: StepContext, machine) -> None:
    """The pause and nginx images, imported under the names the config and manifests use."""
    present = run(ctx, NAME, machine, "ctr -n k8s.io images ls -q", unit="containerd").stdout.split()
    for component in ("pause", "nginx"):
        ref = ctx.lab.versions[component].image_ref
        if ref in present:
            continue
        archive = ctx.image_archive(component)
        remote = f"{IMAGE_DIR}/{archive.name}"
        push_file(ctx, machine, archive, remote, mode=0o644)
        run(ctx, NAME, machine, f"ctr -n k8s.io images import --no-unpack=false {shlex.quote(remote)}",
            unit="containerd")
        ctx.changed(NAME, f"{machine.name}:image {ref}")


def approve_csrs(ctx: StepContext) -> list[str]:
    """Approve the pending kubelet client CSRs made with the bootstrap token, as the guide does
    by hand; any other CSR is left alone."""
    listing = json.loads(kubectl(ctx, NAME, "get csr -o json").stdout)
    approved = []
    for csr in listing.get("items", []):
        conditions = csr.get("status", {}).get("conditions") or []
        if conditions or csr["spec"].get("signerName") != BOOTSTRAP_SIGNER:
            continue
        if csr["spec"].get("username") != "kubelet-bootstrap":
            continue
        kubectl(ctx, NAME, f"certificate approve {csr['metadata']['name']}")
        ctx.changed(NAME, f"approved {csr['metadata']['name']}")
        approved.append(csr["metadata"]["name"])
    return approved


def node_conditions(ctx: StepContext) -> dict[str, str]:
    listing = json.loads(kubectl(ctx, NAME, "get nodes -o json").stdout)
    ready = {}
    for node in listing.get("items", []):
        status = {c["type"]: c["status"] for c in node["status"].get("conditions", [])}
        ready[node["metadata"]["name"]] = status.get("Ready", "Unknown")
    return ready


def run_step(ctx: StepContext) -> None:
    lab = ctx.lab
    for m in lab.nodes:
        binaries = install_binaries(ctx, NAME, m, ["kubelet", "kube-proxy"])
        changed = sync_files(ctx, NAME, m)
        run(ctx, NAME, m, "install -d /var/lib/kubelet /var/lib/kube-proxy " + IMAGE_DIR)
        runtime_changed = any(p.startswith(("/etc/containerd", "/usr/local/bin/mk-cni-conf",
                                            "/etc/systemd/system/mk-cni-conf", "/etc/systemd/system/containerd"))
                              for p in changed)
        start_units(ctx, NAME, m, ["mk-cni-conf", "containerd"], restart=runtime_changed)
        import_images(ctx, m)
        start_units(ctx, NAME, m, ["kubelet", "kube-proxy"], restart=bool(changed or binaries), reload=False)
    wanted = {m.node_name for m in lab.nodes}

    def all_ready():
        approve_csrs(ctx)
        ready = node_conditions(ctx)
        missing = sorted(n for n in wanted if ready.get(n) != "True")
        if missing:
            states = ", ".join(f"{n}={ready.get(n, 'unregistered')}" for n in missing)
            raise NotYet(f"not Ready yet: {states}")
    wait_until(ctx, NAME, lab.nodes[0], f"nodes {', '.join(sorted(wanted))} Ready", all_ready,
               timeout=300, interval=3, unit="kubelet", command="kubectl get csr / get nodes")
