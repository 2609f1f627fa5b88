"""Preflight: each missing piece is one line naming it and how to get it, exit status 2.
The host is faked; no docker, vagrant or ip command runs."""

import json
import subprocess

import pytest

from harness import machines
from harness.errors import UserError
from harness.labfile import load_lab
from harness.preflight import Host, sanity_checks
from tests.unit.conftest import SEED, SMALL

MEMINFO_PLENTY = "MemTotal: 25000000 kB\nMemAvailable: 20000000 kB\n"


def fake_host(tools=("vagrant", "docker", "ip"), docker_up=True, addrs=(), routes=(),
              networks=None, meminfo=MEMINFO_PLENTY):
    calls = []

    def run(argv):
        calls.append(argv)
        if argv[:2] == ["docker", "info"]:
            if docker_up:
                return subprocess.CompletedProcess(argv, 0, "20.10.24\n", "")
            return subprocess.CompletedProcess(
                argv, 1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
                             "Is the docker daemon running?\n")
        if argv[:3] == ["docker", "network", "inspect"]:
            found = (networks or {}).get(argv[3])
            return subprocess.CompletedProcess(argv, 0 if found else 1, json.dumps([found] if found else []), "")
        if argv[:4] == ["ip", "-json", "-4", "addr"]:
            return subprocess.CompletedProcess(argv, 0, json.dumps(list(addrs)), "")
        if argv[:4] == ["ip", "-json", "-4", "route"]:
            return subprocess.CompletedProcess(argv, 0, json.dumps(list(routes)), "")
        if argv[:3] == ["vagrant", "plugin", "list"]:
            return subprocess.CompletedProcess(argv, 0, "vagrant-libvirt (0.11.2, system)\n", "")
        raise AssertionError(f"unexpected command {argv}")

    host = Host(which=lambda name: f"/usr/bin/{name}" if name in tools else None, run=run,
                meminfo=lambda: meminfo)
    host.calls = calls
    return host


def iface(name, address, prefix):
    return {"ifname": name, "addr_info": [{"local": address, "prefixlen": prefix}]}


@pytest.fixture(scope="module")
def seed():
    return load_lab(SEED)


def _one_line(exc_info):
    message = str(exc_info.value)
    assert "\n" not in message
    assert exc_info.value.exit_status == 2
    return message


def test_all_present_passes(seed):
    sanity_checks(seed, "docker", fake_host(addrs=[iface("eth0", "10.0.2.15", 24)]))


def test_missing_vagrant(seed):
    with pytest.raises(UserError) as caught:
        sanity_checks(seed, "docker", fake_host(tools=("docker", "ip")))
    assert _one_line(caught) == "vagrant: not found on PATH; install it with `apt-get install vagrant`"


def test_missing_docker_client(seed):
    with pytest.raises(UserError) as caught:
        sanity_checks(seed, "docker", fake_host(tools=("vagrant", "ip")))
    assert "apt-get install docker.io" in _one_line(caught)


def test_docker_daemon_not_running(seed):
    with pytest.raises(UserError) as caught:
        sanity_checks(seed, "docker", fake_host(docker_up=False))
    message = _one_line(caught)
    assert message.startswith("docker: the daemon is not reachable")
    assert "Is the docker daemon running?" in message
    assert "dockerd" in message


def test_missing_virtualbox(seed):
    with pytest.raises(UserError, match="^VBoxManage: not found on PATH"):
        sanity_checks(seed, "virtualbox", fake_host())


def test_virtualbox_must_allow_the_lab_network(seed):
    host = fake_host(tools=("vagrant", "VBoxManage", "ip"))
    host.read_text = lambda path: None  # no networks.conf: only 192.168.56.0/21 is allowed
    with pytest.raises(UserError) as caught:
        sanity_checks(seed, "virtualbox", host)
    assert "add the line `* 192.168.220.0/24` to /etc/vbox/networks.conf" in _one_line(caught)
    host.read_text = lambda path: "* 10.0.0.0/8 192.168.0.0/16\n"
    sanity_checks(seed, "virtualbox", host)


def test_missing_libvirt(seed):
    with pytest.raises(UserError, match="^virsh: not found on PATH; install libvirt"):
        sanity_checks(seed, "libvirt", fake_host())


def test_not_enough_memory(seed):
    host = fake_host(meminfo="MemTotal: 4000000 kB\nMemAvailable: 3000000 kB\n")
    with pytest.raises(UserError) as caught:
        sanity_checks(seed, "docker", host)
    message = _one_line(caught)
    assert "needs 8192 MiB" in message and "2929 MiB" in message


def test_memory_of_running_machines_is_not_counted_twice(seed):
    host = fake_host(meminfo="MemTotal: 4000000 kB\nMemAvailable: 3000000 kB\n")
    sanity_checks(seed, "docker", host, already_running_mb=8192)


def test_subnet_taken_by_another_interface(seed):
    host = fake_host(addrs=[iface("virbr1", "192.168.220.1", 24)])
    with pytest.raises(UserError) as caught:
        sanity_checks(seed, "docker", host)
    message = _one_line(caught)
    assert message.startswith("network.cidr 192.168.220.0/24: already used on this host by virbr1")


def test_subnet_taken_by_a_route(seed):
    host = fake_host(routes=[{"dst": "192.168.0.0/16", "dev": "tun0"}])
    with pytest.raises(UserError, match="routes 192.168.0.0/16 via tun0"):
        sanity_checks(seed, "docker", host)


def test_subnet_of_this_labs_own_network_is_fine(seed):
    own = {"Name": "vagrant_network_192.168.220.0/24", "Id": "0f67273530c1aaaa",
           "Containers": {"x": {"Name": "k8s-ha-lab-seed-master01"}}}
    host = fake_host(addrs=[iface("br-0f67273530c1", "192.168.220.1", 24)],
                     routes=[{"dst": "192.168.220.0/24", "dev": "br-0f67273530c1"}],
                     networks={own["Name"]: own})
    sanity_checks(seed, "docker", host)


def test_same_subnet_used_by_another_labs_containers(seed):
    other = {"Name": "vagrant_network_192.168.220.0/24", "Id": "0f67273530c1aaaa",
             "Containers": {"x": {"Name": "someone-else"}}}
    host = fake_host(addrs=[iface("br-0f67273530c1", "192.168.220.1", 24)],
                     networks={other["Name"]: other})
    with pytest.raises(UserError, match="br-0f67273530c1"):
        sanity_checks(seed, "docker", host)


def test_small_lab_checks_its_own_subnet():
    small = load_lab(SMALL)
    host = fake_host(addrs=[iface("br-x", "192.168.220.1", 24)])
    sanity_checks(small, "docker", host)  # the seed's subnet is not the small lab's business
    with pytest.raises(UserError, match="10.240.0.0/24"):
        sanity_checks(small, "docker", fake_host(addrs=[iface("wg0", "10.240.0.7", 24)]))


def test_up_stops_at_preflight_before_touching_anything(seed, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("K8S_HA_LAB_STATE", str(tmp_path))
    host = fake_host(tools=("docker", "ip"))
    with pytest.raises(UserError) as caught:
        machines.up(seed, "docker", host=host)
    assert caught.value.exit_status == 2
    assert host.calls == []  # nothing ran: not even docker info
    assert "✗ [seed > preflight] docker" in capsys.readouterr().out


def test_cli_exit_status_is_2(tmp_path, monkeypatch, capsys):
    """What the CLI does with a preflight failure: one line on stderr, exit 2."""
    from harness.cli import main

    monkeypatch.setenv("K8S_HA_LAB_STATE", str(tmp_path))
    no_vagrant = fake_host(tools=("docker", "ip"))
    real_up = machines.up
    monkeypatch.setattr(machines, "up", lambda lab, provider_name=None: real_up(lab, provider_name, host=no_vagrant))
    status = main(["up", str(SEED), "--only", "machines", "--provider", "docker"])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err == "error: vagrant: not found on PATH; install it with `apt-get install vagrant`\n"
    assert no_vagrant.calls == []


def test_cli_docker_daemon_down_exit_status_is_2(tmp_path, monkeypatch, capsys):
    from harness.cli import main

    monkeypatch.setenv("K8S_HA_LAB_STATE", str(tmp_path))
    daemon_down = fake_host(docker_up=False)
    real_up = machines.up
    monkeypatch.setattr(machines, "up", lambda lab, provider_name=None: real_up(lab, provider_name, host=daemon_down))
    assert main(["up", str(SEED), "--only", "machines", "--provider", "docker"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: docker: the daemon is not reachable") and err.count("\n") == 1
