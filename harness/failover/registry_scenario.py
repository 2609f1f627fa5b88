"""`registry-node-lost`: the node the registry pod runs on is powered off; how long until an image
can be pulled from the registry again, from a node that stayed up.

What a trainee should see: nothing happens for the node-monitor grace period (the node's kubelet
simply stops reporting; the Service still sends requests to the dead pod, and they hang). Then
the node lifecycle controller marks the node NotReady and taints it
node.kubernetes.io/unreachable:NoExecute; the registry pod tolerates that taint for only
TOLERATION_S (Kubernetes' default is 300 s), is evicted, and its Deployment starts a new pod on
another node. That pod mounts the same directory (sshfs from the storage server, which did not
go down), so it serves the same blobs: the digest pushed before the break pulls again.
"""

from __future__ import annotations

from harness.failover import bounds
from harness.render import registry as reg
from harness.steps.actions import NotYet, kubectl, wait_deployment, wait_until

NAME = "registry-node-lost"
# kube-proxy's iptables --iptables-min-sync-period default (as in the CoreDNS scenario).
KUBE_PROXY_SYNC_S = 1.0
# The new pod's start, all local: scheduling, the sandbox, the htpasswd initContainer (bcrypt
# cost 10) and the registry's own start; the image is already in every node's containerd. The
# pod-moved check measures the whole of it (docs/registry.md) and stays well inside this.
POD_START_S = 10.0


def bound(env) -> bounds.Bound:
    """Grace period and monitor period to the taint, the pod's toleration, the new pod's start,
    its first readiness probe, and kube-proxy's rules."""
    parts = [(bounds.NODE_MONITOR_GRACE_S, "node-monitor-grace-period"),
             (bounds.NODE_MONITOR_PERIOD_S, "node-monitor-period"),
             (float(reg.TOLERATION_S), "the pod's tolerationSeconds for unreachable"),
             (POD_START_S, "the new pod's start (local image)"),
             (float(reg.READY_PERIOD_S), "a readiness period"),
             (KUBE_PROXY_SYNC_S, "kube-proxy sync")]
    seconds = sum(value for value, _ in parts)
    formula = " + ".join(f"{label} {value:g}s" for value, label in parts) + f" = {seconds:g}s"
    return bounds.Bound(seconds, formula)


def pick_victim(lab, registry_node: str) -> tuple[str, bool]:
    """(the node to power off, whether the registry pod must first move there). The victim is
    the pod's node when it is a worker only; a node that is also a master (master03 as node03)
    would take an etcd member and an apiserver down with it, so the pod is moved to a worker
    first and that worker is the victim."""
    machine = lab.machine(registry_node)
    if not machine.has("master") and not machine.has("etcd"):
        return machine.node_name, False
    workers = [m for m in lab.nodes if not m.has("master") and not m.has("etcd")]
    if len(workers) < 2:
        raise ValueError(f"{NAME} needs two worker-only nodes (one to lose, one to pull from)")
    return workers[-1].node_name, True


def _move_registry_to(env, target: str) -> None:
    """Cordon every other node, delete the pod, wait for it on `target`, uncordon."""
    from checks.registry import registry_pod

    others = [m.node_name for m in env.lab.nodes if m.node_name != target]
    for node in others:
        kubectl(env.ctx, "scenario", f"cordon {node}")
    try:
        pod = registry_pod(env.ctx, "scenario")
        if pod:
            kubectl(env.ctx, "scenario", f"-n {reg.NAMESPACE} delete pod {pod['metadata']['name']} --wait=false")

        def there():
            now = registry_pod(env.ctx, "scenario")
            if not now or now["spec"]["nodeName"] != target:
                raise NotYet(f"registry pod not Ready on {target} yet")
        wait_until(env.ctx, "scenario", env.lab.masters[0], f"the registry pod on {target}", there,
                   timeout=120, interval=1)
    finally:
        for node in others:
            kubectl(env.ctx, "scenario", f"uncordon {node}")


def act(env) -> dict:
    from checks.registry import build_and_push, manifest_served, pull_on_every_node, registry_pod, witness
    from harness.failover.observe import measure_until, node_ready

    ctx, lab = env.ctx, env.lab
    pod = registry_pod(ctx, "scenario")
    if not pod:
        raise RuntimeError("no Ready registry pod before the break")
    victim_name, move = pick_victim(lab, pod["spec"]["nodeName"])
    if move:
        _move_registry_to(env, victim_name)
    victim = lab.machine(victim_name)
    crane_on = witness(ctx, avoid=victim_name)
    image = build_and_push(ctx, crane_on)
    if not manifest_served(ctx, crane_on, image["ref"], "scenario"):
        raise RuntimeError(f"{image['ref']} is not served before the break")
    ctx.on(victim).close()
    env.provider.power_off(victim.name)
    limit = bound(env).allowed * 2
    pull_again = measure_until(lambda: manifest_served(ctx, crane_on, image["ref"], "scenario"), limit, 1.0)
    facts = {"powered_off": victim.name, "ref": image["ref"], "pull_works_again_s": pull_again,
             "node_not_ready": node_ready(ctx, victim_name)}
    after = registry_pod(ctx, "scenario")
    facts["registry_now_on"] = after["spec"]["nodeName"] if after else None
    if pull_again is not None:
        live = [m.node_name for m in lab.nodes if m.node_name != victim_name]
        pulled = pull_on_every_node(ctx, image, nodes=live)
        facts["pulled_by_digest_on"] = sorted(pulled)
    return facts


def restore(env) -> None:
    """Power back on every node that does not answer (the victim). Nothing more here: docker
    gives a restarted container a fresh /etc/hosts, so the node cannot reach MASTER_URL (and
    will not turn Ready) until the runner re-runs the steps, hosts first; the registry step then
    waits for the Deployment, and the core checks for every node Ready. Its sshfs unit mounts
    the storage again at boot."""
    for machine in [m for m in env.lab.nodes if _is_down(env, m)]:
        env.provider.power_on(machine.name)
        env.ctx.on(machine).close()


def _is_down(env, machine) -> bool:
    try:
        return env.ctx.on(machine).run("true", check=False, timeout=5).exit_status != 0
    except Exception:  # noqa: BLE001 - a powered-off machine refuses or times out
        return True


def invariants(facts: dict, probe: dict) -> list[str]:
    problems = []
    if facts.get("pull_works_again_s") is None:
        return ["the registry never served the pushed digest again"]
    if facts.get("registry_now_on") in (None, facts.get("powered_off")):
        problems.append(f"the registry pod is on {facts.get('registry_now_on')}, not on a node that is up")
    victim = facts.get("powered_off")
    pulled = facts.get("pulled_by_digest_on") or []
    if not pulled or victim in pulled:
        problems.append(f"the digest was not pulled again by pods on the nodes that stayed up ({pulled})")
    return problems
