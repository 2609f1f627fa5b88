"""DNS as a pod sees it: asked from a toolbox pod on every node, through the DNS service IP the
kubelet wrote into the pod's resolv.conf. Every expected answer comes from the lab or the API."""

from __future__ import annotations

import json
import re

from checks.workloads import exec_in, loop_while_breaking, toolbox_pods
from harness.render.addons import NAMESPACE as DNS_NAMESPACE
from harness.render.check_workloads import HEADLESS, NAMESPACE
from harness.steps.actions import kubectl
from harness.steps.context import StepContext

STEP = "check:dns"
# One line per question: "<key>|<answers, space-separated>". dig's +short prints only answers.
_SCRIPT = """\
ask() {{ printf '%s|' "$1"; shift; "$@" 2>&1 | tr '\\n' ' '; echo; }}
ask resolv cat /etc/resolv.conf
ask kubernetes dig +short +time=2 +tries=2 A kubernetes.default.svc.{domain}
ask nginx dig +short +time=2 +tries=2 A nginx-ds.default.svc.{domain}
ask headless dig +short +time=2 +tries=2 A {headless}.{ns}.svc.{domain}
ask ptr dig +short +time=2 +tries=2 -x {kubernetes_ip}
ask short getent hosts {headless}
ask machine dig +short +time=2 +tries=2 A {machine}
ask outside dig +time=2 +tries=2 A k8s-ha-lab-no-such-name.example
"""


def _ask(ctx: StepContext, pod: dict) -> dict[str, str]:
    lab = ctx.lab
    script = _SCRIPT.format(domain=lab.dns_domain, headless=HEADLESS, ns=NAMESPACE,
                            kubernetes_ip=lab.cluster.kubernetes_service_ip, machine=lab.machines[0].name)
    out = exec_in(ctx, pod, script, STEP)
    answers = {}
    for line in out.stdout.splitlines():
        key, _, value = line.partition("|")
        answers[key] = value.strip()
    return answers


def _service_ip(ctx: StepContext, namespace: str, name: str) -> str:
    return json.loads(kubectl(ctx, STEP, f"-n {namespace} get svc {name} -o json").stdout)["spec"]["clusterIP"]


def resolution_from_every_node(ctx: StepContext) -> dict[str, dict[str, str]]:
    """From a pod on every node: the kubernetes and nginx-ds services by FQDN, a headless service
    to its pods' IPs, a service IP back to its name, a short name through the search path, a lab
    machine by name, and NXDOMAIN (not a timeout) for a name outside the lab."""
    __tracebackhide__ = True
    lab = ctx.lab
    pods = toolbox_pods(ctx)
    nginx_ip = _service_ip(ctx, "default", "nginx-ds")
    toolbox_ips = sorted(p["status"]["podIP"] for p in pods.values())
    seen = {}
    for node, pod in sorted(pods.items()):
        a = _ask(ctx, pod)
        where = f"pod {pod['metadata']['name']} on {node}"
        assert f"nameserver {lab.cluster.dns_service_ip}" in a.get("resolv", ""), \
            f"{where}: resolv.conf is {a.get('resolv')!r}, want nameserver {lab.cluster.dns_service_ip}"
        assert f"search {NAMESPACE}.svc.{lab.dns_domain}" in a.get("resolv", ""), \
            f"{where}: resolv.conf search path is {a.get('resolv')!r}"
        assert a.get("kubernetes") == str(lab.cluster.kubernetes_service_ip), \
            f"{where}: kubernetes.default.svc.{lab.dns_domain} -> {a.get('kubernetes')!r}, want {lab.cluster.kubernetes_service_ip}"
        assert a.get("nginx") == nginx_ip, f"{where}: nginx-ds.default.svc.{lab.dns_domain} -> {a.get('nginx')!r}, want {nginx_ip}"
        assert sorted(a.get("headless", "").split()) == toolbox_ips, \
            f"{where}: headless {HEADLESS} -> {a.get('headless')!r}, want the pod IPs {toolbox_ips}"
        assert a.get("ptr") == f"kubernetes.default.svc.{lab.dns_domain}.", \
            f"{where}: PTR of {lab.cluster.kubernetes_service_ip} -> {a.get('ptr')!r}"
        short = a.get("short", "").split()
        assert short[:1] and short[0] in toolbox_ips and f"{HEADLESS}.{NAMESPACE}.svc.{lab.dns_domain}" in short, \
            f"{where}: the short name {HEADLESS} -> {a.get('short')!r}, want a pod IP by the search path"
        assert a.get("machine") == str(lab.machines[0].ip), \
            f"{where}: {lab.machines[0].name} -> {a.get('machine')!r}, want {lab.machines[0].ip}"
        assert "status: NXDOMAIN" in a.get("outside", ""), \
            f"{where}: a name outside the lab got {a.get('outside', '')[:200]!r}, want NXDOMAIN from CoreDNS"
        seen[node] = a
    return seen


# --- DNS while a CoreDNS pod goes away ------------------------------------------------------------
# The pod asks in a loop and stamps each answer with the kernel's uptime (10 ms steps; busybox's
# date has no sub-second format); one line per query.
_LOOP = """\
end=$(( $(date +%s) + {seconds} ))
while [ "$(date +%s)" -lt "$end" ]; do
  if dig +short +time=1 +tries=2 A kubernetes.default.svc.{domain} | grep -qx '{want}'; then r=ok; else r=fail; fi
  read -r up _ < /proc/uptime
  echo "$up $r"
  sleep {pause}
done
"""


def query_loop_script(ctx: StepContext, seconds: float, pause: float = 0.1) -> str:
    lab = ctx.lab
    return _LOOP.format(seconds=int(seconds), domain=lab.dns_domain, want=lab.cluster.kubernetes_service_ip,
                        pause=pause)


def parse_loop(stdout: str) -> list[tuple[float, bool]]:
    """(seconds on the pod's clock, answered) per query, from the loop's output."""
    samples = []
    for line in stdout.splitlines():
        match = re.fullmatch(r"(\d+\.\d+) (ok|fail)", line.strip())
        if match:
            samples.append((float(match[1]), match[2] == "ok"))
    return samples


def longest_gap(samples: list[tuple[float, bool]]) -> float:
    """The longest time between two answered queries that had only failures between them."""
    gap, last_ok, failed_since = 0.0, None, False
    for at, ok in samples:
        if ok:
            if last_ok is not None and failed_since:
                gap = max(gap, at - last_ok)
            last_ok, failed_since = at, False
        else:
            failed_since = True
    if failed_since and last_ok is not None and samples:
        gap = max(gap, samples[-1][0] - last_ok)
    return round(gap, 2)


def coredns_pods(ctx: StepContext) -> dict[str, str]:
    """pod name -> node name, for the CoreDNS pods not being deleted."""
    listing = json.loads(kubectl(ctx, STEP, f"-n {DNS_NAMESPACE} get pods -l k8s-app=kube-dns -o json").stdout)
    return {p["metadata"]["name"]: p["spec"].get("nodeName", "") for p in listing["items"]
            if not p["metadata"].get("deletionTimestamp")}


def break_one_coredns_pod(ctx: StepContext, how: str = "delete", seconds: float = 20.0,
                          break_after: float = 4.0) -> dict:
    """Ask DNS in a loop from a toolbox pod on a node that runs no CoreDNS pod (else the first),
    while one CoreDNS pod goes away: `delete` deletes it through the API (graceful: the endpoint
    leaves the Service while CoreDNS's lameduck keeps answering), `sigkill` kills its process on
    the node, as a crash would (the endpoint stays until the readiness probe notices). Reports
    the queries, the failures and the longest gap between two answered queries."""
    victims = coredns_pods(ctx)
    assert victims, "no CoreDNS pod to break"
    victim = sorted(victims)[0]
    victim_node = victims[victim]
    pods = toolbox_pods(ctx)
    spare = [n for n in sorted(pods) if n not in victims.values()]
    client = pods[(spare or sorted(pods))[0]]
    script = query_loop_script(ctx, seconds)
    out, broken_at = loop_while_breaking(
        ctx, lambda side: exec_in(side, client, script, STEP, timeout=seconds + 60),
        how=how, namespace=DNS_NAMESPACE, pod=victim, machine=ctx.lab.machine(victim_node),
        process="coredns", seconds=seconds, break_after=break_after, step=STEP)
    samples = parse_loop(out.stdout if out else "")
    failures = sum(1 for _, ok in samples if not ok)
    return {"victim": victim, "victim_node": victim_node, "how": how, "broken_at": broken_at,
            "client": client["metadata"]["name"], "client_node": client["spec"]["nodeName"],
            "queries": len(samples), "failures": failures, "longest_gap_s": longest_gap(samples),
            "samples": samples}


def answers_while_a_coredns_pod_is_deleted(ctx: StepContext) -> dict:
    """The DNS service keeps answering while one of its pods is deleted (graceful: lameduck)."""
    __tracebackhide__ = True
    report = break_one_coredns_pod(ctx, "delete")
    assert report["queries"] >= 20, f"the query loop ran only {report['queries']} queries: {report}"
    assert report["failures"] == 0, \
        (f"{report['failures']} of {report['queries']} queries failed while {report['victim']} was deleted "
         f"(longest gap {report['longest_gap_s']} s)")
    return {k: v for k, v in report.items() if k != "samples"}
