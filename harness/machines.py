"""The lab's machines: bring them up, take them down, say how they are, keep their logs.

Every entry point takes a Lab and works out the rest: the state folder, the provider (the one
the lab is already up with, else the one this host supports) and the transports. `up` on a
running lab starts nothing; `down` leaves no container, network or host interface behind.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from harness import preflight
from harness.progress import phase, report
from harness.lab import Lab
from harness.providers import EXISTING_MACHINES, forget_provider, remember_provider, resolve_provider
from harness.providers.base import Provider
from harness.state import lab_state_dir
from harness.transport import lab_transports, write_ssh_config

READY_TIMEOUT = 240  # seconds for sshd and systemd on a busy 2-core host
Log = Callable[[str], None]


# --- one lifecycle change at a time per lab ----------------------------------------------------

_held_locks: dict[Path, int] = {}


@contextlib.contextmanager
def lab_lock(state_dir: Path, out=None) -> Iterator[None]:
    """One lifecycle change at a time per lab: two `vagrant up`/`destroy` on the same state
    folder would record containers the other one then cannot find. Re-entrant in-process
    (the pytest plugin's halt/up test calls `up` inside a session)."""
    import fcntl

    path = Path(state_dir) / "lifecycle.lock"
    if _held_locks.get(path):
        _held_locks[path] += 1
        try:
            yield
        finally:
            _held_locks[path] -= 1
        return
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            (out or sys.stdout).write(f" • waiting for another k8s-ha-lab process on {path.parent.name} "
                                      f"({path})\n")
            fcntl.flock(handle, fcntl.LOCK_EX)
        _held_locks[path] = 1
        try:
            yield
        finally:
            _held_locks.pop(path, None)
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class MachineStatus:
    name: str
    ip: str
    state: str


# --- up ---------------------------------------------------------------------------------------
_VAGRANT_LINE = re.compile(r"^(?:==>|\s+)\s*([A-Za-z0-9-]+): (.*)$")


# A provider's line that says a machine is ready: Vagrant's, or the ssh provider's baseline.
_READY = ("Machine booted and ready", "baseline recorded")


def _start(lab: Lab, provider: Provider, names: list[str], what: str = "create") -> None:
    """One provision for all of them; a ✓ line per machine as the provider reports it ready
    (Vagrant's "Machine booted and ready", the ssh provider's recorded baseline), the rest
    when provisioning ends."""
    started = time.monotonic()
    done: set[str] = set()
    for line in provider.provision(names):
        match = _VAGRANT_LINE.match(line)
        if match and match[1] in names and match[1] not in done and any(w in match[2] for w in _READY):
            done.add(match[1])
            note = match[2] if "baseline" in match[2] else ""
            report(f"[{lab.name} > {what}] {match[1]}", time.monotonic() - started, note)
    for name in names:
        if name not in done:
            report(f"[{lab.name} > {what}] {name}", time.monotonic() - started)


def wait_ready(lab: Lab, state_dir: Path, timeout: float = READY_TIMEOUT) -> dict[str, str]:
    """SSH on each lab IP, then systemd settled. Returns machine -> systemd's state."""
    states = {}
    for name, transport in lab_transports(lab, state_dir, connect_deadline=timeout).items():
        with phase(f"[{lab.name} > ready] {name} {transport.address}") as note:
            result = transport.run("systemctl is-system-running --wait", check=False, timeout=timeout)
            states[name] = result.stdout.strip() or result.stderr.strip()
            note(states[name])
            if states[name] != "running":
                failed = transport.run("systemctl --failed --no-legend --plain", check=False)
                units = [line.split()[0] for line in failed.stdout.splitlines() if line.strip()]
                note("failed units: " + (", ".join(units) or "none"))
        transport.close()
    return states


def up(lab: Lab, provider_name: str | None = None, host: preflight.Host | None = None) -> dict[str, str]:
    with lab_lock(lab_state_dir(lab)):
        return _up(lab, provider_name, host)


def _up(lab: Lab, provider_name: str | None, host: preflight.Host | None) -> dict[str, str]:
    state_dir = lab_state_dir(lab)
    provider = resolve_provider(lab, state_dir, provider_name)
    host = host or preflight.Host()
    with phase(f"[{lab.name} > preflight] {provider.name}"):
        provider.sanity_checks(host)
    with phase(f"[{lab.name} > prepare] {provider.name}"):
        provider.prepare(log=lambda line: None)
    with phase(f"[{lab.name} > status]") as note:
        states = provider.list_machines()
        running = {s.name for s in states if s.running}
        note(f"{len(running)}/{len(states)} running")
    existing = provider.name in EXISTING_MACHINES
    if not existing:  # machines made on this host need its memory and a free subnet
        with phase(f"[{lab.name} > preflight] memory, {lab.network}"):
            running_mb = sum(m.memory_mb for m in lab.machines if m.name in running)
            preflight.check_memory(host, lab, running_mb)
            preflight.check_subnet(host, lab, provider.own_host_interfaces(host))
    remember_provider(state_dir, provider.name)
    # Existing machines all run; each is still prepared (its baseline recorded, once).
    to_start = [s.name for s in states if existing or not s.running]
    if to_start:
        _start(lab, provider, to_start, "prepare" if existing else "create")
    write_ssh_config(lab, state_dir)
    return wait_ready(lab, state_dir)


# --- down -------------------------------------------------------------------------------------
def down(lab: Lab, provider_name: str | None = None) -> None:
    with lab_lock(lab_state_dir(lab)):
        _down(lab, provider_name)


def _down(lab: Lab, provider_name: str | None) -> None:
    state_dir = lab_state_dir(lab)
    provider = resolve_provider(lab, state_dir, provider_name)
    with phase(f"[{lab.name} > destroy] {provider.name}") as note:
        removed = provider.delete()
        note(", ".join(removed) if removed else "nothing left over")
    with phase(f"[{lab.name} > cleanup]") as note:
        leftovers = provider.leftovers()
        if leftovers:
            raise RuntimeError(f"still present after down: {', '.join(leftovers)}")
        note("nothing of the lab remains")
    forget_provider(state_dir)


# --- status -----------------------------------------------------------------------------------
def status(lab: Lab, provider_name: str | None = None) -> list[MachineStatus]:
    state_dir = lab_state_dir(lab)
    provider = resolve_provider(lab, state_dir, provider_name)
    states = {s.name: s.state for s in provider.list_machines()}
    return [MachineStatus(m.name, str(m.ip), states.get(m.name, "unknown")) for m in lab.machines]


# --- logs -------------------------------------------------------------------------------------
_MACHINE_LOG_COMMANDS = {
    "systemctl-failed.txt": "systemctl --failed --no-pager",
    "system-state.txt": "systemctl is-system-running; systemctl list-jobs --no-pager",
    "failed-units-journal.txt": "for u in $(systemctl --failed --no-legend --plain | awk '{print $1}'); "
                                "do echo \"=== $u\"; journalctl -u \"$u\" --no-pager -n 200; done",
    "journal-tail.txt": "journalctl -b --no-pager -n 500",
    "network.txt": "ip -brief addr; ip route",
}


def collect_logs(lab: Lab, dest_dir: Path, provider_name: str | None = None) -> Path:
    """What a trainee needs to see why a run failed; never raises (the failure that matters is
    the one being logged). Must run before `down`."""
    dest = Path(dest_dir) / "machines"
    dest.mkdir(parents=True, exist_ok=True)
    state_dir = lab_state_dir(lab)
    try:
        provider = resolve_provider(lab, state_dir, provider_name)
        for filename, content in provider.collect_logs().items():
            (dest / filename).write_text(content)
    except Exception as exc:  # noqa: BLE001 - recorded, not raised
        (dest / "provider-error.txt").write_text(f"{type(exc).__name__}: {exc}\n")
    for name, transport in lab_transports(lab, state_dir, connect_deadline=15).items():
        machine_dir = dest / name
        machine_dir.mkdir(exist_ok=True)
        for filename, command in _MACHINE_LOG_COMMANDS.items():
            try:
                result = transport.run(command, check=False, timeout=60)
                text = result.stdout + (f"\n--- stderr ---\n{result.stderr}" if result.stderr else "")
            except Exception as exc:  # noqa: BLE001 - an unreachable machine is itself a finding
                text = f"could not run `{command}`: {type(exc).__name__}: {exc}\n"
            (machine_dir / filename).write_text(text)
            if text.startswith("could not run"):
                break
        transport.close()
    return dest
