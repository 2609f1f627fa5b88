"""The control plane as the guide checks it: componentstatuses through MASTER_URL, nodes Ready,
CSRs approved, kubelet client certificates issued by the cluster CA."""

from __future__ import annotations

import base64
import datetime as dt
import json

from cryptography import x509

from harness import pki
from harness.steps.actions import kubectl
from harness.steps.context import StepContext


def componentstatuses(ctx: StepContext) -> dict[str, str]:
    """`kubectl get componentstatuses` through https://MASTER_URL (the VIP). Deprecated but served;
    the warning it prints is expected."""
    __tracebackhide__ = True
    # --server names the route outright (it is also the admin kubeconfig's), so no other
    # command is needed to prove the answer came through MASTER_URL and the VIP.
    out = kubectl(ctx, "check:componentstatuses", f"--server={ctx.lab.api_url} get componentstatuses -o json")
    statuses = {}
    for item in json.loads(out.stdout)["items"]:
        healthy = [c for c in item.get("conditions", []) if c["type"] == "Healthy"]
        statuses[item["metadata"]["name"]] = healthy[0]["status"] if healthy else "Unknown"
    assert statuses.get("scheduler") == "True", statuses
    assert statuses.get("controller-manager") == "True", statuses
    etcd = {k: v for k, v in statuses.items() if k.startswith("etcd-")}
    assert etcd and all(v == "True" for v in etcd.values()), statuses
    return statuses


def nodes_ready(ctx: StepContext) -> dict[str, str]:
    __tracebackhide__ = True
    listing = json.loads(kubectl(ctx, "check:nodes", "get nodes -o json").stdout)
    ready = {}
    for node in listing["items"]:
        conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
        ready[node["metadata"]["name"]] = conditions.get("Ready")
    want = {m.node_name for m in ctx.lab.nodes}
    assert set(ready) == want and all(ready[n] == "True" for n in want), f"nodes: {ready}, want {sorted(want)} Ready"
    return ready


def approved_bootstrap_csrs(ctx: StepContext, step: str, requested_by) -> dict[str, str]:
    """node name -> CSR name for each approved and issued CSR whose requester (`spec.username`)
    `requested_by` accepts; the node is the CSR's own subject (system:node:<name>)."""
    listing = json.loads(kubectl(ctx, step, "get csr -o json").stdout)
    by_node = {}
    for csr in listing["items"]:
        if not requested_by(csr["spec"].get("username", "")):
            continue
        request = x509.load_pem_x509_csr(base64.b64decode(csr["spec"]["request"]))
        cn = request.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        types = {c["type"] for c in csr.get("status", {}).get("conditions", [])}
        if "Approved" in types and csr.get("status", {}).get("certificate"):
            by_node[cn.removeprefix("system:node:")] = csr["metadata"]["name"]
    return by_node


def csrs_approved(ctx: StepContext) -> dict[str, str]:
    """Each node's bootstrap CSR was approved and issued."""
    __tracebackhide__ = True
    by_node = approved_bootstrap_csrs(ctx, "check:nodes", lambda user: user == "kubelet-bootstrap")
    want = {m.node_name for m in ctx.lab.nodes}
    assert want <= set(by_node), f"approved and issued bootstrap CSRs for {sorted(by_node)}, want {sorted(want)}"
    return by_node


def kubelet_certs_from_cluster_ca(ctx: StepContext) -> dict[str, str]:
    """The kubelet's current client certificate on each node verifies against ca.pem."""
    __tracebackhide__ = True
    ca = x509.load_pem_x509_certificate((ctx.pki_dir / "ca.pem").read_bytes())
    subjects = {}
    for m in ctx.lab.nodes:
        pem = ctx.on(m).read("/etc/kubernetes/ssl/kubelet-client-current.pem")
        leaf = x509.load_pem_x509_certificate(pem)
        assert pki.signed_by(leaf, ca), f"{m.name}: kubelet client cert not signed by the cluster CA"
        assert leaf.not_valid_after_utc > dt.datetime.now(dt.timezone.utc), f"{m.name}: kubelet cert expired"
        cn = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        assert cn == f"system:node:{m.node_name}", f"{m.name}: kubelet cert is for {cn}"
        subjects[m.name] = cn
    return subjects


def kubelet_serving_certs_from_cluster_ca(ctx: StepContext) -> dict[str, list[str]]:
    """Each kubelet serves HTTPS with a cert from the cluster CA (serverTLSBootstrap) that names
    its node and only its own lab IP: what the apiserver and metrics-server verify."""
    __tracebackhide__ = True
    from harness.steps.nodes import SERVING_CERT

    ca = x509.load_pem_x509_certificate((ctx.pki_dir / "ca.pem").read_bytes())
    seen = {}
    for m in ctx.lab.nodes:
        leaf = x509.load_pem_x509_certificate(ctx.on(m).read(SERVING_CERT))
        assert pki.signed_by(leaf, ca), f"{m.name}: kubelet serving cert not signed by the cluster CA"
        cn = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        assert cn == f"system:node:{m.node_name}", f"{m.name}: kubelet serving cert is for {cn}"
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        ips = [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
        assert ips == [str(m.ip)], f"{m.name}: kubelet serving cert names IPs {ips}, want [{m.ip}]"
        seen[m.name] = ips
    return seen
