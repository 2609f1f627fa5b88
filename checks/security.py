"""Security is part of correctness: no anonymous API access, least privilege for kube-proxy,
etcd only for the cluster CA's clients, the CA key only on masters."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness import pki
from harness.steps.actions import run
from harness.steps.context import StepContext

KUBECTL = "/usr/local/bin/kubectl"


def anonymous_is_denied(ctx: StepContext) -> str:
    """An unauthenticated request through MASTER_URL gets 401, not data."""
    __tracebackhide__ = True
    m = ctx.lab.masters[0]
    out = run(ctx, "check:security", m,
              f"curl -s -o /dev/null -w '%{{http_code}}' --cacert /etc/kubernetes/ssl/ca.pem "
              f"{ctx.lab.api_url}/api/v1/namespaces/kube-system/secrets", check=False).stdout.strip()
    assert out == "401", f"anonymous GET of secrets through {ctx.lab.api_url} returned HTTP {out}"
    return out


def kube_proxy_cannot_list_secrets(ctx: StepContext) -> str:
    """With kube-proxy's own kubeconfig (as installed on a node), listing secrets is Forbidden."""
    __tracebackhide__ = True
    node = ctx.lab.nodes[0]
    kubeconfig = ctx.file(node, "/etc/kubernetes/kube-proxy.kubeconfig")
    m = ctx.lab.masters[0]
    path = "/root/.k8s-ha-lab-check-kube-proxy.kubeconfig"
    ctx.on(m).upload(path, kubeconfig.content, 0o600)
    try:
        allowed = run(ctx, "check:security", m, f"{KUBECTL} --kubeconfig={path} get nodes -o name",
                      check=False)
        denied = run(ctx, "check:security", m, f"{KUBECTL} --kubeconfig={path} get secrets -A", check=False)
    finally:
        run(ctx, "check:security", m, f"rm -f {path}", check=False)
    # the identity works (it may list nodes), so the refusal below is about authorization
    assert allowed.exit_status == 0, f"kube-proxy identity could not even list nodes: {allowed.stderr}"
    assert denied.exit_status != 0 and "forbidden" in denied.stderr.lower(), \
        f"kube-proxy listed secrets: {denied.stdout[:200]} {denied.stderr[:200]}"
    return denied.stderr.strip()


def _foreign_client() -> tuple[bytes, bytes, bytes]:
    """A CA the cluster never saw, and a client cert it signed (CN=root, clientAuth)."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key, key = pki.new_key(2048), pki.new_key(2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "impostor-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "root")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return pki.cert_pem(ca), pki.cert_pem(leaf), pki.key_pem(key)


def etcd_refuses_foreign_cert(ctx: StepContext) -> str:
    __tracebackhide__ = True
    _, cert, key = _foreign_client()
    m = ctx.lab.etcd_members[0]
    base = "/root/.k8s-ha-lab-impostor"
    ctx.on(m).upload(f"{base}.pem", cert, 0o644)
    ctx.on(m).upload(f"{base}-key.pem", key, 0o600)
    try:
        out = run(ctx, "check:security", m,
                  f"/usr/local/bin/etcdctl --endpoints=https://{m.ip}:2379 "
                  f"--cacert=/etc/kubernetes/ssl/ca.pem --cert={base}.pem --key={base}-key.pem "
                  "--command-timeout=5s get / --prefix --keys-only --limit=1", check=False)
    finally:
        run(ctx, "check:security", m, f"rm -f {base}.pem {base}-key.pem", check=False)
    text = (out.stdout + out.stderr).strip()
    assert out.exit_status != 0, f"etcd served a client signed by a foreign CA: {text[:300]}"
    return text


def ca_key_only_on_masters(ctx: StepContext) -> dict[str, bool]:
    """No machine without the master role holds ca-key.pem anywhere under /etc, /root or /var."""
    __tracebackhide__ = True
    holders = {}
    for m in ctx.lab.machines:
        out = run(ctx, "check:security", m,
                  "find /etc /root /var/lib -name ca-key.pem -type f 2>/dev/null", check=False).stdout
        holders[m.name] = bool(out.strip())
        if not m.has("master"):
            assert not out.strip(), f"{m.name} (not a master) holds {out.split()}"
        else:
            assert out.strip() == "/etc/kubernetes/ssl/ca-key.pem", f"{m.name}: {out.split()}"
    return holders
