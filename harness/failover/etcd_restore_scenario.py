"""`etcd-snapshot-restore`: a snapshot is taken while ConfigMaps are being written, a namespace with
objects is deleted, and every etcd member is restored from that one snapshot.

The procedure (docs/scenarios.md has the why): stop every kube-apiserver and flanneld (the only
writers to etcd), stop every etcd member, `etcdutl snapshot restore` on each from the same file
with a new cluster token, `--bump-revision` and `--mark-compacted`, start the members, then the
apiservers and flanneld. The scenario then checks what a restore promises: the namespace
is back, every write acknowledged before the snapshot is there with its value, the writes after
it are gone, revisions only go forward and an old watch is told to re-list.
"""

from __future__ import annotations

import json
import shlex
import threading
import time
import uuid
from dataclasses import dataclass

from harness.failover import bounds
from harness.failover.probe import ApiClient
from harness.render import BIN_DIR
from harness.steps.actions import NotYet, etcdctl, run, wait_until
from harness.steps.parallel import for_each

NAME = "etcd-snapshot-restore"
NAMESPACE = "snapshot-restore"
SNAPSHOT = "/var/lib/etcd-snapshots/etcd-snapshot-restore.db"
DATA_DIR = "/var/lib/etcd"          # the rendered unit's --data-dir
# Far more revisions than a cluster writes between a snapshot and its restore (upstream's own
# advice), so every revision after the restore is above any a client has seen.
BUMP_REVISION = 1_000_000_000
MIN_WRITES = 10                     # acknowledged before the snapshot, or the scenario proves little
WRITES_BEFORE_SNAPSHOT = 20         # what the scenario waits for before it takes the snapshot
WRITES_PER_S = 5.0
STEP = "scenario"


@dataclass
class Write:
    seq: int
    value: str
    acked_at: float      # time.monotonic() when the 201 arrived
    resource_version: int


class Writer:
    """Numbered ConfigMaps with a random value, POSTed through MASTER_URL until stopped; keeps
    the ones the API acknowledged (201), with when and at which resourceVersion."""

    def __init__(self, client: ApiClient, namespace: str = NAMESPACE):
        self.client, self.namespace = client, namespace
        self.acked: list[Write] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="restore-writer")

    def start(self) -> "Writer":
        self._thread.start()
        return self

    def stop(self) -> list[Write]:
        self._stop.set()
        self._thread.join(timeout=10)
        return list(self.acked)

    def _loop(self) -> None:
        seq = 0
        while not self._stop.wait(1 / WRITES_PER_S):
            seq += 1
            value = uuid.uuid4().hex
            status, body = _api(self.client, "POST", f"/api/v1/namespaces/{self.namespace}/configmaps",
                                {"metadata": {"name": f"write-{seq:06d}"}, "data": {"seq": str(seq), "value": value}})
            if status == 201:
                rv = int(json.loads(body)["metadata"]["resourceVersion"])
                self.acked.append(Write(seq, value, time.monotonic(), rv))


def _api(client: ApiClient, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    """One request on a new connection; (0, b"") when the API did not answer."""
    import http.client

    conn = client.connection()
    try:
        return client.request(conn, method, path, body)
    except (OSError, http.client.HTTPException):
        return 0, b""
    finally:
        conn.close()


class ApiSampler:
    """A read through MASTER_URL every 0.2 s, each kept as (start, end, ok) in time.monotonic()."""

    def __init__(self, client: ApiClient):
        self.client, self.samples = client, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="restore-sampler")

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            start = time.monotonic()
            status, _ = _api(self.client, "GET", "/api/v1/namespaces/default")
            self.samples.append((start, time.monotonic(), status == 200))

    def start(self) -> "ApiSampler":
        self._thread.start()
        return self

    def first_ok_after(self, t: float, timeout: float = 180) -> float | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            hit = next((s[1] for s in list(self.samples) if s[0] >= t and s[2]), None)
            if hit is not None:
                return hit
            time.sleep(0.2)
        return None

    def stop(self) -> list:
        self._stop.set()
        self._thread.join(timeout=5)
        return list(self.samples)


def api_outage(samples: list, stopped_at: float, etcd_ready_at: float, back_at: float | None) -> dict:
    """`api_unavailable_s`: from the end of the last read that succeeded before the apiservers
    were stopped to the end of the first that succeeded after. `api_answers_while_restoring`:
    reads that succeeded between every apiserver stopped and the restored etcd ready (must be 0:
    an apiserver that answers then serves a cache of the old cluster, or writes into the new)."""
    before = [end for start, end, ok in samples if ok and end <= stopped_at]
    during = [1 for start, end, ok in samples if ok and start >= stopped_at and end <= etcd_ready_at]
    last_ok = max(before) if before else stopped_at
    return {"api_unavailable_s": round(back_at - last_ok, 2) if back_at else None,
            "api_answers_while_restoring": len(during), "api_samples": len(samples)}


# --- etcd ---------------------------------------------------------------------------------------
def _sh(env, machine, command: str, check: bool = True, timeout: float = 120):
    return run(env.ctx, STEP, machine, command, check=check, timeout=timeout)


def _status(env) -> list[dict]:
    """`endpoint status` of every member that answers."""
    out = etcdctl(env.ctx, STEP, env.lab.etcd_members[0], "endpoint status -w json --command-timeout=3s",
                  endpoints=env.lab.etcd_endpoints, check=False).stdout
    try:
        return json.loads(out or "[]")
    except ValueError:
        return []


def _peer_url(lab, member) -> str:
    """The member's peer URL as the lab's --initial-cluster names it (one source for both)."""
    return dict(pair.split("=", 1) for pair in lab.etcd_initial_cluster.split(","))[lab.etcd_name(member)]


def take_snapshot(env) -> dict:
    """`etcdctl snapshot save` from the first member, then its revision and size per etcdutl."""
    first = env.lab.etcd_members[0]
    started = time.monotonic()
    _sh(env, first, f"install -d -m 0700 {shlex.quote(SNAPSHOT.rsplit('/', 1)[0])}")
    etcdctl(env.ctx, STEP, first, f"snapshot save {SNAPSHOT}")
    took = round(time.monotonic() - started, 2)
    status = json.loads(_sh(env, first, f"{BIN_DIR}/etcdutl snapshot status {SNAPSHOT} -w json").stdout)
    return {"snapshot_s": took, "snapshot_revision": status["revision"], "snapshot_keys": status["totalKey"],
            "snapshot_bytes": status["totalSize"], "snapshot_from": first.name}


def distribute_snapshot(env) -> dict[str, str]:
    """The one snapshot onto every member (through the host's memory, never its disk: it holds
    every Secret); machine -> sha256 of the file each member will restore from."""
    first = env.lab.etcd_members[0]
    data = env.ctx.on(first).read(SNAPSHOT)
    for member in env.lab.etcd_members[1:]:
        _sh(env, member, f"install -d -m 0700 {shlex.quote(SNAPSHOT.rsplit('/', 1)[0])}")
        env.ctx.on(member).upload(SNAPSHOT, data, mode=0o600)
    return for_each(env.ctx, STEP, env.lab.etcd_members,
                    lambda m: _sh(env, m, f"sha256sum {SNAPSHOT}").stdout.split()[0], "snapshot sha256")


def _restore_member(env, member, token: str) -> float:
    """etcdutl into a fresh directory, then swap it in; the old data stays beside it until the
    restored cluster is healthy."""
    lab, started = env.lab, time.monotonic()
    fresh, old = f"{DATA_DIR}.restored", f"{DATA_DIR}.before-restore"
    _sh(env, member, f"rm -rf {fresh} && {BIN_DIR}/etcdutl snapshot restore {SNAPSHOT} --name {lab.etcd_name(member)} "
        f"--initial-cluster {lab.etcd_initial_cluster} --initial-cluster-token {token} "
        f"--initial-advertise-peer-urls {_peer_url(lab, member)} --data-dir {fresh} "
        f"--bump-revision {BUMP_REVISION} --mark-compacted")
    _sh(env, member, f"if [ -d {DATA_DIR} ]; then rm -rf {old} && mv {DATA_DIR} {old}; fi && "
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
    before = _status(env)
    t0 = time.monotonic()
    for_each(ctx, STEP, lab.masters, lambda m: _sh(env, m, "systemctl stop kube-apiserver"), "stop kube-apiserver")
    t1 = time.monotonic()
    # flanneld writes to etcd too (its lease), and its watch cannot re-list after a compaction:
    # stopped for the restore, it starts again watching from the new revision.
    for_each(ctx, STEP, lab.machines, lambda m: _sh(env, m, "systemctl stop flanneld"), "stop flanneld")
    revision_before = max((s["Status"]["header"]["revision"] for s in _status(env)), default=0)
    for_each(ctx, STEP, lab.etcd_members, lambda m: _sh(env, m, "systemctl stop etcd"), "stop etcd")
    t2 = time.monotonic()
    restored = for_each(ctx, STEP, lab.etcd_members, lambda m: _restore_member(env, m, token), "etcdutl restore")
    t3 = time.monotonic()
    for_each(ctx, STEP, lab.etcd_members, lambda m: _sh(env, m, "systemctl start --no-block etcd"), "start etcd")
    t4 = time.monotonic()
    _members_healthy(env)
    t5 = time.monotonic()
    # Type=notify: `systemctl start` returns once the apiserver said it is ready.
    for_each(ctx, STEP, lab.masters, lambda m: _sh(env, m, "systemctl start kube-apiserver", timeout=180),
             "start kube-apiserver")
    t6 = time.monotonic()
    back = sampler.first_ok_after(t5)
    samples = sampler.stop()
    for_each(ctx, STEP, lab.machines, lambda m: _sh(env, m, "systemctl start flanneld"), "start flanneld")
    after = _status(env)
    return {"restore_token": token,
            "cluster_id_before": _cluster_ids(before), "cluster_id_after": _cluster_ids(after),
            "revision_before_restore": revision_before,
            "revision_after_restore": min((s["Status"]["header"]["revision"] for s in after), default=0),
            "apiservers_stopped_s": round(t1 - t0, 2), "flanneld_and_etcd_stopped_s": round(t2 - t1, 2),
            "etcdutl_restore_s": max(restored.values()), "data_restored_s": round(t3 - t2, 2),
            "restored_cluster_ready_s": round(t5 - t4, 2), "apiservers_ready_s": round(t6 - t5, 2),
            "restore_s": round(t6 - t0, 2),
            **({"since_break_s": round(t5 - since, 2)} if since is not None else {}),
            **api_outage(samples, t1, t5, back)}


def _cluster_ids(status: list[dict]) -> list[str]:
    return sorted({f"{s['Status']['header']['cluster_id']:x}" for s in status})


# --- the namespace and what the restore must bring back -------------------------------------------
def _namespace_status(client: ApiClient) -> tuple[int, str]:
    status, body = _api(client, "GET", f"/api/v1/namespaces/{NAMESPACE}")
    return status, (json.loads(body).get("status", {}).get("phase", "") if status == 200 else "")


def delete_namespace(client: ApiClient, timeout: float = 180) -> float | None:
    """DELETE, then seconds until the API says 404 (the namespace controller has deleted every
    object in it first); None if it never went."""
    started = time.monotonic()
    _api(client, "DELETE", f"/api/v1/namespaces/{NAMESPACE}")
    while time.monotonic() - started < timeout:
        if _namespace_status(client)[0] == 404:
            return round(time.monotonic() - started, 2)
        time.sleep(0.5)
    return None


def create_namespace(client: ApiClient) -> None:
    if _namespace_status(client)[0] == 200 and delete_namespace(client) is None:   # a run that stopped half-way
        raise RuntimeError(f"namespace {NAMESPACE} from an earlier run would not go away")
    status, body = _api(client, "POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
    if status != 201:
        raise RuntimeError(f"creating namespace {NAMESPACE}: HTTP {status} {body[:200]!r}")


def _old_api_watch(client: ApiClient, resource_version: int) -> int:
    """The HTTP status, or the code of the first (ERROR) event, of a watch from an old revision."""
    status, body = _api(client, "GET", f"/api/v1/namespaces/{NAMESPACE}/configmaps?watch=1"
                        f"&resourceVersion={resource_version}&timeoutSeconds=1")
    if status != 200:
        return status
    first = next((line for line in body.decode(errors="replace").splitlines() if line.strip()), "{}")
    event = json.loads(first)
    return int(event.get("object", {}).get("code", 200)) if event.get("type") == "ERROR" else 200


def old_etcd_watch_refused(env, revision: int) -> bool:
    """Is an etcd watch from `revision` refused as compacted? From a revision a client saw before
    the restore it must be: that needs --mark-compacted, and --bump-revision so that the
    compacted revision is above it (without the bump the new cluster counts up from the
    snapshot's revision again, and the watch is accepted)."""
    first = env.lab.etcd_members[0]
    watch = _sh(env, first, f"timeout 5 {BIN_DIR}/etcdctl --endpoints=https://{first.ip}:2379 "
                "--cacert=/etc/kubernetes/ssl/ca.pem --cert=/etc/etcd/ssl/etcd.pem --key=/etc/etcd/ssl/etcd-key.pem "
                f"watch --prefix --rev={revision} /registry/namespaces/", check=False)
    return "required revision has been compacted" in watch.stdout + watch.stderr


def observe_restored(env, client: ApiClient, before: list[Write], after: list[Write], revision_before: int) -> dict:
    """What the restore promises, as seen through the API and etcd."""
    status, phase = 0, ""
    end = time.monotonic() + 60
    while status != 200 and time.monotonic() < end:
        status, phase = _namespace_status(client)
        time.sleep(0 if status == 200 else 1)
    code, body = _api(client, "GET", f"/api/v1/namespaces/{NAMESPACE}/configmaps")
    present = {item["metadata"]["name"]: item.get("data", {}) for item in json.loads(body)["items"]} if code == 200 else {}
    lost = [w.seq for w in before if f"write-{w.seq:06d}" not in present]
    changed = [w.seq for w in before if w.seq not in lost and present[f"write-{w.seq:06d}"].get("value") != w.value]
    new_status, new_body = _api(client, "POST", f"/api/v1/namespaces/{NAMESPACE}/configmaps",
                                {"metadata": {"name": "after-restore"}, "data": {"seq": "after"}})
    return {"namespace_back": status == 200 and phase == "Active",
            "writes_present_after_restore": len(present),
            "writes_lost": lost, "writes_changed": changed,
            "writes_after_snapshot_present": sum(f"write-{w.seq:06d}" in present for w in after),
            "etcd_old_watch_compacted": old_etcd_watch_refused(env, revision_before),
            "api_old_watch_status": _old_api_watch(client, max((w.resource_version for w in before), default=1)),
            "new_write_resource_version": (int(json.loads(new_body)["metadata"]["resourceVersion"])
                                           if new_status == 201 else None)}


def cleanup(env) -> None:
    """The scenario's traces: its namespace, the snapshot (it holds every Secret), the old data."""
    _api(ApiClient(env.lab, env.ctx.pki_dir), "DELETE", f"/api/v1/namespaces/{NAMESPACE}")
    for_each(env.ctx, STEP, env.lab.etcd_members,
             lambda m: _sh(env, m, f"rm -rf {SNAPSHOT} {DATA_DIR}.before-restore {DATA_DIR}.restored"), "clean up")


# --- the scenario ---------------------------------------------------------------------------------
def bound(env) -> bounds.Bound:
    return bounds.restored_cluster_elected()


def _wait_writes(writer: Writer, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(writer.acked) < WRITES_BEFORE_SNAPSHOT and time.monotonic() < deadline:
        time.sleep(0.2)


def act(env) -> dict:
    started = time.monotonic()
    client = ApiClient(env.lab, env.ctx.pki_dir)
    create_namespace(client)
    writer = Writer(client).start()
    try:
        _wait_writes(writer)
        snapshot_started = time.monotonic()
        snapshot = take_snapshot(env)
        snapshot_done = time.monotonic()
        time.sleep(1.5)               # writes the snapshot cannot hold: the restore must drop them
    finally:
        acked = writer.stop()         # never left writing if the snapshot fails
    before = [w for w in acked if w.acked_at < snapshot_started]
    after = [w for w in acked if w.acked_at > snapshot_done]
    deleted = delete_namespace(client)
    if deleted is None:
        raise RuntimeError(f"namespace {NAMESPACE} was not deleted within 180 s")
    digests = distribute_snapshot(env)
    procedure = restore_from_snapshot(env, since=started)
    seen = observe_restored(env, client, before, after, procedure["revision_before_restore"])
    return {**snapshot, "restore_point_after_break_s": round(snapshot_started - started, 3),
            "writes_acked_before_snapshot": len(before), "writes_acked_after_snapshot": len(after),
            "max_resource_version_before": max([w.resource_version for w in acked] + [procedure["revision_before_restore"]]),
            "namespace_deleted_s": deleted, "snapshot_sha256": digests, **procedure, **seen}


def _wait_api(env, timeout: float = 180) -> None:
    client = ApiClient(env.lab, env.ctx.pki_dir)

    def answers():
        if _api(client, "GET", "/api/v1/namespaces/default")[0] != 200:
            raise NotYet("the API does not answer through MASTER_URL")
    wait_until(env.ctx, STEP, env.lab.masters[0], "the API through MASTER_URL", answers, timeout=timeout,
               unit="kube-apiserver")


def restore(env) -> None:
    """Whatever state act left: a cluster that is not one healthy cluster gets the whole
    procedure from the snapshot (if every member has it); then every control-plane unit runs,
    the API answers and the scenario's traces go."""
    lab = env.lab

    def one_cluster() -> bool:
        status = _status(env)
        return len(status) == len(lab.etcd_members) and len(_cluster_ids(status)) == 1
    end = time.monotonic() + 30
    while not one_cluster() and time.monotonic() < end:
        for_each(env.ctx, STEP, lab.etcd_members, lambda m: _sh(env, m, "systemctl start --no-block etcd"))
        time.sleep(3)
    if not one_cluster():
        has = for_each(env.ctx, STEP, lab.etcd_members, lambda m: _sh(env, m, f"test -s {SNAPSHOT}", check=False).exit_status == 0)
        if not all(has.values()):
            raise RuntimeError(f"etcd is not one healthy cluster and the snapshot is missing on "
                               f"{[n for n, ok in has.items() if not ok]}: restore by hand")
        restore_from_snapshot(env)
    for_each(env.ctx, STEP, lab.masters, lambda m: _sh(
        env, m, "systemctl start kube-apiserver kube-controller-manager kube-scheduler", timeout=180))
    for_each(env.ctx, STEP, lab.machines, lambda m: _sh(env, m, "systemctl start flanneld"))
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


# --- the drill: the namespace is gone, the snapshot is there, the trainee restores ------------------
DRILL_RECORD = "etcd-restore-drill.json"   # in the lab's state folder: what the restore must bring back
DRILL_OBSERVE = (f"Namespace `{NAMESPACE}` and its ConfigMaps were deleted by mistake. A snapshot taken just "
                 f"before is on the first etcd member, {SNAPSHOT}. Bring them back from it the way etcd's "
                 "disaster recovery does, on every member, so that no client keeps a view of the cluster "
                 "from before (`etcdutl snapshot restore --help`; `etcdctl endpoint status -w table`).")


def drill_breaks(env) -> None:
    client = ApiClient(env.lab, env.ctx.pki_dir)
    create_namespace(client)
    writer = Writer(client).start()
    try:
        _wait_writes(writer)
    finally:
        acked = writer.stop()
    snapshot = take_snapshot(env)
    if delete_namespace(client) is None:
        raise RuntimeError(f"namespace {NAMESPACE} was not deleted within 180 s")
    status = _status(env)       # the deletion's revisions are ones clients have seen
    record = {"writes": {f"write-{w.seq:06d}": w.value for w in acked},
              "revision": max(s["Status"]["header"]["revision"] for s in status),
              "cluster_ids": _cluster_ids(status), "snapshot_revision": snapshot["snapshot_revision"]}
    (env.ctx.state_dir / DRILL_RECORD).write_text(json.dumps(record, indent=2) + "\n")


def _drill_record(env) -> dict | None:
    """The record of the drill broken now; None before a break (or for another drill)."""
    from harness.failover.drills import STATE_FILE

    state, record = env.ctx.state_dir / STATE_FILE, env.ctx.state_dir / DRILL_RECORD
    if not (state.exists() and record.exists()) or json.loads(state.read_text()).get("name") != NAME:
        return None
    return json.loads(record.read_text())


def drill_fixed(env) -> list[str]:
    status = _status(env)
    healthy = [s for s in status if s.get("Status")]
    problems = [] if len(healthy) == len(env.lab.etcd_members) else \
        [f"{len(healthy)} of {len(env.lab.etcd_members)} etcd members answer"]
    record = _drill_record(env)
    if record is None:
        return problems
    client = ApiClient(env.lab, env.ctx.pki_dir)
    if _namespace_status(client) != (200, "Active"):
        return problems + [f"namespace {NAMESPACE} is not there (Active)"]
    code, body = _api(client, "GET", f"/api/v1/namespaces/{NAMESPACE}/configmaps")
    present = {i["metadata"]["name"]: i.get("data", {}).get("value") for i in json.loads(body)["items"]} if code == 200 else {}
    wrong = sorted(name for name, value in record["writes"].items() if present.get(name) != value)
    if wrong:
        problems.append(f"{len(wrong)} of {len(record['writes'])} ConfigMaps missing or changed, e.g. {wrong[0]}")
    ids = _cluster_ids(status)
    if len(ids) != 1 or ids == record["cluster_ids"]:
        problems.append(f"etcd cluster ID {ids}: every member must be restored into one new cluster")
    if not old_etcd_watch_refused(env, record["revision"]):
        problems.append(f"an etcd watch from revision {record['revision']}, one clients saw before the restore, "
                        "is not refused as compacted: their caches would never learn of the restore")
    return problems


def drill_restore(env) -> None:
    distribute_snapshot(env)
    restore_from_snapshot(env)
    restore(env)
    (env.ctx.state_dir / DRILL_RECORD).unlink(missing_ok=True)
