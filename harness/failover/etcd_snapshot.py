"""Snapshot and restore mechanics of the lab's etcd: take a snapshot, put the same file on every
member, and restore every member from it, timed.

The procedure (docs/scenarios.md, `etcd-snapshot-restore`, has the why): stop every
kube-apiserver and flanneld (the only writers to etcd), stop every etcd member, `etcdutl snapshot
restore` on each from the same file with a new cluster token, `--bump-revision` and
`--mark-compacted`, start the members, then the apiservers and flanneld. Used by the scenario
(harness.failover.etcd_restore_scenario) and by its drill's automatic restore.
"""

from __future__ import annotations

import json
import shlex
import time
import uuid

from harness.failover.etcd_restore_load import ApiSampler, api_outage
from harness.failover.probe import ApiClient
from harness.render import BIN_DIR
from harness.steps.actions import NotYet, etcdctl, run, wait_until
from harness.steps.parallel import for_each

STEP = "scenario"
SNAPSHOT = "/var/lib/etcd-snapshots/etcd-snapshot-restore.db"
DATA_DIR = "/var/lib/etcd"          # the rendered unit's --data-dir
# Far more revisions than a cluster writes between a snapshot and its restore (upstream's own
# advice), so every revision after the restore is above any a client has seen.
BUMP_REVISION = 1_000_000_000


def sh(env, machine, command: str, check: bool = True, timeout: float = 120):
    return run(env.ctx, STEP, machine, command, check=check, timeout=timeout)


def status(env) -> list[dict]:
    """`endpoint status` of every member that answers."""
    out = etcdctl(env.ctx, STEP, env.lab.etcd_members[0], "endpoint status -w json --command-timeout=3s",
                  endpoints=env.lab.etcd_endpoints, check=False).stdout
    try:
        return json.loads(out or "[]")
    except ValueError:
        return []


def cluster_ids(member_status: list[dict]) -> list[str]:
    return sorted({f"{s['Status']['header']['cluster_id']:x}" for s in member_status})


def _peer_url(lab, member) -> str:
    """The member's peer URL as the lab's --initial-cluster names it (one source for both)."""
    return dict(pair.split("=", 1) for pair in lab.etcd_initial_cluster.split(","))[lab.etcd_name(member)]


def take_snapshot(env) -> dict:
    """`etcdctl snapshot save` from the first member, then its revision and size per etcdutl."""
    first = env.lab.etcd_members[0]
    started = time.monotonic()
    sh(env, first, f"install -d -m 0700 {shlex.quote(SNAPSHOT.rsplit('/', 1)[0])}")
    etcdctl(env.ctx, STEP, first, f"snapshot save {SNAPSHOT}")
    took = round(time.monotonic() - started, 2)
    snapshot = json.loads(sh(env, first, f"{BIN_DIR}/etcdutl snapshot status {SNAPSHOT} -w json").stdout)
    return {"snapshot_s": took, "snapshot_revision": snapshot["revision"], "snapshot_keys": snapshot["totalKey"],
            "snapshot_bytes": snapshot["totalSize"], "snapshot_from": first.name}


def distribute_snapshot(env) -> dict[str, str]:
    """The one snapshot onto every member (through the host's memory, never its disk: it holds
    every Secret); machine -> sha256 of the file each member will restore from."""
    first = env.lab.etcd_members[0]
    data = env.ctx.on(first).read(SNAPSHOT)
    for member in env.lab.etcd_members[1:]:
        sh(env, member, f"install -d -m 0700 {shlex.quote(SNAPSHOT.rsplit('/', 1)[0])}")
        env.ctx.on(member).upload(SNAPSHOT, data, mode=0o600)
    return for_each(env.ctx, STEP, env.lab.etcd_members,
                    lambda m: sh(env, m, f"sha256sum {SNAPSHOT}").stdout.split()[0], "snapshot sha256")


def snapshot_on_every_member(env) -> dict[str, bool]:
    return for_each(env.ctx, STEP, env.lab.etcd_members,
                    lambda m: sh(env, m, f"test -s {SNAPSHOT}", check=False).exit_status == 0)


def _restore_member(env, member, token: str) -> float:
    """etcdutl into a fresh directory, then swap it in; the old data stays beside it until the
    restored cluster is healthy."""
    lab, started = env.lab, time.monotonic()
    fresh, old = f"{DATA_DIR}.restored", f"{DATA_DIR}.before-restore"
    sh(env, member, f"rm -rf {fresh} && {BIN_DIR}/etcdutl snapshot restore {SNAPSHOT} --name {lab.etcd_name(member)} "
       f"--initial-cluster {lab.etcd_initial_cluster} --initial-cluster-token {token} "
       f"--initial-advertise-peer-urls {_peer_url(lab, member)} --data-dir {fresh} "
       f"--bump-revision {BUMP_REVISION} --mark-compacted")
    sh(env, member, f"if [ -d {DATA_DIR} ]; then rm -rf {old} && mv {DATA_DIR} {old}; fi && "
       f"mv {fresh} {DATA_DIR} && chmod 0700 {DATA_DIR}")
    return round(time.monotonic() - started, 2)


def _members_healthy(env) -> float:
    def healthy():
        out = etcdctl(env.ctx, STEP, env.lab.etcd_members[0], "endpoint health -w json --command-timeout=2s",
                      endpoints=env.lab.etcd_endpoints, check=False).stdout
        try:
            answers = json.loads(out or "[]")
        except ValueError:
            answers = []
        if len(answers) != len(env.lab.etcd_members) or not all(a.get("health") for a in answers):
            raise NotYet(f"{sum(bool(a.get('health')) for a in answers)} of {len(env.lab.etcd_members)} healthy")
    started = time.monotonic()
    wait_until(env.ctx, STEP, env.lab.etcd_members[0], "every restored etcd member healthy", healthy,
               timeout=120, interval=0.1, unit="etcd")
    return time.monotonic() - started


def restore_from_snapshot(env, since: float | None = None) -> dict:
    """The whole procedure on the lab, timed; SNAPSHOT must already be on every member. With
    `since` (the break, time.monotonic()), `since_break_s` says when the restored cluster was
    ready, so the report draws the bound where the interval it governs began."""
    lab, ctx = env.lab, env.ctx
    token = f"etcd-cluster-{lab.name}-restored-{uuid.uuid4().hex[:8]}"
    sampler = ApiSampler(ApiClient(lab, ctx.pki_dir)).start()
    try:
        return _procedure(env, token, sampler, since)
    finally:
        sampler.stop()                    # never left polling if a step fails


def _procedure(env, token: str, sampler: ApiSampler, since: float | None) -> dict:
    lab, ctx = env.lab, env.ctx
    time.sleep(0.5)                       # a read or two that succeed before the stop
    before = status(env)
    t0 = time.monotonic()
    for_each(ctx, STEP, lab.masters, lambda m: sh(env, m, "systemctl stop kube-apiserver"), "stop kube-apiserver")
    t1 = time.monotonic()
    # flanneld writes to etcd too (its lease), and the restore moves the revision under its watch
    # (bumped and marked compacted): stopped for the restore, it starts on the new revision.
    for_each(ctx, STEP, lab.machines, lambda m: sh(env, m, "systemctl stop flanneld"), "stop flanneld")
    revision_before = max((s["Status"]["header"]["revision"] for s in status(env)), default=0)
    for_each(ctx, STEP, lab.etcd_members, lambda m: sh(env, m, "systemctl stop etcd"), "stop etcd")
    t2 = time.monotonic()
    restored = for_each(ctx, STEP, lab.etcd_members, lambda m: _restore_member(env, m, token), "etcdutl restore")
    t3 = time.monotonic()
    for_each(ctx, STEP, lab.etcd_members, lambda m: sh(env, m, "systemctl start --no-block etcd"), "start etcd")
    t4 = time.monotonic()
    _members_healthy(env)
    t5 = time.monotonic()
    # Type=notify: `systemctl start` returns once the apiserver said it is ready.
    for_each(ctx, STEP, lab.masters, lambda m: sh(env, m, "systemctl start kube-apiserver", timeout=180),
             "start kube-apiserver")
    t6 = time.monotonic()
    back = sampler.first_ok_after(t5)
    samples = sampler.stop()
    for_each(ctx, STEP, lab.machines, lambda m: sh(env, m, "systemctl start flanneld"), "start flanneld")
    after = status(env)
    return {"restore_token": token,
            "cluster_id_before": cluster_ids(before), "cluster_id_after": cluster_ids(after),
            "revision_before_restore": revision_before,
            "revision_after_restore": min((s["Status"]["header"]["revision"] for s in after), default=0),
            "apiservers_stopped_s": round(t1 - t0, 2), "flanneld_and_etcd_stopped_s": round(t2 - t1, 2),
            "etcdutl_restore_s": max(restored.values()), "data_restored_s": round(t3 - t2, 2),
            "restored_cluster_ready_s": round(t5 - t4, 2), "apiservers_ready_s": round(t6 - t5, 2),
            "restore_s": round(t6 - t0, 2),
            **({"since_break_s": round(t5 - since, 2)} if since is not None else {}),
            **api_outage(samples, t1, t5, back)}


def old_etcd_watch_refused(env, revision: int) -> bool:
    """Is an etcd watch from `revision` refused as compacted? From a revision a client saw before
    the restore it must be: that needs --mark-compacted, and --bump-revision so that the
    compacted revision is above it (without the bump the new cluster counts up from the
    snapshot's revision again, and the watch is accepted)."""
    first = env.lab.etcd_members[0]
    watch = sh(env, first, f"timeout 5 {BIN_DIR}/etcdctl --endpoints=https://{first.ip}:2379 "
               "--cacert=/etc/kubernetes/ssl/ca.pem --cert=/etc/etcd/ssl/etcd.pem --key=/etc/etcd/ssl/etcd-key.pem "
               f"watch --prefix --rev={revision} /registry/namespaces/", check=False)
    return "required revision has been compacted" in watch.stdout + watch.stderr


def remove_files(env) -> None:
    """The snapshot (it holds every Secret) and the data directories the restore left beside."""
    for_each(env.ctx, STEP, env.lab.etcd_members,
             lambda m: sh(env, m, f"rm -rf {SNAPSHOT} {DATA_DIR}.before-restore {DATA_DIR}.restored"), "clean up")
