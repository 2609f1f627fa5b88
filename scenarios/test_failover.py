"""HA failure scenarios on the real cluster (`tox -e failover`; CI runs the `ci` subset).

Every scenario runs inside the probe. Each test asserts everything `runner.problems` finds: the
scenario ran, the lab converged back (steps re-run, core checks passed), no acknowledged write
was lost, the probe wrote something, the figure the bound governs is within the bound and its
slack (harness/failover/bounds.py, in the bound's direction), and the scenario's own invariants
(no split-brain, one clean Lease handoff sampled for the whole bound, ...). tests/unit shows each
of these fails on a doctored result. At the end of the session the run's table (scenario, bound,
direction, slack, measured, verdict) is printed and written to artifacts/<run>/scenarios/table.md.
"""

from __future__ import annotations

import pytest

from harness.failover import table
from harness.failover.runner import problems, run_scenario
from harness.failover.scenarios import SCENARIOS, Env

pytestmark = pytest.mark.failover
# master-poweroff runs nightly (tox -e failover), not on every submission: its sampled takeover
# overstates by up to two SSH samples, and on this 2-core host it measured 0.87 s and 1.22 s
# against 1.26 s allowed; too close to gate every change on. The VIP moving when master01 stops is
# still asserted on every submission by test_full_cluster.py.
# coredns-pod-killed runs nightly too (issue 14, CI time): a CoreDNS pod deleted while a pod
# queries in a loop is still checked on every submission, by test_full_cluster.py's
# test_dns_keeps_answering_while_a_coredns_pod_is_deleted (21 s), so the slice keeps the two
# scenarios issue 6 asks for and saves about 70 s of the probe, re-run and converge.
CI_SUBSET = ("etcd-one-down", "controller-manager-leader-kill")


@pytest.fixture(scope="session")
def failover_env(workload, lab_provider):
    return Env(workload, lab_provider)


@pytest.fixture(scope="session", autouse=True)
def closing_table(request):
    """At the end of the session, the run's scenario | bound | measured | verdict table: printed
    under the test summary and written beside the reports (artifacts/<run>/scenarios/table.md)."""
    yield
    folder = getattr(request.config, "k8s_ha_lab_run_dir", None)
    text = table.write_table(folder / "scenarios") if folder else None
    if text:   # a fixture's output is captured: a plugin prints it with the terminal summary
        request.config.pluginmanager.register(table.TerminalSummary(text, folder / "scenarios" / table.TABLE_FILE),
                                              "failover-table")


@pytest.fixture
def run(failover_env, request):
    def go(name):
        folder = getattr(request.config, "k8s_ha_lab_run_dir", None)
        result = run_scenario(failover_env, name, folder / "scenarios" if folder else None)
        found = problems(result)
        assert not found, f"{name}: " + "; ".join(found) + f"\nfacts: {result.facts}\nprobe: {result.probe}"
        return result
    return go


def _ci(name):
    return pytest.param(name, marks=pytest.mark.ci) if name in CI_SUBSET else name


# Every registered scenario, in the registry's order: a new one is tested by being added there.
@pytest.mark.parametrize("name", [_ci(n) for n in SCENARIOS])
def test_scenario_within_its_bound(run, name):
    run(name)
