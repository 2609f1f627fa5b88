"""Small observers the scenarios share: who holds the VIP, who leads, what haproxy thinks, and a
timer that measures how long until something becomes true."""

from __future__ import annotations

import json
import time
from typing import Callable

from harness.steps.actions import kubectl, run
from harness.steps.api_ha import vip_holders
from harness.steps.context import StepContext


def measure_until(condition: Callable[[], bool], timeout: float, interval: float = 0.2) -> float | None:
    """Seconds until `condition()` is true, or None if it never was within `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if condition():
                return round(time.monotonic() - started, 2)
        except Exception:  # noqa: BLE001 - a machine mid-failover may not answer; keep polling
            pass
        time.sleep(interval)
    return None


def vip_on(ctx: StepContext, machine_names: list[str]) -> list[str]:
    candidates = [m for m in ctx.lab.lbs if m.name in machine_names]
    return vip_holders(ctx, "scenario", candidates)


def lease_holder(ctx: StepContext, lease: str, via=None) -> tuple[str, int]:
    """(holderIdentity, leaseTransitions) of a kube-system Lease, asked through MASTER_URL."""
    out = kubectl(ctx, "scenario", f"-n kube-system get lease {lease} -o json", machine=via, timeout=10)
    spec = json.loads(out.stdout)["spec"]
    return spec.get("holderIdentity", ""), int(spec.get("leaseTransitions", 0))


def haproxy_backend_status(ctx: StepContext, lb, server: str) -> str:
    """What haproxy's stats (CSV, on the stats port with its password) say of one backend server."""
    port = ctx.lab.haproxy.stats_port
    password = ctx.secrets.haproxy_stats_password
    out = run(ctx, "scenario", lb, f"curl -s -u admin:{password} 'http://127.0.0.1:{port}/stats;csv'",
              check=False).stdout
    for line in out.splitlines():
        fields = line.split(",")
        if len(fields) > 17 and fields[0] == "k8s-api" and fields[1] == server:
            return fields[17]
    return "unknown"


def node_ready(ctx: StepContext, node_name: str) -> str:
    out = kubectl(ctx, "scenario", f"get node {node_name} -o json", timeout=10)
    conditions = json.loads(out.stdout)["status"]["conditions"]
    return next((c["status"] for c in conditions if c["type"] == "Ready"), "Unknown")
