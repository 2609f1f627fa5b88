"""One SSH connection per machine, shared by the steps, the checks and testinfra, closed once by
the pool's owner; testinfra's modules work through the harness's backend. Fake connect only."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from harness import cli, ssh_pool
from harness.labfile import load_lab
from harness.pytest_plugin import LabMachines
from harness.steps.context import StepContext
from harness.steps.parallel import for_each
from harness import testinfra_backend
from harness.transport import Cancelled, Transport, lab_transports
from harness.lab import SshLogin
from tests.unit import fake_ssh
from tests.unit.conftest import SEED, SMALL


@pytest.fixture
def pool(monkeypatch, tmp_path):
    """The process's pool, with a fake connect behind it."""
    machine = fake_ssh.Machine(tmp_path, lambda command: (0, b"ok\n", b""))
    fresh = ssh_pool.SshPool(connect=machine.connect)
    monkeypatch.setattr(ssh_pool, "POOL", fresh)
    fresh.machine = machine
    return fresh


@pytest.fixture
def state(tmp_path):
    folder = tmp_path / "state" / "small"
    folder.mkdir(parents=True)
    return folder


def test_steps_checks_and_testinfra_share_one_connection_closed_once(pool, state):
    lab = load_lab(SMALL)
    steps = StepContext(lab, state, None, [], verbose_machines=False)
    for_each(steps, "hosts", lab.machines, lambda m: steps.on(m).run("hostname"))  # threads
    checks = StepContext(lab, state, None, [])   # `check` builds its own context
    for m in lab.machines:
        checks.on(m).upload("/etc/x", b"x")
    tests = LabMachines(lab, state, provider=None)
    for m in lab.machines:
        assert tests.host(m.name).run("true").rc == 0
        assert tests.host(m.name) is tests.host(m.name)
    lab_transports(lab, state, connect_deadline=15)["ctl1"].run("journalctl -n 5")  # the logs

    clients = pool.machine.clients
    assert len(clients) == 3   # one per machine, whoever asked
    assert [login.address for login in pool.machine.logins] == [str(m.ip) for m in lab.machines]
    ctl1 = steps.on("ctl1").client
    assert checks.on("ctl1").client is ctl1 and tests.transports["ctl1"].client is ctl1
    assert tests.host("ctl1").backend.transport.client is ctl1

    steps.close()     # a context ends (closes what it used)...
    checks.close()    # ...and another one: already closed, nothing happens
    pool.close()      # the owner: nothing left to close
    assert [c.closed for c in clients] == [1, 1, 1]


def test_the_owner_closes_what_was_opened(pool, state):
    lab = load_lab(SMALL)
    with ssh_pool.owned(pool):
        for transport in lab_transports(lab, state).values():
            transport.run("true")
    assert [c.closed for c in pool.machine.clients] == [1, 1, 1]
    lab_transports(lab, state)["ctl2"].run("true")   # used again: the same entry reopens
    assert len(pool.machine.clients) == 4


def test_the_cli_owns_the_pool(pool, state, capsys):
    lab = load_lab(SMALL)
    lab_transports(lab, state)["ctl1"].run("true")
    assert cli.main(["validate", str(SMALL)]) == 0
    assert pool.machine.clients[0].closed == 1


def test_many_threads_on_one_machine_connect_once(tmp_path, state):
    machine = fake_ssh.Machine(tmp_path)
    slow = lambda login, timeout: (time.sleep(0.2), machine.connect(login, timeout))[1]  # noqa: E731
    pool = ssh_pool.SshPool(connect=slow)
    lab = load_lab(SMALL)
    threads = [threading.Thread(target=lambda: pool.transport(lab.machines[0], state).run("true"))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(machine.clients) == 1 and len(machine.commands) == 8


def test_each_handle_has_its_own_connect_deadline_on_the_same_connection(pool, state):
    lab = load_lab(SMALL)
    quick = pool.transport(lab.machines[0], state, connect_deadline=15)
    patient = pool.transport(lab.machines[0], state, connect_deadline=240)
    assert (quick.connect_deadline, patient.connect_deadline) == (15, 240)
    assert quick.connection is patient.connection


def test_two_labs_with_the_same_machine_names_get_their_own_connections(pool, tmp_path):
    lab = load_lab(SEED)
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    pool.transport(lab.machines[0], first).run("true")
    pool.transport(lab.machines[0], second).run("true")
    assert len(pool.machine.clients) == 2
    assert pool.machine.logins[0].key != pool.machine.logins[1].key   # each lab's own key


def test_after_an_interrupt_the_next_caller_gets_a_new_connection(pool, state):
    lab = load_lab(SMALL)
    steps = StepContext(lab, state, None, [])
    steps.on("ctl1").run("true")
    steps.cancel()   # Ctrl-C in a parallel step
    with pytest.raises(Cancelled):
        steps.on("ctl1").run("true")   # the interrupted run starts nothing new
    lab_transports(lab, state, connect_deadline=15)["ctl1"].run("journalctl")  # log collection
    assert len(pool.machine.clients) == 2 and pool.machine.clients[0].closed == 1


# --- testinfra's modules through the harness's backend ---------------------------------------------
FAKE_SYSTEMCTL = """#!/bin/sh
# systemd is not running here: answer as a node whose ssh runs and whose haproxy is disabled
case "$*" in
  "is-active ssh"|"is-active ssh.service") echo active; exit 0;;
  "is-enabled ssh"|"is-enabled ssh.service") echo enabled; exit 0;;
  is-active*) echo inactive; exit 3;;
  is-enabled*) echo disabled; exit 1;;
  *) exit 0;;
esac
"""


@pytest.fixture
def local_host(tmp_path):
    """A testinfra host whose commands run here, through Transport and TransportBackend."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(FAKE_SYSTEMCTL)
    (bin_dir / "systemctl").chmod(0o755)
    machine = fake_ssh.Machine(tmp_path, fake_ssh.run_locally(bin_dir))
    transport = Transport("here", SshLogin("127.0.0.1", "root", 22, tmp_path / "k"), connect=machine.connect)
    return testinfra_backend.testinfra_host(transport), machine


def test_testinfra_modules_work_through_the_transport(local_host, tmp_path):
    host, machine = local_host
    data = tmp_path / "data.bin"
    data.write_bytes(b"\x00\x01binary\xff")
    data.chmod(0o640)
    assert host.check_output("echo hello") == "hello"
    assert host.run("exit 3").rc == 3 and host.run("echo oops >&2; false").stderr == "oops\n"
    assert host.run_expect([0], "true").succeeded
    assert host.file(str(data)).exists and host.file(str(data)).mode == 0o640
    assert host.file(str(data)).content == b"\x00\x01binary\xff"    # bytes, not text
    assert not host.file(str(tmp_path / "absent")).exists
    assert host.exists("sh") and host.find_command("sh").endswith("/sh")
    assert "127.0.0.1" in host.interface("lo").addresses
    assert host.sysctl("kernel.pid_max") > 0
    assert host.service("ssh").is_running and host.service("ssh").is_enabled
    assert not host.service("haproxy").is_running and not host.service("haproxy").is_enabled
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert host.socket(f"tcp://127.0.0.1:{port}").is_listening
    assert len(machine.clients) == 1   # every module, one connection
    assert repr(host) == "<testinfra.host.Host k8s-ha-lab://here>"
