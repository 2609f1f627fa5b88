"""The harness's core checks on the kubeadm cluster: which compare as they are, which compare in a
kubeadm form (same assertion, kubeadm's paths and objects), and which do not apply.

Every entry of checks.CORE_CHECKS is listed in COMPARISON, by name, so the benchmark can print
the three groups and a new core check fails the unit test until it is placed here.
"""

from __future__ import annotations

import ipaddress
import json
import shlex

from cryptography import x509

from checks import security
from checks.control_plane import approved_bootstrap_csrs
from harness import pki
from harness.kubeadm_baseline import flannel
from harness.kubeadm_baseline.config import PKI_DIR
from harness.render import FLANNEL_SUBNET_FILE
from harness.steps.actions import kubectl, run
from harness.steps.context import StepContext

STEP = "check:kubeadm"
ETCD_PKI = f"{PKI_DIR}/etcd"
ETCDCTL = "/usr/local/bin/etcdctl"
# etcd is a static pod here: it logs to the kubelet's files for its container, counted in lines.
_POD_LOG = "cat /var/log/pods/kube-system_etcd-*/etcd/*.log 2>/dev/null"
ETCD_POD_LOG = security.EtcdLog(f"{_POD_LOG} | wc -l", f"{_POD_LOG} | tail -n +$(({{mark}} + 1))")


def _refused_read(ctx, m, cert_args: str) -> tuple[int, str]:
    """The harness's etcd read (checks/security.py), with kubeadm's etcd CA and pod log."""
    return security.etcd_attempt(ctx, m, cert_args, cacert=f"{ETCD_PKI}/ca.crt", log=ETCD_POD_LOG, step=STEP)
KUBELET_CLIENT = "/var/lib/kubelet/pki/kubelet-client-current.pem"


def _etcdctl(ctx, m, cert_args: str, args: str):
    return run(ctx, STEP, m, f"{ETCDCTL} --endpoints=https://{m.ip}:2379 --cacert={ETCD_PKI}/ca.crt "
               f"{cert_args} --dial-timeout=3s --command-timeout=5s {args}", check=False)


OWN_CERT = f"--cert={ETCD_PKI}/healthcheck-client.crt --key={ETCD_PKI}/healthcheck-client.key"


def etcd_endpoint_health(ctx: StepContext) -> dict[str, str]:
    __tracebackhide__ = True
    health = {}
    for m in ctx.lab.etcd_members:
        out = _etcdctl(ctx, m, OWN_CERT, "endpoint health")
        assert out.exit_status == 0 and "is healthy" in out.stdout + out.stderr, \
            f"{m.name}: etcd endpoint health: {(out.stdout + out.stderr).strip()[-300:]}"
        health[m.name] = "healthy"
    return health


def etcd_cluster_members(ctx: StepContext) -> list[str]:
    __tracebackhide__ = True
    m = ctx.lab.etcd_members[0]
    out = _etcdctl(ctx, m, OWN_CERT, "member list -w json")
    assert out.exit_status == 0, f"etcdctl member list: {out.stderr.strip()[-300:]}"
    members = json.loads(out.stdout)["members"]
    urls = sorted(u for member in members for u in member.get("clientURLs", []) if "127.0.0.1" not in u)
    want = sorted(f"https://{e.ip}:2379" for e in ctx.lab.etcd_members)
    assert urls == want, f"etcd members serve {urls}, want {want} (stacked: one per master)"
    return urls


def etcd_refuses_no_cert(ctx: StepContext) -> str:
    __tracebackhide__ = True
    m = ctx.lab.etcd_members[0]
    own = _etcdctl(ctx, m, OWN_CERT, "get / --prefix --keys-only --limit=1")
    assert own.exit_status == 0, f"positive control: etcdctl with the healthcheck cert failed: {own.stderr[-300:]}"
    status, text = _refused_read(ctx, m, "")
    security.refused("no client certificate", status, text, security.NO_CERT_REFUSED)
    return text[-200:]


def etcd_refuses_foreign_cert(ctx: StepContext) -> str:
    __tracebackhide__ = True
    _, cert, key = security._foreign_client()
    m = ctx.lab.etcd_members[0]
    base = "/root/.k8s-ha-lab-impostor"
    ctx.on(m).upload(f"{base}.pem", cert, 0o644)
    ctx.on(m).upload(f"{base}-key.pem", key, 0o600)
    try:
        status, text = _refused_read(ctx, m, f"--cert={base}.pem --key={base}-key.pem")
    finally:
        run(ctx, STEP, m, f"rm -f {base}.pem {base}-key.pem", check=False)
    security.refused("a foreign-CA certificate", status, text, security.FOREIGN_CERT_REFUSED)
    return text[-200:]


def flannel_network_config(ctx: StepContext) -> dict:
    """kube-subnet-mgr reads the network from its ConfigMap, not from etcd."""
    __tracebackhide__ = True
    out = kubectl(ctx, STEP, f"-n {flannel.NAMESPACE} get configmap kube-flannel-cfg -o json")
    config = json.loads(json.loads(out.stdout)["data"]["net-conf.json"])
    assert config == ctx.lab.flannel_network_config, f"kube-flannel-cfg holds {config}"
    return config


def flannel_leases(ctx: StepContext) -> dict[str, str]:
    """Each machine's podCIDR: inside CLUSTER_CIDR, flannel's subnet length, one per machine,
    the same subnet in its subnet.env and on its flannel.1."""
    __tracebackhide__ = True
    lab = ctx.lab
    nodes = json.loads(kubectl(ctx, STEP, "get nodes -o json").stdout)["items"]
    cidrs = {n["metadata"]["name"]: n["spec"].get("podCIDR") for n in nodes}
    assert len(set(cidrs.values())) == len(cidrs) == len(lab.machines), f"podCIDRs: {cidrs}"
    result = {}
    for m in lab.machines:
        subnet = ipaddress.ip_network(cidrs[m.node_name])
        assert subnet.prefixlen == lab.flannel.subnet_len and subnet.subnet_of(lab.cluster.cluster_cidr), \
            f"{m.node_name}: podCIDR {subnet}"
        env = run(ctx, STEP, m, f"cat {FLANNEL_SUBNET_FILE}").stdout
        addr = run(ctx, STEP, m, "ip -4 -o addr show dev flannel.1", check=False).stdout
        assert f"FLANNEL_SUBNET={subnet.network_address + 1}/" in env, f"{m.name}: {env.strip()} vs {subnet}"
        assert f" {subnet.network_address}/" in addr, f"{m.name}: flannel.1 has {addr.strip()}, podCIDR {subnet}"
        result[m.name] = str(subnet)
    return result


def nodes_ready(ctx: StepContext) -> dict[str, str]:
    """Every machine is a node under kubeadm: the masters run their control plane as static
    pods, which needs a kubelet."""
    __tracebackhide__ = True
    listing = json.loads(kubectl(ctx, STEP, "get nodes -o json").stdout)
    ready = {n["metadata"]["name"]: {c["type"]: c["status"] for c in n["status"]["conditions"]}.get("Ready")
             for n in listing["items"]}
    want = {m.node_name for m in ctx.lab.machines}
    assert set(ready) == want and all(ready[n] == "True" for n in want), f"nodes: {ready}, want {sorted(want)} Ready"
    return ready


def csrs_approved(ctx: StepContext) -> dict[str, str]:
    """Each joined machine's bootstrap CSR (made with the bootstrap token) was approved and
    issued, by kubeadm's auto-approval RBAC; the first master's kubelet got its cert from init."""
    __tracebackhide__ = True
    by_node = approved_bootstrap_csrs(ctx, STEP, lambda user: user.startswith("system:bootstrap:"))
    want = {m.node_name for m in ctx.lab.machines if m is not ctx.lab.masters[0]}
    assert want <= set(by_node), f"approved bootstrap CSRs for {sorted(by_node)}, want {sorted(want)}"
    return by_node


def kubelet_certs_from_cluster_ca(ctx: StepContext) -> dict[str, str]:
    __tracebackhide__ = True
    ca = x509.load_pem_x509_certificate(ctx.on(ctx.lab.masters[0]).read(f"{PKI_DIR}/ca.crt"))
    subjects = {}
    for m in ctx.lab.machines:
        pem = ctx.on(m).read(KUBELET_CLIENT)
        leaf = x509.load_pem_x509_certificate(pem)
        assert pki.signed_by(leaf, ca), f"{m.name}: kubelet client cert not signed by kubeadm's CA"
        cn = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        assert cn == f"system:node:{m.node_name}", f"{m.name}: kubelet cert is for {cn}"
        subjects[m.name] = cn
    return subjects


def anonymous_is_denied(ctx: StepContext) -> str:
    """kubeadm leaves anonymous auth on (for /healthz, /readyz, /livez): an anonymous GET of the
    secrets gets 403 (system:anonymous is not allowed), where the harness's apiserver, with
    anonymous auth off, answers 401. Either way: no data. The admin gets 200."""
    __tracebackhide__ = True
    m = ctx.lab.masters[0]
    url = f"{ctx.lab.api_url}/api/v1/namespaces/kube-system/secrets"
    out = run(ctx, STEP, m, f"curl -s -w '\\n%{{http_code}}' --cacert {PKI_DIR}/ca.crt {shlex.quote(url)}",
              check=False).stdout.strip()
    body, _, code = out.rpartition("\n")
    assert code in ("401", "403") and '"kind": "Status"' in body.replace('":"', '": "'), \
        f"anonymous GET of secrets through {ctx.lab.api_url}: HTTP {code} {body[:200]}"
    admin = kubectl(ctx, STEP, "get --raw /api/v1/namespaces/kube-system/secrets", check=False)
    assert admin.exit_status == 0, f"positive control: the admin could not GET the secrets: {admin.stderr[:200]}"
    return code


def kube_proxy_cannot_list_secrets(ctx: StepContext) -> str:
    """kubeadm's kube-proxy runs as the kube-system/kube-proxy ServiceAccount."""
    __tracebackhide__ = True
    who = "--as=system:serviceaccount:kube-system:kube-proxy"
    nodes = kubectl(ctx, STEP, f"auth can-i list nodes {who}", check=False).stdout.strip()
    secrets = kubectl(ctx, STEP, f"auth can-i list secrets -A {who}", check=False).stdout.strip()
    assert nodes == "yes", f"kube-proxy's ServiceAccount may not even list nodes: {nodes}"
    assert secrets == "no", f"kube-proxy's ServiceAccount may list secrets: {secrets}"
    return secrets


def ca_key_only_on_masters(ctx: StepContext) -> dict[str, bool]:
    """The CA key is on every master (the joined ones got it through the uploaded, encrypted
    kubeadm-certs Secret) and on no other machine."""
    __tracebackhide__ = True
    holders = {}
    for m in ctx.lab.machines:
        out = run(ctx, STEP, m, "find /etc /root /var/lib -name ca.key -path '*/pki/ca.key' -type f 2>/dev/null",
                  check=False).stdout.split()
        holders[m.name] = bool(out)
        if m.has("master"):
            assert out == [f"{PKI_DIR}/ca.key"], f"{m.name}: {out}"
        else:
            assert not out, f"{m.name} (not a master) holds {out}"
    return holders


HERE = "harness.kubeadm_baseline.checks"
# core check name -> ("same", the harness's check) | ("kubeadm", this module's form) | ("n/a", why)
COMPARISON: dict[str, tuple[str, str]] = {
    "etcd endpoint health": ("kubeadm", "etcd_endpoint_health"),
    "etcd cluster members": ("kubeadm", "etcd_cluster_members"),
    "etcd refuses a client without a cert": ("kubeadm", "etcd_refuses_no_cert"),
    "flannel network config": ("kubeadm", "flannel_network_config"),
    "flannel leases": ("kubeadm", "flannel_leases"),
    "VIP on the VRRP master only": ("same", "vip:vip_on_vrrp_master"),
    "componentstatuses": ("same", "control_plane:componentstatuses"),
    "nodes Ready": ("kubeadm", "nodes_ready"),
    "node CSRs approved": ("kubeadm", "csrs_approved"),
    "kubelet certs from the cluster CA": ("kubeadm", "kubelet_certs_from_cluster_ca"),
    "kubelet serving certs from the cluster CA": (
        "n/a", "kubeadm's kubelets serve with self-signed certificates (no serverTLSBootstrap, no approver)"),
    "nginx pod per node": ("same", "nginx:pods_per_node"),
    "pod to pod across nodes": ("same", "flannel:pod_to_pod"),
    "nginx on the ClusterIP": ("same", "nginx:cluster_ip_from_every_machine"),
    "nginx on every NodePort": ("same", "nginx:node_port_from_every_machine"),
    "anonymous API access denied": ("kubeadm", "anonymous_is_denied"),
    "kube-proxy cannot list secrets": ("kubeadm", "kube_proxy_cannot_list_secrets"),
    "etcd refuses a foreign cert": ("kubeadm", "etcd_refuses_foreign_cert"),
    "CA key only on masters": ("kubeadm", "ca_key_only_on_masters"),
}


def check_function(name: str):
    import checks

    how, target = COMPARISON[name]
    if how == "same":
        return checks.resolve(target)
    if how == "kubeadm":
        return globals()[target]
    return None


def run_all(ctx: StepContext) -> list[dict]:
    """Every core check that applies, in the core order, each timed; a failure is recorded (with
    its first line), not raised, so one run reports them all."""
    import time

    from harness.progress import report

    results = []
    for name, (how, target) in COMPARISON.items():
        check = check_function(name)
        if check is None:
            results.append({"name": name, "how": how, "ok": None, "seconds": 0.0, "why": target})
            continue
        started, ok, why = time.monotonic(), True, ""
        try:
            check(ctx)
        except AssertionError as exc:
            ok, why = False, (str(exc).splitlines() or ["assertion failed"])[0][:300]
        seconds = round(time.monotonic() - started, 2)
        report(f"[kubeadm check] {name} ({how})", seconds, why, ok=ok)
        results.append({"name": name, "how": how, "ok": ok, "seconds": seconds, "why": why})
    return results
