"""SSH to the lab's machines: one paramiko connection per machine, as root, with the lab's key.

Every machine is reached on its lab IP, the address the lab file gives it, whatever the
provider. The connection is opened once and cached; a dropped one is reopened once before a
command starts (never after, so a command is never run twice). Connecting is the only thing
retried: machines take a while to boot, so it retries with tenacity until a deadline.
"""

from __future__ import annotations

import io
import logging
import os
import posixpath
import select
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import paramiko
import tenacity
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness.lab import Lab, Machine

log = logging.getLogger(__name__)
KEY_NAME = "id_ed25519"


# --- the lab's key pair ----------------------------------------------------------------------
@dataclass(frozen=True)
class LabKey:
    private_path: Path
    public_line: str  # the authorized_keys line


def ensure_lab_key(state_dir: Path) -> LabKey:
    """The lab's SSH key pair, generated once and kept 0600 in the lab's state folder."""
    private = Path(state_dir) / KEY_NAME
    public = private.with_suffix(".pub")
    if not private.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
        line = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                             serialization.PublicFormat.OpenSSH).decode()
        partial = private.with_name(f"{KEY_NAME}.{os.getpid()}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        public_partial = public.with_name(f"{KEY_NAME}.pub.{os.getpid()}.partial")
        public_partial.write_text(f"{line} k8s-ha-lab-{Path(state_dir).name}\n")
        try:
            # Two processes (the harness and a `vagrant` it started) may race here; the first
            # link wins and the other uses that key, so nobody holds a key nobody else knows.
            os.link(partial, private)
            os.replace(public_partial, public)
        except FileExistsError:
            public_partial.unlink()
        finally:
            partial.unlink()
    os.chmod(private, 0o600)
    return LabKey(private, public.read_text().strip())


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


class Cancelled(Exception):
    """The run was interrupted: this machine's connection was closed for good, so a worker
    thread that is still busy on it stops at its next command instead of reconnecting."""


# --- the transport --------------------------------------------------------------------------
class _MissingHostKeyAccepted(paramiko.MissingHostKeyPolicy):
    # Lab machines get fresh host keys every time they are created and live on a network the
    # run itself made, so there is nothing to pin; checking would only break re-creation.
    def missing_host_key(self, client, hostname, key):
        log.debug("accepting %s host key %s for %s", key.get_name(), key.fingerprint, hostname)


def _paramiko_connect(address: str, key_path: Path, timeout: float) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(_MissingHostKeyAccepted())
    client.connect(address, port=22, username="root", key_filename=str(key_path),
                   timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                   allow_agent=False, look_for_keys=False)
    return client


def _retryable(exc: BaseException) -> bool:
    # A refused key will not start working by waiting; a machine still booting will.
    return (isinstance(exc, (OSError, EOFError, paramiko.SSHException))
            and not isinstance(exc, paramiko.AuthenticationException))


class Transport:
    def __init__(self, name: str, address: str, key_path: Path, connect_deadline: float = 120.0,
                 connect: Callable[[str, Path, float], paramiko.SSHClient] = _paramiko_connect,
                 retry_wait: float = 1.0):
        self.name = name
        self.address = address
        self.key_path = Path(key_path)
        self.connect_deadline = connect_deadline
        self._connect = connect
        self._retry_wait = retry_wait
        self._client: paramiko.SSHClient | None = None
        self._cancelled = False

    def __repr__(self) -> str:
        return f"Transport({self.name}, {self.address})"

    # connection --------------------------------------------------------------------------
    def connect(self) -> paramiko.SSHClient:
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_retryable),
            stop=tenacity.stop_after_delay(self.connect_deadline),
            wait=tenacity.wait_fixed(self._retry_wait), reraise=False)
        try:
            return retrying(self._connect, self.address, self.key_path,
                            min(10.0, self.connect_deadline))
        except tenacity.RetryError as exc:
            last = exc.last_attempt.exception()
            raise MachineUnreachable(
                f"{self.name} ({self.address}:22): no SSH connection within "
                f"{self.connect_deadline:g}s: {type(last).__name__}: {last}") from last
        except paramiko.AuthenticationException as exc:
            raise MachineUnreachable(f"{self.name} ({self.address}:22): the lab key "
                                     f"{self.key_path} was refused: {exc}") from exc

    @property
    def client(self) -> paramiko.SSHClient:
        if self._cancelled:
            raise Cancelled(f"[{self.name}] the run was interrupted; no new command starts")
        if self._client is None:
            self._client = self.connect()
        return self._client

    def cancel(self) -> None:
        """Close the connection for good: a command running on it ends now (its channel
        closes), and every later one raises Cancelled."""
        self._cancelled = True
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _session(self) -> paramiko.Channel:
        """A new channel; a connection found dead is reopened once, before any command runs."""
        try:
            transport = self.client.get_transport()
            if transport is None or not transport.is_active():
                raise paramiko.SSHException("connection is closed")
            return transport.open_session()
        except (paramiko.SSHException, EOFError, OSError):
            log.debug("%s: connection dropped, reconnecting once", self.name)
            self.close()
            return self.client.get_transport().open_session()

    # commands ----------------------------------------------------------------------------
    def run(self, command: str, check: bool = True, timeout: float = 300.0) -> CommandResult:
        log.debug("[%s] run: %s", self.name, command)
        channel = self._session()
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
                if channel.exit_status_ready() and not channel.recv_ready() \
                        and not channel.recv_stderr_ready():
                    break
                if time.monotonic() > deadline:
                    raise CommandTimeout(f"[{self.name}] `{command}` still running after {timeout:.0f}s")
                select.select([channel], [], [], 0.2)
            status = channel.recv_exit_status()
        finally:
            channel.close()
        if self._cancelled:
            raise Cancelled(f"[{self.name}] `{command}` cut off: the run was interrupted")
        result = CommandResult(command, status, stdout.getvalue().decode(errors="replace"),
                               stderr.getvalue().decode(errors="replace"))
        log.debug("[%s] exit %d: %s", self.name, status, command)
        if check and not result.succeeded:
            raise CommandFailed(self.name, result)
        return result

    def upload(self, path: str, data: bytes, mode: int = 0o644, owner: str = "root:root") -> None:
        """Write `data` to `path` atomically: parent folders made, then rename into place."""
        parent = posixpath.dirname(path) or "/"
        partial = f"{path}.k8s-ha-lab-partial"
        self.run(f"mkdir -p {shlex.quote(parent)}")
        with self.client.open_sftp() as sftp:
            sftp.putfo(io.BytesIO(data), partial)
            sftp.chmod(partial, mode)
        self.run(f"chown {shlex.quote(owner)} {shlex.quote(partial)} && "
                 f"mv -f {shlex.quote(partial)} {shlex.quote(path)}")

    def read(self, path: str) -> bytes:
        with self.client.open_sftp() as sftp, sftp.open(path, "rb") as handle:
            return handle.read()


# --- per lab --------------------------------------------------------------------------------
def lab_transports(lab: Lab, state_dir: Path, connect_deadline: float = 120.0) -> dict[str, Transport]:
    key = ensure_lab_key(state_dir)
    return {m.name: Transport(m.name, str(m.ip), key.private_path, connect_deadline)
            for m in lab.machines}


def write_ssh_config(lab: Lab, state_dir: Path) -> Path:
    """An ssh_config for the lab: used by testinfra's paramiko backend and by trainees
    (`ssh -F <state>/ssh_config master01`)."""
    key = ensure_lab_key(state_dir)
    blocks = []
    for m in lab.machines:
        blocks.append(f"Host {m.name} {m.ip}\n  HostName {m.ip}\n  User root\n"
                      f"  IdentityFile {key.private_path}\n  IdentitiesOnly yes\n"
                      f"  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
                      f"  LogLevel ERROR\n")
    path = Path(state_dir) / "ssh_config"
    path.write_text("\n".join(blocks))
    return path


def testinfra_host(machine: Machine, ssh_config: Path, timeout: int = 30):
    """The machine as a testinfra host, through the paramiko backend and the lab's ssh_config."""
    import testinfra

    return testinfra.get_host(f"paramiko://root@{machine.ip}", ssh_config=str(ssh_config),
                              timeout=timeout)
