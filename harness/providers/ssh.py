"""Machines that already exist, reached over SSH: the lab file lists them (provider section and
each machine's `ssh:`), the harness creates nothing and switches nothing off.

- sanity_checks: each key readable, each machine answers and has what the steps need
  (harness.providers.ssh_checks); one line naming the machine and what is missing, exit 2.
- provision: nothing to create; checks again and records each machine's baseline, how it was
  before the harness (harness.baseline), once.
- list_machines: a short TCP connect to each machine's SSH port (running or unreachable).
- no power control: scenarios that need it refuse (require_capability), exit 2.
- delete: what the harness installed, removed, and what it changed, put back
  (harness.uninstall); leftovers: what of it remains, judged against the baseline.
"""

from __future__ import annotations

import os
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import tenacity

from harness.baseline import Baseline, record_script
from harness.errors import ProviderError, UserError
from harness.lab import Lab, Machine
from harness.providers import ssh_endpoint as endpoint
from harness.providers.base import FORCED_POWER_OFF, POWER_OFF, POWER_ON, MachineState, require_capability
from harness.providers.ssh_checks import probe_script, problems

T = TypeVar("T")
CONNECT_TIMEOUT = 3.0     # list_machines: a TCP connect, no login
LOGIN_DEADLINE = 20.0     # sanity checks, provision, down: an SSH login, retried until then
REACH_DEADLINE = 15.0     # down and leftovers: how long a machine may refuse its SSH port
BASELINES = "ssh-baselines"   # in the state folder: the host's copy of each machine's baseline summary


def tcp_answers(address: str, port: int, timeout: float = CONNECT_TIMEOUT) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def answers_within(address: str, port: int, deadline: float = REACH_DEADLINE) -> bool:
    """For down: sshd reloaded by the uninstall (the registry's drop-in removed) re-executes and
    refuses connections for a moment; a machine counts as unreachable only after a deadline."""
    retrying = tenacity.Retrying(stop=tenacity.stop_after_delay(deadline), wait=tenacity.wait_fixed(1),
                                 retry=tenacity.retry_if_result(lambda ok: not ok), reraise=False)
    try:
        return retrying(tcp_answers, address, port)
    except tenacity.RetryError:
        return False


def _each(machines: list[Machine], work: Callable[[Machine], T]) -> dict[str, T | BaseException]:
    """`work` on every machine at once; machine name -> result or the exception it raised."""
    def guarded(m: Machine):
        try:
            return work(m)
        except Exception as exc:  # noqa: BLE001 - returned, the caller words it
            return exc
    if not machines:
        return {}
    with ThreadPoolExecutor(max_workers=len(machines), thread_name_prefix="ssh-") as pool:
        return dict(zip((m.name for m in machines), pool.map(guarded, machines)))


class SshProvider:
    name = "ssh"
    capabilities: frozenset[str] = frozenset()   # the machines are not the harness's to switch off

    def __init__(self, lab: Lab, state_dir: Path):
        self.lab = lab
        self.state_dir = Path(state_dir)

    # --- helpers ----------------------------------------------------------------------------------
    def _require_logins(self) -> None:
        if self.lab.provider != "ssh":
            raise UserError(f"provider ssh: lab {self.lab.name} lists no machines to log in to; give its "
                            "lab file a provider section (provider: {name: ssh, user: ..., key: ...})")

    def _login(self, m: Machine) -> str:
        address, port = endpoint(m)
        return f"{m.ssh.user if m.ssh else 'root'}@{address}:{port}"

    def _transports(self):
        """Handles on the process's shared connections (harness.ssh_pool), which the pool's
        owner (the CLI command, the pytest session) closes."""
        from harness.transport import lab_transports
        return lab_transports(self.lab, self.state_dir, connect_deadline=LOGIN_DEADLINE)

    def _on_each(self, work: Callable[[object, Machine], T],
                 machines: list[Machine] | None = None) -> dict[str, T | BaseException]:
        transports = self._transports()
        return _each(machines if machines is not None else list(self.lab.machines),
                     lambda m: work(transports[m.name], m))

    def _baseline_path(self, name: str) -> Path:
        return self.state_dir / BASELINES / f"{name}.txt"

    def host_baseline(self, name: str) -> Baseline | None:
        path = self._baseline_path(name)
        return Baseline.parse(path.read_text()) if path.exists() else None

    # --- the Provider protocol --------------------------------------------------------------------
    def sanity_checks(self, host) -> None:
        self._require_logins()
        for m in self.lab.machines:
            key = m.ssh.key
            if not key.is_file() or not os.access(key, os.R_OK):
                raise UserError(f"machine {m.name}: ssh key {key} is not a file this user can read")
        silent = [m for m in self.lab.machines if not tcp_answers(*endpoint(m))]
        if silent:
            m = silent[0]
            raise UserError(f"machine {m.name}: nothing answers on {endpoint(m)[0]}:{endpoint(m)[1]} (ssh)"
                            + (f"; nor on {', '.join(x.name for x in silent[1:])}" if silent[1:] else ""))
        results = self._on_each(lambda t, m: t.run(probe_script(self.lab, m), check=False, timeout=60))
        for m in self.lab.machines:
            result = results[m.name]
            if isinstance(result, UserError):   # the transport's own one line (sudo wants a password)
                raise UserError(str(result))
            if isinstance(result, BaseException):
                raise UserError(f"machine {m.name}: cannot log in as {self._login(m)} with key {m.ssh.key}: "
                                f"{str(result).splitlines()[0] if str(result) else type(result).__name__}")
            missing = problems(result.stdout)
            if not missing and result.exit_status != 0:
                missing = [f"the check itself failed (exit {result.exit_status}): "
                           f"{(result.stderr or result.stdout).strip()[-200:]}"]
            if missing:
                raise UserError(f"machine {m.name} ({self._login(m)}): {'; '.join(missing)}")

    def own_host_interfaces(self, host) -> set[str]:
        return set()   # the machines are elsewhere: nothing on this host is the lab's

    def prepare(self, log: Callable[[str], None] = print) -> None:
        """Nothing to build: the machines exist."""

    def provision(self, names: list[str]) -> Iterator[str]:
        """Nothing is created: each machine's baseline is recorded (kept when there is one), and
        the host keeps a copy to judge `down` by."""
        self._require_logins()
        machines = [self.lab.machine(n) for n in names]
        results = self._on_each(lambda t, m: t.run(record_script(self.lab), check=False, timeout=300), machines)
        for m in machines:
            result = results[m.name]
            if isinstance(result, BaseException):
                raise UserError(f"machine {m.name}: cannot log in as {self._login(m)}: {result}")
            if result.exit_status != 0:
                why = (result.stdout.strip().splitlines() or [result.stderr.strip()[-300:]])[-1]
                raise UserError(f"machine {m.name} ({self._login(m)}): {why.removeprefix('refused: ')}")
            baseline = Baseline.parse(result.stdout)
            path = self._baseline_path(m.name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(baseline.render())
            yield f"==> {m.name}: baseline recorded ({len(baseline.existed)} paths existed)"

    def list_machines(self) -> list[MachineState]:
        answers = _each(list(self.lab.machines), lambda m: tcp_answers(*endpoint(m)))
        return [MachineState(m.name, "running" if answers[m.name] is True else "unreachable")
                for m in self.lab.machines]

    def power_off(self, name: str, force: bool = False) -> None:
        require_capability(self, FORCED_POWER_OFF if force else POWER_OFF, f"powering {name} off")

    def power_on(self, name: str) -> None:
        require_capability(self, POWER_ON, f"powering {name} on")

    def delete(self) -> list[str]:
        from harness.uninstall import uninstall

        self._require_logins()
        reachable = [m for m in self.lab.machines if answers_within(*endpoint(m))]
        done = self._on_each(lambda t, m: uninstall(t.run, self.lab), reachable)
        removed, failed = [], []
        for m in self.lab.machines:
            outcome = done.get(m.name)
            if m not in reachable:
                removed.append(f"{m.name}: unreachable, nothing removed")
            elif isinstance(outcome, BaseException):
                failed.append(f"{m.name}: {outcome}")
            else:
                removed.append(f"{m.name}: {outcome}")
        if failed:
            raise ProviderError(f"[{self.lab.name} > down] " + "; ".join(failed))
        return removed

    def leftovers(self) -> list[str]:
        from harness.uninstall import leftovers

        self._require_logins()
        reachable = [m for m in self.lab.machines if answers_within(*endpoint(m))]
        found = [f"{m.name}: unreachable at {self._login(m)}, cannot tell what remains"
                 for m in self.lab.machines if m not in reachable]
        results = self._on_each(lambda t, m: leftovers(t.run, self.lab, self.host_baseline(m.name)), reachable)
        for m in reachable:
            result = results[m.name]
            if isinstance(result, BaseException):
                found.append(f"{m.name}: could not look ({type(result).__name__}: {result})")
            else:
                found += [f"{m.name}: {item}" for item in result]
        return found

    def collect_logs(self) -> dict[str, str]:
        lines = []
        for state in self.list_machines():
            m = self.lab.machine(state.name)
            lines.append(f"{m.name}: {self._login(m) if m.ssh else '(no login)'} key "
                         f"{m.ssh.key if m.ssh else '-'}: {state.state}")
        out = {"ssh-machines.txt": "\n".join(lines) + "\n"}
        for m in self.lab.machines:
            path = self._baseline_path(m.name)
            if path.exists():
                out[f"ssh-baseline-{m.name}.txt"] = path.read_text()
        return out
