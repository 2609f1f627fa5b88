"""The common driver: every provider here is Vagrant with the repo's Vagrantfile.

Only python-vagrant runs `vagrant`. Vagrant's state lives in the lab's state folder
(VAGRANT_DOTFILE_PATH), so the repo stays clean and two labs never share machines. All of
Vagrant's output is appended to `<state>/vagrant.log`, which collect_logs keeps. The classes
implement `harness.providers.base.Provider`; `halt`, `up`, `status` and `vagrant` are Vagrant's
own words, kept for callers that predate the protocol.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import vagrant

from harness import REPO_ROOT
from harness.errors import ProviderError, UserError
from harness.lab import Lab
from harness.preflight import Host
from harness.providers import libvirt
from harness.providers.base import FORCED_POWER_OFF, POWER_OFF, POWER_ON, MachineState

VAGRANT_DIR = REPO_ROOT / "vagrant"
__all__ = ["MachineState", "VagrantError", "VagrantProvider", "VirtualBoxProvider", "LibvirtProvider"]


class VagrantError(ProviderError):
    """A vagrant command failed; names the command and ends with the tail of vagrant.log."""


# --- sanity checks: what each Vagrant provider needs on the host --------------------------------
def check_vagrant(host: Host) -> None:
    if not host.which("vagrant"):
        raise UserError("vagrant: not found on PATH; install it with `apt-get install vagrant`")


VBOX_NETWORKS_CONF = "/etc/vbox/networks.conf"
VBOX_DEFAULT_RANGE = ipaddress.IPv4Network("192.168.56.0/21")


def check_virtualbox(host: Host, lab: Lab) -> None:
    if not host.which("VBoxManage"):
        raise UserError("VBoxManage: not found on PATH; install VirtualBox and its kernel "
                        "driver (/dev/vboxdrv), or use another provider")
    # VirtualBox 6.1.28+ refuses host-only networks outside its allowed ranges.
    conf = host.read_text(VBOX_NETWORKS_CONF)
    allowed = [VBOX_DEFAULT_RANGE] if conf is None else [
        ipaddress.IPv4Network(word, strict=False)
        for line in conf.splitlines() if line.strip().startswith("*")
        for word in line.split()[1:] if ":" not in word]
    if not any(lab.network.subnet_of(net) for net in allowed):
        raise UserError(f"VirtualBox: host-only network {lab.network} is not allowed; add the line "
                        f"`* {lab.network}` to {VBOX_NETWORKS_CONF}")


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

    def vagrantfile_settings(self) -> dict:
        """This provider's own section of the spec the Vagrantfile reads (harness.vagrant_spec)."""
        return {}

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

    # --- the Provider protocol ------------------------------------------------------------------
    capabilities = frozenset({POWER_OFF, FORCED_POWER_OFF, POWER_ON})

    def sanity_checks(self, host: Host) -> None:
        check_vagrant(host)
        self.host_checks(host)

    def host_checks(self, host: Host) -> None:
        """What this Vagrant provider needs besides vagrant itself."""

    def own_host_interfaces(self, host: Host) -> set[str]:
        return set()

    def prepare(self, log: Callable[[str], None] = print) -> None:
        """Anything the provider needs before `vagrant up` (the docker image, for one)."""

    def provision(self, names: list[str]) -> Iterator[str]:
        return self.up_stream(names)

    def list_machines(self) -> list[MachineState]:
        return self.status()

    def power_off(self, name: str, force: bool = False) -> None:
        self._call(f"halt {'--force ' if force else ''}{name}", self.vagrant.halt, vm_name=name, force=force)

    def power_on(self, name: str) -> None:
        if any(s.name == name and s.running for s in self.list_machines()):
            return
        self.up(name)

    def delete(self) -> list[str]:
        self.destroy()
        removed = self.cleanup()
        shutil.rmtree(self.state_dir / "vagrant", ignore_errors=True)  # Vagrant's own records
        return removed

    def leftovers(self) -> list[str]:
        """For VMs, `vagrant destroy` succeeding is the evidence (it raises otherwise)."""
        return []

    def collect_logs(self) -> dict[str, str]:
        out = self.inspect()
        if self.log_path.exists():
            out["vagrant.log"] = self.log_path.read_text(errors="replace")
        return out

    # --- Vagrant's own words --------------------------------------------------------------------
    def status(self) -> list[MachineState]:
        statuses = self._call("status", self.vagrant.status)
        return [MachineState(s.name, s.state) for s in statuses]

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
        for _ in self.provision([name]):
            pass

    def halt(self, name: str | None = None) -> None:
        self._call(f"halt {name or ''}".strip(), self.vagrant.halt, vm_name=name)

    def destroy(self, name: str | None = None) -> None:
        self._call(f"destroy {name or ''}".strip(), self.vagrant.destroy, vm_name=name)

    def ssh_config(self, name: str) -> str:
        return self._call(f"ssh-config {name}", self.vagrant.ssh_config, vm_name=name)

    # --- hooks a Vagrant provider overrides where it needs more -----------------------------------
    def cleanup(self) -> list[str]:
        """After destroy: remove what Vagrant leaves behind. Returns what was removed."""
        return []

    def inspect(self) -> dict[str, str]:
        """Provider-level facts for collect_logs, file name -> content."""
        return {}


class VirtualBoxProvider(VagrantProvider):
    name = "virtualbox"

    def host_checks(self, host: Host) -> None:
        check_virtualbox(host, self.lab)


class LibvirtProvider(VagrantProvider):
    """vagrant-libvirt: KVM where the host has it, TCG otherwise, booting the box made from the
    node image (harness/image/box.py) unless $K8S_HA_LAB_BOX names a stock one. What libvirt
    itself says (domains, volumes, the lab's bridge) comes from harness/providers/libvirt.py."""

    name = "libvirt"

    def vagrantfile_settings(self) -> dict:
        from harness.transport import ensure_lab_key

        return {"libvirt": libvirt.settings(self.lab, ensure_lab_key(self.state_dir).public_line)}

    def host_checks(self, host: Host) -> None:
        libvirt.check_libvirt(host, libvirt.libvirt_driver())

    def own_host_interfaces(self, host: Host) -> set[str]:
        bridge = libvirt.network_bridge(self.lab)
        return {bridge} if bridge else set()

    def prepare(self, log: Callable[[str], None] = print) -> None:
        """The local box: built into the cache when missing, then added to Vagrant once. Boxes
        of older recipes are left to `vagrant box prune` (one may still back a VM)."""
        if os.environ.get(libvirt.BOX_ENV):
            return
        from harness.image.box import box_recipe, build_box

        recipe = box_recipe()
        build_box(recipe, log=log)  # instant when the recipe's box is cached
        boxes = {box.name for box in self._call("box list", self.vagrant.box_list)
                 if box.provider == self.name}
        if recipe.name not in boxes:
            log(f"vagrant box add {recipe.name}")
            self._call(f"box add {recipe.name}", self.vagrant.box_add, recipe.name, str(recipe.box_file))

    def cleanup(self) -> list[str]:
        return libvirt.remove_leftovers(self.lab)

    def leftovers(self) -> list[str]:
        return libvirt.leftovers(self.lab)

    def inspect(self) -> dict[str, str]:
        return libvirt.inspect(self.lab)
