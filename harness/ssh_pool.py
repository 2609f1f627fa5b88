"""One SSH connection per machine for the whole process: steps, checks and testinfra share it.

paramiko multiplexes channels on one connection, so a parallel step, a check and a testinfra
host can all run commands on the same machine at once. The pool holds one `Transport` per
(state folder, machine) (two labs may both have a `master01`) and hands out handles on it,
each with the caller's own connect deadline.

Who made the pool closes it: the CLI (`harness.cli.main`) when its command ends, the pytest
plugin when the session ends. Closing only drops connections: a handle used afterwards (a
machine powered off and on, in a scenario) opens its machine's connection again. A cancelled connection (Ctrl-C in
a parallel step) is never handed out again: the next caller (the log collection after the
interrupt) gets a fresh one.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Iterator

from harness.lab import Lab, Machine
from harness.ssh_login import login_for
from harness.transport import ConnectFunction, Transport, _paramiko_connect

DEFAULT_DEADLINE = 120.0


class SshPool:
    def __init__(self, connect: ConnectFunction = _paramiko_connect, retry_wait: float = 1.0):
        self._connect = connect
        self._retry_wait = retry_wait
        self._lock = threading.Lock()
        self._transports: dict[tuple[Path, str], Transport] = {}

    def transport(self, machine: Machine, state_dir: Path,
                  connect_deadline: float = DEFAULT_DEADLINE) -> Transport:
        """A handle on `machine`'s shared connection."""
        key = (Path(state_dir).resolve(), machine.name)
        login = login_for(machine, state_dir)
        with self._lock:
            pooled = self._transports.get(key)
            if pooled is None or pooled.cancelled or pooled.login != login:
                if pooled is not None:
                    pooled.close()   # the lab file changed the login: the old one is of no use
                pooled = Transport(machine.name, login, DEFAULT_DEADLINE, self._connect, self._retry_wait)
                self._transports[key] = pooled
        return pooled.with_deadline(connect_deadline)

    def transports(self, lab: Lab, state_dir: Path,
                   connect_deadline: float = DEFAULT_DEADLINE) -> dict[str, Transport]:
        return {m.name: self.transport(m, state_dir, connect_deadline) for m in lab.machines}

    def connections(self) -> dict[tuple[Path, str], Transport]:
        with self._lock:
            return dict(self._transports)

    def close(self) -> None:
        """Every open connection closed, once. The entries stay, so the handles given out
        still share one connection per machine if they are used again (it reopens)."""
        with self._lock:
            pooled = list(self._transports.values())
        for transport in pooled:
            transport.close()


POOL = SshPool()   # the process's pool (lab_transports, StepContext.on, the pytest plugin)


@contextlib.contextmanager
def owned(pool: SshPool | None = None) -> Iterator[SshPool]:
    """The body owns the pool (default: the process's): whatever it opened is closed when it
    ends, however it ends."""
    pool = pool if pool is not None else POOL
    try:
        yield pool
    finally:
        pool.close()
