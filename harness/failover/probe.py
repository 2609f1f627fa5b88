"""The probe that runs through every failover scenario.

From the host, through MASTER_URL on the VIP (the name is sent as TLS SNI and verified against the
cluster CA, the address is the lab's VIP), it keeps three streams going:

- reads on a new connection each time, several per second;
- reads on one reused connection, reopened only after it fails;
- ConfigMap writes with increasing sequence numbers at a steady rate, each acknowledged write
  recorded.

Afterwards it lists the ConfigMaps it wrote: an acknowledged write that is missing was lost, and
that must never happen. Bounded in time (the caller's duration) and in count (rate × duration);
the only address it talks to is the lab's VIP.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from harness.lab import Lab

NAMESPACE = "default"
LABEL = "k8s-ha-lab/probe-run"


@dataclass
class Sample:
    at: float        # seconds since the probe started
    stream: str      # "new", "reused" or "write"
    ok: bool
    detail: str = ""


@dataclass
class ProbeResult:
    run_id: str
    duration_s: float
    samples: list[Sample] = field(default_factory=list)
    acknowledged: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)

    def stream(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.stream == name]

    def longest_gap(self, name: str) -> float:
        """The longest time without a success on a stream, edges of the run included."""
        times = [0.0] + [s.at for s in self.stream(name) if s.ok] + [self.duration_s]
        return round(max(b - a for a, b in zip(times, times[1:])), 2)

    def failed(self, name: str | None = None) -> int:
        return sum(1 for s in self.samples if not s.ok and (name is None or s.stream == name))

    def summary(self) -> dict:
        return {"run_id": self.run_id, "duration_s": round(self.duration_s, 1),
                "longest_gap_new_s": self.longest_gap("new"),
                "longest_gap_reused_s": self.longest_gap("reused"),
                "longest_gap_write_s": self.longest_gap("write"),
                "requests": len(self.samples), "failed_requests": self.failed(),
                "acknowledged_writes": len(self.acknowledged), "lost_writes": len(self.missing)}


# The client's half of the haproxy profile (harness/render/lb.py): how long the probe, standing
# in for any API client, waits for a connection and then for an answer before it gives up and
# reconnects. seed: one 2 s timeout for both; tuned: a SYN to a dead VIP holder is abandoned
# after 0.5 s, an answer after 1 s, as a client configured for HA would (client-go leaves both
# at 30 s, which is why a kubectl may hang far longer than the VIP takes to move).
CLIENT_TIMEOUTS = {"seed": (2.0, 2.0), "tuned": (0.5, 1.0)}  # (connect, answer) in seconds


def client_timeouts(lab: Lab) -> tuple[float, float]:
    return CLIENT_TIMEOUTS[lab.haproxy.profile]


class ApiClient:
    """HTTPS to MASTER_URL at the VIP with the admin client certificate; no proxy, no DNS."""

    def __init__(self, lab: Lab, pki_dir: Path, timeout: float | None = None):
        self.address = (str(lab.api_address), lab.vip_port if lab.lbs else lab.api_port)
        connect, answer = client_timeouts(lab)
        self.server_name = lab.master_url
        self.connect_timeout, self.timeout = (connect, answer) if timeout is None else (timeout, timeout)
        self.tls = ssl.create_default_context(cafile=str(pki_dir / "ca.pem"))
        self.tls.load_cert_chain(str(pki_dir / "admin.pem"), str(pki_dir / "admin-key.pem"))

    def connection(self) -> http.client.HTTPSConnection:
        conn = http.client.HTTPSConnection(self.server_name, self.address[1], timeout=self.timeout,
                                           context=self.tls)
        # The name goes in SNI and is verified; the packets go to the VIP, as /etc/hosts says.
        conn._create_connection = self._connect  # noqa: SLF001
        return conn

    def _connect(self, _addr, _timeout, source) -> socket.socket:
        sock = socket.create_connection(self.address, self.connect_timeout, source)
        sock.settimeout(self.timeout)
        return sock

    @staticmethod
    def request(conn, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload else {}
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()


class Probe:
    def __init__(self, lab: Lab, pki_dir: Path, reads_per_s: float = 5.0, writes_per_s: float = 2.0):
        self.client = ApiClient(lab, pki_dir)
        self.read_interval, self.write_interval = 1 / reads_per_s, 1 / writes_per_s
        self.run_id = uuid.uuid4().hex[:8]
        self.samples: list[Sample] = []
        self.acknowledged: list[int] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._started = 0.0
        self._threads: list[threading.Thread] = []

    def _record(self, stream: str, ok: bool, detail: str = "") -> None:
        with self._lock:
            self.samples.append(Sample(round(time.monotonic() - self._started, 3), stream, ok, detail))

    def _read_new(self) -> None:
        while not self._stop.wait(self.read_interval):
            conn = self.client.connection()
            try:
                status, _ = self.client.request(conn, "GET", f"/api/v1/namespaces/{NAMESPACE}")
                self._record("new", status == 200, str(status))
            except (OSError, http.client.HTTPException) as exc:
                self._record("new", False, type(exc).__name__)
            finally:
                conn.close()

    def _read_reused(self) -> None:
        conn = None
        while not self._stop.wait(self.read_interval):
            conn = conn or self.client.connection()
            try:
                status, _ = self.client.request(conn, "GET", f"/api/v1/namespaces/{NAMESPACE}")
                self._record("reused", status == 200, str(status))
            except (OSError, http.client.HTTPException) as exc:
                self._record("reused", False, type(exc).__name__)
                conn.close()
                conn = None  # reopened on the next tick, as a client library would
        if conn:
            conn.close()

    def _write(self) -> None:
        seq = 0
        while not self._stop.wait(self.write_interval):
            seq += 1
            body = {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": f"probe-{self.run_id}-{seq:06d}", "labels": {LABEL: self.run_id}},
                    "data": {"seq": str(seq)}}
            conn = self.client.connection()
            try:
                status, _ = self.client.request(conn, "POST", f"/api/v1/namespaces/{NAMESPACE}/configmaps", body)
                ok = status == 201
                self._record("write", ok, str(status))
                if ok:
                    with self._lock:
                        self.acknowledged.append(seq)
            except (OSError, http.client.HTTPException) as exc:
                self._record("write", False, type(exc).__name__)
            finally:
                conn.close()

    def elapsed(self) -> float:
        """Seconds since the probe started, on the clock of its samples."""
        return round(time.monotonic() - self._started, 3)

    def start(self) -> "Probe":
        self._started = time.monotonic()
        for target in (self._read_new, self._read_reused, self._write):
            thread = threading.Thread(target=target, daemon=True, name=f"probe-{target.__name__}")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> ProbeResult:
        duration = time.monotonic() - self._started
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        return ProbeResult(self.run_id, duration, sorted(self.samples, key=lambda s: s.at),
                           sorted(self.acknowledged))

    def find_missing(self, result: ProbeResult, deadline_s: float = 120) -> ProbeResult:
        """List what was written (retrying while the API recovers) and record lost writes."""
        end = time.monotonic() + deadline_s
        while True:
            conn = self.client.connection()
            try:
                status, body = self.client.request(
                    conn, "GET", f"/api/v1/namespaces/{NAMESPACE}/configmaps?labelSelector={LABEL}%3D{self.run_id}")
                if status == 200:
                    found = {int(item["data"]["seq"]) for item in json.loads(body)["items"]}
                    result.missing = [seq for seq in result.acknowledged if seq not in found]
                    return result
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
            if time.monotonic() > end:
                raise TimeoutError(f"could not list the probe's ConfigMaps within {deadline_s:.0f}s")
            time.sleep(2)

    def cleanup(self) -> None:
        conn = self.client.connection()
        try:
            self.client.request(conn, "DELETE", f"/api/v1/namespaces/{NAMESPACE}/configmaps?labelSelector={LABEL}%3D{self.run_id}")
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
