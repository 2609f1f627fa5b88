"""Each machine's own login: where, as whom, with which key; a non-root user goes through
`sudo -n` for commands and for file writes; the ssh_config says the same. Fake connect only."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.labfile import load_lab
from harness.lab import SshLogin
from harness.ssh_pool import SshPool
from harness.transport import CommandFailed, SudoRefused, Transport, login_for, write_ssh_config
from tests.unit import fake_ssh
from tests.unit.conftest import SMALL


def _with_logins(lab, logins: dict[str, SshLogin]):
    machines = tuple(dataclasses.replace(m, ssh=logins.get(m.name)) for m in lab.machines)
    return dataclasses.replace(lab, machines=machines, provider="ssh")


@pytest.fixture
def ssh_lab(tmp_path):
    """small, with ctl1 reached as admin on a forwarded port and ctl2 as root elsewhere; ctl3
    has no login of its own (a machine the provider made)."""
    key = tmp_path / "admin_key"
    key.write_text("not read by the fake connect")
    return _with_logins(load_lab(SMALL), {
        "ctl1": SshLogin(address="127.0.0.1", user="admin", port=2201, key=key),
        "ctl2": SshLogin(address="ctl2.example", user="root", port=22, key=key)})


def test_the_login_comes_from_the_machine_else_root_with_the_lab_key(ssh_lab, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    ctl1, ctl2, ctl3 = ssh_lab.machines
    assert login_for(ctl1, state) == ctl1.ssh
    assert login_for(ctl2, state) == ctl2.ssh
    default = login_for(ctl3, state)
    assert (default.address, default.user, default.port) == (str(ctl3.ip), "root", 22)
    assert default.key == state / "id_ed25519" and default.key.exists()


def test_the_transport_connects_with_the_machines_login(ssh_lab, tmp_path):
    machine = fake_ssh.Machine(tmp_path)
    pool = SshPool(connect=machine.connect)
    (tmp_path / "state").mkdir()
    transports = pool.transports(ssh_lab, tmp_path / "state")
    for transport in transports.values():
        transport.run("true")
    assert machine.logins == [login_for(m, tmp_path / "state") for m in ssh_lab.machines]
    assert [(l.address, l.port, l.user) for l in machine.logins] == [
        ("127.0.0.1", 2201, "admin"), ("ctl2.example", 22, "root"), ("10.240.0.13", 22, "root")]


def _admin(tmp_path, answer=None) -> tuple[Transport, fake_ssh.Machine]:
    machine = fake_ssh.Machine(tmp_path, answer)
    login = SshLogin(address="10.240.0.11", user="admin", port=22, key=tmp_path / "k")
    return Transport("ctl1", login, connect=machine.connect), machine


def test_a_non_root_user_runs_every_command_through_sudo(tmp_path):
    transport, machine = _admin(tmp_path, lambda command: (0, b"ok\n", b""))
    result = transport.run("systemctl restart 'etcd' && echo $HOME")
    assert machine.commands == ["sudo -n true",
                                "sudo -n -H -- sh -c " + shlex.quote("systemctl restart 'etcd' && echo $HOME")]
    assert result.command == "systemctl restart 'etcd' && echo $HOME"  # errors name what was asked
    assert result.stdout == "ok\n"


def test_root_runs_commands_as_they_are(tmp_path):
    machine = fake_ssh.Machine(tmp_path)
    transport = Transport("ctl1", SshLogin("10.240.0.11", "root", 22, tmp_path / "k"), connect=machine.connect)
    transport.run("hostname")
    assert machine.commands == ["hostname"]


def test_sudo_asking_for_a_password_is_refused_in_one_line(tmp_path):
    def answer(command):
        if command == "sudo -n true":
            return 1, b"", b"sudo: a password is required\n"
        raise AssertionError(f"ran {command} although sudo needs a password")
    transport, machine = _admin(tmp_path, answer)
    with pytest.raises(SudoRefused) as refused:
        transport.run("systemctl restart etcd")
    message = str(refused.value)
    assert message == ("machine ctl1: user admin on 10.240.0.11 cannot run commands as root without a "
                       "password (`sudo -n true`: sudo: a password is required); give admin password-less "
                       "sudo (NOPASSWD)")
    assert isinstance(refused.value, UserError) and refused.value.exit_status == 2
    assert machine.clients[0].closed == 1


def test_a_non_root_upload_is_staged_in_home_then_moved_in_by_sudo(tmp_path):
    transport, machine = _admin(tmp_path)
    transport.upload("/etc/kubernetes/ssl/ca-key.pem", b"secret", mode=0o600, owner="etcd:etcd")
    staged_put = [c for c in machine.commands if c.startswith("sftp put ")]
    assert len(staged_put) == 1
    staged = staged_put[0].removeprefix("sftp put ")
    assert staged.startswith("/home/admin/.k8s-ha-lab-upload-")   # a path the user owns
    assert (tmp_path / staged.lstrip("/")).read_bytes() == b"secret"
    partial = "/etc/kubernetes/ssl/ca-key.pem.k8s-ha-lab-partial"
    moved = ("mkdir -p /etc/kubernetes/ssl && mv -f " + staged + " " + partial + " && chown etcd:etcd "
             + partial + " && chmod 0600 " + partial + " && mv -f " + partial + " /etc/kubernetes/ssl/ca-key.pem")
    assert machine.commands[-1] == "sudo -n -H -- sh -c " + shlex.quote(moved)
    assert not any(c.startswith("sftp chmod") for c in machine.commands)  # sudo sets the mode


def test_a_failed_non_root_move_removes_the_staged_copy(tmp_path):
    transport, machine = _admin(tmp_path, lambda c: (1, b"", b"mv: no space\n") if "mv -f" in c else (0, b"", b""))
    with pytest.raises(CommandFailed, match="no space"):
        transport.upload("/etc/x.conf", b"x")
    assert machine.commands[-1].startswith("rm -f /home/admin/.k8s-ha-lab-upload-")  # as admin, no sudo


def test_root_upload_keeps_the_sftp_path(tmp_path):
    machine = fake_ssh.Machine(tmp_path)
    transport = Transport("ctl1", SshLogin("10.240.0.11", "root", 22, tmp_path / "k"), connect=machine.connect)
    transport.upload("/etc/x.conf", b"x", mode=0o640)
    assert machine.commands == ["mkdir -p /etc", "sftp put /etc/x.conf.k8s-ha-lab-partial",
                                "sftp chmod 640 /etc/x.conf.k8s-ha-lab-partial",
                                "chown root:root /etc/x.conf.k8s-ha-lab-partial && "
                                "mv -f /etc/x.conf.k8s-ha-lab-partial /etc/x.conf"]


def test_a_non_root_read_goes_through_sudo(tmp_path):
    transport, machine = _admin(tmp_path, lambda c: (0, b"\x00\xffkey", b"") if "cat" in c else (0, b"", b""))
    assert transport.read("/etc/kubernetes/ssl/ca-key.pem") == b"\x00\xffkey"  # bytes as they are
    assert machine.commands[-1] == "sudo -n -H -- sh -c " + shlex.quote("cat -- /etc/kubernetes/ssl/ca-key.pem")


def test_the_ssh_config_uses_each_machines_login(ssh_lab, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    text = write_ssh_config(ssh_lab, state).read_text()
    blocks = {block.split()[1]: block for block in text.split("\n\n")}
    assert "HostName 127.0.0.1\n  Port 2201\n  User admin\n" in blocks["ctl1"]
    assert f"IdentityFile {tmp_path / 'admin_key'}\n" in blocks["ctl1"]
    assert "HostName ctl2.example\n  Port 22\n  User root\n" in blocks["ctl2"]
    assert "Host ctl3 10.240.0.13\n  HostName 10.240.0.13\n  Port 22\n  User root\n" in blocks["ctl3"]
    assert f"IdentityFile {state / 'id_ed25519'}\n" in blocks["ctl3"]
