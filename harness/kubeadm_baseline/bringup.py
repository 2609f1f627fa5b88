"""Runs the kubeadm baseline's phases in order, a ✓/✗ line each, and times them in the rows the
benchmark compares with the harness's steps.

The rows (ROWS) are the work both clusters do (`render` is the host's own: the lab's PKI
ensured in its state folder, kept from an earlier run when it still fits, and every file
rendered; both sides need it, kubeadm's for the hosts and VIP files), whoever does it: the harness's steps map onto
them by HARNESS_ROWS, kubeadm's phases by the `[phase]` prefixes of its own output (KUBEADM_ROWS).
Two rows are not like for like and the benchmark says so: the harness's `nodes` step also puts
containerd, the kubelet and the images in place, which on the kubeadm side is `host prep` (what
kubeadm's users do with packages and image pulls before kubeadm runs).
"""

from __future__ import annotations

import time

from harness.kubeadm_baseline import phases
from harness.kubeadm_baseline.artifacts import BaselineArtifacts
from harness.kubeadm_baseline.config import JoinSecrets
from harness.progress import phase
from harness.steps.context import StepContext

ROWS = ("machines", "render", "host prep", "certificates", "etcd", "control plane", "LB/VIP", "nodes join",
        "CNI", "workload")
# harness step -> row
HARNESS_ROWS = {"machines": "machines", "hosts": "host prep", "pki": "certificates",
                "kubectl": "certificates", "etcd": "etcd", "flannel": "CNI",
                "masters": "control plane", "api-ha": "LB/VIP", "nodes": "nodes join",
                "workload": "workload"}
# kubeadm's own phase prefix -> row; any other prefix of `kubeadm init` or a master's join
# (preflight, control-plane, kubelet-start, wait-control-plane, upload-*, addons, ...) is
# control-plane work.
KUBEADM_ROWS = {"certs": "certificates", "kubeconfig": "certificates", "etcd": "etcd"}


def rows_from_harness(step_seconds: dict[str, float]) -> dict[str, float]:
    rows: dict[str, float] = {}
    for step, seconds in step_seconds.items():
        row = HARNESS_ROWS.get(step)
        if row:
            rows[row] = round(rows.get(row, 0.0) + seconds, 1)
    return rows


def rows_from_kubeadm(kubeadm_phases: dict[str, float]) -> dict[str, float]:
    rows: dict[str, float] = {}
    for name, seconds in kubeadm_phases.items():
        row = KUBEADM_ROWS.get(name, "control plane")
        rows[row] = round(rows.get(row, 0.0) + seconds, 2)
    return rows


def run_baseline(ctx: StepContext, art: BaselineArtifacts) -> dict:
    """Every phase after `machines`; returns the rows, kubeadm's own phases and each phase's
    wall time."""
    kr = phases.KubeadmRun(ctx, art, JoinSecrets.generate())
    rows: dict[str, float] = {}
    detail: dict = {}

    def timed(label: str, row: str | None, fn):
        started = time.monotonic()
        with phase(f"kubeadm: {label}"):
            result = fn()
        seconds = round(time.monotonic() - started, 1)
        detail.setdefault("wall_s", {})[label] = seconds
        if row:
            rows[row] = round(rows.get(row, 0.0) + seconds, 1)
        return result

    timed("host prep (binaries, kubelet unit, containerd, images)", "host prep", lambda: phases.prepare(kr))
    detail["image_aliases"] = timed("images kubeadm asks for", "host prep", lambda: phases.alias_images(kr))
    timed("LB/VIP (haproxy, keepalived)", "LB/VIP", lambda: phases.load_balancer(ctx))
    init = timed("kubeadm init (first master)", None, lambda: phases.init_first_master(kr))
    joins = timed("kubeadm join --control-plane (other masters, one at a time)", None,
                  lambda: phases.join_masters(kr))
    for seconds in (init, *joins.values()):
        for row, value in rows_from_kubeadm(seconds).items():
            rows[row] = round(rows.get(row, 0.0) + value, 1)
    detail["kubeadm_init_phases"], detail["kubeadm_master_joins"] = init, joins
    detail["kubeadm_worker_joins"] = timed("kubeadm join (workers, at once)", "nodes join",
                                           lambda: phases.join_workers(kr))
    timed("CNI (flannel DaemonSet, conflists, nodes Ready)", "CNI", lambda: phases.cni(ctx))
    timed("workload (the harness's nginx-ds step)", "workload", lambda: phases.run_workload(ctx))
    return {"rows": rows, **detail}
