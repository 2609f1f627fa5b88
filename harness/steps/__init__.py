"""The guide's deployment steps, in its order. The order is data, as in molecule's sequence:
the CLI, the pytest fixtures and the plan all read this one list."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepInfo:
    name: str
    guide_section: str
    summary: str


STEPS: tuple[StepInfo, ...] = (
    StepInfo("machines", "0", "bring up the machines at their lab addresses"),
    StepInfo("hosts", "0", "env.sh, the MASTER_URL record in /etc/hosts, sysctls"),
    StepInfo("pki", "1", "the CA and every certificate; each machine gets only what its roles need"),
    StepInfo("etcd", "2", "etcd members with TLS on peer and client ports"),
    StepInfo("kubectl", "3", "kubectl and the admin kubeconfig on the masters"),
    StepInfo("flannel", "4", "flannel's network config in etcd, flanneld on every machine"),
    StepInfo("masters", "5", "kube-apiserver, controller-manager and scheduler on every master"),
    StepInfo("api-ha", "6", "haproxy and the keepalived VIP in front of the masters"),
    StepInfo("nodes", "7", "containerd, kubelet with TLS bootstrapping, kube-proxy"),
    StepInfo("workload", "8", "the nginx-ds DaemonSet and its NodePort Service"),
    # The intro's promised add-ons, which the guide's text never reaches.
    StepInfo("dns", "intro", "CoreDNS on the lab's DNS service IP and domain (the guide's kubedns)"),
    StepInfo("metrics", "intro", "metrics-server behind the aggregation layer (the guide's heapster)"),
    StepInfo("ingress", "intro", "traefik on ports 80 and 443 of every node (the guide's traefik ingress)"),
    StepInfo("registry", "intro", "a private registry with TLS and htpasswd on shared storage (the guide's harbor on NFS)"),
    StepInfo("logs", "intro", "VictoriaLogs with vlagent on every node, and the audit logs (the guide's log collection)"),
)
STEP_NAMES = tuple(s.name for s in STEPS)


def steps_until(last: str | None) -> tuple[StepInfo, ...]:
    if last is None:
        return STEPS
    if last not in STEP_NAMES:
        from harness.errors import UserError
        raise UserError(f"--until: unknown step {last!r} (steps: {', '.join(STEP_NAMES)})")
    return STEPS[: STEP_NAMES.index(last) + 1]
