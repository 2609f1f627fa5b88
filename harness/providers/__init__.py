"""The machine providers: the only code that knows Vagrant or Docker.

Every provider implements `harness.providers.base.Provider`; callers get one from
`resolve_provider` and use only that protocol. A provider is looked up by name and imported
only when first used, so a host without Docker never imports the docker bits. docker,
libvirt and virtualbox drive Vagrant with the one Vagrantfile and make the machines; ssh logs
in to machines that already exist, which the lab file lists (its provider section).
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

__all__ = ["EXISTING_MACHINES", "PROVIDERS", "Provider", "detect_provider", "get_provider", "provider_class",
           "require_capability", "require_up", "resolve_provider"]

# name -> "module:class"
PROVIDERS = {
    "docker": "harness.providers.docker:DockerProvider",
    "libvirt": "harness.providers.vagrant:LibvirtProvider",
    "virtualbox": "harness.providers.vagrant:VirtualBoxProvider",
    "ssh": "harness.providers.ssh:SshProvider",
}
# Providers whose machines already exist elsewhere: only a lab file's provider section selects
# one, and the host's memory and subnet are not theirs to check.
EXISTING_MACHINES = frozenset({"ssh"})
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
        if chosen not in PROVIDERS or chosen in EXISTING_MACHINES:
            makers = ", ".join(sorted(set(PROVIDERS) - EXISTING_MACHINES))
            raise UserError(f"{PROVIDER_ENV}={chosen}: not a provider that makes machines (known: {makers})"
                            + ("; machines that exist are listed in a lab file's provider section"
                               if chosen in EXISTING_MACHINES else ""))
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
    """The lab file's provider section when it has one; else `requested`, else the one the lab
    is already up with, else what this host supports."""
    if lab.provider:
        if requested and requested != lab.provider:
            raise UserError(f"--provider {requested}: lab {lab.name}'s file says provider {lab.provider}")
        return get_provider(lab.provider, lab, state_dir)
    name = requested or remembered_provider(state_dir) or detect_provider()
    if name in EXISTING_MACHINES:
        raise UserError(f"provider {name}: lab {lab.name} lists no machines to log in to; give its lab "
                        "file a provider section (provider: {name: ssh, user: ..., key: ...})")
    return get_provider(name, lab, state_dir)


# --- the lab-is-up guard ----------------------------------------------------------------------
def _ssh_answers(address: str, port: int = 22, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def ssh_endpoint(machine) -> tuple[str, int]:
    """Where the harness logs in: the lab file's `ssh:` for an existing machine, else the lab IP."""
    return (machine.ssh.address, machine.ssh.port) if machine.ssh else (str(machine.ip), 22)


def require_up(lab: Lab, state_dir: Path, ssh_answers: Callable[..., bool] = _ssh_answers) -> None:
    """Refuse, in one line and within seconds, to run something that needs the running lab
    when it is not up: the provider's own view first (which machine is not running), then
    each machine's SSH port. Every CLI command that needs a running lab calls this first."""
    command = f"python -m harness up {lab.source}" if lab.source else "python -m harness up LAB"
    name = remembered_provider(state_dir)
    if name is not None and lab.provider and name != lab.provider:
        name = lab.provider   # the lab file moved to other machines since; ask those
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

    def answers(m) -> bool:
        address, port = ssh_endpoint(m)
        return ssh_answers(address) if port == 22 else ssh_answers(address, port)
    silent = [m for m in lab.machines if not answers(m)]
    if silent:
        m = silent[0]
        raise UserError(f"lab {lab.name}: machine {m.name} is running but "
                        f"{ssh_endpoint(m)[0]}:{ssh_endpoint(m)[1]} does not answer"
                        + (f" (nor {', '.join(x.name for x in silent[1:])})" if silent[1:] else "")
                        + f"; see `python -m harness status {lab.source or 'LAB'}`")
