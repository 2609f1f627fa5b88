"""HA failure scenarios on the real cluster (`tox -e failover`; CI runs the `ci` subset).

Every scenario runs inside the probe; each test asserts that no acknowledged write was lost, that
the lab converged back (steps re-run, core checks passed), and the scenario's own outcome.
"""

from __future__ import annotations

import pytest

from harness.failover.runner import run_scenario
from harness.failover.scenarios import Env

pytestmark = pytest.mark.failover
CI_SUBSET = ("master-poweroff", "etcd-one-down", "controller-manager-leader-kill")


@pytest.fixture(scope="session")
def failover_env(workload, lab_provider):
    return Env(workload, lab_provider)


@pytest.fixture
def run(failover_env, request):
    def go(name):
        folder = getattr(request.config, "k8s_ha_lab_run_dir", None)
        result = run_scenario(failover_env, name, folder / "scenarios" if folder else None)
        assert not result.error, result.error
        assert result.probe["lost_writes"] == 0, result.probe
        assert result.probe["acknowledged_writes"] > 0, "the probe wrote nothing: it measured nothing"
        assert result.converged
        return result
    return go


def _ci(name):
    return pytest.param(name, marks=pytest.mark.ci) if name in CI_SUBSET else name


@pytest.mark.parametrize("name", [_ci(n) for n in ("master-poweroff", "master-hard-kill", "haproxy-dies",
                                                     "keepalived-stop")])
def test_vip_moves_to_the_backup(run, name, failover_env):
    result = run(name)
    assert result.facts["vrrp_takeover_s"] is not None, result.facts
    assert result.facts["vip_holder"] == failover_env.vrrp_backup.name


def test_master_partition_never_splits_the_vip(run):
    result = run("master-partition")
    assert result.facts["samples"] > 20
    assert result.facts["samples_with_vip_on_two_machines"] == 0, result.facts
    assert result.facts["vip_on_backup_after_s"] is not None, result.facts


def test_apiserver_kill_is_taken_out_by_haproxy(run):
    result = run("apiserver-kill")
    assert result.facts["haproxy_marked_down_s"] is not None, result.facts
    assert result.facts["haproxy_marked_up_again_s"] is not None, result.facts


@pytest.mark.ci
def test_one_etcd_member_down_loses_nothing(run):
    result = run("etcd-one-down")
    assert result.probe["acknowledged_writes"] >= 10   # writes went on during the outage
    assert result.facts["new_leader_elected_after_s"] is not None, result.facts


def test_etcd_quorum_lost_then_recovered(run):
    result = run("etcd-quorum-lost")
    assert result.probe["failed_requests"] > 0         # without quorum, the API could not write


@pytest.mark.parametrize("name", [_ci("controller-manager-leader-kill"), "scheduler-leader-kill"])
def test_leader_kill_hands_the_lease_over(run, name):
    result = run(name)
    facts = result.facts
    assert facts["handoff_s"] is not None and facts["new_leader"] != facts["old_leader"], facts
    assert facts["new_pod_scheduled_s"] is not None, facts
    assert all(h for h in facts["holders_seen"]), facts
    # one direct handoff: the Lease went from the old holder to the new one exactly once, with
    # no third holder and no flapping back while it was sampled every half second
    assert len(facts["holders_seen"]) == 2, facts
    before, after = facts["lease_transitions"]
    assert after - before == 1, facts


def test_node_poweroff_goes_not_ready_and_the_service_keeps_answering(run):
    result = run("node-poweroff")
    assert result.facts["not_ready_after_s"] is not None, result.facts
    answered = int(result.facts["cluster_ip_answers"].split("/")[0])
    assert answered > 0, result.facts

