"""`etcd-snapshot-restore`: a snapshot is taken while ConfigMaps are being written, a namespace with
objects is deleted, and every etcd member is restored from that one snapshot.

This module is the scenario: what it breaks and measures (`act`), how it puts the lab back
(`restore`), its bound and what else must hold (`invariants`). The snapshot and restore
mechanics are harness.failover.etcd_snapshot, the namespace and what a restore promises
harness.failover.etcd_restore_namespace, the writer and the API sampler
harness.failover.etcd_restore_load, the drill harness.failover.etcd_restore_drill.
"""

from __future__ import annotations

import time

from harness.failover import bounds, etcd_snapshot
from harness.failover.etcd_restore_load import Writer, api
from harness.failover.etcd_restore_namespace import NAMESPACE, create_namespace, delete_namespace, observe_restored
from harness.failover.probe import ApiClient
from harness.steps.actions import NotYet, wait_until
from harness.steps.parallel import for_each

NAME = "etcd-snapshot-restore"
MIN_WRITES = 10                     # acknowledged before the snapshot, or the scenario proves little
WRITES_BEFORE_SNAPSHOT = 20         # what the scenario waits for before it takes the snapshot
STEP = etcd_snapshot.STEP


def bound(env) -> bounds.Bound:
    return bounds.restored_cluster_elected()


def wait_writes(writer: Writer, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(writer.acked) < WRITES_BEFORE_SNAPSHOT and time.monotonic() < deadline:
        time.sleep(0.2)


def act(env) -> dict:
    started = time.monotonic()
    client = ApiClient(env.lab, env.ctx.pki_dir)
    create_namespace(client)
    writer = Writer(client, NAMESPACE).start()
    try:
        wait_writes(writer)
        snapshot_started = time.monotonic()
        snapshot = etcd_snapshot.take_snapshot(env)
        snapshot_done = time.monotonic()
        time.sleep(1.5)               # writes the snapshot cannot hold: the restore must drop them
    finally:
        acked = writer.stop()         # never left writing if the snapshot fails
    before = [w for w in acked if w.acked_at < snapshot_started]
    after = [w for w in acked if w.acked_at > snapshot_done]
    deleted = delete_namespace(client)
    if deleted is None:
        raise RuntimeError(f"namespace {NAMESPACE} was not deleted within 180 s")
    digests = etcd_snapshot.distribute_snapshot(env)
    procedure = etcd_snapshot.restore_from_snapshot(env, since=started)
    seen = observe_restored(env, client, before, after, procedure["revision_before_restore"])
    return {**snapshot, "restore_point_after_break_s": round(snapshot_started - started, 3),
            "writes_acked_before_snapshot": len(before), "writes_acked_after_snapshot": len(after),
            "max_resource_version_before": max([w.resource_version for w in acked] + [procedure["revision_before_restore"]]),
            "namespace_deleted_s": deleted, "snapshot_sha256": digests, **procedure, **seen}


def _wait_api(env, timeout: float = 180) -> None:
    client = ApiClient(env.lab, env.ctx.pki_dir)

    def answers():
        if api(client, "GET", "/api/v1/namespaces/default")[0] != 200:
            raise NotYet("the API does not answer through MASTER_URL")
    wait_until(env.ctx, STEP, env.lab.masters[0], "the API through MASTER_URL", answers, timeout=timeout,
               unit="kube-apiserver")


def cleanup(env) -> None:
    """The scenario's traces: its namespace, the snapshot (it holds every Secret), the old data."""
    api(ApiClient(env.lab, env.ctx.pki_dir), "DELETE", f"/api/v1/namespaces/{NAMESPACE}")
    etcd_snapshot.remove_files(env)


def restore(env) -> None:
    """Whatever state act left: a cluster that is not one healthy cluster gets the whole
    procedure from the snapshot (if every member has it); then every control-plane unit runs,
    the API answers and the scenario's traces go."""
    lab = env.lab

    def one_cluster() -> bool:
        status = etcd_snapshot.status(env)
        return len(status) == len(lab.etcd_members) and len(etcd_snapshot.cluster_ids(status)) == 1
    end = time.monotonic() + 30
    while not one_cluster() and time.monotonic() < end:
        for_each(env.ctx, STEP, lab.etcd_members, lambda m: etcd_snapshot.sh(env, m, "systemctl start --no-block etcd"))
        time.sleep(3)
    if not one_cluster():
        has = etcd_snapshot.snapshot_on_every_member(env)
        if not all(has.values()):
            raise RuntimeError(f"etcd is not one healthy cluster and the snapshot is missing on "
                               f"{[n for n, ok in has.items() if not ok]}: restore by hand")
        etcd_snapshot.restore_from_snapshot(env)
    for_each(env.ctx, STEP, lab.masters, lambda m: etcd_snapshot.sh(
        env, m, "systemctl start kube-apiserver kube-controller-manager kube-scheduler", timeout=180))
    for_each(env.ctx, STEP, lab.machines, lambda m: etcd_snapshot.sh(env, m, "systemctl start flanneld"))
    _wait_api(env)
    cleanup(env)


def invariants(facts: dict, probe: dict) -> list[str]:
    problems = []
    if not facts.get("namespace_back"):
        problems.append(f"namespace {NAMESPACE} is not back (Active) after the restore")
    if facts.get("writes_acked_before_snapshot", 0) < MIN_WRITES:
        problems.append(f"only {facts.get('writes_acked_before_snapshot', 0)} writes acknowledged before the "
                        f"snapshot: fewer than {MIN_WRITES}, too few to tell")
    if facts.get("writes_lost"):
        problems.append(f"writes acknowledged before the snapshot are missing after the restore: "
                        f"seq {facts['writes_lost']}")
    if facts.get("writes_changed"):
        problems.append(f"writes acknowledged before the snapshot came back with another value: "
                        f"seq {facts['writes_changed']}")
    if facts.get("writes_acked_after_snapshot", 0) < 1:
        problems.append("no write was acknowledged after the snapshot: the restore's cut could not be seen")
    if facts.get("writes_after_snapshot_present", 0):
        problems.append(f"{facts['writes_after_snapshot_present']} writes acknowledged after the snapshot "
                        "survived: the members were not restored from it")
    digests = facts.get("snapshot_sha256") or {}
    if len(digests) < 3 or len(set(digests.values())) != 1:
        problems.append(f"the members did not restore from one and the same snapshot: {digests}")
    before, after = facts.get("cluster_id_before") or [], facts.get("cluster_id_after") or []
    if len(after) != 1 or after == before:
        problems.append(f"cluster ID {before} -> {after}: the members must form one new cluster (new token)")
    if facts.get("revision_after_restore", 0) <= facts.get("revision_before_restore", 0):
        problems.append(f"revision went back from {facts.get('revision_before_restore')} to "
                        f"{facts.get('revision_after_restore')}: --bump-revision missing")
    new_rv = facts.get("new_write_resource_version")
    if new_rv is None or new_rv <= facts.get("max_resource_version_before", 0):
        problems.append(f"a write after the restore got resourceVersion {new_rv}, not above every one "
                        f"seen before ({facts.get('max_resource_version_before')})")
    if not facts.get("etcd_old_watch_compacted"):
        problems.append(f"an etcd watch from revision {facts.get('revision_before_restore')} (before the restore) "
                        "was not refused as compacted: --mark-compacted or --bump-revision missing")
    if facts.get("api_old_watch_status") != 410:
        problems.append(f"a watch from a resourceVersion of before the restore got {facts.get('api_old_watch_status')}, "
                        "not 410 Gone: clients would not re-list")
    if facts.get("api_answers_while_restoring", 0):
        problems.append(f"the API answered {facts['api_answers_while_restoring']} reads while etcd was being "
                        "restored: an apiserver was not stopped")
    if facts.get("api_unavailable_s") is None:
        problems.append("the API never answered again after the restore")
    return problems
