"""pytest wiring: the lab, its machines, and one testinfra host per machine.

The session owns the process's SSH pool (harness.ssh_pool): the steps, the checks and the
testinfra hosts of a machine share one connection, closed when the session ends.

`--lab` picks the lab file, `--provider` the provider, `--keep` leaves the lab up afterwards.
The `machines` fixture brings the machines up once per session; at the end it collects logs
into `artifacts/<run-id>/` if any test failed, then tears down (unless --keep). Teardown runs
even when bring-up failed. Tests that take `machine` or `host` run once per machine, with the
machine's name in the test id.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import REPO_ROOT, artifacts_root, machines as lifecycle
from harness.errors import UserError
from harness.lab import Lab, Machine
from harness.labfile import load_lab
from harness.providers import PROVIDERS, Provider, resolve_provider
from harness.ssh_pool import POOL
from harness.state import lab_state_dir
from harness.testinfra_backend import testinfra_host
from harness.transport import Transport, lab_transports, write_ssh_config

DEFAULT_LAB = "labs/seed.yaml"
_lab_key = pytest.StashKey[Lab]()
_run_id_key = pytest.StashKey[str]()


def pytest_addoption(parser, pluginmanager):
    _block_testinfra_plugin(pluginmanager)
    group = parser.getgroup("k8s-ha-lab")
    group.addoption("--lab", default=os.environ.get("K8S_HA_LAB_FILE", DEFAULT_LAB),
                    help=f"lab file (default: $K8S_HA_LAB_FILE or {DEFAULT_LAB})")
    group.addoption("--keep", action="store_true", default=False,
                    help="leave the lab's machines up after the session")
    group.addoption("--provider", default=None, choices=sorted(PROVIDERS),
                    help="machine provider (default: the one the lab is up with, else detected)")


def _block_testinfra_plugin(pluginmanager) -> None:
    """testinfra's own plugin also defines `host` (from --hosts, default: this very machine).
    Loaded from the root conftest, ours registers later and wins; loaded early with `-p`, ours
    would lose, so testinfra's plugin is kept from loading (its library is still used)."""
    for name in ("pytest11.testinfra", "testinfra"):
        if not pluginmanager.has_plugin(name):
            pluginmanager.set_blocked(name)


def pytest_configure(config):
    config.addinivalue_line("markers", "machines: needs the lab's machines up (Vagrant + a provider)")
    config.addinivalue_line("markers", "two_labs: seed and small up side by side (opt-in: tox -e two-labs)")
    config.stash[_run_id_key] = os.environ.get("K8S_HA_LAB_RUN_ID") or time.strftime("%Y%m%d-%H%M%S")
    # The run's folder for logs, JUnit and timings; the root conftest writes there too.
    config.k8s_ha_lab_run_dir = artifacts_dir(config)


def _load(config) -> Lab:
    if _lab_key not in config.stash:
        path = Path(config.getoption("--lab"))
        if not path.is_absolute() and not path.exists():
            path = REPO_ROOT / path
        try:
            config.stash[_lab_key] = load_lab(path)
        except UserError as exc:  # one line, like the CLI, not a collection traceback
            raise pytest.UsageError(f"--lab {path}: {exc}") from None
    return config.stash[_lab_key]


def artifacts_dir(config) -> Path:
    return artifacts_root() / config.stash[_run_id_key]


def _parametrized_by_test(metafunc, name: str) -> bool:
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", "")
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        if name in names:
            return True
    return False


def pytest_generate_tests(metafunc):
    if "machine" in metafunc.fixturenames and not _parametrized_by_test(metafunc, "machine"):
        lab = _load(metafunc.config)
        metafunc.parametrize("machine", [m.name for m in lab.machines], indirect=True, scope="session")


# --- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def lab(pytestconfig) -> Lab:
    return _load(pytestconfig)


@pytest.fixture(scope="session")
def lab_state(lab) -> Path:
    return lab_state_dir(lab)


@dataclass
class LabMachines:
    """The running lab as the tests see it."""
    lab: Lab
    state_dir: Path
    provider: Provider
    transports: dict[str, Transport] = field(default_factory=dict)
    ssh_config: Path | None = None
    is_down: bool = False
    hosts: dict[str, object] = field(default_factory=dict)   # machine name -> testinfra host

    def up(self) -> dict[str, str]:
        states = lifecycle.up(self.lab, self.provider.name)
        self.ssh_config = write_ssh_config(self.lab, self.state_dir)
        self.is_down = False
        return states

    def host(self, name: str):
        """The machine as a testinfra host on the pool's connection to it."""
        if name not in self.hosts:
            if name not in self.transports:
                self.transports.update(lab_transports(self.lab, self.state_dir))
            self.hosts[name] = testinfra_host(self.transports[name])
        return self.hosts[name]

    def close(self) -> None:
        """Drop every connection of the session (the same ones reopen on next use)."""
        POOL.close()

    def down(self, failed: bool = False, artifacts: Path | None = None) -> None:
        """Logs first (only if something failed), then destroy. Safe to call twice."""
        self.close()
        if failed and artifacts is not None and not self.is_down:
            lifecycle.collect_logs(self.lab, artifacts)
        lifecycle.down(self.lab, self.provider.name)
        self.is_down = True


@pytest.fixture(scope="session")
def machines(request, lab, lab_state) -> LabMachines:
    provider = resolve_provider(lab, lab_state, request.config.getoption("--provider"))
    handle = LabMachines(lab, lab_state, provider)
    up_failed = True
    try:
        handle.up()
        up_failed = False
        handle.transports = lab_transports(lab, lab_state)
        yield handle
    finally:
        failed = up_failed or request.session.testsfailed > 0
        if request.config.getoption("--keep"):
            handle.close()  # the session owns the pool: its connections end with it
            if failed:
                lifecycle.collect_logs(lab, artifacts_dir(request.config))
        elif not handle.is_down:
            handle.down(failed, artifacts_dir(request.config))
        POOL.close()


@pytest.fixture(scope="session")
def machine(request, lab) -> Machine:
    """One machine of the lab; tests that use it run once per machine."""
    return lab.machine(request.param)


@pytest.fixture(scope="session")
def host(machine, machines):
    """The machine as a testinfra host on the same SSH connection as the steps and checks."""
    return machines.host(machine.name)


@pytest.fixture(scope="session")
def transport(machine, machines) -> Transport:
    return machines.transports[machine.name]
