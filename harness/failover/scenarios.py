"""The HA failure scenarios: what each one breaks, what it measures, how it puts things back.

Each `act` breaks one thing, measures what the trainee should look at (VRRP takeover, haproxy
marking a backend down, a Lease changing hands) and returns those figures; `restore` undoes it.
`measure` names the one figure the scenario's bound governs, `invariants` what else must hold.
The runner (harness.failover.runner) wraps every scenario in the probe, restores the lab, re-runs
the steps and the core checks, and judges the result. Explanations live in docs/scenarios.md,
one section per name. Scenarios with a `drill` can also be broken and left broken for a trainee
(`python -m harness scenario break|verify|restore NAME`, harness.failover.drills).

Adding a scenario: write `act(env) -> dict` (break, then measure; figures in seconds), a
`restore(env)`, pick or add a bound in bounds.py, and append a `Scenario(...)` to SCENARIOS with
`measure=` the key of the governed figure (a key of the facts or of the probe summary) and,
if it has more to assert, `invariants=` a function (facts, probe) -> list of problems. For a
drill, add `Drill(breaks, observe, fixed)` to DRILLS under the same name. Add its section
`## `NAME`` to docs/scenarios.md (a unit test insists).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

from harness.failover import bounds, dns_scenario, etcd_restore_drill, etcd_restore_scenario, registry_scenario
from harness.failover import ingress_scenario
from harness.failover.observe import (haproxy_backend_status, lease_holder, measure_until, node_ready,
                                      vip_on)
from harness.steps.actions import NotYet, etcdctl, kubectl, run, unit_is_active, wait_until
from harness.providers.base import FORCED_POWER_OFF, POWER_OFF, POWER_ON, Provider, require_capability
from harness.steps.context import StepContext


@dataclass
class Env:
    ctx: StepContext
    provider: Provider  # power_off (graceful, forced) and power_on: harness/providers/base.py

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


def _no_invariants(facts: dict, probe: dict) -> list[str]:
    return []


@dataclass(frozen=True)
class Drill:
    """A scenario a trainee breaks and fixes: `breaks` leaves the lab broken (no measuring),
    `observe` says what to look at and where (never the answer), `fixed` lists what is still
    wrong with the scenario's own part of the lab (empty: fixed), `restore` repairs it (default:
    the scenario's own restore)."""
    breaks: Callable[[Env], None]
    observe: str
    fixed: Callable[[Env], list[str]]
    restore: Callable[[Env], None] | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    bound: Callable[[Env], bounds.Bound]
    act: Callable[[Env], dict]
    restore: Callable[[Env], None]
    measure: str = ""             # the figure the bound governs: a key of facts or probe summary
    invariants: Callable[[dict, dict], list[str]] = field(default=_no_invariants)
    drill: Drill | None = None
    needs: tuple[str, ...] = ()   # the provider's power capabilities it uses (harness.providers.base)
    addon: str = ""               # the add-on it breaks: `scenario run --converge core` re-checks it too


def require_power(env: Env, scenario: Scenario) -> None:
    """Before anything is broken: one line, exit 2, when the provider cannot switch machines
    off or on the way this scenario does (the ssh provider's existing machines)."""
    for capability in scenario.needs:
        require_capability(env.provider, capability, f"scenario {scenario.name}")


def _sh(env: Env, machine, command: str, check: bool = True):
    return run(env.ctx, "scenario", machine, command, check=check, timeout=120)


# --- the VIP ---------------------------------------------------------------------------------------
def _takeover(env: Env, break_master: Callable[[], None], timeout: float = 40) -> dict:
    """Break the MASTER in a thread while both lb machines are sampled, each sample kept as
    (start, end, held) in seconds since the break (held None: the machine did not answer).
    The figures come from `takeover_facts`; for a graceful stop (priority 0) `skew_wait_s` is
    read from the backup's own keepalived journal, one clock, no polling."""
    master, backup = env.vrrp_master, env.vrrp_backup
    since = _machine_clock(env, backup)
    started = time.monotonic()
    master_obs: list[tuple[float, float, bool | None]] = []
    backup_obs: list[tuple[float, float, bool | None]] = []

    def sample(machine, into: list, done: Callable[[bool | None], bool]) -> None:
        while time.monotonic() - started < timeout:
            t0 = time.monotonic() - started
            try:
                held: bool | None = vip_on(env.ctx, [machine.name]) == [machine.name]
            except Exception:  # noqa: BLE001 - a machine going down may not answer
                held = None
            into.append((round(t0, 3), round(time.monotonic() - started, 3), held))
            if done(held):
                return
            time.sleep(0.1)

    # Its own thread: a machine going down may stall an SSH call for seconds. It samples until
    # the MASTER no longer holds the VIP, so a MASTER that keeps it shows up as split-brain.
    watcher = threading.Thread(target=sample, args=(master, master_obs, lambda held: held is not True),
                               daemon=True)
    breaker = threading.Thread(target=break_master, daemon=True)
    watcher.start()
    breaker.start()
    sample(backup, backup_obs, lambda held: held is True)
    watcher.join(timeout=timeout)
    breaker.join(timeout=120)
    facts = takeover_facts(master_obs, backup_obs)
    facts["skew_wait_s"] = skew_wait(_journal_since(env, backup, "keepalived", since))
    return {**facts, "vip_holder": backup.name if facts["since_break_s"] is not None else "none",
            "broken": master.name}


def takeover_facts(master_obs: list, backup_obs: list) -> dict:
    """`vrrp_takeover_s`: from the start of the last sample that saw the VIP on the MASTER to the
    end of the first that saw it on the backup. Never clamped: negative means the backup held the
    VIP while the MASTER still did, which is split-brain. (It overstates the true takeover by
    at most one sample on each side, so a negative value is never a sampling artefact.)
    `since_break_s`: from the break to the end of the first sample that saw it on the backup."""
    taken = next((obs for obs in backup_obs if obs[2] is True), None)
    held = [obs for obs in master_obs if obs[2] is True]
    last_held = max(held, key=lambda obs: obs[0]) if held else None
    takeover = None
    if taken is not None:
        takeover = round(taken[1] - (last_held[0] if last_held else 0.0), 2)
    return {"vrrp_takeover_s": takeover,
            "since_break_s": round(taken[1], 2) if taken else None,
            "master_samples": len(master_obs), "backup_samples": len(backup_obs)}


def skew_wait(journal: str) -> float | None:
    """Seconds from the backup's `Backup received priority 0 advertisement` to its next
    `Entering MASTER STATE`, from `journalctl -o short-unix` lines: what the skew bound governs."""
    received = None
    for line in journal.splitlines():
        stamp = line.split(" ", 1)[0]
        try:
            at = float(stamp)
        except ValueError:
            continue
        if received is None and "received priority 0 advertisement" in line:
            received = at
        elif received is not None and "Entering MASTER STATE" in line:
            return round(at - received, 3)
    return None


def _machine_clock(env: Env, machine) -> float | None:
    try:
        return float(_sh(env, machine, "date +%s.%N").stdout.strip())
    except Exception:  # noqa: BLE001 - without it the journal figure is simply not measured
        return None


def _journal_since(env: Env, machine, unit: str, since: float | None) -> str:
    if since is None:
        return ""
    try:
        return _sh(env, machine, f"journalctl -u {unit} --since=@{int(since) - 1} -o short-unix --no-pager",
                   check=False).stdout
    except Exception:  # noqa: BLE001
        return ""


def _power_off(env: Env) -> dict:
    master = env.vrrp_master
    env.ctx.on(master).close()
    return _takeover(env, lambda: env.provider.power_off(master.name))


def _hard_kill(env: Env) -> dict:
    """No shutdown at all: SIGKILL to the container's init (every process dies with its PID
    namespace), or a forced power-off of a VM. keepalived gets no chance to send priority 0."""
    master = env.vrrp_master
    env.ctx.on(master).close()
    return _takeover(env, lambda: env.provider.power_off(master.name, force=True))


def _restore_power(env: Env) -> None:
    env.provider.power_on(env.vrrp_master.name)
    env.ctx.on(env.vrrp_master).close()


def _connected(env: Env, machine) -> None:
    """Open the machine's SSH connection before the break, not inside the measurement: logging
    in (and a sudo login's check, on existing machines) takes longer than the bound itself."""
    _sh(env, machine, "true")


def _stop_haproxy(env: Env) -> dict:
    _connected(env, env.vrrp_master)
    return _takeover(env, lambda: _sh(env, env.vrrp_master, "systemctl stop haproxy"))


def _start_haproxy(env: Env) -> None:
    _sh(env, env.vrrp_master, "systemctl start haproxy")


def _stop_keepalived(env: Env) -> dict:
    _connected(env, env.vrrp_master)
    return _takeover(env, lambda: _sh(env, env.vrrp_master, "systemctl stop keepalived"))


def _start_keepalived(env: Env) -> None:
    _sh(env, env.vrrp_master, "systemctl start keepalived")


def _partition(env: Env) -> dict:
    """Drop all lab traffic between the MASTER and every other machine (the host still reaches
    it, so we can watch), and sample both lb machines for the VIP: never on two at once."""
    master, backup = env.vrrp_master, env.vrrp_backup
    _partition_only(env)
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


def _partition_only(env: Env) -> None:
    others = [str(m.ip) for m in env.lab.machines if m is not env.vrrp_master]
    _sh(env, env.vrrp_master, " && ".join(
        f"iptables -I INPUT -s {ip} -j DROP -m comment --comment k8s-ha-lab-partition && "
        f"iptables -I OUTPUT -d {ip} -j DROP -m comment --comment k8s-ha-lab-partition" for ip in others))


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
        # a member still starting answers nothing yet (on a loaded host for seconds): not yet, not an error
        status = _etcdctl(env, first, f"endpoint status -w json --endpoints={env.lab.etcd_endpoints} "
                                      "--command-timeout=2s", check=False)
        if status.exit_status != 0:
            raise NotYet(f"not every member answers yet: {(status.stderr or status.stdout).strip()[-200:]}")
        out = status.stdout
        revisions = {s["Status"]["header"]["revision"] for s in json.loads(out)}
        if len(revisions) != 1:
            raise NotYet(f"members at revisions {sorted(revisions)}")
    wait_until(env.ctx, "scenario", first, "every etcd member at the same revision", caught_up,
               timeout=120, unit="etcd")


ETCD_UNIT = "/etc/systemd/system/etcd.service"


def _members(env: Env, ask) -> list[dict]:
    return json.loads(_etcdctl(env, ask, "member list -w json").stdout).get("members", [])


def _revision(env: Env, ask, member) -> int:
    out = _etcdctl(env, ask, f"endpoint status -w json --endpoints=https://{member.ip}:2379 "
                   "--command-timeout=2s").stdout
    return int(json.loads(out)[0]["Status"]["header"]["revision"])


def _rejoin_empty(env: Env, victim, survivor) -> str:
    """Remove the member, wipe its data, add it back, start it as a member of an existing
    cluster; returns its new member ID (hex)."""
    name, peer = env.lab.etcd_name(victim), f"https://{victim.ip}:2380"
    _sh(env, victim, "systemctl stop etcd && rm -rf /var/lib/etcd/member")
    for member in _members(env, survivor):
        if member.get("name") == name or peer in member.get("peerURLs", []):
            _etcdctl(env, survivor, f"member remove {member['ID']:x}")
    _etcdctl(env, survivor, f"member add {name} --peer-urls={peer}")
    # The rendered unit says --initial-cluster-state=new; a joining member needs `existing`. The
    # steps re-run after the scenario put the rendered unit back (the data dir then decides).
    _sh(env, victim, f"sed -i 's/--initial-cluster-state=new/--initial-cluster-state=existing/' {ETCD_UNIT} "
        "&& systemctl daemon-reload")
    _sh(env, victim, "systemctl start etcd")
    return next(f"{m['ID']:x}" for m in _members(env, survivor) if m.get("name") == name)


def _replace_member(env: Env) -> dict:
    """One member's data directory is lost: remove it from the cluster, add it back empty, and
    time how long after it is ready it has caught up with the leader's revision."""
    members = env.lab.etcd_members
    leader = _etcd_leader(env, members[0]) or members[0]
    victim = next(m for m in reversed(members) if m is not leader)
    survivor = leader
    old_id = next(f"{m['ID']:x}" for m in _members(env, survivor) if m.get("name") == env.lab.etcd_name(victim))
    started = time.monotonic()
    new_id = _rejoin_empty(env, victim, survivor)
    ready_after = round(time.monotonic() - started, 2)
    target = _revision(env, survivor, leader)
    caught_up = measure_until(lambda: _revision(env, survivor, victim) >= target, 60, 0.1)
    started_members = [m.get("name") for m in _members(env, survivor) if m.get("clientURLs")]
    return {"replaced": victim.name, "old_member_id": old_id, "new_member_id": new_id,
            "ready_after_s": ready_after, "leader_revision_at_ready": target,
            "caught_up_after_s": caught_up, "started_members": sorted(started_members)}


def _member_back(env: Env) -> None:
    """If the scenario stopped half-way, finish the replacement of whichever member is not a
    healthy, started member; then wait until all are at one revision."""
    members = env.lab.etcd_members
    healthy_out = _etcdctl(env, members[0], f"endpoint health --endpoints={env.lab.etcd_endpoints}", check=False)
    text = healthy_out.stdout + healthy_out.stderr
    up = [m for m in members if f"https://{m.ip}:2379 is healthy" in text]
    survivor = up[0] if up else members[0]
    listed = [m.get("name") for m in _members(env, survivor) if m.get("clientURLs")]
    for m in members:
        if m not in up or env.lab.etcd_name(m) not in listed:
            _rejoin_empty(env, m, survivor)
    _start_etcd(env)


def _member_replaced(facts: dict, probe: dict) -> list[str]:
    problems = []
    if facts.get("new_member_id") == facts.get("old_member_id"):
        problems.append(f"the member kept its ID {facts.get('old_member_id')}: it was not replaced")
    if len(facts.get("started_members", [])) != 3:
        problems.append(f"started members after the replacement: {facts.get('started_members')}")
    return problems


# --- leader election ----------------------------------------------------------------------------------
def _kill_leader(env: Env, component: str) -> dict:
    """SIGKILL the Lease holder, then sample the Lease every half second for the whole bound
    (with its slack), and at least a few seconds past the handoff, recording every holder: one
    change of holder is a handoff, more is flapping. `lease_longest_unsampled_s` is the longest
    time without an answered sample (the API may blink): a holder that did not release keeps the
    Lease for at least a lease duration, so shorter gaps cannot hide one."""
    via = env.lab.masters[0]
    holder, transitions = lease_holder(env.ctx, component, via)
    leader = next(m for m in env.lab.masters if holder.startswith(m.name))
    window = max(bounds.leader_handoff().allowed, 1.0)
    seen, started = [holder], time.monotonic()
    _sh(env, leader, f"systemctl kill --signal=SIGKILL {component}")
    handoff, samples, failed_samples = None, 0, 0
    last_answer, longest_unsampled = started, 0.0
    while True:
        elapsed = time.monotonic() - started
        if elapsed > window and (handoff is None or elapsed > handoff + 5) or elapsed > window + 30:
            break
        try:
            current, _ = lease_holder(env.ctx, component, via)
        except Exception:  # noqa: BLE001 - the API may blink; keep sampling
            failed_samples += 1
            time.sleep(0.5)
            continue
        answered = time.monotonic()
        longest_unsampled, last_answer = max(longest_unsampled, answered - last_answer), answered
        samples += 1
        if current != seen[-1]:
            seen.append(current)
            if handoff is None and current:
                handoff = round(answered - started, 2)
        time.sleep(0.5)
    ended = time.monotonic()
    sampled_for = round(ended - started, 1)
    longest_unsampled = max(longest_unsampled, ended - last_answer)
    scheduled = _schedule_a_pod(env)
    return {"old_leader": holder, "new_leader": seen[-1], "handoff_s": handoff,
            "holders_seen": seen, "lease_transitions": [transitions, lease_holder(env.ctx, component, via)[1]],
            "lease_sampled_for_s": sampled_for, "lease_samples": samples,
            "lease_samples_failed": failed_samples, "lease_longest_unsampled_s": round(longest_unsampled, 2),
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
    env.provider.power_off(victim.name)
    not_ready = measure_until(lambda: node_ready(env.ctx, victim.node_name) != "True", 120, 2)
    cluster_ip = kubectl(env.ctx, "scenario", "get svc nginx-ds -o jsonpath={.spec.clusterIP}").stdout.strip()
    answers = [("Welcome to nginx!" in _sh(env, witness, f"curl -s -m 3 http://{cluster_ip}/", check=False).stdout)
               for _ in range(20)]
    return {"powered_off": victim.name, "not_ready_after_s": not_ready,
            "cluster_ip_answers": f"{sum(answers)}/{len(answers)} from {witness.name}"}


def _restore_node(env: Env) -> None:
    victim = env.lab.nodes[-1]
    env.provider.power_on(victim.name)
    env.ctx.on(victim).close()


# --- what must hold besides the bound -------------------------------------------------------------
def _vip_moved(facts: dict, probe: dict) -> list[str]:
    takeover = facts.get("vrrp_takeover_s")
    if takeover is None:
        return ["the VIP never reached the backup"]
    if takeover < 0:
        return [f"split-brain: the backup held the VIP {-takeover:g} s before the MASTER let it go "
                f"(vrrp_takeover_s {takeover:g})"]
    return []


def _no_split_vip(facts: dict, probe: dict) -> list[str]:
    problems = []
    if facts.get("samples", 0) <= 20:
        problems.append(f"only {facts.get('samples', 0)} samples of the VIP: too few to tell")
    if facts.get("samples_with_vip_on_two_machines", 0) != 0:
        problems.append(f"split-brain: {facts['samples_with_vip_on_two_machines']} samples saw the VIP "
                        "on two machines at once")
    return problems


def _haproxy_back(facts: dict, probe: dict) -> list[str]:
    return [] if facts.get("haproxy_marked_up_again_s") is not None else \
        ["haproxy never marked the restarted apiserver UP again"]


def _writes_went_on(facts: dict, probe: dict) -> list[str]:
    acknowledged = probe.get("acknowledged_writes", 0)
    return [] if acknowledged >= 10 else \
        [f"only {acknowledged} writes acknowledged: with a quorum left, writes must go on"]


def _writes_failed(facts: dict, probe: dict) -> list[str]:
    return [] if probe.get("failed_requests", 0) > 0 else \
        ["no request failed: the quorum was not lost"]


def _one_clean_handoff(facts: dict, probe: dict) -> list[str]:
    problems, seen = [], facts.get("holders_seen", [])
    if not all(seen):
        problems.append(f"the Lease had no holder at some point: {seen}")
    if len(seen) > 2:
        problems.append(f"leader flapping: the Lease changed holder {len(seen) - 1} times: {seen}")
    elif len(seen) < 2:
        problems.append(f"the Lease never changed holder: {seen}")
    before, after = (facts.get("lease_transitions") or [0, 0])[:2]
    if after - before != 1:
        problems.append(f"leaseTransitions went from {before} to {after}, not by exactly one")
    window = bounds.leader_handoff().allowed
    if facts.get("lease_sampled_for_s", 0) < window:
        problems.append(f"the Lease was sampled for {facts.get('lease_sampled_for_s', 0):g} s, "
                        f"less than the bound's {window:g} s: flapping could have gone unseen")
    unsampled = facts.get("lease_longest_unsampled_s")
    if unsampled is None or unsampled >= bounds.LEADER_LEASE_DURATION_S:
        problems.append(f"the Lease went {unsampled} s without an answered sample, not less than a lease "
                        f"duration ({bounds.LEADER_LEASE_DURATION_S:g} s): a holder could have come and gone unseen")
    if facts.get("new_pod_scheduled_s") is None:
        problems.append("a new pod was never scheduled: the new leader does not work")
    return problems


def _service_answered(facts: dict, probe: dict) -> list[str]:
    answered = int(str(facts.get("cluster_ip_answers", "0/0")).split("/")[0])
    return [] if answered > 0 else [f"the Service never answered: {facts.get('cluster_ip_answers')}"]


# --- drills: left broken for a trainee ----------------------------------------------------------------
def _units_active(env: Env, machine, units: list[str]) -> list[str]:
    problems = []
    for unit in units:
        state = _sh(env, machine, f"systemctl is-active {unit}", check=False).stdout.strip()
        if state != "active":
            problems.append(f"{unit} on {machine.name} is {state or 'unknown'}")
    return problems


def _vip_home(env: Env) -> list[str]:
    holders = vip_on(env.ctx, [m.name for m in env.lab.lbs])
    want = [env.vrrp_master.name]
    return [] if holders == want else [f"the VIP is on {holders or 'no machine'}, expected {want}"]


def _etcd_whole(env: Env) -> list[str]:
    first = env.lab.etcd_members[0]
    out = _etcdctl(env, first, f"endpoint health --endpoints={env.lab.etcd_endpoints}", check=False)
    text = out.stdout + out.stderr
    return [f"etcd {m.name} is not healthy" for m in env.lab.etcd_members
            if f"https://{m.ip}:2379 is healthy" not in text]


def _partition_rules(env: Env) -> list[str]:
    out = _sh(env, env.vrrp_master, "iptables-save", check=False).stdout
    count = out.count("k8s-ha-lab-partition")
    return [f"{count} partition rules left on {env.vrrp_master.name}"] if count else []


def _node_is_ready(env: Env) -> list[str]:
    victim = env.lab.nodes[-1]
    try:
        ready = node_ready(env.ctx, victim.node_name)
    except Exception as exc:  # noqa: BLE001
        return [f"could not read node {victim.node_name}: {exc}"]
    return [] if ready == "True" else [f"node {victim.node_name} Ready={ready}"]


def _halt(env: Env, machine) -> None:
    env.ctx.on(machine).close()
    env.provider.power_off(machine.name)


def _leader_stop(component: str) -> Callable[[Env], None]:
    def breaks(env: Env) -> None:
        holder, _ = lease_holder(env.ctx, component, env.lab.masters[0])
        leader = next(m for m in env.lab.masters if holder.startswith(m.name))
        _sh(env, leader, f"systemctl stop {component}")
    return breaks


def _start_everywhere(unit: str) -> Callable[[Env], None]:
    def restore(env: Env) -> None:
        for m in env.lab.masters:
            _sh(env, m, f"systemctl start {unit}")
    return restore


LOOK_VIP = ("Look at which machine carries the VIP (`ip -4 addr` on the lb machines) and at "
            "`journalctl -u keepalived` on both of them.")

DRILLS = {
    "master-poweroff": Drill(
        lambda e: _halt(e, e.vrrp_master),
        "kubectl through MASTER_URL still answers, but one machine is gone. " + LOOK_VIP +
        " `vagrant status` (in the lab's state folder) tells which machines run.",
        lambda e: _vip_home(e)),
    "haproxy-dies": Drill(
        lambda e: _sh(e, e.vrrp_master, "systemctl stop haproxy"),
        "kubectl still answers, yet the VIP has moved. " + LOOK_VIP +
        " Then look at what keepalived's track scripts check, and at the units on the machine it left.",
        lambda e: _units_active(e, e.vrrp_master, ["haproxy", "keepalived"]) + _vip_home(e)),
    "keepalived-stop": Drill(
        lambda e: _sh(e, e.vrrp_master, "systemctl stop keepalived"),
        "kubectl still answers, but the VIP is not where the priorities say it belongs. " + LOOK_VIP,
        lambda e: _units_active(e, e.vrrp_master, ["keepalived"]) + _vip_home(e)),
    "apiserver-kill": Drill(
        lambda e: _sh(e, e.lab.masters[0], "systemctl stop kube-apiserver"),
        "Some kubectl calls through MASTER_URL fail at first, then all succeed. Look at haproxy's "
        "stats page on the lb machines and at `systemctl status` of the control plane on each master.",
        lambda e: _units_active(e, e.lab.masters[0], ["kube-apiserver"]),
        lambda e: _sh(e, e.lab.masters[0], "systemctl start kube-apiserver")),
    "etcd-one-down": Drill(
        lambda e: _sh(e, e.lab.etcd_members[-1], "systemctl stop etcd"),
        "The API keeps working. Ask etcd about its members' health (`etcdctl endpoint health` with "
        "every endpoint) and read the journal of etcd on the members.",
        _etcd_whole),
    "etcd-member-replaced": Drill(
        lambda e: _sh(e, e.lab.etcd_members[-1], "systemctl stop etcd && rm -rf /var/lib/etcd/member"),
        "The API keeps working, but one etcd member lost its data. Compare `etcdctl member list` with "
        "`etcdctl endpoint health` over every endpoint, and read that member's etcd journal when you "
        "try to start it.",
        _etcd_whole, _member_back),
    "controller-manager-leader-kill": Drill(
        _leader_stop("kube-controller-manager"),
        "Controllers still work after a while. Look at the kube-controller-manager Lease in "
        "kube-system (its holder and leaseTransitions) and at the unit on each master.",
        lambda e: [p for m in e.lab.masters for p in _units_active(e, m, ["kube-controller-manager"])],
        _start_everywhere("kube-controller-manager")),
    "scheduler-leader-kill": Drill(
        _leader_stop("kube-scheduler"),
        "New pods are still scheduled after a while. Look at the kube-scheduler Lease in kube-system "
        "and at the unit on each master.",
        lambda e: [p for m in e.lab.masters for p in _units_active(e, m, ["kube-scheduler"])],
        _start_everywhere("kube-scheduler")),
    "node-poweroff": Drill(
        lambda e: _halt(e, e.lab.nodes[-1]),
        "In a minute, one node changes state. Watch `kubectl get nodes` and `kubectl get pods -o wide`, "
        "and compare `vagrant status` with the lab file.",
        _node_is_ready),
    "master-partition": Drill(
        _partition_only,
        "kubectl still answers. " + LOOK_VIP + " Then check what the VRRP MASTER can reach "
        "(ping the other machines from it) and what its packet filter holds.",
        lambda e: _partition_rules(e) + _vip_home(e)),
    etcd_restore_scenario.NAME: Drill(etcd_restore_drill.drill_breaks, etcd_restore_drill.DRILL_OBSERVE,
                                      etcd_restore_drill.drill_fixed, etcd_restore_drill.drill_restore),
}


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("master-poweroff", "master01 powered off (vagrant halt)",
             lambda e: bounds.vrrp_priority_zero(e.lab), _power_off, _restore_power,
             measure="vrrp_takeover_s", invariants=_vip_moved, needs=(POWER_OFF, POWER_ON)),
    Scenario("master-hard-kill", "master01 killed without a shutdown (docker kill / forced power-off)",
             lambda e: bounds.vrrp_master_down(e.lab), _hard_kill, _restore_power,
             measure="since_break_s", invariants=_vip_moved, needs=(FORCED_POWER_OFF, POWER_ON)),
    Scenario("haproxy-dies", "haproxy dies on master01",
             lambda e: bounds.vrrp_track_script(e.lab), _stop_haproxy, _start_haproxy,
             measure="since_break_s", invariants=_vip_moved),
    Scenario("keepalived-stop", "keepalived stopped gracefully on master01",
             lambda e: bounds.vrrp_priority_zero(e.lab), _stop_keepalived, _start_keepalived,
             measure="vrrp_takeover_s", invariants=_vip_moved),
    Scenario("apiserver-kill", "one kube-apiserver killed",
             lambda e: bounds.haproxy_backend_down(e.lab), _kill_apiserver, _apiserver_back,
             measure="haproxy_marked_down_s", invariants=_haproxy_back),
    Scenario("etcd-one-down", "one etcd member stopped",
             lambda e: bounds.etcd_election(), lambda e: _stop_etcd(e, 1), _start_etcd,
             measure="new_leader_elected_after_s", invariants=_writes_went_on),
    Scenario("etcd-member-replaced", "one etcd member's data lost: removed, added back empty",
             lambda e: bounds.member_rejoined(), _replace_member, _member_back,
             measure="caught_up_after_s", invariants=_member_replaced),
    Scenario("etcd-quorum-lost", "two etcd members stopped (quorum lost)",
             lambda e: bounds.quorum_lost(), lambda e: _stop_etcd(e, 2), _start_etcd,
             measure="longest_gap_write_s", invariants=_writes_failed),
    Scenario("controller-manager-leader-kill", "controller-manager leader killed",
             lambda e: bounds.leader_handoff(), lambda e: _kill_leader(e, "kube-controller-manager"),
             _leaders_back, measure="handoff_s", invariants=_one_clean_handoff),
    Scenario("scheduler-leader-kill", "scheduler leader killed",
             lambda e: bounds.leader_handoff(), lambda e: _kill_leader(e, "kube-scheduler"), _leaders_back,
             measure="handoff_s", invariants=_one_clean_handoff),
    Scenario("node-poweroff", "node02 powered off",
             lambda e: bounds.node_not_ready(), _power_off_node, _restore_node,
             measure="not_ready_after_s", invariants=_service_answered, needs=(POWER_OFF, POWER_ON)),
    Scenario("master-partition", "master01 cut off the lab network",
             lambda e: bounds.vrrp_master_down(e.lab), _partition, _heal_partition,
             measure="vip_on_backup_after_s", invariants=_no_split_vip),
    Scenario(dns_scenario.NAME, "a CoreDNS replica killed (SIGKILL) on its node", dns_scenario.bound,
             dns_scenario.act, dns_scenario.restore, measure="longest_dns_gap_s",
             invariants=dns_scenario.invariants, addon="dns"),
    Scenario(etcd_restore_scenario.NAME, "every etcd member restored from one snapshot", etcd_restore_scenario.bound,
             etcd_restore_scenario.act, etcd_restore_scenario.restore, measure="restored_cluster_ready_s",
             invariants=etcd_restore_scenario.invariants),
    Scenario(registry_scenario.NAME, "the registry pod's node powered off", registry_scenario.bound,
             registry_scenario.act, registry_scenario.restore, measure="pull_works_again_s",
             invariants=registry_scenario.invariants, needs=(POWER_OFF, POWER_ON), addon="registry"),
    Scenario(ingress_scenario.NAME, "one node's traefik killed (SIGKILL)", ingress_scenario.bound,
             ingress_scenario.act, ingress_scenario.restore, measure="failover_gap_s",
             invariants=ingress_scenario.invariants, addon="ingress"),
)}
# Each drill joins its scenario by name.
SCENARIOS = {name: dataclasses.replace(s, drill=DRILLS.get(name)) for name, s in SCENARIOS.items()}
