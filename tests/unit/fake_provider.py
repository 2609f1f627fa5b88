"""A provider for the harness's own tests: its "machines" and "network" are files in the lab's
state folder, so a test in another process can see exactly what is left, and `provision` starts
a real child process the way `vagrant up` does. Implements harness.providers.base.Provider.

`FAKE_PROVISION=hang` makes provision stop after creating the machines (for a Ctrl-C to land
there), with the child process still running and ignoring SIGINT like a busy `vagrant`;
`FAKE_DELETE_SLOW` makes delete take that many seconds (for a Ctrl-C during teardown).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from harness.lab import Lab
from harness.providers.base import CAPABILITIES, MachineState

# A child that ignores SIGINT and ends only when signalled otherwise, like a `vagrant up`
# that goes on with its step after Ctrl-C.
STUBBORN_CHILD = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(300)"


class FakeProvider:
    name = "fake"
    capabilities = frozenset(CAPABILITIES)

    def __init__(self, lab: Lab, state_dir: Path):
        self.lab, self.state_dir = lab, Path(state_dir)
        self.root = self.state_dir / "fake-provider"

    def _machine(self, name: str) -> Path:
        return self.root / "machines" / name

    def _mark(self, what: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / what).touch()

    def sanity_checks(self, host) -> None:
        pass

    def own_host_interfaces(self, host) -> set[str]:
        return set()

    def prepare(self, log=print) -> None:
        pass

    def provision(self, names: list[str]):
        (self.root / "machines").mkdir(parents=True, exist_ok=True)
        (self.root / "network").touch()
        child = subprocess.Popen([sys.executable, "-c", STUBBORN_CHILD])
        (self.root / "child.pid").write_text(str(child.pid))
        for name in names:
            self._machine(name).write_text("running")
            yield f"==> {name}: Machine booted and ready!"
        if os.environ.get("FAKE_PROVISION") == "hang":
            self._mark("provisioning")
            time.sleep(300)  # Ctrl-C lands here
        child.kill()
        child.wait()

    def list_machines(self) -> list[MachineState]:
        return [MachineState(m.name, self._machine(m.name).read_text() if self._machine(m.name).exists()
                             else "not_created") for m in self.lab.machines]

    def power_off(self, name: str, force: bool = False) -> None:
        self._machine(name).write_text("killed" if force else "stopped")

    def power_on(self, name: str) -> None:
        self._machine(name).write_text("running")

    def delete(self) -> list[str]:
        self._mark("deleting")
        time.sleep(float(os.environ.get("FAKE_DELETE_SLOW", "0")))
        removed = []
        for path in sorted((self.root / "machines").glob("*")):
            path.unlink()
            removed.append(f"machine {path.name}")
        if (self.root / "network").exists():
            (self.root / "network").unlink()
            removed.append("network")
        return removed

    def leftovers(self) -> list[str]:
        found = [f"machine {p.name}" for p in sorted((self.root / "machines").glob("*"))]
        return found + (["network"] if (self.root / "network").exists() else [])

    def collect_logs(self) -> dict[str, str]:
        return {"fake-provider.txt": "\n".join(f"{s.name} {s.state}" for s in self.list_machines()) + "\n"}
