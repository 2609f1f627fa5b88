"""Each assertion the failover scenarios make fails on a doctored result (issue 12, item 1).

A good result passes `problems()`; changing one figure at a time must make it fail, with a line
that says why. The bound's slack rule and direction, the split-brain sign and the Lease sampling
are tested on their own too.
"""

import copy
import json

import pytest

from harness.failover import bounds, scenarios
from harness.failover.runner import ScenarioResult, problems
from harness.failover.scenarios import skew_wait, takeover_facts

PROBE = {"run_id": "r", "duration_s": 40.0, "longest_gap_new_s": 1.2, "longest_gap_reused_s": 1.5,
         "longest_gap_write_s": 1.0, "requests": 300, "failed_requests": 2, "acknowledged_writes": 60,
         "lost_writes": 0}


def result(name, facts, bound, measure, probe=None, **extra) -> ScenarioResult:
    return ScenarioResult(name, name, bound.seconds, bound.formula, dict(facts), dict(probe or PROBE),
                          converged=True, bound_direction=bound.direction, measure=measure, **extra)


@pytest.fixture
def vip(seed_lab):
    scenario = scenarios.SCENARIOS["master-poweroff"]
    return result("master-poweroff", {"vrrp_takeover_s": 0.9, "since_break_s": 4.2, "skew_wait_s": None,
                                      "vip_holder": "master02"},
                  scenario.bound(type("E", (), {"lab": seed_lab})()), scenario.measure)


@pytest.fixture
def leader():
    return result("controller-manager-leader-kill",
                  {"old_leader": "master01_a", "new_leader": "master02_b", "handoff_s": 17.3,
                   "holders_seen": ["master01_a", "master02_b"], "lease_transitions": [3, 4],
                   "lease_sampled_for_s": 25.1, "lease_longest_unsampled_s": 1.1, "new_pod_scheduled_s": 2.0},
                  bounds.leader_handoff(), "handoff_s")


# --- the slack rule, in one place ------------------------------------------------------------------
def test_slack_rule_is_multiplicative_plus_additive():
    upper = bounds.Bound(0.61, "skew")
    assert upper.allowed == pytest.approx(0.61 * (1 + bounds.SLACK_RATIO) + bounds.SLACK_S, abs=0.01)
    lower = bounds.Bound(16.0, "outage", bounds.LOWER)
    assert lower.allowed == pytest.approx(16 * (1 - bounds.SLACK_RATIO) - bounds.SLACK_S, abs=0.01)
    assert bounds.Bound(0.2, "tiny", bounds.LOWER).allowed == 0.0


def test_judge_in_the_bounds_direction():
    upper, lower = bounds.Bound(4.0, "x"), bounds.Bound(16.0, "y", bounds.LOWER)
    assert bounds.judge(upper, 4.9).ok and not bounds.judge(upper, 5.6).ok
    assert "OUTSIDE the upper bound 4 s" in bounds.judge(upper, 40.0).text
    assert bounds.judge(lower, 20.0).ok and not bounds.judge(lower, 3.0).ok
    assert not bounds.judge(upper, None).ok and "not measured" in bounds.judge(upper, None).text


def test_every_scenario_names_the_figure_its_bound_governs(seed_lab):
    from pathlib import Path

    from harness.failover.probe import ProbeResult

    sources = "".join(path.read_text() for path in Path(scenarios.__file__).parent.glob("*.py"))
    probe_keys = set(ProbeResult("r", 1.0).summary())
    for scenario in scenarios.SCENARIOS.values():
        assert scenario.measure, scenario.name
        assert scenario.bound(type("E", (), {"lab": seed_lab})()).direction in (bounds.UPPER, bounds.LOWER)
        # a figure some scenario code writes (or the probe's summary has), not a typo judged "not measured"
        assert scenario.measure in probe_keys or f'"{scenario.measure}"' in sources, scenario.name
    assert scenarios.SCENARIOS["etcd-quorum-lost"].bound(None).direction == bounds.LOWER


@pytest.mark.parametrize("name", list(scenarios.SCENARIOS))
def test_each_scenarios_bound_is_asserted_on_its_own_figure(seed_lab, name):
    """Just inside the allowance passes the bound; just outside, or not measured, fails the run."""
    scenario = scenarios.SCENARIOS[name]
    bound = scenario.bound(type("E", (), {"lab": seed_lab})())
    step = 0.01 if bound.direction == bounds.UPPER else -0.01
    for figure, ok in ((bound.allowed - step, True), (bound.allowed + step, False), (None, False)):
        doctored = result(name, {scenario.measure: figure}, bound, scenario.measure,
                          {**PROBE, scenario.measure: figure} if scenario.measure in PROBE else None)
        verdict_lines = [line for line in problems(doctored) if scenario.measure in line]
        assert doctored.verdict.ok is ok and bool(verdict_lines) is not ok, (figure, problems(doctored))


# --- a good result passes, each doctored one fails -------------------------------------------------
def test_good_results_pass(vip, leader):
    assert problems(vip) == []
    assert problems(leader) == []


@pytest.mark.parametrize("doctor, expect", [
    (lambda r: setattr(r, "error", "StepError: boom"), "scenario itself failed"),
    (lambda r: setattr(r, "converged", False), "did not converge back"),
    (lambda r: r.probe.update(lost_writes=1), "acknowledged writes were lost"),
    (lambda r: r.probe.update(acknowledged_writes=0), "wrote nothing"),
    (lambda r: r.facts.update(vrrp_takeover_s=40.0), "OUTSIDE the upper bound"),   # the old polling ceiling
    (lambda r: r.facts.update(vrrp_takeover_s=1.3), "OUTSIDE the upper bound"),
    (lambda r: r.facts.update(vrrp_takeover_s=None), "not measured"),
    (lambda r: r.facts.update(vrrp_takeover_s=-0.4), "split-brain"),                # within the bound, yet fails
    (lambda r: r.facts.update(vrrp_takeover_s=None), "never reached the backup"),
])
def test_doctored_vip_results_fail(vip, doctor, expect):
    doctored = copy.deepcopy(vip)
    doctor(doctored)
    assert any(expect in line for line in problems(doctored)), problems(doctored)


@pytest.mark.parametrize("doctor, expect", [
    (lambda f: f.update(handoff_s=25.0), "OUTSIDE the upper bound"),
    (lambda f: f.update(holders_seen=["master01_a", "master02_b", "master03_c"]), "flapping"),
    (lambda f: f.update(holders_seen=["master01_a", "master02_b", "master01_a"]), "flapping"),
    (lambda f: f.update(holders_seen=["master01_a"]), "never changed holder"),
    (lambda f: f.update(holders_seen=["master01_a", "", "master02_b"]), "no holder"),
    (lambda f: f.update(lease_transitions=[3, 5]), "not by exactly one"),
    (lambda f: f.update(lease_sampled_for_s=17.5), "flapping could have gone unseen"),
    (lambda f: f.update(new_pod_scheduled_s=None), "never scheduled"),
    (lambda f: f.update(lease_longest_unsampled_s=15.0), "could have come and gone unseen"),
    (lambda f: f.update(lease_longest_unsampled_s=None), "could have come and gone unseen"),
])
def test_doctored_leader_results_fail(leader, doctor, expect):
    doctored = copy.deepcopy(leader)
    doctor(doctored.facts)
    assert any(expect in line for line in problems(doctored)), problems(doctored)


def test_doctored_quorum_and_partition_results_fail(seed_lab):
    quorum = result("etcd-quorum-lost", {"stopped": ["etcd01", "etcd02"]}, bounds.quorum_lost(),
                    "longest_gap_write_s", {**PROBE, "longest_gap_write_s": 24.0, "failed_requests": 40})
    assert problems(quorum) == []
    quorum.probe["longest_gap_write_s"] = 2.0     # writes hardly failed: the quorum was never lost
    assert any("OUTSIDE the lower bound" in line for line in problems(quorum))
    quorum.probe["failed_requests"] = 0
    assert any("quorum was not lost" in line for line in problems(quorum))

    partition = result("master-partition", {"samples": 80, "samples_with_vip_on_two_machines": 0,
                                            "vip_on_backup_after_s": 3.9}, bounds.vrrp_master_down(seed_lab),
                       "vip_on_backup_after_s")
    assert problems(partition) == []
    partition.facts["samples_with_vip_on_two_machines"] = 2
    assert any("split-brain" in line for line in problems(partition))
    partition.facts.update(samples_with_vip_on_two_machines=0, samples=5)
    assert any("too few" in line for line in problems(partition))


def test_doctored_other_results_fail(seed_lab):
    api = result("apiserver-kill", {"haproxy_marked_down_s": 3.7, "haproxy_marked_up_again_s": 9.0},
                 bounds.haproxy_backend_down(seed_lab), "haproxy_marked_down_s")
    assert problems(api) == []
    api.facts["haproxy_marked_up_again_s"] = None
    assert any("never marked" in line for line in problems(api))
    etcd = result("etcd-one-down", {"new_leader_elected_after_s": 0.4}, bounds.etcd_election(),
                  "new_leader_elected_after_s")
    assert problems(etcd) == []
    etcd.probe["acknowledged_writes"] = 3
    assert any("writes must go on" in line for line in problems(etcd))
    node = result("node-poweroff", {"not_ready_after_s": 47.0, "cluster_ip_answers": "14/20 from node01"},
                  bounds.node_not_ready(), "not_ready_after_s")
    assert problems(node) == []
    node.facts["cluster_ip_answers"] = "0/20 from node01"
    assert any("never answered" in line for line in problems(node))


def test_doctored_coredns_results_fail():
    from harness.failover import dns_scenario
    from harness.render.addons import DNS_READY_FAILURES, DNS_READY_PERIOD_S, DNS_READY_TIMEOUT_S

    bound = dns_scenario.bound(None)
    assert bound.seconds == DNS_READY_PERIOD_S * DNS_READY_FAILURES + DNS_READY_TIMEOUT_S + 1.0
    assert bound.direction == bounds.UPPER and f"{bound.seconds:g}s" in bound.formula
    dns = result("coredns-pod-killed", {"victim": "coredns-x", "dns_queries": 120, "dns_failures": 9,
                                        "longest_dns_gap_s": 1.4}, bound, "longest_dns_gap_s")
    assert problems(dns) == []
    for doctor, expect in (({"longest_dns_gap_s": bound.allowed + 0.1}, "OUTSIDE the upper bound"),
                           ({"longest_dns_gap_s": None}, "not measured"),
                           ({"dns_queries": 12, "dns_failures": 0}, "ran only 12 queries"),
                           ({"dns_failures": 61}, "61 of 120 DNS queries failed")):
        doctored = copy.deepcopy(dns)
        doctored.facts.update(doctor)
        assert any(expect in line for line in problems(doctored)), (doctor, problems(doctored))


# --- the takeover's sign: never clamped, negative only when proven --------------------------------
def test_takeover_is_signed_and_not_clamped():
    # MASTER seen holding until 1.0 s, backup first seen holding in the sample ending at 1.7 s
    master = [(0.0, 0.1, True), (0.5, 0.6, True), (1.0, 1.1, True), (1.2, 1.3, False)]
    backup = [(0.0, 0.1, False), (1.3, 1.4, False), (1.6, 1.7, True)]
    assert takeover_facts(master, backup)["vrrp_takeover_s"] == pytest.approx(0.7)
    # the backup held it (sample ended 1.4 s) while the MASTER still did (sample started 2.0 s)
    split = [(0.0, 0.1, True), (2.0, 2.1, True), (2.3, 2.4, False)]
    facts = takeover_facts(split, [(0.0, 0.1, False), (1.3, 1.4, True)])
    assert facts["vrrp_takeover_s"] == pytest.approx(-0.6)
    assert "split-brain" in scenarios._vip_moved(facts, PROBE)[0]
    # a MASTER that stopped answering (None) has not been seen holding: no false split-brain
    stalled = [(0.0, 0.1, True), (0.2, 3.0, None)]
    assert takeover_facts(stalled, [(0.0, 0.1, False), (0.7, 0.8, True)])["vrrp_takeover_s"] == pytest.approx(0.8)
    assert takeover_facts(master, [(0.0, 0.1, False)])["vrrp_takeover_s"] is None


def test_skew_wait_from_the_backups_journal():
    journal = ("1764300000.100000 master02 Keepalived_vrrp[51]: (VI_1) Entering BACKUP STATE\n"
               "1764300001.250000 master02 Keepalived_vrrp[51]: (VI_1) Backup received priority 0 advertisement\n"
               "1764300001.861000 master02 Keepalived_vrrp[51]: (VI_1) Entering MASTER STATE\n")
    assert skew_wait(journal) == pytest.approx(0.611)
    assert skew_wait("1764300001.8 master02 Keepalived_vrrp[51]: (VI_1) Entering MASTER STATE\n") is None
    assert skew_wait("-- No entries --\n") is None


# --- the Lease is sampled for the whole bound, past the handoff ------------------------------------
def test_leader_kill_samples_the_whole_bound_and_sees_flapping(monkeypatch, seed_lab):
    holders = iter(["master01_a"] + ["master01_a"] * 2 + ["master02_b"] * 2 + ["master01_c"] + ["master02_b"] * 999)
    monkeypatch.setattr(scenarios, "lease_holder", lambda ctx, component, via: (next(holders), 7))
    monkeypatch.setattr(scenarios, "_sh", lambda *a, **k: None)
    monkeypatch.setattr(scenarios, "_schedule_a_pod", lambda env: 1.0)
    monkeypatch.setattr(scenarios.bounds, "leader_handoff", lambda: bounds.Bound(0.1, "tiny"))
    monkeypatch.setattr(scenarios.time, "sleep", lambda s: None)
    clock = iter(x * 0.05 for x in range(100000))
    monkeypatch.setattr(scenarios.time, "monotonic", lambda: next(clock))
    env = scenarios.Env(type("Ctx", (), {"lab": seed_lab})(), None)
    facts = scenarios._kill_leader(env, "kube-controller-manager")
    assert facts["holders_seen"] == ["master01_a", "master02_b", "master01_c", "master02_b"]
    assert facts["lease_sampled_for_s"] >= bounds.Bound(0.1, "tiny").allowed
    assert 0 < facts["lease_longest_unsampled_s"] < 1
    assert any("flapping" in line for line in scenarios._one_clean_handoff(facts, PROBE))


def test_leader_kill_counts_the_time_the_lease_went_unsampled(monkeypatch, seed_lab):
    """The API blinks for 20 s right after the kill: the holder seen before and after is the
    same, but a holder could have come and gone in between, and the invariant says so."""
    now = [0.0]
    answers = iter(["master01_a"] + [RuntimeError("apiserver blinked")] * 40 + ["master02_b"] * 999)

    def lease_holder(ctx, component, via):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer, 7

    monkeypatch.setattr(scenarios, "lease_holder", lease_holder)
    monkeypatch.setattr(scenarios, "_sh", lambda *a, **k: None)
    monkeypatch.setattr(scenarios, "_schedule_a_pod", lambda env: 1.0)
    monkeypatch.setattr(scenarios.time, "sleep", lambda s: now.__setitem__(0, now[0] + s))
    monkeypatch.setattr(scenarios.time, "monotonic", lambda: now[0])
    facts = scenarios._kill_leader(scenarios.Env(type("Ctx", (), {"lab": seed_lab})(), None), "kube-scheduler")
    assert facts["lease_samples_failed"] == 40
    assert facts["lease_longest_unsampled_s"] == pytest.approx(20.0)
    assert any("20.0 s without an answered sample" in line for line in scenarios._one_clean_handoff(facts, PROBE))


# --- etcd-member-replaced ----------------------------------------------------------------------------
def test_member_replaced_commands_and_invariants(monkeypatch, seed_lab):
    members = {"members": [{"ID": 0xA1, "name": "etcd01", "peerURLs": ["https://192.168.220.11:2380"], "clientURLs": ["x"]},
                           {"ID": 0xB2, "name": "etcd02", "peerURLs": ["https://192.168.220.12:2380"], "clientURLs": ["x"]},
                           {"ID": 0xC3, "name": "etcd03", "peerURLs": ["https://192.168.220.13:2380"], "clientURLs": ["x"]}]}
    commands, revisions = [], iter([500, 480, 499, 501])

    class Out:
        def __init__(self, stdout):
            self.stdout, self.stderr = stdout, ""

    def etcdctl(env, machine, args, check=True):
        commands.append(f"etcdctl {args}")
        if args.startswith("member remove"):
            members["members"] = [m for m in members["members"] if f"{m['ID']:x}" != args.split()[-1]]
        elif args.startswith("member add"):
            members["members"].append({"ID": 0xD4, "name": "etcd03", "peerURLs": [args.split("=")[-1]],
                                       "clientURLs": ["x"]})
        elif args.startswith("member list"):
            return Out(json.dumps(members))
        elif args.startswith("endpoint status"):
            return Out(json.dumps([{"Status": {"header": {"revision": next(revisions)}}}]))
        return Out("")

    monkeypatch.setattr(scenarios, "_etcdctl", etcdctl)
    monkeypatch.setattr(scenarios, "_sh", lambda env, m, command, check=True: commands.append(f"{m.name}: {command}"))
    monkeypatch.setattr(scenarios, "_etcd_leader", lambda env, ask, among=None: seed_lab.etcd_members[0])
    monkeypatch.setattr(scenarios.time, "sleep", lambda s: None)
    env = scenarios.Env(type("Ctx", (), {"lab": seed_lab})(), None)
    facts = scenarios._replace_member(env)
    victim = seed_lab.etcd_members[-1]
    assert facts["replaced"] == victim.name and facts["old_member_id"] == "c3" and facts["new_member_id"] == "d4"
    assert commands.index(f"{victim.name}: systemctl stop etcd && rm -rf /var/lib/etcd/member") \
        < commands.index("etcdctl member remove c3") < commands.index(
            f"etcdctl member add etcd03 --peer-urls=https://{victim.ip}:2380")
    assert any("--initial-cluster-state=existing" in c for c in commands)
    assert facts["leader_revision_at_ready"] == 500 and facts["caught_up_after_s"] is not None
    assert scenarios._member_replaced(facts, PROBE) == []
    assert "was not replaced" in scenarios._member_replaced({**facts, "new_member_id": "c3"}, PROBE)[0]
    assert "started members" in scenarios._member_replaced({**facts, "started_members": ["etcd01"]}, PROBE)[0]
    slow = result("etcd-member-replaced", {**facts, "caught_up_after_s": 4.0}, bounds.member_rejoined(),
                  "caught_up_after_s")
    assert any("OUTSIDE the upper bound" in line for line in problems(slow))


# --- the real sampling loop, with a fake VIP --------------------------------------------------------
@pytest.mark.parametrize("master_keeps_until, backup_from, split", [(0.3, 0.6, False), (1.0, 0.4, True)])
def test_takeover_sampling_sees_split_brain(monkeypatch, seed_lab, master_keeps_until, backup_from, split):
    import time as real_time
    t0 = []

    def vip_on(ctx, names):
        now = real_time.monotonic() - t0[0]
        name = names[0]
        holds = now < master_keeps_until if name == "master01" else now >= backup_from
        real_time.sleep(0.02)
        return [name] if holds else []

    class Out:
        stdout = ""

    monkeypatch.setattr(scenarios, "vip_on", vip_on)
    monkeypatch.setattr(scenarios, "_sh", lambda *a, **k: Out())
    env = scenarios.Env(type("Ctx", (), {"lab": seed_lab})(), None)
    t0.append(real_time.monotonic())          # the break: the fake VIP's clock starts
    facts = scenarios._takeover(env, lambda: None, timeout=5)
    assert facts["since_break_s"] is not None
    assert (facts["vrrp_takeover_s"] < 0) is split, facts
    assert bool(scenarios._vip_moved(facts, PROBE)) is split
