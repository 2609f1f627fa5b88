"""Guide §8: the nginx-ds DaemonSet and its NodePort Service, one pod per node."""

from __future__ import annotations

import json

from harness.steps.actions import NotYet, kubectl, kubectl_apply, sync_files, wait_until
from harness.steps.context import StepContext

NAME = "workload"
MANIFEST = "/etc/kubernetes/addons/nginx-ds.yaml"


def run_step(ctx: StepContext) -> None:
    first = ctx.lab.masters[0]
    sync_files(ctx, NAME, first)
    kubectl_apply(ctx, NAME, MANIFEST)
    expected = len(ctx.lab.nodes)

    def rolled_out():
        ds = json.loads(kubectl(ctx, NAME, "get ds nginx-ds -o json").stdout)["status"]
        ready, desired = ds.get("numberReady", 0), ds.get("desiredNumberScheduled", 0)
        if desired != expected or ready != expected:
            raise NotYet(f"nginx-ds: {ready} ready of {desired} scheduled, want {expected}")
    wait_until(ctx, NAME, first, f"nginx-ds Ready on all {expected} nodes", rolled_out,
               timeout=240, interval=3, command="kubectl get ds nginx-ds")
