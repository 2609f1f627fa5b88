"""`coredns-pod-killed`: one CoreDNS replica's process is killed on its node (SIGKILL, as a crash
or the OOM killer would), while a pod on another node asks DNS in a loop.

What a trainee should see: the Service keeps a dead endpoint until the readiness probe has failed
`failureThreshold` times, and kube-proxy then rewrites the node's rules; until then about one
query in two goes to the dead replica and fails over to a retry. The kubelet restarts the
container at once, so in practice the gap is often shorter than the bound: the bound is what the
lab's settings guarantee, not what usually happens.
"""

from __future__ import annotations

from harness.failover import bounds
from harness.render.addons import DNS_READY_FAILURES, DNS_READY_PERIOD_S, DNS_READY_TIMEOUT_S
from harness.steps.actions import wait_deployment

NAME = "coredns-pod-killed"
# kube-proxy's iptables --iptables-min-sync-period default: how long after an EndpointSlice
# change its rules can still be the old ones.
KUBE_PROXY_SYNC_S = 1.0


def bound(env) -> bounds.Bound:
    """The longest a pod can see DNS fail: the probe's failures to notice, plus kube-proxy."""
    seconds = DNS_READY_PERIOD_S * DNS_READY_FAILURES + DNS_READY_TIMEOUT_S + KUBE_PROXY_SYNC_S
    return bounds.Bound(seconds, f"readiness period {DNS_READY_PERIOD_S}s × failureThreshold "
                                 f"{DNS_READY_FAILURES} + timeout {DNS_READY_TIMEOUT_S}s + kube-proxy sync "
                                 f"{KUBE_PROXY_SYNC_S:g}s = {seconds:g}s")


def act(env) -> dict:
    from checks.dns import break_one_coredns_pod

    report = break_one_coredns_pod(env.ctx, "sigkill")
    return {"victim": report["victim"], "victim_node": report["victim_node"],
            "client_node": report["client_node"], "dns_queries": report["queries"],
            "dns_failures": report["failures"], "longest_dns_gap_s": report["longest_gap_s"]}


def restore(env) -> None:
    wait_deployment(env.ctx, "restore", "kube-system", "coredns")


def invariants(facts: dict, probe: dict) -> list[str]:
    problems = []
    if facts.get("dns_queries", 0) < 20:
        problems.append(f"the DNS loop ran only {facts.get('dns_queries')} queries")
    if facts.get("dns_failures", 0) > facts.get("dns_queries", 0) / 2:
        problems.append(f"{facts['dns_failures']} of {facts['dns_queries']} DNS queries failed: "
                        "more than the one replica in two that was killed")
    return problems
