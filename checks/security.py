"""Security is part of correctness: no anonymous API access, least privilege for kube-proxy,
etcd only for the cluster CA's clients, the CA key only on masters.

Every negative check asserts the specific refusal (HTTP 401 Unauthorized, Forbidden for the
resource, a TLS alert from etcd), never just a failure: a server that is down, or a missing
binary, fails too and proves nothing. And each runs a positive control in the same check: the
same request with the right credentials succeeds, so the refusal is about the credentials.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness import pki
from harness.steps.actions import run
from harness.steps.context import StepContext

KUBECTL = "/usr/local/bin/kubectl"


def anonymous_is_denied(ctx: StepContext) -> str:
    """An unauthenticated request through MASTER_URL gets 401 Unauthorized, not data; the same
    request with the admin client certificate gets 200."""
    __tracebackhide__ = True
    m = ctx.lab.masters[0]
    base = "/root/.k8s-ha-lab-check-admin"
    url = f"{ctx.lab.api_url}/api/v1/namespaces/kube-system/secrets"
    curl = f"curl -s -w '\\n%{{http_code}}' --cacert /etc/kubernetes/ssl/ca.pem"
    ctx.on(m).upload(f"{base}.pem", (ctx.pki_dir / "admin.pem").read_bytes(), 0o600)
    ctx.on(m).upload(f"{base}-key.pem", (ctx.pki_dir / "admin-key.pem").read_bytes(), 0o600)
    try:
        anonymous = run(ctx, "check:security", m, f"{curl} {shlex.quote(url)}", check=False).stdout.strip()
        admin = run(ctx, "check:security", m, f"{curl} --cert {base}.pem --key {base}-key.pem {shlex.quote(url)}",
                    check=False).stdout.strip()
    finally:
        run(ctx, "check:security", m, f"rm -f {base}.pem {base}-key.pem", check=False)
    body, _, code = anonymous.rpartition("\n")
    assert code == "401" and '"reason": "Unauthorized"' in body.replace('":"', '": "'), \
        f"anonymous GET of secrets through {ctx.lab.api_url}: HTTP {code} {body[:200]}"
    admin_code = admin.rpartition("\n")[2]
    assert admin_code == "200", f"positive control: the admin cert got HTTP {admin_code} for the same GET"
    return code


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
        admin = run(ctx, "check:security", m, f"{KUBECTL} --kubeconfig=/root/.kube/config get secrets -A -o name",
                    check=False)
    finally:
        run(ctx, "check:security", m, f"rm -f {path}", check=False)
    # the identity works (it may list nodes), so the refusal below is about authorization
    assert allowed.exit_status == 0, f"kube-proxy identity could not even list nodes: {allowed.stderr}"
    assert denied.exit_status != 0 and FORBIDDEN_SECRETS.search(denied.stderr), \
        f"kube-proxy listing secrets was not refused as Forbidden: {denied.stdout[:200]} {denied.stderr[:300]}"
    # positive control: the same command with the admin identity lists them
    assert admin.exit_status == 0, f"positive control: admin could not list secrets: {admin.stderr[:300]}"
    return denied.stderr.strip()


FORBIDDEN_SECRETS = re.compile(r"\(Forbidden\).*cannot list resource \"secrets\"", re.S)


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


# What etcd's refusal looks like: the client sees the TLS alert etcd sent ("remote error: tls:
# ..."), and etcd logs the rejected connection with the reason. Anything else (connection
# refused, a deadline with no TLS error, a missing binary) is not a refusal of the credentials.
NO_CERT_REFUSED = re.compile(r"remote error: tls: (certificate required|bad certificate|handshake failure)"
                             r"|rejected connection.*(didn't provide a certificate|certificate required)")
FOREIGN_CERT_REFUSED = re.compile(r"remote error: tls: (unknown certificate authority|bad certificate)"
                                  r"|rejected connection.*(signed by unknown authority|failed to verify certificate)")


class EtcdLog(NamedTuple):
    """Where a machine's etcd logs, as two shell snippets: `mark` prints a position now, `since`
    (with `{mark}` filled in) prints what was logged after it."""
    mark: str
    since: str


# The harness's etcd is a systemd unit: its journal, by the machine's clock.
ETCD_JOURNAL = EtcdLog("date +%s", "journalctl -u etcd --since=@$(({mark} - 1)) --no-pager -o cat")


# How long a read may take. A refused client retries its handshake until the command timeout, so
# a refusal always costs that long: 2 s is enough for etcd to log the rejected connection, which
# is the evidence. The positive control gets more, so that a loaded host does not fail it.
CONTROL_TIMEOUT_S, REFUSAL_TIMEOUT_S = 5, 2
OWN_CERT = "--cert=/etc/etcd/ssl/etcd.pem --key=/etc/etcd/ssl/etcd-key.pem"


def etcd_attempt(ctx: StepContext, m, cert_args: str, *, cacert: str = "/etc/kubernetes/ssl/ca.pem",
                 log: EtcdLog = ETCD_JOURNAL, step: str = "check:security",
                 timeout_s: int = REFUSAL_TIMEOUT_S) -> tuple[int, str]:
    """The same etcdctl read with the given client credentials, and the exit status and text of
    the client plus what etcd logged about rejected connections meanwhile (the client alone
    often says only that its retries ran out)."""
    mark = run(ctx, step, m, log.mark, check=False).stdout.strip() or "0"
    out = run(ctx, step, m,
              f"/usr/local/bin/etcdctl --endpoints=https://{m.ip}:2379 --cacert={cacert} "
              f"{cert_args} --dial-timeout={timeout_s}s --command-timeout={timeout_s}s get / --prefix --keys-only --limit=1",
              check=False)
    text = (out.stdout + out.stderr).strip()
    if out.exit_status != 0:
        logged = run(ctx, step, m, f"{log.since.format(mark=int(mark))} | grep -i 'rejected connection' "
                     "| tail -n 3", check=False).stdout.strip()
        text = f"{text}\n{logged}".strip()
    return out.exit_status, text


def refused(kind: str, status: int, text: str, pattern: re.Pattern) -> None:
    __tracebackhide__ = True
    assert status != 0, f"etcd served a client with {kind}: {text[:300]}"
    assert pattern.search(text), f"etcd did not refuse {kind} with a TLS error; it said: {text[-600:]}"


def etcd_refuses_foreign_cert(ctx: StepContext) -> str:
    """etcd refuses, in the TLS handshake, a client whose certificate a foreign CA signed; the
    same read with the member's own certificate succeeds. (A client with no certificate is the
    core check `etcd:client_without_cert_is_rejected`.)"""
    __tracebackhide__ = True
    _, cert, key = _foreign_client()
    m = ctx.lab.etcd_members[0]
    base = "/root/.k8s-ha-lab-impostor"
    ctx.on(m).upload(f"{base}.pem", cert, 0o644)
    ctx.on(m).upload(f"{base}-key.pem", key, 0o600)
    try:
        foreign = etcd_attempt(ctx, m, f"--cert={base}.pem --key={base}-key.pem")
        own = etcd_attempt(ctx, m, OWN_CERT, timeout_s=CONTROL_TIMEOUT_S)
    finally:
        run(ctx, "check:security", m, f"rm -f {base}.pem {base}-key.pem", check=False)
    # positive control first: with the member's own cert the same read works, so etcd is up, the
    # binary is there and the server's certificate verifies; the refusals below are about ours
    assert own[0] == 0, f"positive control: etcdctl with {m.name}'s own cert failed: {own[1][-400:]}"
    refused("a foreign-CA certificate", *foreign, FOREIGN_CERT_REFUSED)
    return foreign[1]


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
