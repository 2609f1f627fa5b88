"""The common driver: every provider is Vagrant with the repo's Vagrantfile.

Only python-vagrant runs `vagrant`. Vagrant's state lives in the lab's state folder
(VAGRANT_DOTFILE_PATH), so the repo stays clean and two labs never share machines. All of
Vagrant's output is appended to `<state>/vagrant.log`, which collect_logs keeps.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import vagrant

from harness import REPO_ROOT
from harness.lab import Lab

VAGRANT_DIR = REPO_ROOT / "vagrant"


class VagrantError(Exception):
    """A vagrant command failed; names the command and ends with the tail of vagrant.log."""


@dataclass(frozen=True)
class MachineState:
    name: str
    state: str  # Vagrant's words: running, stopped, not_created, poweroff, ...

    @property
    def running(self) -> bool:
        return self.state == "running"


class VagrantProvider:
    name = "vagrant"

    def __init__(self, lab: Lab, state_dir: Path):
        self.lab = lab
        self.state_dir = Path(state_dir)
        self.log_path = self.state_dir / "vagrant.log"

    # --- what the Vagrantfile is told ---------------------------------------------------------
    def vagrant_env(self) -> dict[str, str]:
        lab_file = Path(self.lab.source).resolve() if self.lab.source else None
        if lab_file is None:
            raise ValueError(f"lab {self.lab.name} has no source file for the Vagrantfile to read")
        return {
            **os.environ,
            "K8S_HA_LAB_FILE": str(lab_file),
            "K8S_HA_LAB_PROVIDER": self.name,
            # vagrant_spec must find the same state folder (the key) the harness uses.
            "K8S_HA_LAB_STATE": str(self.state_dir.parent),
            "K8S_HA_LAB_PYTHON": sys.executable,
            "VAGRANT_DOTFILE_PATH": str(self.state_dir / "vagrant"),
            "VAGRANT_DEFAULT_PROVIDER": self.name,
            # Network rule: no traffic but to the lab, so no version or box update checks.
            "VAGRANT_CHECKPOINT_DISABLE": "1",
            "VAGRANT_BOX_UPDATE_CHECK_DISABLE": "1",
            "VAGRANT_NO_COLOR": "1",
        }

    @property
    def vagrant(self) -> vagrant.Vagrant:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log_cm = vagrant.make_file_cm(str(self.log_path), "a")
        return vagrant.Vagrant(root=str(VAGRANT_DIR), env=self.vagrant_env(),
                               out_cm=log_cm, err_cm=log_cm)

    def _log_tail(self, lines: int = 15) -> str:
        if not self.log_path.exists():
            return "(no vagrant.log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _mark(self, what: str) -> None:
        with open(self.log_path, "a") as handle:
            handle.write(f"\n### k8s-ha-lab: vagrant {what}\n")

    def _call(self, what: str, action, *args, **kwargs):
        self._mark(what)
        try:
            return action(*args, **kwargs)
        except subprocess.CalledProcessError as exc:
            # Commands python-vagrant parses (status, ssh-config) keep stdout, where Vagrant's
            # machine-readable mode also puts its error text.
            captured = exc.output.decode(errors="replace") if isinstance(exc.output, bytes) \
                else (exc.output or "")
            if captured:
                with open(self.log_path, "a") as handle:
                    handle.write(captured)
            raise VagrantError(f"[{self.lab.name} > vagrant {what}] exited {exc.returncode}; "
                               f"tail of {self.log_path}:\n{self._log_tail()}") from None

    # --- lifecycle ----------------------------------------------------------------------------
    def status(self) -> list[MachineState]:
        statuses = self._call("status", self.vagrant.status)
        return [MachineState(s.name, s.state) for s in statuses]

    def machine_states(self) -> list[MachineState]:
        """The provider's own view of the lab's machines, for the lab-is-up guard; a provider
        with a faster way to ask than `vagrant status` overrides it."""
        return self.status()

    def up_stream(self, names: list[str]) -> Iterator[str]:
        """`vagrant up` for several machines at once (parallel where the provider allows),
        yielding Vagrant's output lines as they come; they also go to vagrant.log."""
        self._mark(f"up {' '.join(names)}")
        pattern = f"/^({'|'.join(names)})$/"
        stream = self.vagrant.up(vm_name=pattern, provider=self.name, stream_output=True)
        with open(self.log_path, "a") as log:
            try:
                for line in stream:
                    log.write(line)
                    log.flush()
                    yield line.rstrip("\n")
            except subprocess.CalledProcessError as exc:
                log.flush()
                raise VagrantError(f"[{self.lab.name} > vagrant up {' '.join(names)}] exited "
                                   f"{exc.returncode}; tail of {self.log_path}:\n"
                                   f"{self._log_tail()}") from None

    def up(self, name: str) -> None:
        for _ in self.up_stream([name]):
            pass

    def halt(self, name: str | None = None) -> None:
        self._call(f"halt {name or ''}".strip(), self.vagrant.halt, vm_name=name)

    def destroy(self, name: str | None = None) -> None:
        self._call(f"destroy {name or ''}".strip(), self.vagrant.destroy, vm_name=name)

    def ssh_config(self, name: str) -> str:
        return self._call(f"ssh-config {name}", self.vagrant.ssh_config, vm_name=name)

    # --- provider hooks, overridden where a provider needs more --------------------------------
    def prepare(self, log=print) -> None:
        """Anything the provider needs before `vagrant up` (the docker image, for one)."""

    def before_start(self, states: list[MachineState]) -> None:
        """Called with the machines about to be started."""

    def cleanup(self) -> list[str]:
        """After destroy: remove what Vagrant leaves behind. Returns what was removed."""
        return []

    def inspect(self) -> dict[str, str]:
        """Provider-level facts for collect_logs, file name -> content."""
        return {}


class VirtualBoxProvider(VagrantProvider):
    name = "virtualbox"


class LibvirtProvider(VagrantProvider):
    name = "libvirt"
