"""The guide's deployment steps as session fixtures, each depending on the one before.

A test that needs flannel asks for `flannel`; pytest brings up the machines and runs hosts, pki,
etcd and kubectl first. The chain is built from harness.steps.STEPS, so the order is written once. Every step is idempotent, so asking twice costs a check, not a redeploy.
The lab options (--lab, --keep, --provider) and the `lab`, `lab_state` and `machines` fixtures
come from the harness's plugin.
"""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["harness.pytest_plugin"]

_TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="session")
def step_context(lab, lab_state, machines):
    from harness.steps.context import build_context

    ctx = build_context(lab, lab_state)
    yield ctx
    ctx.close()


@pytest.fixture(scope="session")
def lab_provider(lab, lab_state, machines):
    """The provider the lab is up with, for scenarios that stop and start machines."""
    from harness.providers import resolve_provider

    return resolve_provider(lab, lab_state)


def _step_fixture(step: str, previous: str):
    """A session fixture that runs `step` after the fixture of the step before it."""
    from harness.steps.runner import run_one
    from harness.steps import STEPS

    info = next(s for s in STEPS if s.name == step)

    def fixture(request):
        ctx = request.getfixturevalue(previous)
        run_one(ctx, info, _TIMINGS)
        return ctx
    fixture.__doc__ = f"The guide's step `{step}`: {info.summary}."
    return pytest.fixture(scope="session", name=step.replace("-", "_"))(fixture)


def _chain_step_fixtures() -> None:
    """hosts, pki, etcd, kubectl, flannel, masters, api_ha, nodes, workload: each depends on the
    one before, in the order of harness.steps.STEPS (the machines come from `step_context`)."""
    from harness.steps import STEP_NAMES

    previous = "step_context"
    for step in STEP_NAMES[1:]:
        globals()[f"_step_{step.replace('-', '_')}"] = _step_fixture(step, previous)
        previous = step.replace("-", "_")


_chain_step_fixtures()


@pytest.fixture(scope="session")
def deployed(request):
    """The lab after every step of harness.steps.STEPS, the add-ons included."""
    from harness.steps import STEP_NAMES

    return request.getfixturevalue(STEP_NAMES[-1].replace("-", "_"))


def pytest_sessionfinish(session, exitstatus):
    """The per-step timing report, next to the JUnit file in the run's artifacts folder."""
    if not _TIMINGS:
        return
    folder = getattr(session.config, "k8s_ha_lab_run_dir", None)
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "step-timings.json").write_text(json.dumps(_TIMINGS, indent=2) + "\n")
