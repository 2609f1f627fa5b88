"""What `up` does between a failure (or Ctrl-C) and the teardown, so the teardown is complete.

kubetest2's rule is that down always runs; two things could still leave a lab behind:

- A provider's own process (`vagrant up` and the docker commands it runs) is still working
  when teardown starts: Python stops reading its output at Ctrl-C but does not wait for it, so
  it could create a container after teardown looked. `stop_children` waits for every process
  this one started, then stops the ones that do not end by themselves.
- A second Ctrl-C arrives while logs are collected or the lab is deleted. `shield_interrupts`
  turns the next one into a notice; only a further one abandons the teardown.

SIGTERM (a CI job cancelled, `kill`, systemd stopping a unit) is taken like Ctrl-C:
`sigterm_as_interrupt` raises `Terminated`, a KeyboardInterrupt, so every path that cleans up
after Ctrl-C cleans up after it too; the CLI exits 143 instead of 130. A terminal sends Ctrl-C's
SIGINT to every process of the job, a SIGTERM reaches only this one, so `stop_children` first
gives the children the SIGINT they would have had.

All of this works on the process, not on a provider, so it holds for every provider.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

PROC = Path("/proc")
GRACE_S = 30.0      # a provider that got the Ctrl-C too finishes its own step in this time
TERM_WAIT_S = 10.0  # after SIGTERM, before SIGKILL


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    name: str
    zombie: bool


def read_processes(proc: Path = PROC) -> dict[int, Process]:
    """Every process in /proc: pid -> Process. A process that ends while being read is left out."""
    found = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split at the last ')'
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        found[int(entry.name)] = Process(int(entry.name), int(fields[1]), name, fields[0] == "Z")
    return found


def descendants(pid: int | None = None, processes: dict[int, Process] | None = None) -> list[Process]:
    """The processes below `pid` (default: this one), children before grandchildren."""
    pid = os.getpid() if pid is None else pid
    processes = read_processes() if processes is None else processes
    children: dict[int, list[Process]] = {}
    for process in processes.values():
        children.setdefault(process.ppid, []).append(process)
    found, queue = [], [pid]
    while queue:
        for child in sorted(children.get(queue.pop(0), []), key=lambda p: p.pid):
            found.append(child)
            queue.append(child.pid)
    return found


def _alive(pids: set[int], processes: dict[int, Process]) -> set[int]:
    """A zombie has ended; whoever started it (subprocess, for our own children) reaps it."""
    return {pid for pid in pids if pid in processes and not processes[pid].zombie}


def stop_children(grace: float = GRACE_S, term_wait: float = TERM_WAIT_S, log: Callable[[str], None] = print,
                  list_processes: Callable[[], dict[int, Process]] = read_processes,
                  kill: Callable[[int, int], None] = os.kill, sleep: Callable[[float], None] = time.sleep,
                  clock: Callable[[], float] = time.monotonic, interrupt_first: bool = False) -> list[str]:
    """Wait up to `grace` for every process this one started (and theirs) to end, SIGTERM the
    rest, SIGKILL what still runs `term_wait` later. The tree is taken once, first, so a
    grandchild whose parent dies is still waited for. `interrupt_first` (after a SIGTERM, which
    reached only this process) sends them the SIGINT a terminal's Ctrl-C would have sent.
    Returns what had to be signalled."""
    tree = descendants(processes=list_processes())
    if not tree:
        return []
    names = {p.pid: f"{p.name} (pid {p.pid})" for p in tree}
    pids = set(names)
    signalled = []
    if interrupt_first:
        running = sorted(_alive(pids, list_processes()))
        for pid in running:
            with contextlib.suppress(ProcessLookupError):
                kill(pid, signal.SIGINT)
                signalled.append(f"{names[pid]} SIGINT")
        if running:
            log(f"sent SIGINT to {', '.join(names[pid] for pid in running)}, as Ctrl-C would have")
    log(f"waiting up to {grace:g}s for {', '.join(names.values())} to finish")

    def wait(seconds: float) -> set[int]:
        deadline = clock() + seconds
        while True:
            running = _alive(pids, list_processes())
            if not running or clock() >= deadline:
                return running
            sleep(0.2)

    running = wait(grace)
    for sig, then_wait in ((signal.SIGTERM, term_wait), (signal.SIGKILL, 5.0)):
        if not running:
            break
        for pid in sorted(running):
            with contextlib.suppress(ProcessLookupError):
                kill(pid, sig)
                signalled.append(f"{names[pid]} {sig.name}")
        log(f"sent {sig.name} to {', '.join(names[pid] for pid in sorted(running))}")
        running = wait(then_wait)
    if running:
        log(f"still running: {', '.join(names[pid] for pid in sorted(running))}")
    return signalled


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C's KeyboardInterrupt would be, so it takes the same path."""


def _raise_terminated(signum, frame):
    raise Terminated()


def _installed(handlers: dict[int, Callable]) -> dict[int, object] | None:
    """Install the handlers; their previous ones, or None outside the main thread."""
    previous = {}
    try:
        for signum, handler in handlers.items():
            previous[signum] = signal.signal(signum, handler)
    except ValueError:  # not the main thread: no signal handlers there
        _restore(previous)
        return None
    return previous


def _restore(previous: dict[int, object]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the body runs, SIGTERM raises Terminated (a KeyboardInterrupt) in the main thread."""
    previous = _installed({signal.SIGTERM: _raise_terminated})
    try:
        yield
    finally:
        if previous is not None:
            _restore(previous)


@contextlib.contextmanager
def shield_interrupts(what: str, out=None) -> Iterator[list[int]]:
    """While the body runs, the first Ctrl-C (or SIGTERM) only prints a notice; the next one
    raises KeyboardInterrupt (Terminated) as usual. Outside the main thread (no signal
    handlers) it does nothing. Yields a list of the signals received."""
    out = out or sys.stderr
    received: list[int] = []

    def on_signal(signum, frame):
        received.append(signum)
        if len(received) == 1:
            said, again = (("interrupted", "Ctrl-C once more") if signum == signal.SIGINT
                           else ("terminated", "one more SIGTERM or Ctrl-C"))
            out.write(f"{said} again: {what} goes on so nothing is left behind; {again} abandons it\n")
            out.flush()
            return
        raise KeyboardInterrupt if signum == signal.SIGINT else Terminated()

    previous = _installed({signal.SIGINT: on_signal, signal.SIGTERM: on_signal})
    if previous is None:
        yield received
        return
    try:
        yield received
    finally:
        _restore(previous)
