"""Guide §3: kubectl and the admin kubeconfig (CN=admin, O=system:masters) on the masters."""

from __future__ import annotations

from harness.steps.actions import install_binaries, sync_files
from harness.steps.context import StepContext

NAME = "kubectl"


def run_step(ctx: StepContext) -> None:
    for m in ctx.lab.masters:
        install_binaries(ctx, NAME, m, ["kubectl"])
        sync_files(ctx, NAME, m)
