"""The namespace an etcd restore must bring back, and what a restore promises as seen through the
API and etcd: the namespace is Active again, every write acknowledged before the snapshot is there
with its value, the writes after it are gone, revisions only go forward and an old watch is told
to re-list.
"""

from __future__ import annotations

import json
import time

from harness.failover import etcd_snapshot
from harness.failover.etcd_restore_load import Write, api
from harness.failover.probe import ApiClient

NAMESPACE = "snapshot-restore"


def namespace_status(client: ApiClient) -> tuple[int, str]:
    status, body = api(client, "GET", f"/api/v1/namespaces/{NAMESPACE}")
    return status, (json.loads(body).get("status", {}).get("phase", "") if status == 200 else "")


def delete_namespace(client: ApiClient, timeout: float = 180) -> float | None:
    """DELETE, then seconds until the API says 404 (the namespace controller has deleted every
    object in it first); None if it never went."""
    started = time.monotonic()
    api(client, "DELETE", f"/api/v1/namespaces/{NAMESPACE}")
    while time.monotonic() - started < timeout:
        if namespace_status(client)[0] == 404:
            return round(time.monotonic() - started, 2)
        time.sleep(0.5)
    return None


def create_namespace(client: ApiClient) -> None:
    if namespace_status(client)[0] == 200 and delete_namespace(client) is None:   # a run that stopped half-way
        raise RuntimeError(f"namespace {NAMESPACE} from an earlier run would not go away")
    status, body = api(client, "POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
    if status != 201:
        raise RuntimeError(f"creating namespace {NAMESPACE}: HTTP {status} {body[:200]!r}")


def configmaps(client: ApiClient) -> dict[str, dict]:
    """name -> data of every ConfigMap in the namespace; empty when the API did not list them."""
    code, body = api(client, "GET", f"/api/v1/namespaces/{NAMESPACE}/configmaps")
    return {item["metadata"]["name"]: item.get("data", {}) for item in json.loads(body)["items"]} if code == 200 else {}


def old_api_watch(client: ApiClient, resource_version: int) -> int:
    """The HTTP status, or the code of the first (ERROR) event, of a watch from an old revision."""
    status, body = api(client, "GET", f"/api/v1/namespaces/{NAMESPACE}/configmaps?watch=1"
                       f"&resourceVersion={resource_version}&timeoutSeconds=1")
    if status != 200:
        return status
    first = next((line for line in body.decode(errors="replace").splitlines() if line.strip()), "{}")
    event = json.loads(first)
    return int(event.get("object", {}).get("code", 200)) if event.get("type") == "ERROR" else 200


def observe_restored(env, client: ApiClient, before: list[Write], after: list[Write], revision_before: int) -> dict:
    """What the restore promises, as seen through the API and etcd."""
    status, phase = 0, ""
    end = time.monotonic() + 60
    while status != 200 and time.monotonic() < end:
        status, phase = namespace_status(client)
        time.sleep(0 if status == 200 else 1)
    present = configmaps(client)
    lost = [w.seq for w in before if f"write-{w.seq:06d}" not in present]
    changed = [w.seq for w in before if w.seq not in lost and present[f"write-{w.seq:06d}"].get("value") != w.value]
    new_status, new_body = api(client, "POST", f"/api/v1/namespaces/{NAMESPACE}/configmaps",
                               {"metadata": {"name": "after-restore"}, "data": {"seq": "after"}})
    return {"namespace_back": status == 200 and phase == "Active",
            "writes_present_after_restore": len(present),
            "writes_lost": lost, "writes_changed": changed,
            "writes_after_snapshot_present": sum(f"write-{w.seq:06d}" in present for w in after),
            "etcd_old_watch_compacted": etcd_snapshot.old_etcd_watch_refused(env, revision_before),
            "api_old_watch_status": old_api_watch(client, max((w.resource_version for w in before), default=1)),
            "new_write_resource_version": (int(json.loads(new_body)["metadata"]["resourceVersion"])
                                           if new_status == 201 else None)}
