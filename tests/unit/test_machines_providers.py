"""Provider registry, detection and the docker create-args choice, with no docker at all."""

import subprocess

import pytest

from harness.errors import UserError
from harness.providers import detect_provider, provider_class
from harness.providers import docker as docker_provider


def test_unknown_provider_names_the_known_ones():
    with pytest.raises(UserError) as caught:
        provider_class("hyperv")
    message = str(caught.value)
    assert "hyperv" in message
    assert "docker, libvirt, ssh, virtualbox" in message
    assert caught.value.exit_status == 2
    assert "\n" not in message


def test_known_providers_resolve_to_classes():
    assert provider_class("docker").name == "docker"
    assert provider_class("virtualbox").name == "virtualbox"
    assert provider_class("libvirt").name == "libvirt"


@pytest.mark.parametrize("tools, files, expected", [
    ({"VBoxManage"}, {"/dev/vboxdrv"}, "virtualbox"),
    ({"VBoxManage"}, set(), "docker"),  # installed but no kernel driver: unusable
    ({"virsh"}, {"/var/run/libvirt/libvirt-sock", "/dev/kvm", "/sys/module/kvm_intel"}, "libvirt"),
    ({"virsh"}, {"/var/run/libvirt/libvirt-sock", "/dev/kvm", "/sys/module/kvm_pvm"}, "docker"),  # TCG: on request only
    (set(), set(), "docker"),
])
def test_detection_prefers_real_vms(monkeypatch, tools, files, expected):
    monkeypatch.delenv("K8S_HA_LAB_PROVIDER", raising=False)
    found = detect_provider(which=lambda name: f"/usr/bin/{name}" if name in tools else None,
                            exists=lambda path: path in files)
    assert found == expected


def test_environment_overrides_detection_and_is_checked(monkeypatch):
    monkeypatch.setenv("K8S_HA_LAB_PROVIDER", "libvirt")
    assert detect_provider(which=lambda name: None, exists=lambda path: False) == "libvirt"
    monkeypatch.setenv("K8S_HA_LAB_PROVIDER", "lxd")
    with pytest.raises(UserError, match="known: docker, libvirt, virtualbox"):
        detect_provider()


def _fake_docker(privileged_ok: bool):
    calls = []

    def run(args):
        calls.append(args)
        if "--privileged" in args:
            return subprocess.CompletedProcess(args, 0 if privileged_ok else 125, "",
                                               "" if privileged_ok else "unable to apply caps: operation not permitted")
        return subprocess.CompletedProcess(args, 0, "", "")
    return run, calls


def test_privileged_when_the_host_allows_it():
    run, calls = _fake_docker(privileged_ok=True)
    args = docker_provider.choose_create_args("img:1", run)
    assert "--privileged" in args
    assert not any(a.startswith("--cap-") for a in args)
    assert calls and calls[0][-1] == "img:1"


def test_capability_set_when_privileged_fails():
    run, _ = _fake_docker(privileged_ok=False)
    args = docker_provider.choose_create_args("img:1", run)
    assert "--privileged" not in args
    assert "--cap-add=ALL" in args and "--cap-drop=SYS_RESOURCE" in args
    for option in ("seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"):
        assert option in args
    assert "--cgroupns=private" in args


def test_create_args_are_probed_once_per_lab(tmp_path):
    run, calls = _fake_docker(privileged_ok=False)
    first = docker_provider.cached_create_args(tmp_path, "img:1", run)
    second = docker_provider.cached_create_args(tmp_path, "img:1", run)
    assert first == second
    assert len(calls) == 1


def test_an_old_state_folder_gets_todays_arguments(tmp_path):
    # A state folder written before the device rule and /dev/fuse: the saved list is only read
    # for its answer (no --privileged), and the arguments come from today's constants.
    (tmp_path / docker_provider.CREATE_ARGS_FILE).write_text('["--cap-add=ALL", "--tty"]')
    args = docker_provider.cached_create_args(tmp_path, "img:1", _fake_docker(privileged_ok=False)[0])
    assert "--device-cgroup-rule=a *:* rwm" in args


def test_fuse_device_only_where_the_host_has_it():
    assert docker_provider.create_args_for(False, fuse=True)[-2:] == ["--device", "/dev/fuse"]
    assert "/dev/fuse" not in docker_provider.create_args_for(False, fuse=False)
    assert "--privileged" in docker_provider.create_args_for(True)


def test_memory_sizes_from_docker_stats():
    assert docker_provider.parse_size("51.2MiB") == int(51.2 * 2**20)
    assert docker_provider.parse_size("1.5GiB") == int(1.5 * 2**30)
    assert docker_provider.parse_size("900kB") == 900_000
