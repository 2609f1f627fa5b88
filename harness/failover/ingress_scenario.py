"""`ingress-pod-killed`: the traefik of one node is killed (SIGKILL, as a crash would) while a
machine asks nginx.<ingress domain> by name, over HTTP and HTTPS, in a loop.

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
    """A refused connection costs one round trip, so at most the request in flight when traefik
    died is lost: two answered requests are at most two rounds of the loop apart."""
    from checks.ingress import LOOP_PAUSE_S

    seconds = 2 * LOOP_PAUSE_S
    return bounds.Bound(seconds, f"the request in flight at the kill lost, the next one answered by the next "
                                 f"address: 2 × the loop's pause {LOOP_PAUSE_S:g}s = {seconds:g}s "
                                 f"(the requests' own time is within the slack)")


def act(env) -> dict:
    from checks.ingress import break_one_traefik

    report = break_one_traefik(env.ctx, "sigkill")
    return {"client": report["client"], "victim_node": report["victim_node"],
            "ingress_requests": report["requests"], "ingress_failures": report["failures"],
            "longest_ingress_gap_s": report["longest_gap_s"],
            "victim_down_s": report["victim_down_s"], "victim_down_rounds": report["victim_down_rounds"],
            "answered_by_while_down": report["answered_by_while_down"],
            "victim_answered_while_down": report["victim_answered_while_down"]}


def restore(env) -> None:
    from harness.steps.actions import wait_until
    from harness.steps.ingress import _daemonset_ready

    wait_until(env.ctx, "restore", env.lab.masters[0], f"daemonset {NAMESPACE}/{APP} ready on every node",
               lambda: _daemonset_ready(env.ctx), timeout=120, interval=2)


def invariants(facts: dict, probe: dict) -> list[str]:
    problems = []
    if facts.get("ingress_requests", 0) < 40:
        problems.append(f"the request loop made only {facts.get('ingress_requests')} requests")
    if not facts.get("victim_down_rounds"):
        problems.append(f"{facts.get('victim_node')}'s traefik was never seen down: the scenario tested nothing")
    if facts.get("ingress_failures", 0) > 1:
        problems.append(f"{facts['ingress_failures']} requests by name failed: more than the one in flight "
                        "when traefik was killed")
    if facts.get("victim_answered_while_down"):
        problems.append("the killed node answered a request by name while it was seen down")
    return problems
