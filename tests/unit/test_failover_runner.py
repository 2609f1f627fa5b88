"""The runner around every scenario, with a fake probe, scenario and lab: whatever fails (the
scenario, its restore, listing the probe's writes, the lab's convergence) is recorded and fails
the run, and the lab is still restored, converged and reported."""

import dataclasses
from types import SimpleNamespace

import pytest

import checks
from harness.failover import bounds, runner
from harness.failover.probe import ProbeResult, Sample
from harness.failover.runner import problems, run_scenario
from harness.failover.scenarios import Scenario
from harness.steps import runner as steps_runner


class FakeProbe:
    def __init__(self, calls, list_fails=False):
        self.calls, self.list_fails = calls, list_fails

    def start(self):
        self.calls.append("probe start")
        return self

    def elapsed(self):
        return float(len(self.calls))

    def stop(self):
        self.calls.append("probe stop")
        samples = [Sample(0.5, "write", True), Sample(1.0, "new", True), Sample(1.5, "write", True)]
        return ProbeResult("r1", 12.0, samples, [1, 2])

    def find_missing(self, result):
        self.calls.append("find missing")
        if self.list_fails:
            raise TimeoutError("could not list the probe's ConfigMaps within 120s")
        return result

    def cleanup(self):
        self.calls.append("probe cleanup")


@pytest.fixture
def lab(monkeypatch):
    """A scenario whose act and restore can be made to fail, a lab that converges unless told not to."""
    calls, state = [], {"act": None, "restore": None, "converge": None, "list_fails": False}

    def step(name):
        def do(env):
            calls.append(name)
            if state[name]:
                raise state[name]
            return {"new_leader_elected_after_s": 0.4} if name == "act" else None
        return do

    def converge(ctx, addons=None):
        calls.append("converge")
        state["converge_addons"] = addons
        if state["converge"]:
            raise state["converge"]
        return {"etcd endpoint health": 0.2}

    scenario = Scenario("etcd-one-down", "one etcd member stopped", lambda env: bounds.etcd_election(),
                        step("act"), step("restore"), measure="new_leader_elected_after_s")
    monkeypatch.setattr(runner, "SCENARIOS", {"etcd-one-down": scenario})
    monkeypatch.setattr(runner, "Probe", lambda lab, pki: FakeProbe(calls, state["list_fails"]))
    monkeypatch.setattr(runner, "BASELINE_S", 0.0)
    monkeypatch.setattr(runner, "SETTLE_S", 0.0)
    def run_steps(ctx, addons=None):
        calls.append("steps")
        state["step_addons"] = addons
    monkeypatch.setattr(steps_runner, "run_steps", run_steps)
    monkeypatch.setattr(checks, "converge", converge)
    env = SimpleNamespace(lab=SimpleNamespace(haproxy=SimpleNamespace(profile="tuned")), ctx=SimpleNamespace(pki_dir=None))
    return env, calls, state


def test_a_good_run_is_restored_converged_and_reported(lab, tmp_path):
    env, calls, _ = lab
    result = run_scenario(env, "etcd-one-down", tmp_path)
    assert calls == ["probe start", "act", "restore", "probe stop", "find missing", "probe cleanup", "steps",
                     "converge"]
    assert result.converged and result.error == "" and problems(result) == []
    assert set(result.events) == {"break", "restore", "end"} and result.probe["acknowledged_writes"] == 2
    assert result.haproxy_profile == "tuned"                  # recorded, for `scenario compare`
    assert (tmp_path / "etcd-one-down.json").exists() and (tmp_path / "etcd-one-down.md").exists()


@pytest.mark.parametrize("scope, addon, expect", [
    ("lab", "", None),             # every step and every add-on's checks: the default
    ("lab", "dns", None),
    ("core", "", []),              # the guide's core only
    ("core", "dns", ["dns"]),      # ... and the add-on the scenario breaks
])
def test_the_converge_scope_chooses_which_add_ons_are_re_run_and_checked(lab, tmp_path, monkeypatch, scope, addon, expect):
    env, _, state = lab
    monkeypatch.setitem(runner.SCENARIOS, "etcd-one-down",
                        dataclasses.replace(runner.SCENARIOS["etcd-one-down"], addon=addon))
    result = run_scenario(env, "etcd-one-down", tmp_path, scope=scope)
    assert state["step_addons"] == expect and state["converge_addons"] == expect
    assert result.facts["converge_scope"] == scope


def test_only_add_on_scenarios_name_an_add_on_and_it_is_one_the_lab_knows():
    from harness.failover.scenarios import SCENARIOS
    from harness.lab import ADDONS
    from harness.steps import STEPS
    addon_steps = {s.name for s in STEPS} & set(ADDONS)
    named = {name: s.addon for name, s in SCENARIOS.items() if s.addon}
    assert named == {"coredns-pod-killed": "dns", "registry-node-lost": "registry", "ingress-pod-killed": "ingress"}
    assert set(named.values()) <= addon_steps


@pytest.mark.parametrize("failing, expect", [
    ("act", "RuntimeError: etcdctl: context deadline exceeded"),
    ("restore", "restore failed: RuntimeError: etcdctl: context deadline exceeded"),
])
def test_a_failing_act_or_restore_is_recorded_and_the_lab_still_converges(lab, tmp_path, failing, expect):
    env, calls, state = lab
    state[failing] = RuntimeError("etcdctl: context deadline exceeded")
    result = run_scenario(env, "etcd-one-down", tmp_path)
    assert "restore" in calls and "steps" in calls and "converge" in calls     # restored and converged anyway
    assert expect in result.error
    assert any(f"the scenario itself failed: {expect}" in line for line in problems(result))
    assert (tmp_path / "etcd-one-down.json").exists()                          # and reported


def test_writes_that_cannot_be_listed_are_unknown_not_zero(lab, tmp_path):
    env, _, state = lab
    state["list_fails"] = True
    result = run_scenario(env, "etcd-one-down", tmp_path)
    assert result.probe["lost_writes"] is None
    assert any("lost writes are unknown" in line for line in problems(result))


def test_a_lab_that_does_not_converge_fails_the_run(lab, tmp_path):
    env, _, state = lab
    state["converge"] = AssertionError("etcd03 is not healthy")
    result = run_scenario(env, "etcd-one-down", tmp_path)
    assert not result.converged and "etcd03 is not healthy" in result.convergence_error
    assert any("did not converge back" in line for line in problems(result))
