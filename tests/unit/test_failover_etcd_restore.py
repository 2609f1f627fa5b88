"""`etcd-snapshot-restore`: each of its assertions fails on a doctored result, its figures are
computed as documented, the runner tells rolled-back probe writes from lost ones, and the restore
commands carry what a restore needs (same snapshot, new token, bumped and compacted revision)."""

import copy
from types import SimpleNamespace

import pytest

from harness.failover import bounds, etcd_restore_drill, etcd_restore_load, etcd_restore_namespace, etcd_snapshot
from harness.failover import etcd_restore_scenario as restore
from harness.failover.probe import ProbeResult, Sample
from harness.failover.runner import ScenarioResult, problems, rolled_back
from harness.failover.scenarios import SCENARIOS

PROBE = {"run_id": "r", "duration_s": 110.0, "longest_gap_new_s": 82.5, "longest_gap_reused_s": 82.9,
         "longest_gap_write_s": 84.4, "requests": 1010, "failed_requests": 702, "acknowledged_writes": 53,
         "lost_writes": 0}
SHA = "c533a9f7a79fd87687748cc4fa772b19c5228ef6a3dec6eedd9f184b6fec152c"
# The facts of a live run on labs/small.yaml (2026-11-28, second run).
FACTS = {"snapshot_s": 0.32, "snapshot_revision": 1815, "snapshot_keys": 448, "snapshot_bytes": 1978368,
         "snapshot_from": "ctl1", "restore_point_after_break_s": 5.09, "writes_acked_before_snapshot": 20,
         "writes_acked_after_snapshot": 6, "max_resource_version_before": 1916, "namespace_deleted_s": 7.49,
         "snapshot_sha256": {"ctl1": SHA, "ctl2": SHA, "ctl3": SHA}, "restore_token": "etcd-cluster-small-restored-b037a985",
         "cluster_id_before": ["f41f394292d30644"], "cluster_id_after": ["f06f055ee835fb22"],
         "revision_before_restore": 1916, "revision_after_restore": 1000001843, "apiservers_stopped_s": 60.71,
         "flanneld_and_etcd_stopped_s": 7.89, "etcdutl_restore_s": 0.67, "data_restored_s": 0.69,
         "restored_cluster_ready_s": 0.68, "apiservers_ready_s": 12.01, "restore_s": 82.26,
         "api_unavailable_s": 80.82, "api_answers_while_restoring": 0, "api_samples": 289,
         "namespace_back": True, "writes_present_after_restore": 22, "writes_lost": [], "writes_changed": [],
         "writes_after_snapshot_present": 0, "etcd_old_watch_compacted": True, "api_old_watch_status": 410,
         "new_write_resource_version": 1000001849, "probe_writes_rolled_back": 22}


@pytest.fixture
def good() -> ScenarioResult:
    bound = bounds.restored_cluster_elected()
    return ScenarioResult(restore.NAME, "restore", bound.seconds, bound.formula, copy.deepcopy(FACTS), dict(PROBE),
                          converged=True, bound_direction=bound.direction, measure="restored_cluster_ready_s")


def test_registered_with_its_bound_and_figure():
    scenario = SCENARIOS[restore.NAME]
    assert scenario.measure == "restored_cluster_ready_s"
    bound = scenario.bound(None)
    assert (bound.seconds, bound.direction) == (2.1, bounds.UPPER)
    assert "2 × 1s" in bound.formula and "heartbeat 0.1s" in bound.formula
    assert bound.allowed == pytest.approx(2.1 * 1.25 + 0.5, abs=0.01)


def test_the_live_result_passes(good):
    assert problems(good) == []


@pytest.mark.parametrize("doctor, expect", [
    ({"restored_cluster_ready_s": 3.5}, "OUTSIDE the upper bound 2.1 s"),
    ({"restored_cluster_ready_s": None}, "not measured"),
    ({"namespace_back": False}, "is not back"),
    ({"writes_acked_before_snapshot": 4}, "too few to tell"),
    ({"writes_lost": [3, 17]}, "missing after the restore: seq [3, 17]"),
    ({"writes_changed": [5]}, "came back with another value: seq [5]"),
    ({"writes_acked_after_snapshot": 0}, "cut could not be seen"),
    ({"writes_after_snapshot_present": 2}, "were not restored from it"),
    ({"snapshot_sha256": {"ctl1": SHA, "ctl2": SHA, "ctl3": "0" * 64}}, "one and the same snapshot"),
    ({"snapshot_sha256": {"ctl1": SHA}}, "one and the same snapshot"),
    ({"cluster_id_after": ["f41f394292d30644"]}, "one new cluster (new token)"),
    ({"cluster_id_after": ["f06f055ee835fb22", "aa"]}, "one new cluster (new token)"),
    ({"revision_after_restore": 1815}, "--bump-revision missing"),
    ({"new_write_resource_version": 1900}, "not above every one seen before"),
    ({"new_write_resource_version": None}, "not above every one seen before"),
    ({"etcd_old_watch_compacted": False}, "not refused as compacted"),
    ({"api_old_watch_status": 200}, "not 410 Gone"),
    ({"api_answers_while_restoring": 3}, "an apiserver was not stopped"),
    ({"api_unavailable_s": None}, "never answered again"),
])
def test_each_doctored_fact_fails(good, doctor, expect):
    good.facts.update(doctor)
    found = problems(good)
    assert any(expect in line for line in found), found


def test_a_lost_probe_write_still_fails(good):
    good.probe["lost_writes"] = 1
    assert any("acknowledged writes were lost" in line for line in problems(good))


def test_api_outage_from_the_samples():
    # (start, end, ok) in seconds; the apiservers are stopped at 10, etcd is ready at 30
    samples = [(8.0, 8.1, True), (9.5, 9.6, True), (10.2, 10.3, False), (20.0, 21.0, False),
               (31.0, 31.2, False), (40.0, 40.4, True), (41.0, 41.1, True)]
    out = etcd_restore_load.api_outage(samples, stopped_at=10.0, etcd_ready_at=30.0, back_at=40.4)
    assert out == {"api_unavailable_s": 30.8, "api_answers_while_restoring": 0, "api_samples": 7}
    answered = samples + [(15.0, 15.1, True)]
    assert etcd_restore_load.api_outage(answered, 10.0, 30.0, 40.4)["api_answers_while_restoring"] == 1
    assert etcd_restore_load.api_outage(samples, 10.0, 30.0, None)["api_unavailable_s"] is None


def _probe_result(acked_at: dict[int, float], missing: list[int]) -> ProbeResult:
    samples = [Sample(at, "write", True) for at in sorted(acked_at.values())] + [Sample(7.5, "write", False)]
    return ProbeResult("r", 20.0, sorted(samples, key=lambda s: s.at), sorted(acked_at), list(missing))


def test_runner_counts_writes_after_the_restore_point_as_rolled_back():
    result = _probe_result({1: 1.0, 2: 2.0, 3: 3.0, 4: 9.0, 5: 10.0}, missing=[4, 5])
    assert rolled_back(result, restore_point=5.0) == [4, 5]
    assert result.missing == [] and result.summary()["lost_writes"] == 0


def test_runner_still_counts_writes_before_the_restore_point_as_lost():
    result = _probe_result({1: 1.0, 2: 2.0, 3: 3.0, 4: 9.0}, missing=[2, 4])
    assert rolled_back(result, restore_point=5.0) == [4]
    assert result.missing == [2] and result.summary()["lost_writes"] == 1
    # a missing write the samples cannot place is lost, never excused
    unknown = _probe_result({1: 1.0}, missing=[9])
    assert rolled_back(unknown, restore_point=0.5) == [] and unknown.missing == [9]


# --- the commands of the procedure ------------------------------------------------------------------
class FakeCtx:
    def __init__(self, lab):
        self.lab, self.commands = lab, []


def fake_run(ctx, step, machine, command, check=True, **kwargs):
    ctx.commands.append((machine.name, command))
    return SimpleNamespace(exit_status=0, stdout="", stderr="")


def test_each_member_restores_the_same_file_with_a_new_token_and_a_bumped_compacted_revision(
        monkeypatch, rendered_small):
    lab = rendered_small.lab
    monkeypatch.setattr(etcd_snapshot, "run", fake_run)
    env = SimpleNamespace(ctx=FakeCtx(lab), lab=lab)
    for member in lab.etcd_members:
        etcd_snapshot._restore_member(env, member, "etcd-cluster-small-restored-x")
    restores = [(m, c) for m, c in env.ctx.commands if "snapshot restore" in c]
    assert [m for m, _ in restores] == [m.name for m in lab.etcd_members]
    for member, (_, command) in zip(lab.etcd_members, restores):
        assert f"snapshot restore {etcd_snapshot.SNAPSHOT} " in command
        assert f"--name {lab.etcd_name(member)} " in command
        assert f"--initial-cluster {lab.etcd_initial_cluster} " in command
        assert f"--initial-advertise-peer-urls https://{member.ip}:2380 " in command
        assert "--initial-cluster-token etcd-cluster-small-restored-x " in command
        assert f"etcd-cluster-{lab.name} " not in command           # never the old token
        assert f"--bump-revision {etcd_snapshot.BUMP_REVISION} --mark-compacted" in command
        assert f"--data-dir {etcd_snapshot.DATA_DIR}.restored " in command
    swaps = [c for _, c in env.ctx.commands if "before-restore" in c]
    assert len(swaps) == 3 and all(f"mv {etcd_snapshot.DATA_DIR}.restored {etcd_snapshot.DATA_DIR}" in c for c in swaps)


def test_the_peer_url_is_the_one_the_rendered_unit_advertises(rendered_small):
    lab = rendered_small.lab
    for member in lab.etcd_members:
        unit = rendered_small.text(member.name, "/etc/systemd/system/etcd.service")
        assert f"--initial-advertise-peer-urls={etcd_snapshot._peer_url(lab, member)} " in unit + " "


# --- the drill's own condition ------------------------------------------------------------------------
RECORD = {"writes": {"write-000001": "a1", "write-000002": "b2"}, "revision": 2000002748,
          "cluster_ids": ["903845f156c837b3"], "snapshot_revision": 2000002705}


def _member_status(cluster_id: int, revision: int = 3000002800) -> dict:
    return {"Endpoint": "https://x:2379", "Status": {"header": {"cluster_id": cluster_id, "revision": revision}}}


@pytest.fixture
def drill(monkeypatch, tmp_path, rendered_small):
    """A lab the trainee restored correctly; each test doctors one thing."""
    import json as _json

    (tmp_path / "drill.json").write_text(_json.dumps({"name": restore.NAME}))
    (tmp_path / etcd_restore_drill.DRILL_RECORD).write_text(_json.dumps(RECORD))
    seen = {"status": [_member_status(0x6699940b47c812e1)] * 3, "namespace": (200, "Active"),
            "configmaps": {"write-000001": "a1", "write-000002": "b2"}, "watch_refused": True}
    monkeypatch.setattr(etcd_snapshot, "status", lambda env: seen["status"])
    monkeypatch.setattr(etcd_restore_drill, "namespace_status", lambda client: seen["namespace"])
    monkeypatch.setattr(etcd_snapshot, "old_etcd_watch_refused", lambda env, revision: seen["watch_refused"])
    monkeypatch.setattr(etcd_restore_drill, "ApiClient", lambda lab, pki: None)
    items = lambda: _json.dumps({"items": [{"metadata": {"name": n}, "data": {"value": v}}
                                           for n, v in seen["configmaps"].items()]}).encode()
    monkeypatch.setattr(etcd_restore_namespace, "api", lambda client, method, path, body=None: (200, items()))
    env = SimpleNamespace(lab=rendered_small.lab, ctx=SimpleNamespace(state_dir=tmp_path, pki_dir=tmp_path))
    return env, seen


def test_drill_fixed_when_restored_properly(drill):
    env, _ = drill
    assert etcd_restore_drill.drill_fixed(env) == []


@pytest.mark.parametrize("doctor, expect", [
    (lambda s: s.update(status=[_member_status(0x6699940b47c812e1)] * 2), "2 of 3 etcd members answer"),
    (lambda s: s.update(namespace=(404, "")), "is not there"),
    (lambda s: s.update(namespace=(200, "Terminating")), "is not there"),
    (lambda s: s["configmaps"].pop("write-000002"), "1 of 2 ConfigMaps missing or changed"),
    (lambda s: s["configmaps"].update({"write-000001": "re-created by hand"}), "missing or changed"),
    (lambda s: s.update(status=[_member_status(0x903845f156c837b3)] * 3), "one new cluster"),
    (lambda s: s.update(status=[_member_status(1), _member_status(2), _member_status(2)]), "one new cluster"),
    (lambda s: s.update(watch_refused=False), "not refused as compacted"),
])
def test_drill_not_fixed(drill, doctor, expect):
    env, seen = drill
    doctor(seen)
    found = etcd_restore_drill.drill_fixed(env)
    assert any(expect in line for line in found), found


def test_drill_checks_only_health_when_no_drill_of_its_own_is_broken(drill):
    env, seen = drill
    (env.ctx.state_dir / "drill.json").write_text('{"name": "etcd-one-down"}')
    seen.update(namespace=(404, ""), watch_refused=False)
    assert etcd_restore_drill.drill_fixed(env) == []
    seen["status"] = seen["status"][:1]
    assert etcd_restore_drill.drill_fixed(env) == ["1 of 3 etcd members answer"]


def test_report_draws_the_bound_from_the_restored_members_start(good):
    import os

    if os.environ.get("CI") != "true":          # the `reports` extra: required in CI, as for the report tests
        pytest.importorskip("matplotlib")
    from harness.failover.report import marks

    good.events = {"break": 3.0, "restore": 100.0, "end": 140.0}
    good.facts["since_break_s"] = 88.0      # the restored cluster was ready 88 s after the break
    found = marks(good)
    assert found["takeover"] == pytest.approx(91.0)
    assert found["bound"] == pytest.approx(91.0 - 0.68 + 2.1)   # from the members' start, not the break


def test_no_writer_or_sampler_outlives_a_failed_step(monkeypatch, rendered_small):
    """Load generators stop when the step they accompany fails."""
    stopped = []

    class Fake:
        def __init__(self, *args):
            self.acked = [None] * restore.WRITES_BEFORE_SNAPSHOT

        def start(self):
            return self

        def stop(self):
            stopped.append(type(self).__name__)
            return []

    def boom(*args, **kwargs):
        raise RuntimeError("etcdctl snapshot save failed")
    monkeypatch.setattr(restore, "ApiClient", lambda lab, pki: None)
    monkeypatch.setattr(etcd_snapshot, "ApiClient", lambda lab, pki: None)
    monkeypatch.setattr(restore, "create_namespace", lambda client: None)
    monkeypatch.setattr(restore, "Writer", type("Writer", (Fake,), {}))
    monkeypatch.setattr(etcd_snapshot, "ApiSampler", type("ApiSampler", (Fake,), {}))
    monkeypatch.setattr(etcd_snapshot, "take_snapshot", boom)
    monkeypatch.setattr(etcd_snapshot, "_procedure", boom)
    env = SimpleNamespace(lab=rendered_small.lab, ctx=SimpleNamespace(pki_dir=None))
    with pytest.raises(RuntimeError):
        restore.act(env)
    with pytest.raises(RuntimeError):
        etcd_snapshot.restore_from_snapshot(env)
    assert stopped == ["Writer", "ApiSampler"]
