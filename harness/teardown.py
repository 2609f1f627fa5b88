"""What `up` does between a failure (or Ctrl-C) and the teardown, so the teardown is complete.

kubetest2's rule is that down always runs; two things could still leave a lab behind:

- A provider's own process (`vagrant up` and the docker commands it runs) is still working
  when teardown starts: Python stops reading its output at Ctrl-C but does not wait for it, so
  it could create a container after teardown looked. `stop_children` waits for every process
  this one started, then stops the ones that do not end by themselves.
- A second Ctrl-C arrives while logs are collected or the lab is deleted. `shield_interrupts`
  turns the next one into a notice; only a further one abandons the teardown.

Both work on the process, not on a provider, so they hold for every provider.
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
                  clock: Callable[[], float] = time.monotonic) -> list[str]:
    """Wait up to `grace` for every process this one started (and theirs) to end, SIGTERM the
    rest, SIGKILL what still runs `term_wait` later. The tree is taken once, first, so a
    grandchild whose parent dies is still waited for. Returns what had to be signalled."""
    tree = descendants(processes=list_processes())
    if not tree:
        return []
    names = {p.pid: f"{p.name} (pid {p.pid})" for p in tree}
    pids = set(names)
    log(f"waiting up to {grace:g}s for {', '.join(names.values())} to finish")

    def wait(seconds: float) -> set[int]:
        deadline = clock() + seconds
        while True:
            running = _alive(pids, list_processes())
            if not running or clock() >= deadline:
                return running
            sleep(0.2)

    signalled = []
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


@contextlib.contextmanager
def shield_interrupts(what: str, out=None) -> Iterator[list[int]]:
    """While the body runs, the first Ctrl-C only prints a notice; the next one raises
    KeyboardInterrupt as usual. Outside the main thread (no signal handlers) it does nothing.
    Yields a list that counts the interrupts received."""
    out = out or sys.stderr
    received: list[int] = []

    def on_interrupt(signum, frame):
        received.append(signum)
        if len(received) == 1:
            out.write(f"interrupted again: {what} goes on so nothing is left behind; "
                      "Ctrl-C once more abandons it\n")
            out.flush()
            return
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, on_interrupt)
    except ValueError:  # not the main thread
        yield received
        return
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)
