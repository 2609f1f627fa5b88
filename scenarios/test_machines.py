"""The machines themselves, checked over SSH on the real lab (Vagrant + the chosen provider).

Run: pytest -p harness.pytest_plugin -m machines scenarios/test_machines.py [--lab labs/small.yaml]
Every address comes from the lab; the tests only talk to the lab's own machines.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import subprocess
import tarfile

import pytest

from harness.providers.docker import DockerProvider, container_name, network_name
from harness.pytest_plugin import artifacts_dir

pytestmark = pytest.mark.machines


def test_hostname_and_lab_ip(host, machine, lab):
    assert host.check_output("hostname") == machine.name
    addresses = host.check_output(f"ip -4 -o addr show dev {lab.interface}")
    assert f"inet {machine.ip}/{lab.network.prefixlen} " in addresses, addresses


def test_systemd_running_without_failed_units(host):
    state = host.run("systemctl is-system-running")
    failed = host.check_output("systemctl --failed --no-legend --plain")
    assert failed == "", f"failed units:\n{failed}"
    assert state.stdout.strip() == "running", state.stdout


def test_services_enabled_as_expected(host):
    assert host.service("ssh").is_running
    assert host.service("containerd").is_running
    # configured and started by later steps, never by the image
    assert not host.service("haproxy").is_enabled
    assert not host.service("keepalived").is_enabled


def test_sshd_reachable_on_lab_ip_from_host(machine, machines):
    with socket.create_connection((str(machine.ip), 22), timeout=10) as conn:
        banner = conn.recv(64)
    assert banner.startswith(b"SSH-2.0-"), banner


def test_every_machine_pings_every_other(host, machine, lab):
    for other in lab.machines:
        if other.name != machine.name:
            result = host.run(f"ping -c 1 -W 3 {other.ip}")
            assert result.rc == 0, f"{machine.name} -> {other.name} ({other.ip}): {result.stdout}"


@pytest.mark.parametrize("key", ["net.ipv4.ip_forward", "net.ipv4.ip_nonlocal_bind"])
def test_sysctl_can_be_set(host, key):
    before = host.sysctl(key)
    try:
        host.run_test(f"sysctl -w {key}=1")
        assert host.sysctl(key) == 1
    finally:
        host.run(f"sysctl -w {key}={before}")


def _docker_archive(name: str, busybox: bytes) -> bytes:
    """A one-layer image in `docker save` format, made here from the node's own busybox, so
    the nested container needs no registry."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        for directory in ("bin", "tmp"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(busybox), 0o755
        tar.addfile(info, io.BytesIO(busybox))
        for applet in ("sh", "echo", "cat", "hostname"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    layer_bytes = layer.getvalue()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
                         "rootfs": {"type": "layers",
                                    "diff_ids": ["sha256:" + hashlib.sha256(layer_bytes).hexdigest()]}}).encode()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": [name],
                            "Layers": ["layer.tar"]}]).encode()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for member, data in (("layer.tar", layer_bytes), ("config.json", config),
                             ("manifest.json", manifest)):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive.getvalue()


def test_nested_container_runs_with_containerd(machines, lab):
    node = lab.nodes[-1]
    transport = machines.transports[node.name]
    image = "k8s-ha-lab.local/nested-test:1"
    busybox = transport.read("/bin/busybox")
    transport.upload("/tmp/nested-test.tar", _docker_archive(image, busybox), mode=0o600)
    transport.run("ctr -n k8s-ha-lab-test image import /tmp/nested-test.tar", timeout=120)
    transport.run("ctr -n k8s-ha-lab-test container rm nested-test", check=False)
    try:
        result = transport.run("ctr -n k8s-ha-lab-test run --rm --runtime io.containerd.runc.v2 "
                               f"{image} nested-test /bin/echo hello-from-nested", timeout=120)
        assert result.stdout.strip() == "hello-from-nested"
    finally:
        transport.run("ctr -n k8s-ha-lab-test image rm " + image, check=False)
        transport.run("rm -f /tmp/nested-test.tar", check=False)


def test_halt_then_up_keeps_the_lab_ip(machines, lab):
    first = lab.machines[0]
    machines.close()  # the halt drops their connections; they reconnect on next use
    machines.provider.power_off(first.name)
    states = {s.name: s.state for s in machines.provider.list_machines()}
    assert states[first.name] != "running"
    machines.up()
    host = machines.host(first.name)
    addresses = host.check_output(f"ip -4 -o addr show dev {lab.interface}")
    assert f"inet {first.ip}/{lab.network.prefixlen} " in addresses
    assert host.check_output("systemctl --failed --no-legend --plain") == ""


def test_down_leaves_nothing(machines, lab, request):
    if request.config.getoption("--keep"):
        pytest.skip("--keep: the lab stays up")
    machines.down(failed=request.session.testsfailed > 0, artifacts=artifacts_dir(request.config))
    assert all(s.state == "not_created" for s in machines.provider.list_machines())
    # No probe of the old addresses: with the lab gone they would route off the host.
    if isinstance(machines.provider, DockerProvider):
        def docker_lines(*args):
            return subprocess.run(["docker", *args], check=True, capture_output=True,
                                  text=True).stdout.split()
        lab_names = {container_name(lab, m.name) for m in lab.machines}
        assert lab_names.isdisjoint(docker_lines("ps", "-a", "--format", "{{.Names}}"))
        assert network_name(lab) not in docker_lines("network", "ls", "--format", "{{.Name}}")
        assert machines.provider.leftovers() == []
