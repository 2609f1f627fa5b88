"""The Provider protocol: every provider implements all of it, power control is a capability
that is refused in one line where it is missing, and the docker provider's own calls (list,
kill, detach, clean up) are the docker commands they claim to be. Docker and vagrant are faked."""

import inspect
import subprocess
import typing
from pathlib import Path

import pytest

from harness import REPO_ROOT, providers
from harness.errors import UserError
from harness.labfile import load_lab
from harness.providers import base
from harness.providers import docker as docker_provider
from harness.providers import vagrant as vagrant_provider
from tests.unit.conftest import SMALL

PROTOCOL_METHODS = [name for name, member in vars(base.Provider).items()
                    if callable(member) and not name.startswith("_")]


@pytest.fixture
def small(tmp_path):
    return load_lab(SMALL), tmp_path / "state" / "small"


@pytest.fixture(autouse=True)
def no_real_docker(monkeypatch):
    """The host may run real labs: a docker call a test did not fake fails instead of reaching them."""
    def refuse(args):
        raise AssertionError(f"unfaked docker call: docker {' '.join(args)}")
    monkeypatch.setattr(docker_provider, "run_docker", refuse)


def test_the_protocol_has_kinds_verbs_and_molecules_sanity_checks():
    assert set(PROTOCOL_METHODS) == {"sanity_checks", "own_host_interfaces", "prepare", "provision",
                                     "list_machines", "power_off", "power_on", "delete", "leftovers",
                                     "collect_logs"}
    assert set(typing.get_type_hints(base.Provider)) >= {"name", "lab", "state_dir", "capabilities"}


@pytest.mark.parametrize("name", sorted(providers.PROVIDERS))
def test_every_provider_implements_the_whole_protocol(name, small):
    lab, state = small
    provider = providers.get_provider(name, lab, state)
    assert isinstance(provider, base.Provider)
    assert provider.name == name
    for method in PROTOCOL_METHODS:
        wanted = list(inspect.signature(getattr(base.Provider, method)).parameters)[1:]
        assert list(inspect.signature(getattr(provider, method)).parameters) == wanted, method
    assert set(provider.capabilities) <= set(base.CAPABILITIES)
    assert not state.exists()  # making a provider object touches nothing


class NoPower:
    name = "ssh"
    capabilities = frozenset()


def test_a_missing_capability_is_refused_in_one_line_with_exit_2(small):
    with pytest.raises(UserError) as refused:
        base.require_capability(NoPower(), base.FORCED_POWER_OFF, "scenario master-hard-kill")
    assert str(refused.value) == ("scenario master-hard-kill needs a forced power-off, which provider "
                                  "ssh does not offer (it offers: no power control)")
    assert refused.value.exit_status == 2
    lab, state = small
    for capability in base.CAPABILITIES:  # the Vagrant providers can do all of it
        base.require_capability(providers.get_provider("docker", lab, state), capability, "x")
    with pytest.raises(ValueError):
        base.require_capability(NoPower(), "teleport", "x")


# --- the docker provider's own docker calls -------------------------------------------------------
class FakeDocker:
    """`docker` as a list of calls and canned answers keyed by the first arguments."""

    def __init__(self, answers=None):
        self.calls, self.answers = [], answers or {}

    def __call__(self, args):
        self.calls.append(list(args))
        for prefix, (code, out) in self.answers.items():
            if tuple(args[:len(prefix)]) == prefix:
                return subprocess.CompletedProcess(args, code, out, "" if code == 0 else out)
        return subprocess.CompletedProcess(args, 0, "", "")


def test_forced_power_off_is_a_docker_kill_and_graceful_is_vagrant_halt(small, monkeypatch):
    lab, state = small
    fake = FakeDocker()
    monkeypatch.setattr(docker_provider, "run_docker", fake)
    halted = []
    monkeypatch.setattr(vagrant_provider.VagrantProvider, "_call",
                        lambda self, what, action, **kw: halted.append((what, kw)))
    provider = docker_provider.DockerProvider(lab, state)
    provider.power_off("ctl1", force=True)
    assert fake.calls == [["kill", "k8s-ha-lab-small-ctl1"]] and halted == []
    provider.power_off("ctl2")
    assert halted == [("halt ctl2", {"vm_name": "ctl2", "force": False})]
    fake.answers[("kill",)] = (1, "Error response from daemon: container k8s-ha-lab-small-ctl3 is not running\n")
    with pytest.raises(UserError, match=r"^docker: cannot kill machine ctl3 \(Error response .* not running\)$"):
        provider.power_off("ctl3", force=True)


def test_provision_detaches_stopped_containers_only_then_runs_vagrant_up(small, monkeypatch):
    lab, state = small
    fake = FakeDocker({("ps",): (0, "k8s-ha-lab-small-ctl1 running\nk8s-ha-lab-small-ctl2 exited\n")})
    monkeypatch.setattr(docker_provider, "run_docker", fake)
    started = []
    monkeypatch.setattr(vagrant_provider.VagrantProvider, "up_stream",
                        lambda self, names: started.append(names) or iter(["==> ctl2: Machine booted and ready!"]))
    provider = docker_provider.DockerProvider(lab, state)
    lines = list(provider.provision(["ctl2", "ctl3"]))
    detached = [c for c in fake.calls if c[:2] == ["network", "disconnect"]]
    assert detached == [["network", "disconnect", "--force", "vagrant_network_10.240.0.0/24",
                         "k8s-ha-lab-small-ctl2"]]  # ctl3 has no container yet, ctl1 runs
    assert started == [["ctl2", "ctl3"]] and lines == ["==> ctl2: Machine booted and ready!"]


def test_power_on_starts_only_a_machine_that_is_not_running(small, monkeypatch):
    lab, state = small
    monkeypatch.setattr(docker_provider, "run_docker", FakeDocker(
        {("ps",): (0, "k8s-ha-lab-small-ctl1 running\nk8s-ha-lab-small-ctl2 exited\n")}))
    started = []
    monkeypatch.setattr(vagrant_provider.VagrantProvider, "up_stream",
                        lambda self, names: started.append(names) or iter(()))
    provider = docker_provider.DockerProvider(lab, state)
    provider.power_on("ctl1")
    provider.power_on("ctl2")
    assert started == [["ctl2"]]


def test_delete_destroys_then_removes_what_vagrant_left(small, monkeypatch):
    lab, state = small
    (state / "vagrant" / "machines").mkdir(parents=True)
    network = '[{"Name": "vagrant_network_10.240.0.0/24", "Id": "0123456789abcdef", "Containers": {}}]'
    fake = FakeDocker({("ps",): (0, "k8s-ha-lab-small-ctl3\n"), ("network", "inspect"): (0, network)})
    monkeypatch.setattr(docker_provider, "run_docker", fake)
    destroyed = []
    monkeypatch.setattr(vagrant_provider.VagrantProvider, "destroy", lambda self: destroyed.append(True))
    removed = docker_provider.DockerProvider(lab, state).delete()
    assert destroyed == [True]
    assert removed == ["container k8s-ha-lab-small-ctl3", "network vagrant_network_10.240.0.0/24"]
    assert ["rm", "--force", "--volumes", "k8s-ha-lab-small-ctl3"] in fake.calls
    assert not (state / "vagrant").exists()  # Vagrant's records go with the machines


def test_collect_logs_keeps_vagrants_log_and_dockers_view(small, monkeypatch):
    lab, state = small
    state.mkdir(parents=True)
    (state / "vagrant.log").write_text("### k8s-ha-lab: vagrant up ctl1\nboom\n")
    monkeypatch.setattr(docker_provider, "run_docker", FakeDocker({("ps",): (0, "k8s-ha-lab-small-ctl1\n"),
                                                                  ("logs",): (0, "systemd booted\n"),
                                                                  ("network", "inspect"): (1, "")}))
    logs = docker_provider.DockerProvider(lab, state).collect_logs()
    assert logs["vagrant.log"].endswith("boom\n")
    assert logs["docker-logs-k8s-ha-lab-small-ctl1.txt"] == "systemd booted\n"
    assert "docker-inspect.json" in logs


# --- only the providers know docker and Vagrant ------------------------------------------------
# Modules that still call docker or Vagrant themselves, each with why. A new one fails here.
OUTSIDE_PROVIDERS = {
    "harness/image/build.py": "builds the docker provider's node image (DockerProvider.prepare)",
    "harness/vagrant_spec.py": "the Vagrantfile's side: it asks the provider for its section",
    "harness/failover/scenarios.py": "master-hard-kill calls `docker kill` and `vagrant halt --force` "
                                     "itself (owned by the failover work; power_off(force=True) is the "
                                     "protocol's way)",
    "scenarios/test_machines.py": "checks the docker provider's `down` against docker's own listing",
    "scenarios/test_ssh_provider.py": "makes the ssh provider's machines itself with a plain `docker run` "
                                      "of the node image (no provider makes machines for it), and snapshots them",
}
MARKERS = ("providers.docker", "providers.vagrant", "import vagrant", '"docker", ', '["docker"',
           ".vagrant.", "run_docker")


def test_docker_and_vagrant_calls_live_behind_the_protocol():
    found = set()
    for folder in ("harness", "checks", "scenarios"):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            rel = path.relative_to(REPO_ROOT).as_posix()
            if rel.startswith("harness/providers/"):
                continue
            text = path.read_text()
            if any(marker in text for marker in MARKERS):
                found.add(rel)
    assert found <= set(OUTSIDE_PROVIDERS), sorted(found - set(OUTSIDE_PROVIDERS))
    assert Path(REPO_ROOT / "harness/preflight.py").read_text().count("docker") <= 2  # the Host docstring
