"""A paramiko client for the transport's tests, with no network: each command is answered by a
script (`Scripted`) or run on this host in a shell (`Local`), and sftp reads and writes files
under a folder. Connects are counted, so a test can see how many connections were made."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path
from typing import Callable

Reply = tuple[int, bytes, bytes]


class Channel:
    def __init__(self, answer: Callable[[str], Reply], log: list[str]):
        self._answer, self._log = answer, log
        self._out = self._err = b""
        self._status = None
        self.eof_received, self.closed = True, False
        self._read, self._write = os.pipe()  # select() needs a file descriptor

    def fileno(self):
        return self._read

    def exec_command(self, command: str) -> None:
        self._log.append(command)
        self._status, self._out, self._err = self._answer(command)

    def recv_ready(self):
        return bool(self._out)

    def recv(self, n):
        data, self._out = self._out[:n], self._out[n:]
        return data

    def recv_stderr_ready(self):
        return bool(self._err)

    def recv_stderr(self, n):
        data, self._err = self._err[:n], self._err[n:]
        return data

    def exit_status_ready(self):
        return True

    def recv_exit_status(self):
        return self._status

    def close(self):
        self.closed = True
        for fd in (self._read, self._write):
            try:
                os.close(fd)
            except OSError:
                pass
        self._read = self._write = -1


class Sftp:
    """Paths are taken under `root`; `home` is what normalize('.') answers."""

    def __init__(self, root: Path, home: str, log: list[str]):
        self.root, self.home, self.log = root, home, log

    def _local(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def normalize(self, path: str) -> str:
        return self.home if path == "." else path

    def putfo(self, handle, path: str) -> None:
        self.log.append(f"sftp put {path}")
        self._local(path).parent.mkdir(parents=True, exist_ok=True)
        self._local(path).write_bytes(handle.read())

    def put(self, local: str, path: str) -> None:
        with open(local, "rb") as handle:
            self.putfo(handle, path)

    def chmod(self, path: str, mode: int) -> None:
        self.log.append(f"sftp chmod {mode:o} {path}")

    def open(self, path: str, mode: str = "rb"):
        self.log.append(f"sftp read {path}")
        return io.BytesIO(self._local(path).read_bytes())


class Client:
    """One connection: `transport` and `close` as paramiko's SSHClient has them."""

    def __init__(self, answer: Callable[[str], Reply], root: Path, home: str, log: list[str]):
        self.answer, self.root, self.home, self.log = answer, root, home, log
        self.closed = 0
        self.active = True

    def get_transport(self):
        return self

    def is_active(self):
        return self.active and not self.closed

    def open_session(self):
        return Channel(self.answer, self.log)

    def open_sftp(self):
        return Sftp(self.root, self.home, self.log)

    def close(self):
        self.closed += 1


class Machine:
    """A fake machine behind `connect`: every login made to it is kept in `logins`."""

    def __init__(self, root: Path, answer: Callable[[str], Reply] | None = None, home: str = "/home/admin"):
        self.root, self.answer, self.home = root, answer or (lambda command: (0, b"", b"")), home
        self.logins: list = []
        self.clients: list[Client] = []
        self.commands: list[str] = []

    def connect(self, login, timeout) -> Client:
        self.logins.append(login)
        self.clients.append(Client(self.answer, self.root, self.home, self.commands))
        return self.clients[-1]


def run_locally(extra_path: Path | None = None) -> Callable[[str], Reply]:
    """Answer each command by running it in sh on this host (testinfra's modules need real
    answers); `extra_path` goes first on PATH, for stand-ins such as a fake systemctl."""
    env = dict(os.environ)
    if extra_path is not None:
        env["PATH"] = f"{extra_path}:{env['PATH']}"

    def answer(command: str) -> Reply:
        proc = subprocess.run(["sh", "-c", command], capture_output=True, env=env, timeout=60)
        return proc.returncode, proc.stdout, proc.stderr
    return answer
