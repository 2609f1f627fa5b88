"""The guide's deployment steps as session fixtures, each depending on the one before.

A test that needs flannel asks for `flannel`; pytest brings up the machines and runs hosts, pki,
etcd and kubectl first. Every step is idempotent, so asking twice costs a check, not a redeploy.
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


def _run_step(ctx, name: str):
    from harness.steps import STEPS
    from harness.steps.runner import run_one

    run_one(ctx, next(s for s in STEPS if s.name == name), _TIMINGS)
    return ctx


@pytest.fixture(scope="session")
def hosts(step_context):
    return _run_step(step_context, "hosts")


@pytest.fixture(scope="session")
def pki_distributed(hosts):
    return _run_step(hosts, "pki")


@pytest.fixture(scope="session")
def etcd(pki_distributed):
    return _run_step(pki_distributed, "etcd")


@pytest.fixture(scope="session")
def kubectl(etcd):
    return _run_step(etcd, "kubectl")


@pytest.fixture(scope="session")
def flannel(kubectl):
    return _run_step(kubectl, "flannel")


@pytest.fixture(scope="session")
def masters(flannel):
    return _run_step(flannel, "masters")


@pytest.fixture(scope="session")
def api_ha(masters):
    return _run_step(masters, "api-ha")


@pytest.fixture(scope="session")
def nodes(api_ha):
    return _run_step(api_ha, "nodes")


@pytest.fixture(scope="session")
def workload(nodes):
    return _run_step(nodes, "workload")


def pytest_sessionfinish(session, exitstatus):
    """The per-step timing report, next to the JUnit file in the run's artifacts folder."""
    if not _TIMINGS:
        return
    folder = getattr(session.config, "k8s_ha_lab_run_dir", None)
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "step-timings.json").write_text(json.dumps(_TIMINGS, indent=2) + "\n")
