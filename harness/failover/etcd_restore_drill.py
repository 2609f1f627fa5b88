"""The `etcd-snapshot-restore` drill: the namespace is gone, a snapshot taken before is there, and
the trainee restores every member from it (`python -m harness scenario break|verify|restore`).

`drill_breaks` writes ConfigMaps, takes the snapshot, deletes the namespace and records in the
lab's state folder what a restore must bring back; `drill_fixed` compares the lab with that
record; `drill_restore` does the restore for the trainee.
"""

from __future__ import annotations

import json

from harness.failover import etcd_snapshot
from harness.failover.drills import STATE_FILE
from harness.failover.etcd_restore_load import Writer
from harness.failover.etcd_restore_namespace import (NAMESPACE, configmaps, create_namespace, delete_namespace,
                                                     namespace_status)
from harness.failover.etcd_restore_scenario import NAME, restore, wait_writes
from harness.failover.probe import ApiClient

DRILL_RECORD = "etcd-restore-drill.json"   # in the lab's state folder: what the restore must bring back
DRILL_OBSERVE = (f"Namespace `{NAMESPACE}` and its ConfigMaps were deleted by mistake. A snapshot taken just "
                 f"before is on the first etcd member, {etcd_snapshot.SNAPSHOT}. Bring them back from it the way "
                 "etcd's disaster recovery does, on every member, so that no client keeps a view of the cluster "
                 "from before (`etcdutl snapshot restore --help`; `etcdctl endpoint status -w table`).")


def drill_breaks(env) -> None:
    client = ApiClient(env.lab, env.ctx.pki_dir)
    create_namespace(client)
    writer = Writer(client, NAMESPACE).start()
    try:
        wait_writes(writer)
    finally:
        acked = writer.stop()
    snapshot = etcd_snapshot.take_snapshot(env)
    if delete_namespace(client) is None:
        raise RuntimeError(f"namespace {NAMESPACE} was not deleted within 180 s")
    status = etcd_snapshot.status(env)       # the deletion's revisions are ones clients have seen
    record = {"writes": {f"write-{w.seq:06d}": w.value for w in acked},
              "revision": max(s["Status"]["header"]["revision"] for s in status),
              "cluster_ids": etcd_snapshot.cluster_ids(status), "snapshot_revision": snapshot["snapshot_revision"]}
    (env.ctx.state_dir / DRILL_RECORD).write_text(json.dumps(record, indent=2) + "\n")


def _drill_record(env) -> dict | None:
    """The record of the drill broken now; None before a break (or for another drill)."""
    state, record = env.ctx.state_dir / STATE_FILE, env.ctx.state_dir / DRILL_RECORD
    if not (state.exists() and record.exists()) or json.loads(state.read_text()).get("name") != NAME:
        return None
    return json.loads(record.read_text())


def drill_fixed(env) -> list[str]:
    status = etcd_snapshot.status(env)
    healthy = [s for s in status if s.get("Status")]
    problems = [] if len(healthy) == len(env.lab.etcd_members) else \
        [f"{len(healthy)} of {len(env.lab.etcd_members)} etcd members answer"]
    record = _drill_record(env)
    if record is None:
        return problems
    client = ApiClient(env.lab, env.ctx.pki_dir)
    if namespace_status(client) != (200, "Active"):
        return problems + [f"namespace {NAMESPACE} is not there (Active)"]
    present = {name: data.get("value") for name, data in configmaps(client).items()}
    wrong = sorted(name for name, value in record["writes"].items() if present.get(name) != value)
    if wrong:
        problems.append(f"{len(wrong)} of {len(record['writes'])} ConfigMaps missing or changed, e.g. {wrong[0]}")
    ids = etcd_snapshot.cluster_ids(status)
    if len(ids) != 1 or ids == record["cluster_ids"]:
        problems.append(f"etcd cluster ID {ids}: every member must be restored into one new cluster")
    if not etcd_snapshot.old_etcd_watch_refused(env, record["revision"]):
        problems.append(f"an etcd watch from revision {record['revision']}, one clients saw before the restore, "
                        "is not refused as compacted: their caches would never learn of the restore")
    return problems


def drill_restore(env) -> None:
    etcd_snapshot.distribute_snapshot(env)
    etcd_snapshot.restore_from_snapshot(env)
    restore(env)
    (env.ctx.state_dir / DRILL_RECORD).unlink(missing_ok=True)
