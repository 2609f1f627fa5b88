"""`ingress-pod-killed`: the traefik of one node is killed (SIGKILL, as a crash would) while a
machine asks nginx.<ingress domain> by name, over HTTP and HTTPS, in a loop.

Governed figure: `failover_gap_s`, the longest gap between answered requests through the victim's
outage. Reported apart: the restarted traefik's first moments, when it listens but answers its
own 404 until its Kubernetes provider has loaded the routes (upstream issue #10458).

What a trainee should see: nothing fails over in the cluster at all. The name has one hosts line
per node; the client's first address is the dead node, where the kernel now refuses the
connection (no process holds the port), and curl moves to the next address at once. Only a
request in flight at the very moment of the kill can be lost. Meanwhile the kubelet restarts the
container and that node answers again.
"""

from __future__ import annotations

from harness.failover import bounds
from harness.render.ingress import APP, NAMESPACE

NAME = "ingress-pod-killed"


def bound(env) -> bounds.Bound:
    """A refused address costs curl its happy-eyeballs delay before it tries the next, once per
    request by name in a round; at most the request in flight when traefik died is lost. So two
    answered requests are at most the round before the kill and one round of the outage apart."""
    from checks.ingress import CURL_NEXT_ADDRESS_S, LOOP_PAUSE_S
    from harness.steps.ingress import urls

    per_round = len(urls(env.lab))
    seconds = round(2 * LOOP_PAUSE_S + per_round * CURL_NEXT_ADDRESS_S, 3)
    return bounds.Bound(seconds, f"the request in flight at the kill lost; each of the {per_round} requests of the "
                                 f"next round waits curl's {CURL_NEXT_ADDRESS_S:g}s happy-eyeballs delay before "
                                 f"the next address: 2 × the loop's pause {LOOP_PAUSE_S:g}s + {per_round} × "
                                 f"{CURL_NEXT_ADDRESS_S:g}s = {seconds:g}s")


def act(env) -> dict:
    from checks.ingress import break_one_traefik

    report = break_one_traefik(env.ctx, "sigkill")
    keys = ("client", "victim_node", "requests", "failures", "failures_while_down",
            "failures_from_restarted_victim", "other_failures", "failover_gap_s", "longest_gap_s",
            "victim_down_s", "victim_down_rounds", "victim_restart_unrouted_s", "answered_by_while_down",
            "victim_answered_while_down")
    return {f"ingress_{k}" if k in ("requests", "failures", "longest_gap_s") else k: report.get(k) for k in keys}


def restore(env) -> None:
    from harness.steps.actions import wait_until
    from harness.steps.ingress import _daemonset_ready

    wait_until(env.ctx, "restore", env.lab.masters[0], f"daemonset {NAMESPACE}/{APP} ready on every node",
               lambda: _daemonset_ready(env.ctx), timeout=120, interval=2)


def invariants(facts: dict, probe: dict) -> list[str]:
    from checks.ingress import IN_FLIGHT_ALLOWANCE, RESTART_ROUTES_MAX_S

    problems = []
    if (facts.get("ingress_requests") or 0) < 40:
        problems.append(f"the request loop made only {facts.get('ingress_requests')} requests")
    if not facts.get("victim_down_rounds"):
        problems.append(f"{facts.get('victim_node')}'s traefik was never seen down: the scenario tested nothing")
    if (facts.get("failures_while_down") or 0) > IN_FLIGHT_ALLOWANCE:
        problems.append(f"{facts['failures_while_down']} requests by name failed while the victim was down: "
                        "more than the one in flight when traefik was killed")
    if facts.get("other_failures"):
        problems.append(f"{facts['other_failures']} requests by name failed outside the victim's outage and restart")
    if facts.get("victim_answered_while_down"):
        problems.append("the killed node answered a request by name while it was seen down")
    restart = facts.get("victim_restart_unrouted_s")
    if restart is None or restart > RESTART_ROUTES_MAX_S:
        problems.append(f"the restarted traefik did not serve nginx within {RESTART_ROUTES_MAX_S:g} s "
                        f"of listening again ({restart})")
    return problems
