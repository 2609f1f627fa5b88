"""Guide §1: the CA certificate on every machine, the CA key on the masters only.

The certificates themselves were made on the host (harness.pki_store) when the context was
built; the steps that use a certificate install it (etcd's in the etcd step, and so on)."""

from __future__ import annotations

from harness.steps.actions import sync_files
from harness.steps.parallel import for_each
from harness.steps.context import StepContext

NAME = "pki"


def run_step(ctx: StepContext) -> None:
    for_each(ctx, NAME, ctx.lab.machines, lambda m: sync_files(ctx, NAME, m))
