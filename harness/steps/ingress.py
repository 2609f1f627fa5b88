"""The guide's intro: the ingress add-on (being built; see issue 11)."""

from __future__ import annotations

from harness.steps.context import StepContext

NAME = "ingress"


def run_step(ctx: StepContext) -> None:
    if not ctx.lab.has_addon(NAME):
        return
    raise NotImplementedError(f"the {NAME} step is not built yet")
