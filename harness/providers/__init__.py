"""The machine providers: the only code that knows Vagrant or Docker.

Every provider implements `harness.providers.base.Provider`; callers get one from
`resolve_provider` and use only that protocol. A provider is looked up by name and imported
only when first used, so a host without Docker never imports the docker bits. The providers
here all drive Vagrant with the one Vagrantfile.
"""

from __future__ import annotations

import importlib
import os
import shutil
import socket
from pathlib import Path
from typing import Callable

from harness.errors import UserError
from harness.lab import Lab
from harness.providers.base import Provider, require_capability

__all__ = ["PROVIDERS", "Provider", "detect_provider", "get_provider", "provider_class",
           "require_capability", "require_up", "resolve_provider"]

# name -> "module:class"
PROVIDERS = {
    "docker": "harness.providers.docker:DockerProvider",
    "libvirt": "harness.providers.vagrant:LibvirtProvider",
    "virtualbox": "harness.providers.vagrant:VirtualBoxProvider",
}
PROVIDER_ENV = "K8S_HA_LAB_PROVIDER"


def provider_class(name: str) -> type[Provider]:
    try:
        target = PROVIDERS[name]
    except KeyError:
        raise UserError(f"provider {name!r}: unknown (known: {', '.join(sorted(PROVIDERS))})") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def get_provider(name: str, lab: Lab, state_dir: Path) -> Provider:
    return provider_class(name)(lab, state_dir)


def detect_provider(which: Callable[[str], str | None] = shutil.which,
                    exists: Callable[[str], bool] = os.path.exists) -> str:
    """Real VMs where the host has a hypervisor, systemd containers otherwise.

    `$K8S_HA_LAB_PROVIDER` wins. VirtualBox needs its kernel driver, libvirt its daemon's
    socket and hardware KVM; without either, docker is the fallback (and preflight says if it
    is missing).
    """
    chosen = os.environ.get(PROVIDER_ENV)
    if chosen:
        provider_class(chosen)  # an unknown name fails here, naming the known ones
        return chosen
    if which("VBoxManage") and exists("/dev/vboxdrv"):
        return "virtualbox"
    # libvirt without hardware KVM would be TCG: far too slow for a lab, so only on request.
    from harness.providers.libvirt import hardware_kvm
    if which("virsh") and exists("/var/run/libvirt/libvirt-sock") and hardware_kvm(exists):
        return "libvirt"
    return "docker"


def remembered_provider(state_dir: Path) -> str | None:
    """The provider a lab was brought up with, so `down` and `status` use the same one."""
    path = Path(state_dir) / "provider"
    return path.read_text().strip() if path.exists() else None


def remember_provider(state_dir: Path, name: str) -> None:
    (Path(state_dir) / "provider").write_text(name + "\n")


def forget_provider(state_dir: Path) -> None:
    (Path(state_dir) / "provider").unlink(missing_ok=True)


def resolve_provider(lab: Lab, state_dir: Path, requested: str | None = None) -> Provider:
    """`requested`, else the one the lab is already up with, else what this host supports."""
    name = requested or remembered_provider(state_dir) or detect_provider()
    return get_provider(name, lab, state_dir)


# --- the lab-is-up guard ----------------------------------------------------------------------
def _ssh_answers(address: str, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=timeout):
            return True
    except OSError:
        return False


def require_up(lab: Lab, state_dir: Path, ssh_answers: Callable[[str], bool] = _ssh_answers) -> None:
    """Refuse, in one line and within seconds, to run something that needs the running lab
    when it is not up: the provider's own view first (which machine is not running), then
    port 22 on each lab IP. Every CLI command that needs a running lab calls this first."""
    command = f"python -m harness up {lab.source}" if lab.source else "python -m harness up LAB"
    name = remembered_provider(state_dir)
    if name is None:
        raise UserError(f"lab {lab.name} is not up (no provider recorded in {state_dir}); "
                        f"bring it up with `{command}`")
    states = {s.name: s.state for s in get_provider(name, lab, state_dir).list_machines()}
    down = [(m.name, states.get(m.name, "not_created")) for m in lab.machines
            if states.get(m.name) != "running"]
    if len(down) == len(lab.machines):
        raise UserError(f"lab {lab.name} is not up: {name} reports no machine running "
                        f"({', '.join(f'{n} {s}' for n, s in down)}); bring it up with `{command}`")
    if down:
        raise UserError(f"lab {lab.name}: machine {down[0][0]} is {down[0][1]} according to {name}"
                        + (f" (also {', '.join(f'{n} {s}' for n, s in down[1:])})" if down[1:] else "")
                        + f"; start it with `{command}`")
    silent = [m for m in lab.machines if not ssh_answers(str(m.ip))]
    if silent:
        m = silent[0]
        raise UserError(f"lab {lab.name}: machine {m.name} is running but {m.ip}:22 does not answer"
                        + (f" (nor {', '.join(x.name for x in silent[1:])})" if silent[1:] else "")
                        + f"; see `python -m harness status {lab.source or 'LAB'}`")
