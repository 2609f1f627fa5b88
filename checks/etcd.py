"""etcd: healthy over mTLS on every member, all members in the cluster, no client without a cert."""

from __future__ import annotations

from harness.steps.actions import etcdctl, run
from harness.steps.context import StepContext


def endpoint_health(ctx: StepContext) -> dict[str, str]:
    __tracebackhide__ = True
    seen = {}
    for m in ctx.lab.etcd_members:
        out = etcdctl(ctx, "check:etcd", m, "endpoint health", check=False)
        text = (out.stdout + out.stderr).strip()
        seen[m.name] = text
        assert f"https://{m.ip}:2379 is healthy" in text, f"etcd on {m.name}: {text}"
    return seen


def cluster_members(ctx: StepContext) -> list[str]:
    __tracebackhide__ = True
    first = ctx.lab.etcd_members[0]
    result = etcdctl(ctx, "check:etcd", first, "endpoint health --cluster", check=False)
    out = result.stdout + result.stderr
    healthy = sorted(line.split()[0] for line in out.splitlines() if "is healthy" in line)
    want = sorted(f"https://{m.ip}:2379" for m in ctx.lab.etcd_members)
    assert healthy == want, f"etcd --cluster reports healthy {healthy}, want {want}"
    names = etcdctl(ctx, "check:etcd", first, "member list -w simple").stdout
    assert len([line for line in names.splitlines() if ", started," in line]) == len(want), names
    return healthy


def client_without_cert_is_rejected(ctx: StepContext) -> str:
    """A TLS client that presents no certificate is refused in the handshake (not merely "some
    error": etcd down or etcdctl missing would fail too), while the same read with the member's
    own certificate, the positive control, succeeds."""
    __tracebackhide__ = True
    from checks.security import CONTROL_TIMEOUT_S, NO_CERT_REFUSED, OWN_CERT, etcd_attempt, refused

    m = ctx.lab.etcd_members[0]
    own = etcd_attempt(ctx, m, OWN_CERT, timeout_s=CONTROL_TIMEOUT_S)
    assert own[0] == 0, f"positive control: etcdctl with {m.name}'s own cert failed: {own[1][-400:]}"
    status, text = etcd_attempt(ctx, m, "")
    refused("no client certificate", status, text, NO_CERT_REFUSED)
    return text
