"""The HA failure scenarios: what each one breaks, what it measures, how it puts things back.

Each `act` breaks one thing, measures what the trainee should look at (VRRP takeover, haproxy
marking a backend down, a Lease changing hands) and returns those figures; `restore` undoes it.
The runner (harness.failover.runner) wraps every scenario in the probe, restores the lab, re-runs
the steps and the core checks. Explanations live in docs/scenarios.md, one section per name.
"""

from __future__ import annotations

import json
import shlex
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable

from harness.failover import bounds
from harness.failover.observe import (haproxy_backend_status, lease_holder, measure_until, node_ready,
                                      vip_on)
from harness.steps.actions import NotYet, etcdctl, kubectl, run, unit_is_active, wait_until
from harness.steps.context import StepContext


@dataclass
class Env:
    ctx: StepContext
    provider: object  # harness.providers.vagrant.VagrantProvider

    @property
    def lab(self):
        return self.ctx.lab

    @property
    def vrrp_master(self):
        return max(self.lab.lbs, key=lambda m: self.lab.keepalived.priorities[m.name])

    @property
    def vrrp_backup(self):
        return next(m for m in sorted(self.lab.lbs, key=lambda m: -self.lab.keepalived.priorities[m.name])
                    if m is not self.vrrp_master)


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    bound: Callable[[Env], bounds.Bound]
    act: Callable[[Env], dict]
    restore: Callable[[Env], None]


def _sh(env: Env, machine, command: str, check: bool = True):
    return run(env.ctx, "scenario", machine, command, check=check, timeout=120)


# --- the VIP ---------------------------------------------------------------------------------------
def _takeover(env: Env, break_master: Callable[[], None], timeout: float = 40) -> dict:
    """Break the MASTER in a thread; poll both lb machines. `vrrp_takeover_s` runs from the
    moment the VIP left the MASTER (or the MASTER stopped answering) to the moment it is on the
    backup: the part VRRP's bound describes. `since_break_s` adds how long the break itself took
    to reach keepalived (a clean shutdown, for one, first stops other units)."""
    master, backup = env.vrrp_master, env.vrrp_backup
    started = time.monotonic()
    released: list[float] = []

    def watch_master() -> None:
        # Its own thread: a machine going down may stall an SSH call for seconds.
        while time.monotonic() - started < timeout:
            try:
                if vip_on(env.ctx, [master.name]) != [master.name]:
                    break
            except Exception:  # noqa: BLE001 - an unreachable MASTER has released it too
                break
            time.sleep(0.1)
        released.append(time.monotonic() - started)

    breaker = threading.Thread(target=break_master, daemon=True)
    watcher = threading.Thread(target=watch_master, daemon=True)
    watcher.start()
    breaker.start()
    taken = None
    while time.monotonic() - started < timeout and taken is None:
        try:
            if vip_on(env.ctx, [backup.name]) == [backup.name]:
                taken = time.monotonic() - started
        except Exception:  # noqa: BLE001 - keep polling until the deadline
            pass
        time.sleep(0.1)
    watcher.join(timeout=30)
    release_at = released[0] if released else 0.0
    breaker.join(timeout=120)
    return {"vrrp_takeover_s": round(max(taken - release_at, 0.0), 2) if taken else None,
            "since_break_s": round(taken, 2) if taken else None,
            "vip_holder": backup.name if taken else "none", "broken": master.name}


def _power_off(env: Env) -> dict:
    master = env.vrrp_master
    env.ctx.on(master).close()
    return _takeover(env, lambda: env.provider.halt(master.name))


def _hard_kill(env: Env) -> dict:
    """No shutdown at all: SIGKILL to the container's init (every process dies with its PID
    namespace), or a forced power-off of a VM. keepalived gets no chance to send priority 0."""
    master = env.vrrp_master
    env.ctx.on(master).close()
    if env.provider.name == "docker":
        from harness.providers.docker import container_name, run_docker
        return _takeover(env, lambda: run_docker(["kill", container_name(env.lab, master.name)]))
    return _takeover(env, lambda: env.provider.vagrant.halt(vm_name=master.name, force=True))


def _restore_power(env: Env) -> None:
    env.provider.up(env.vrrp_master.name)
    env.ctx.on(env.vrrp_master).close()


def _stop_haproxy(env: Env) -> dict:
    return _takeover(env, lambda: _sh(env, env.vrrp_master, "systemctl stop haproxy"))


def _start_haproxy(env: Env) -> None:
    _sh(env, env.vrrp_master, "systemctl start haproxy")


def _stop_keepalived(env: Env) -> dict:
    return _takeover(env, lambda: _sh(env, env.vrrp_master, "systemctl stop keepalived"))


def _start_keepalived(env: Env) -> None:
    _sh(env, env.vrrp_master, "systemctl start keepalived")


def _partition(env: Env) -> dict:
    """Drop all lab traffic between the MASTER and every other machine (the host still reaches
    it, so we can watch), and sample both lb machines for the VIP: never on two at once."""
    master, backup = env.vrrp_master, env.vrrp_backup
    others = [str(m.ip) for m in env.lab.machines if m is not master]
    rules = " && ".join(f"iptables -I INPUT -s {ip} -j DROP -m comment --comment k8s-ha-lab-partition && "
                        f"iptables -I OUTPUT -d {ip} -j DROP -m comment --comment k8s-ha-lab-partition"
                        for ip in others)
    _sh(env, master, rules)
    both, samples, end = 0, [], time.monotonic() + 20
    started = time.monotonic()
    while time.monotonic() < end:
        holders = vip_on(env.ctx, [master.name, backup.name])
        samples.append((round(time.monotonic() - started, 2), holders))
        both += len(holders) > 1
        time.sleep(0.2)
    moved = next((t for t, h in samples if h == [backup.name]), None)
    return {"samples": len(samples), "samples_with_vip_on_two_machines": both,
            "vip_on_backup_after_s": moved, "final_holders": samples[-1][1]}


def _heal_partition(env: Env) -> None:
    _sh(env, env.vrrp_master,
        "iptables-save | grep -- '--comment k8s-ha-lab-partition' | sed 's/^-A/-D/' | "
        "while read -r rule; do eval iptables $rule; done; true")


# --- the apiserver behind haproxy -------------------------------------------------------------------
def _kill_apiserver(env: Env) -> dict:
    master, lb = env.lab.masters[0], env.vrrp_master
    _sh(env, master, "systemctl kill --signal=SIGKILL kube-apiserver")
    down = measure_until(lambda: haproxy_backend_status(env.ctx, lb, master.name) == "DOWN", 30, 0.25)
    back = measure_until(lambda: haproxy_backend_status(env.ctx, lb, master.name) == "UP", 120, 0.5)
    return {"haproxy_marked_down_s": down, "haproxy_marked_up_again_s": back, "killed_on": master.name}


def _apiserver_back(env: Env) -> None:
    m = env.lab.masters[0]
    wait_until(env.ctx, "scenario", m, "kube-apiserver active again",
               lambda: unit_is_active(env.ctx, "scenario", m, "kube-apiserver"), timeout=120, unit="kube-apiserver")


# --- etcd -------------------------------------------------------------------------------------------
def _etcdctl(env: Env, machine, args: str, check: bool = True):
    return etcdctl(env.ctx, "scenario", machine, args, check=check)


def _etcd_leader(env: Env, ask, among=None):
    """The member that leads now, asked of a member that is up. Only the endpoints of `among`
    (default: all) are asked: a stopped one would cost a dial timeout on every poll."""
    members = among or env.lab.etcd_members
    endpoints = ",".join(f"https://{m.ip}:2379" for m in members)
    out = _etcdctl(env, ask, f"endpoint status -w json --endpoints={endpoints} --command-timeout=2s",
                   check=False).stdout
    for status in json.loads(out or "[]"):
        if status["Status"]["leader"] == status["Status"]["header"]["member_id"]:
            return next(m for m in env.lab.etcd_members if f"//{m.ip}:" in status["Endpoint"])
    return None


def _stop_etcd(env: Env, count: int) -> dict:
    """Stop the leader first (so one member down also shows an election), then others."""
    members = env.lab.etcd_members
    leader = _etcd_leader(env, members[0]) or members[0]
    victims = [leader] + [m for m in members if m is not leader][: count - 1]
    survivors = [m for m in members if m not in victims]
    started = time.monotonic()
    for m in victims:
        _sh(env, m, "systemctl stop etcd")
    stop_took = round(time.monotonic() - started, 2)
    elected = None
    if len(survivors) * 2 > len(members):   # a quorum is left: time the new leader
        elected = measure_until(lambda: _etcd_leader(env, survivors[0], survivors) not in (None, leader), 30, 0.1)
    time.sleep(bounds.QUORUM_OUTAGE_S)  # let the probe see writes go on (or fail, without quorum)
    health = _etcdctl(env, survivors[0], "endpoint health", check=False)
    return {"stopped": [m.name for m in victims], "old_leader": leader.name,
            "systemctl_stop_took_s": stop_took, "new_leader_elected_after_s": elected,
            "survivor_health": [line for line in (health.stdout + health.stderr).splitlines()
                                if "healthy" in line][:1],
            "stopped_for_s": round(time.monotonic() - started, 1)}


def _start_etcd(env: Env) -> None:
    for m in env.lab.etcd_members:
        _sh(env, m, "systemctl start --no-block etcd")
    first = env.lab.etcd_members[0]

    def caught_up():
        out = _etcdctl(env, first, f"endpoint status -w json --endpoints={env.lab.etcd_endpoints}").stdout
        revisions = {s["Status"]["header"]["revision"] for s in json.loads(out)}
        if len(revisions) != 1:
            raise NotYet(f"members at revisions {sorted(revisions)}")
    wait_until(env.ctx, "scenario", first, "every etcd member at the same revision", caught_up,
               timeout=120, unit="etcd")


# --- leader election ----------------------------------------------------------------------------------
def _kill_leader(env: Env, component: str) -> dict:
    via = env.lab.masters[0]
    holder, transitions = lease_holder(env.ctx, component, via)
    leader = next(m for m in env.lab.masters if holder.startswith(m.name))
    seen, started = [holder], time.monotonic()
    _sh(env, leader, f"systemctl kill --signal=SIGKILL {component}")
    handoff = None
    while time.monotonic() - started < 60:
        try:
            current, count = lease_holder(env.ctx, component, via)
        except Exception:  # noqa: BLE001 - the API may blink; keep sampling
            time.sleep(0.5)
            continue
        if current != seen[-1]:
            seen.append(current)
        if current and current != holder and handoff is None:
            handoff = round(time.monotonic() - started, 2)
            break
        time.sleep(0.5)
    scheduled = _schedule_a_pod(env)
    return {"old_leader": holder, "new_leader": seen[-1], "handoff_s": handoff,
            "holders_seen": seen, "lease_transitions": [transitions, lease_holder(env.ctx, component, via)[1]],
            "new_pod_scheduled_s": scheduled}


def _schedule_a_pod(env: Env) -> float | None:
    """A new pod still gets a node: the scheduler (whoever leads) is working."""
    name = f"probe-pod-{uuid.uuid4().hex[:6]}"
    image = env.lab.versions.nginx.image_ref
    manifest = ('{"apiVersion":"v1","kind":"Pod","metadata":{"name":"%s"},"spec":{"containers":'
                '[{"name":"nginx","image":"%s","imagePullPolicy":"Never"}]}}') % (name, image)
    kubectl(env.ctx, "scenario", f"apply -f - <<'EOF'\n{manifest}\nEOF")
    try:
        return measure_until(lambda: kubectl(env.ctx, "scenario", f"get pod {name} -o jsonpath={{.spec.nodeName}}")
                             .stdout.strip() != "", 90, 1)
    finally:
        kubectl(env.ctx, "scenario", f"delete pod {shlex.quote(name)} --wait=false", check=False)


def _leaders_back(env: Env) -> None:
    for m in env.lab.masters:
        for unit in ("kube-controller-manager", "kube-scheduler"):
            wait_until(env.ctx, "scenario", m, f"{unit} active", lambda m=m, unit=unit:
                       unit_is_active(env.ctx, "scenario", m, unit), timeout=60, unit=unit)


# --- a worker ------------------------------------------------------------------------------------------
def _power_off_node(env: Env) -> dict:
    victim, witness = env.lab.nodes[-1], env.lab.nodes[0]
    env.ctx.on(victim).close()
    env.provider.halt(victim.name)
    not_ready = measure_until(lambda: node_ready(env.ctx, victim.node_name) != "True", 120, 2)
    cluster_ip = kubectl(env.ctx, "scenario", "get svc nginx-ds -o jsonpath={.spec.clusterIP}").stdout.strip()
    answers = [("Welcome to nginx!" in _sh(env, witness, f"curl -s -m 3 http://{cluster_ip}/", check=False).stdout)
               for _ in range(20)]
    return {"powered_off": victim.name, "not_ready_after_s": not_ready,
            "cluster_ip_answers": f"{sum(answers)}/{len(answers)} from {witness.name}"}


def _restore_node(env: Env) -> None:
    victim = env.lab.nodes[-1]
    env.provider.up(victim.name)
    env.ctx.on(victim).close()


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("master-poweroff", "master01 powered off (vagrant halt)",
             lambda e: bounds.vrrp_priority_zero(e.lab), _power_off, _restore_power),
    Scenario("master-hard-kill", "master01 killed without a shutdown (docker kill / forced power-off)",
             lambda e: bounds.vrrp_master_down(e.lab), _hard_kill, _restore_power),
    Scenario("haproxy-dies", "haproxy dies on master01",
             lambda e: bounds.vrrp_track_script(e.lab), _stop_haproxy, _start_haproxy),
    Scenario("keepalived-stop", "keepalived stopped gracefully on master01",
             lambda e: bounds.vrrp_priority_zero(e.lab), _stop_keepalived, _start_keepalived),
    Scenario("apiserver-kill", "one kube-apiserver killed",
             lambda e: bounds.haproxy_backend_down(e.lab), _kill_apiserver, _apiserver_back),
    Scenario("etcd-one-down", "one etcd member stopped",
             lambda e: bounds.etcd_election(), lambda e: _stop_etcd(e, 1), _start_etcd),
    Scenario("etcd-quorum-lost", "two etcd members stopped (quorum lost)",
             lambda e: bounds.quorum_lost(), lambda e: _stop_etcd(e, 2), _start_etcd),
    Scenario("controller-manager-leader-kill", "controller-manager leader killed",
             lambda e: bounds.leader_handoff(), lambda e: _kill_leader(e, "kube-controller-manager"),
             _leaders_back),
    Scenario("scheduler-leader-kill", "scheduler leader killed",
             lambda e: bounds.leader_handoff(), lambda e: _kill_leader(e, "kube-scheduler"), _leaders_back),
    Scenario("node-poweroff", "node02 powered off",
             lambda e: bounds.node_not_ready(), _power_off_node, _restore_node),
    Scenario("master-partition", "master01 cut off the lab network",
             lambda e: bounds.vrrp_master_down(e.lab), _partition, _heal_partition),
)}
