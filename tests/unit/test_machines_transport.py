"""The SSH transport's edges, with a fake connect: retry until a deadline, reconnect once."""

import os
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paramiko
import pytest

from tests.unit.fake_ssh import Channel
from harness.lab import SshLogin
from harness.transport import (MAX_CHANNELS, CommandFailed, CommandResult, MachineUnreachable,
                               Transport, ensure_lab_key)


def root_at(address: str, key: Path = Path("/nonexistent/key")) -> SshLogin:
    return SshLogin(address=address, user="root", port=22, key=key)


def test_lab_key_is_made_once_and_private(tmp_path):
    first = ensure_lab_key(tmp_path)
    second = ensure_lab_key(tmp_path)
    assert first == second
    assert stat.S_IMODE(os.stat(first.private_path).st_mode) == 0o600
    assert first.public_line.startswith("ssh-ed25519 ")
    paramiko.Ed25519Key.from_private_key_file(str(first.private_path))  # loads as a real key


def test_connect_gives_up_at_the_deadline_naming_machine_and_address(tmp_path):
    attempts = []

    def refuse(login, timeout):
        attempts.append(time.monotonic())
        raise ConnectionRefusedError(111, "Connection refused")

    transport = Transport("master01", root_at("192.168.220.100"), connect_deadline=0.3,
                          connect=refuse, retry_wait=0.05)
    started = time.monotonic()
    with pytest.raises(MachineUnreachable) as caught:
        transport.run("true")
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert "master01 (root@192.168.220.100:22)" in message
    assert "within 0s" not in message and "ConnectionRefusedError" in message
    assert len(attempts) > 1
    assert 0.25 <= elapsed < 2


def test_connect_retries_until_the_machine_answers(tmp_path):
    client = FakeClient()
    outcomes = [OSError("no route"), EOFError(), client]

    def flaky(login, timeout):
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    transport = Transport("node01", root_at("10.240.0.11"), connect_deadline=5,
                          connect=flaky, retry_wait=0.01)
    assert transport.client is client
    assert transport.client is client  # cached: connected once
    assert outcomes == []


def test_a_refused_key_is_not_retried(tmp_path):
    calls = []

    def refuse_key(login, timeout):
        calls.append(1)
        raise paramiko.AuthenticationException("Authentication failed.")

    transport = Transport("node02", root_at("10.240.0.12", tmp_path / "key"), connect_deadline=5,
                          connect=refuse_key, retry_wait=0.01)
    with pytest.raises(MachineUnreachable, match=r"root@10.240.0.12:22\): the key .*/key was refused"):
        transport.connect()
    assert calls == [1]


class FakeChannel(Channel):
    """One channel whose every command gets the same answer; remembers the last command."""

    def __init__(self, stdout=b"", stderr=b"", status=0):
        self.log: list[str] = []
        super().__init__(lambda _command: (status, stdout, stderr), self.log)

    @property
    def command(self):
        return self.log[-1] if self.log else None


class FakeTransport:
    def __init__(self, channel, active=True):
        self.channel, self.active = channel, active

    def is_active(self):
        return self.active

    def open_session(self):
        if not self.active:
            raise paramiko.SSHException("SSH session not active")
        return self.channel


class FakeClient:
    def __init__(self, channel=None, active=True):
        self.transport = FakeTransport(channel or FakeChannel(b"ok\n"), active)
        self.closed = False

    def get_transport(self):
        return self.transport

    def close(self):
        self.closed = True


def test_run_returns_a_command_result(tmp_path):
    channel = FakeChannel(b"master01\n", b"", 0)
    transport = Transport("m", root_at("10.0.0.1"), connect=lambda *a: FakeClient(channel))
    result = transport.run("hostname")
    assert result == CommandResult("hostname", 0, "master01\n", "")


class LateOutputChannel(FakeChannel):
    """sshd's order under load: the exit status first, the last output a few polls later,
    then end of file (as curl's trailing status line arrived in a rehearsal)."""

    def __init__(self, late: bytes, polls: int = 3):
        super().__init__(b"<html>page</html>", b"", 0)
        self._late, self._polls = late, polls
        self.eof_received = False

    def recv_ready(self):
        if not self._out and self._late is not None:
            self._polls -= 1
            if self._polls <= 0:
                self._out, self._late, self.eof_received = self._late, None, True
        return bool(self._out)


def test_output_sent_after_the_exit_status_is_still_read(tmp_path):
    channel = LateOutputChannel(b"\n200")
    transport = Transport("master03", root_at("10.0.0.3"), connect=lambda *a: FakeClient(channel))
    assert transport.run("curl -sS -w '\\n%{http_code}' http://nginx/").stdout == "<html>page</html>\n200"


def test_failed_command_names_machine_command_and_output(tmp_path):
    channel = FakeChannel(b"", b"unit haproxy.service not found\n", 5)
    transport = Transport("master02", root_at("10.0.0.2"), connect=lambda *a: FakeClient(channel))
    with pytest.raises(CommandFailed) as caught:
        transport.run("systemctl start haproxy")
    assert "[master02] `systemctl start haproxy` exited 5" in str(caught.value)
    assert "haproxy.service not found" in str(caught.value)


def test_check_false_returns_the_failure(tmp_path):
    channel = FakeChannel(b"", b"no\n", 3)
    transport = Transport("node02", root_at("10.0.0.2"), connect=lambda *a: FakeClient(channel))
    result = transport.run("false", check=False)
    assert (result.exit_status, result.stderr, result.succeeded) == (3, "no\n", False)


def test_dropped_connection_is_reopened_once(tmp_path):
    dead, alive = FakeClient(active=False), FakeClient(FakeChannel(b"back\n"))
    clients = [dead, alive]
    transport = Transport("node01", root_at("10.0.0.3"), connect=lambda *a: clients.pop(0))
    assert transport.run("echo back").stdout == "back\n"
    assert dead.closed and clients == []


class SshdWithMaxSessions(FakeTransport):
    """sshd's side of one connection: it refuses a channel beyond `max_sessions` open at once
    (as OpenSSH does: "open failed", reason Connect failed). Each command takes `seconds`."""

    def __init__(self, max_sessions=10, seconds=0.05):
        super().__init__(None)
        self.max_sessions, self.seconds = max_sessions, seconds
        self.open = self.most = self.refused = 0
        self.lock = threading.Lock()

    def open_session(self):
        with self.lock:
            if self.open >= self.max_sessions:
                self.refused += 1
                raise paramiko.ChannelException(2, "open failed")
            self.open += 1
            self.most = max(self.most, self.open)
        sshd = self

        class Slow(FakeChannel):
            def exec_command(self, command):
                time.sleep(sshd.seconds)
                super().exec_command(command)

            def close(self):
                if not self.closed:
                    with sshd.lock:
                        sshd.open -= 1
                super().close()
        return Slow(b"ok\n")


def test_many_commands_at_once_stay_within_sshds_max_sessions(tmp_path):
    client = FakeClient()
    client.transport = sshd = SshdWithMaxSessions()
    transport = Transport("master01", root_at("10.0.0.1"), connect=lambda *a: client)
    with ThreadPoolExecutor(max_workers=3 * MAX_CHANNELS) as pool:
        outputs = list(pool.map(lambda i: transport.run(f"echo {i}").stdout, range(6 * MAX_CHANNELS)))
    assert outputs == ["ok\n"] * (6 * MAX_CHANNELS)
    assert sshd.refused == 0 and sshd.most == MAX_CHANNELS < sshd.max_sessions
    assert not client.closed   # the shared connection was never dropped


def test_a_refused_open_is_tried_again_and_the_command_runs_once(tmp_path):
    client = FakeClient()
    client.transport = sshd = SshdWithMaxSessions(max_sessions=0)
    opens = []

    def busy_then_free():   # sshd frees the sessions of a burst of closes in its next loop
        opens.append(1)
        sshd.max_sessions = 10 if len(opens) >= 3 else 0
    original = sshd.open_session
    sshd.open_session = lambda: (busy_then_free(), original())[1]
    transport = Transport("master01", root_at("10.0.0.1"), connect=lambda *a: client)
    assert transport.run("echo once").stdout == "ok\n"
    assert len(opens) == 3 and sshd.refused == 2 and not client.closed


def test_a_refused_channel_leaves_the_connection_and_its_commands_alone(tmp_path, monkeypatch):
    monkeypatch.setattr("harness.transport.REFUSED_RETRY_S", 0.3)
    client = FakeClient()
    client.transport = sshd = SshdWithMaxSessions(max_sessions=0)   # a stricter sshd than ours
    transport = Transport("master01", root_at("10.0.0.1"), connect=lambda *a: client)
    with pytest.raises(paramiko.ChannelException):
        transport.run("true")
    assert sshd.refused >= 1 and not client.closed


def test_paramikos_error_line_for_a_refused_open_is_not_printed(caplog):
    """_session retries a refused open, so paramiko's ERROR line for it is dropped (stop 21's
    CI output showed two of them above a scenario that had nothing to do with them)."""
    import logging
    with caplog.at_level(logging.DEBUG, logger="paramiko.transport"):
        logging.getLogger("paramiko.transport").error("Secsh channel 83 open FAILED: open failed: Connect failed")
        logging.getLogger("paramiko.transport").error("Socket exception: Connection reset by peer")
    assert [r.getMessage() for r in caplog.records] == ["Socket exception: Connection reset by peer"]
