"""The clients that accompany an etcd restore through MASTER_URL: a writer of numbered ConfigMaps
(what the restore must keep, and what it must drop), and a reader that times the API's outage.

Both run in their own thread until stopped; the scenario stops them in a `finally`, so neither
outlives a step that failed.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from dataclasses import dataclass

from harness.failover.probe import ApiClient

WRITES_PER_S = 5.0


@dataclass
class Write:
    seq: int
    value: str
    acked_at: float      # time.monotonic() when the 201 arrived
    resource_version: int


def api(client: ApiClient, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    """One request on a new connection; (0, b"") when the API did not answer."""
    conn = client.connection()
    try:
        return client.request(conn, method, path, body)
    except (OSError, http.client.HTTPException):
        return 0, b""
    finally:
        conn.close()


class Writer:
    """Numbered ConfigMaps with a random value, POSTed through MASTER_URL until stopped; keeps
    the ones the API acknowledged (201), with when and at which resourceVersion."""

    def __init__(self, client: ApiClient, namespace: str):
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
            status, body = api(self.client, "POST", f"/api/v1/namespaces/{self.namespace}/configmaps",
                               {"metadata": {"name": f"write-{seq:06d}"}, "data": {"seq": str(seq), "value": value}})
            if status == 201:
                rv = int(json.loads(body)["metadata"]["resourceVersion"])
                self.acked.append(Write(seq, value, time.monotonic(), rv))


class ApiSampler:
    """A read through MASTER_URL every 0.2 s, each kept as (start, end, ok) in time.monotonic()."""

    def __init__(self, client: ApiClient):
        self.client, self.samples = client, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="restore-sampler")

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            start = time.monotonic()
            status, _ = api(self.client, "GET", "/api/v1/namespaces/default")
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
