"""Guide §3: kubectl and the admin kubeconfig (CN=admin, O=system:masters) on the masters."""

from __future__ import annotations

from harness.steps.actions import install_binaries, sync_files
from harness.steps.parallel import for_each
from harness.steps.context import StepContext

NAME = "kubectl"


def run_step(ctx: StepContext) -> None:
    for_each(ctx, NAME, ctx.lab.masters,
             lambda m: install_binaries(ctx, NAME, m, ["kubectl"]) + sync_files(ctx, NAME, m))
