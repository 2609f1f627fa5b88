"""SSH to the lab's machines: one paramiko connection per machine, with a login per machine.

A machine the provider made is reached as root on its lab IP with the lab's key; a machine that
already exists (the ssh provider) says in the lab file where and as whom (`Machine.ssh`). A
non-root user runs every command through `sudo -n` and writes files through a copy it owns,
moved into place by sudo.

The connection is opened once and shared: every `Transport` handle on a machine (the steps',
the checks', testinfra's, each with its own connect deadline) uses the same paramiko client
(harness.ssh_pool hands them out). A dropped connection is reopened once before a command
starts (never after, so a command is never run twice). Connecting is the only thing retried:
machines take a while to boot, so it retries with tenacity until a deadline.

sshd serves at most MaxSessions (10 by default) channels at once on one connection and refuses
the next. The harness runs many commands at once on one machine (checks in parallel, a step's
threads, a scenario's probe), so each connection hands out at most MAX_CHANNELS channels and a
caller beyond that waits for one to close. sshd frees a closed channel's session only after
it has read what came with the close, so a burst of closes and opens can still be refused: a
refused open (nothing ran) is retried for a few seconds. A refused channel is not a dropped
connection: the connection, and every command running on it, stays.
"""

from __future__ import annotations

import contextlib
import io
import logging
import posixpath
import secrets
import select
import shlex
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import paramiko
import tenacity

from harness.errors import UserError
from harness.lab import Lab, SshLogin
# The lab's key and each machine's login live in harness.ssh_login; imported from here too.
from harness.ssh_login import KEY_NAME, LabKey, ensure_lab_key, login_for, write_ssh_config  # noqa: F401

log = logging.getLogger(__name__)


# --- results and errors ---------------------------------------------------------------------
@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_status: int
    stdout: str
    stderr: str

    @property
    def succeeded(self) -> bool:
        return self.exit_status == 0


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class CommandFailed(Exception):
    def __init__(self, machine: str, result: CommandResult):
        self.machine = machine
        self.result = result
        detail = _tail(result.stderr) or _tail(result.stdout) or "(no output)"
        super().__init__(f"[{machine}] `{result.command}` exited {result.exit_status}:\n{detail}")


class CommandTimeout(Exception):
    pass


class MachineUnreachable(Exception):
    pass


# sshd's MaxSessions default is 10 (sshd_config(5)); two are left for the moment between our
# close of a channel and sshd's own cleanup of its session.
MAX_CHANNELS = 8
CHANNEL_WAIT_S = 300.0   # longer than any single command's own timeout in the harness
REFUSED_RETRY_S = 10.0   # a refused open is retried this long (sshd frees sessions in its next loop)


class _RetriedRefusal(logging.Filter):
    """paramiko logs every refused channel open at ERROR ("Secsh channel N open FAILED"), even
    the ones _session retries and gets; a refusal that outlasts the retry is raised instead, so
    the log line only alarms a trainee reading the scenario's output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "open FAILED" not in record.getMessage()


logging.getLogger("paramiko.transport").addFilter(_RetriedRefusal())


class SudoRefused(UserError):
    """A non-root login whose sudo asks for a password: the lab file's login cannot work."""


class Cancelled(Exception):
    """The run was interrupted: this machine's connection was closed for good, so a worker
    thread that is still busy on it stops at its next command instead of reconnecting."""


# --- the connection -------------------------------------------------------------------------
class _MissingHostKeyAccepted(paramiko.MissingHostKeyPolicy):
    # Lab machines get fresh host keys every time they are created and live on a network the
    # run itself made, so there is nothing to pin; checking would only break re-creation.
    def missing_host_key(self, client, hostname, key):
        log.debug("accepting %s host key %s for %s", key.get_name(), key.fingerprint, hostname)


def _paramiko_connect(login: SshLogin, timeout: float) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(_MissingHostKeyAccepted())
    client.connect(login.address, port=login.port, username=login.user, key_filename=str(login.key),
                   timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                   allow_agent=False, look_for_keys=False)
    return client


def _retryable(exc: BaseException) -> bool:
    # A refused key will not start working by waiting; a machine still booting will.
    return (isinstance(exc, (OSError, EOFError, paramiko.SSHException))
            and not isinstance(exc, paramiko.AuthenticationException))


class Connection:
    """One machine's paramiko client, shared by every Transport handle on the machine."""

    def __init__(self):
        self.client: paramiko.SSHClient | None = None
        self.lock = threading.Lock()    # one connect at a time; readers need no lock
        self._swap = threading.Lock()   # short: a connect in progress must not delay a close
        self.cancelled = False
        self.channels = threading.BoundedSemaphore(MAX_CHANNELS)

    def drop(self, client: paramiko.SSHClient | None = None) -> None:
        """Close the client (or only `client`, if it is still the current one), once."""
        with self._swap:
            current = self.client
            if current is None or (client is not None and current is not client):
                return
            self.client = None
        current.close()


ConnectFunction = Callable[[SshLogin, float], paramiko.SSHClient]


class Transport:
    """Commands and files on one machine. Several handles may share one Connection (the pool
    gives each caller its own connect deadline over the same client)."""

    def __init__(self, name: str, login: SshLogin, connect_deadline: float = 120.0,
                 connect: ConnectFunction = _paramiko_connect, retry_wait: float = 1.0,
                 connection: Connection | None = None):
        self.name = name
        self.login = login
        self.connect_deadline = connect_deadline
        self._connect = connect
        self._retry_wait = retry_wait
        self.connection = connection or Connection()

    def __repr__(self) -> str:
        return f"Transport({self.name}, {self.login.user}@{self.address}:{self.login.port})"

    @property
    def address(self) -> str:
        return self.login.address

    @property
    def is_root(self) -> bool:
        return self.login.user == "root"

    def with_deadline(self, connect_deadline: float) -> "Transport":
        """Another handle on the same connection, connecting (if it has to) within this deadline."""
        return Transport(self.name, self.login, connect_deadline, self._connect, self._retry_wait,
                         self.connection)

    # connection --------------------------------------------------------------------------
    def connect(self) -> paramiko.SSHClient:
        where = f"{self.name} ({self.login.user}@{self.address}:{self.login.port})"
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_retryable),
            stop=tenacity.stop_after_delay(self.connect_deadline),
            wait=tenacity.wait_fixed(self._retry_wait), reraise=False)
        try:
            client = retrying(self._connect, self.login, min(10.0, self.connect_deadline))
        except tenacity.RetryError as exc:
            last = exc.last_attempt.exception()
            raise MachineUnreachable(
                f"{where}: no SSH connection within "
                f"{self.connect_deadline:g}s: {type(last).__name__}: {last}") from last
        except paramiko.AuthenticationException as exc:
            raise MachineUnreachable(f"{where}: the key {self.login.key} was refused: {exc}") from exc
        if not self.is_root:
            self._require_sudo(client)
        return client

    def _require_sudo(self, client: paramiko.SSHClient) -> None:
        status, _, err = self._exec(client.get_transport().open_session(), "sudo -n true", 30.0)
        if status != 0:
            client.close()
            reason = (err.decode(errors="replace").strip().splitlines() or [f"exit {status}"])[0]
            raise SudoRefused(f"machine {self.name}: user {self.login.user} on {self.address} cannot "
                              f"run commands as root without a password (`sudo -n true`: {reason}); "
                              f"give {self.login.user} password-less sudo (NOPASSWD)")

    @property
    def client(self) -> paramiko.SSHClient:
        conn = self.connection
        if conn.cancelled:
            raise Cancelled(f"[{self.name}] the run was interrupted; no new command starts")
        client = conn.client
        if client is not None:
            return client
        with conn.lock:
            if conn.client is None:
                client = self.connect()
                if conn.cancelled:   # Ctrl-C came while connecting
                    client.close()
                    raise Cancelled(f"[{self.name}] the run was interrupted; no new command starts")
                conn.client = client
            return conn.client

    def cancel(self) -> None:
        """Close the connection for good: a command running on it ends now (its channel
        closes), and every later one, on any handle, raises Cancelled."""
        self.connection.cancelled = True
        self.close()

    @property
    def cancelled(self) -> bool:
        return self.connection.cancelled

    def close(self) -> None:
        """Close the shared connection now (a machine powered off, the session over); the
        next command on any handle opens it again."""
        self.connection.drop()

    @contextlib.contextmanager
    def _channel_slot(self):
        """One of the connection's MAX_CHANNELS, held while the channel is open."""
        if not self.connection.channels.acquire(timeout=CHANNEL_WAIT_S):
            raise CommandTimeout(f"[{self.name}] no SSH channel free within {CHANNEL_WAIT_S:.0f}s "
                                 f"({MAX_CHANNELS} busy on the connection)")
        try:
            yield
        finally:
            self.connection.channels.release()

    def _session(self) -> paramiko.Channel:
        """A new channel (call it holding a slot); a connection found dead is reopened once,
        before any command runs. A channel sshd refuses on a live connection raises, and the
        connection stays: dropping it would cut every command running on it."""
        client = self.client
        try:
            transport = client.get_transport()
            if transport is None or not transport.is_active():
                raise paramiko.SSHException("connection is closed")
            return tenacity.Retrying(
                retry=tenacity.retry_if_exception_type(paramiko.ChannelException),
                stop=tenacity.stop_after_delay(REFUSED_RETRY_S), wait=tenacity.wait_fixed(0.2),
                reraise=True)(transport.open_session)
        except paramiko.ChannelException:
            raise
        except (paramiko.SSHException, EOFError, OSError):
            log.debug("%s: connection dropped, reconnecting once", self.name)
            self.connection.drop(client)
            return self.client.get_transport().open_session()

    @contextlib.contextmanager
    def sftp(self):
        """An SFTP session on the shared connection, counted as one of its channels."""
        with self._channel_slot(), self.client.open_sftp() as session:
            yield session

    # commands ----------------------------------------------------------------------------
    def as_root(self, command: str) -> str:
        """The command line that runs `command` as root for this login."""
        return command if self.is_root else f"sudo -n -H -- sh -c {shlex.quote(command)}"

    def _exec(self, channel: paramiko.Channel, command: str, timeout: float) -> tuple[int, bytes, bytes]:
        stdout, stderr = io.BytesIO(), io.BytesIO()
        deadline = time.monotonic() + timeout
        try:
            channel.exec_command(command)
            while True:
                # Drain both streams as they come, so a chatty stderr cannot stall stdout.
                while channel.recv_ready():
                    stdout.write(channel.recv(65536))
                while channel.recv_stderr_ready():
                    stderr.write(channel.recv_stderr(65536))
                # Done at end of output, not at the exit status: sshd may send the status
                # before the last bytes of output, which would otherwise be lost.
                if channel.exit_status_ready() and (channel.eof_received or channel.closed) \
                        and not channel.recv_ready() and not channel.recv_stderr_ready():
                    break
                if time.monotonic() > deadline:
                    raise CommandTimeout(f"[{self.name}] `{command}` still running after {timeout:.0f}s")
                select.select([channel], [], [], 0.2)
            status = channel.recv_exit_status()
        finally:
            channel.close()
        return status, stdout.getvalue(), stderr.getvalue()

    def execute(self, command: str, timeout: float = 300.0, as_root: bool = True) -> tuple[int, bytes, bytes]:
        """Exit status, stdout and stderr as bytes (testinfra's backend wants them raw)."""
        log.debug("[%s] run: %s", self.name, command)
        with self._channel_slot():
            status, out, err = self._exec(self._session(), self.as_root(command) if as_root else command,
                                          timeout)
        if self.connection.cancelled:
            raise Cancelled(f"[{self.name}] `{command}` cut off: the run was interrupted")
        log.debug("[%s] exit %d: %s", self.name, status, command)
        return status, out, err

    def run(self, command: str, check: bool = True, timeout: float = 300.0) -> CommandResult:
        status, out, err = self.execute(command, timeout)
        result = CommandResult(command, status, out.decode(errors="replace"), err.decode(errors="replace"))
        if check and not result.succeeded:
            raise CommandFailed(self.name, result)
        return result

    def upload(self, path: str, data: bytes, mode: int = 0o644, owner: str = "root:root") -> None:
        """Write `data` to `path` atomically: parent folders made, then rename into place. A
        non-root login writes a copy it owns in its home folder, which sudo moves in."""
        parent = posixpath.dirname(path) or "/"
        partial = f"{path}.k8s-ha-lab-partial"
        quoted = {k: shlex.quote(v) for k, v in (("parent", parent), ("partial", partial),
                                                  ("path", path), ("owner", owner))}
        if self.is_root:
            self.run(f"mkdir -p {quoted['parent']}")
            with self.sftp() as sftp:
                sftp.putfo(io.BytesIO(data), partial)
                sftp.chmod(partial, mode)
            self.run(f"chown {quoted['owner']} {quoted['partial']} && "
                     f"mv -f {quoted['partial']} {quoted['path']}")
            return
        with self.sftp() as sftp:
            staged = posixpath.join(sftp.normalize("."), f".k8s-ha-lab-upload-{secrets.token_hex(8)}")
            sftp.putfo(io.BytesIO(data), staged)
        try:
            # mv from the home folder may cross filesystems, so it lands beside the target
            # first and the last mv is a rename.
            self.run(f"mkdir -p {quoted['parent']} && mv -f {shlex.quote(staged)} {quoted['partial']} && "
                     f"chown {quoted['owner']} {quoted['partial']} && chmod {mode:04o} {quoted['partial']} && "
                     f"mv -f {quoted['partial']} {quoted['path']}")
        except BaseException:
            with contextlib.suppress(Exception):
                self.execute(f"rm -f {shlex.quote(staged)}", timeout=30, as_root=False)
            raise

    def read(self, path: str) -> bytes:
        if not self.is_root:   # root's files are not the login user's to read through sftp
            status, out, err = self.execute(f"cat -- {shlex.quote(path)}")
            if status != 0:
                raise CommandFailed(self.name, CommandResult(f"cat -- {path}", status, "",
                                                             err.decode(errors="replace")))
            return out
        with self.sftp() as sftp, sftp.open(path, "rb") as handle:
            return handle.read()


# --- per lab --------------------------------------------------------------------------------
def lab_transports(lab: Lab, state_dir: Path, connect_deadline: float = 120.0) -> dict[str, Transport]:
    """machine name -> a handle on its shared connection (harness.ssh_pool); the pool's owner,
    not the caller, closes the connections for good."""
    from harness.ssh_pool import POOL

    return POOL.transports(lab, state_dir, connect_deadline)
