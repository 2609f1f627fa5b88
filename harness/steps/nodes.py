"""Guide §7: containerd with the CNI config from flannel's subnet, the kubelet with TLS
bootstrapping (token, clusterrolebinding, `kubectl get csr` and approve), kube-proxy."""

from __future__ import annotations

import base64
import json
import shlex

from harness.steps.actions import (NotYet, install_binaries, kubectl, push_file, run, start_units,
                                   sync_files, wait_until)
from harness.steps.context import StepContext
from harness.steps.parallel import for_each

NAME = "nodes"
IMAGE_DIR = "/var/lib/k8s-ha-lab/images"
BOOTSTRAP_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
SERVING_SIGNER = "kubernetes.io/kubelet-serving"
SERVING_USAGES = {"digital signature", "key encipherment", "server auth"}


def import_images_on_nodes(ctx: StepContext, step: str, components: tuple[str, ...]) -> None:
    """An add-on step's images onto every node at once, one progress line per node."""
    for_each(ctx, step, ctx.lab.nodes, lambda m: import_images(ctx, m, components, step=step), "images")


def import_images(ctx: StepContext, machine, components=("pause", "nginx"), step: str = NAME) -> None:
    """Images from the artifact cache, imported under the names the config and manifests use."""
    present = run(ctx, step, machine, "ctr -n k8s.io images ls -q", unit="containerd").stdout.split()
    for component in components:
        ref = ctx.lab.versions[component].image_ref
        if ref in present:
            continue
        archive = ctx.image_archive(component)
        remote = f"{IMAGE_DIR}/{archive.name}"
        push_file(ctx, machine, archive, remote, mode=0o644)
        run(ctx, step, machine, f"ctr -n k8s.io images import --no-unpack=false {shlex.quote(remote)}",
            unit="containerd")
        run(ctx, step, machine, f"rm -f {shlex.quote(remote)}")
        ctx.changed(step, f"{machine.name}:image {ref}")


def _pending(csr: dict) -> bool:
    return not (csr.get("status", {}).get("conditions") or [])


def approve_csrs(ctx: StepContext) -> list[str]:
    """Approve the pending kubelet client CSRs made with the bootstrap token, as the guide does
    by hand, and the kubelets' serving CSRs whose names and addresses are their node's own;
    deny serving CSRs that ask for anything else. Any other CSR is left alone."""
    listing = json.loads(kubectl(ctx, NAME, "get csr -o json").stdout)
    approved = []
    for csr in filter(_pending, listing.get("items", [])):
        name, spec = csr["metadata"]["name"], csr["spec"]
        if spec.get("signerName") == BOOTSTRAP_SIGNER and spec.get("username") == "kubelet-bootstrap":
            verdict = None
        elif spec.get("signerName") == SERVING_SIGNER:
            verdict = serving_csr_problem(ctx.lab, spec)
        else:
            continue
        if verdict:
            kubectl(ctx, NAME, f"certificate deny {shlex.quote(name)}")
            ctx.changed(NAME, f"denied {name}: {verdict}")
            continue
        kubectl(ctx, NAME, f"certificate approve {shlex.quote(name)}")
        ctx.changed(NAME, f"approved {name}")
        approved.append(name)
    return approved


def serving_csr_problem(lab, spec: dict) -> str | None:
    """Why a kubelet-serving CSR must not be signed, or None when it asks for exactly its node's
    names: subject system:node:<node> in system:nodes, made by that node's own credentials,
    DNS names among the machine's names, IPs only the machine's lab IP, usages for a server."""
    from cryptography import x509

    user = spec.get("username", "")
    node = user.removeprefix("system:node:")
    try:
        machine = lab.machine(node)
    except KeyError:
        return f"requested by {user!r}, not a lab node"
    if machine.node_name != node or "system:nodes" not in (spec.get("groups") or []):
        return f"requested by {user!r}, not a lab node"
    request = x509.load_pem_x509_csr(base64.b64decode(spec["request"]))
    cn = [a.value for a in request.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    org = [a.value for a in request.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)]
    if cn != [user] or org != ["system:nodes"]:
        return f"subject CN={cn} O={org} does not match {user}"
    try:
        sans = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "no subject alternative names"
    dns = set(sans.get_values_for_type(x509.DNSName))
    ips = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    if not dns <= {machine.name, machine.node_name}:
        return f"DNS names {sorted(dns)} are not {machine.node_name}'s"
    if ips != {str(machine.ip)}:
        return f"IP addresses {sorted(ips)} are not exactly {machine.ip}"
    usages = set(spec.get("usages") or [])
    if not usages or not usages <= SERVING_USAGES:
        return f"usages {sorted(usages)} are not a server's"
    return None


SERVING_CERT = "/etc/kubernetes/ssl/kubelet-server-current.pem"


def serving_certs_issued(ctx: StepContext) -> set[str]:
    """The nodes whose kubelet already holds a serving certificate (its CSR signed). Read on the
    machines: approved CSRs are garbage-collected after an hour, the certificate stays."""
    held = for_each(ctx, NAME, ctx.lab.nodes, quiet=True,
                    work=lambda m: run(ctx, NAME, m, f"test -s {SERVING_CERT}", check=False).exit_status == 0)
    return {m.node_name for m in ctx.lab.nodes if held[m.name]}


def node_conditions(ctx: StepContext) -> dict[str, str]:
    listing = json.loads(kubectl(ctx, NAME, "get nodes -o json").stdout)
    ready = {}
    for node in listing.get("items", []):
        status = {c["type"]: c["status"] for c in node["status"].get("conditions", [])}
        ready[node["metadata"]["name"]] = status.get("Ready", "Unknown")
    return ready


def run_step(ctx: StepContext) -> None:
    lab = ctx.lab
    for_each(ctx, NAME, lab.nodes, lambda m: _node(ctx, m))
    _wait_ready(ctx)


def _node(ctx: StepContext, m) -> None:
    binaries = install_binaries(ctx, NAME, m, ["kubelet", "kube-proxy"])
    changed = sync_files(ctx, NAME, m)
    run(ctx, NAME, m, "install -d /var/lib/kubelet /var/lib/kube-proxy " + IMAGE_DIR)
    # containerd reads certs.d/<registry>/hosts.toml at each pull: a change there restarts nothing.
    from harness.render.configs import CERTS_D
    changed = [p for p in changed if not p.startswith(CERTS_D + "/")]
    runtime_changed = any(p.startswith(("/etc/containerd", "/usr/local/bin/mk-cni-conf",
                                        "/etc/systemd/system/mk-cni-conf", "/etc/systemd/system/containerd"))
                          for p in changed)
    start_units(ctx, NAME, m, ["mk-cni-conf", "containerd"], restart=runtime_changed)
    import_images(ctx, m)
    start_units(ctx, NAME, m, ["kubelet", "kube-proxy"], restart=bool(changed or binaries), reload=False)


def _wait_ready(ctx: StepContext) -> None:
    lab = ctx.lab
    wanted = {m.node_name for m in lab.nodes}

    def all_ready():
        approve_csrs(ctx)
        ready = node_conditions(ctx)
        missing = sorted(n for n in wanted if ready.get(n) != "True")
        if missing:
            states = ", ".join(f"{n}={ready.get(n, 'unregistered')}" for n in missing)
            raise NotYet(f"not Ready yet: {states}")
        unserved = sorted(wanted - serving_certs_issued(ctx))
        if unserved:
            raise NotYet(f"no kubelet serving certificate issued yet for {', '.join(unserved)}")
    wait_until(ctx, NAME, lab.nodes[0], f"nodes {', '.join(sorted(wanted))} Ready", all_ready,
               timeout=300, interval=3, unit="kubelet", command="kubectl get csr / get nodes")
