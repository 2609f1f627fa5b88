"""What only the libvirt provider needs: KVM or TCG, the local box, and libvirt's own view.

`LibvirtProvider` (harness/providers/vagrant.py) is vagrant-libvirt behind the Provider protocol;
the few things Vagrant does not say (which domains, volumes and networks of this lab exist,
which host bridge is the lab's) come from `virsh`, here and nowhere else.

The driver is decided at run time: `kvm` where the host has hardware virtualization (the
kvm_intel or kvm_amd module), `qemu` (TCG, software emulation) otherwise. A host whose /dev/kvm
comes from another module (kvm_pvm: a stock kernel cannot run under it) gets TCG.

The box is the node image's root filesystem with Debian's kernel (harness/image/box.py),
booted directly by vagrant-libvirt. `K8S_HA_LAB_BOX` picks a stock box instead (the Vagrantfile
then provisions it over the network, as for VirtualBox).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable

from harness.errors import UserError
from harness.lab import Lab
from harness.preflight import Host, last_line

URI = "qemu:///system"
DRIVER_ENV = "K8S_HA_LAB_LIBVIRT_DRIVER"
BOX_ENV = "K8S_HA_LAB_BOX"
DRIVERS = ("kvm", "qemu")
STORAGE_POOL = "default"  # vagrant-libvirt's, which it creates when missing
CONSOLE_DIR = Path("/var/log/libvirt/qemu")
BOOT_TIMEOUT = {"kvm": 300, "qemu": 900}  # seconds Vagrant waits for SSH; TCG boots slowly

Runner = Callable[[list[str]], subprocess.CompletedProcess]


def run_virsh(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(["virsh", "-c", URI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, errors="replace")


def hardware_kvm(exists: Callable[[str], bool] = os.path.exists) -> bool:
    return exists("/dev/kvm") and any(exists(f"/sys/module/{m}") for m in ("kvm_intel", "kvm_amd"))


def libvirt_driver(exists: Callable[[str], bool] = os.path.exists) -> str:
    chosen = os.environ.get(DRIVER_ENV)
    if chosen:
        if chosen not in DRIVERS:
            raise UserError(f"{DRIVER_ENV}: {chosen!r} is not a libvirt driver (known: {', '.join(DRIVERS)})")
        return chosen
    return "kvm" if hardware_kvm(exists) else "qemu"


def domain_prefix(lab: Lab) -> str:
    return f"k8s-ha-lab-{lab.name}-"


def network_name(lab: Lab) -> str:
    """The lab network's libvirt name (isolated: no forwarding, no DHCP, the host on .1)."""
    return f"k8s-ha-lab-{lab.name}"


def settings(lab: Lab, public_key: str, driver: str | None = None) -> dict:
    """The libvirt section of the spec the Vagrantfile reads."""
    driver = driver or libvirt_driver()
    section = {"driver": driver, "domain_prefix": domain_prefix(lab), "network_name": network_name(lab),
               "boot_timeout": BOOT_TIMEOUT[driver],
               # TCG runs the newest CPU qemu can emulate; KVM keeps vagrant-libvirt's default.
               "cpu_mode": "maximum" if driver == "qemu" else None,
               "box": None}
    if os.environ.get(BOX_ENV):
        return section
    from harness.image.box import box_recipe, cmd_line

    box = box_recipe()
    section.update({"box": box.name, "kernel": str(box.kernel), "initrd": str(box.initrd),
                    "cmd_line": cmd_line(public_key),
                    "console_logs": {m.name: str(console_log(lab, m.name)) for m in lab.machines}})
    return section


def console_log(lab: Lab, machine: str) -> Path:
    """Where a VM's serial console goes (the kernel's and systemd's boot messages). qemu writes
    it as its own user, which cannot enter root's home, so it lives in libvirt's log folder."""
    return CONSOLE_DIR / f"{domain_prefix(lab)}{machine}-console.log"


# --- sanity checks ------------------------------------------------------------------------------
def check_libvirt(host: Host, driver: str) -> None:
    if not host.which("virsh"):
        raise UserError("virsh: not found on PATH; install libvirt with `bin/setup-host --libvirt`")
    proc = host.run(["vagrant", "plugin", "list"])
    if "vagrant-libvirt" not in proc.stdout:
        raise UserError("vagrant-libvirt: plugin not installed; install it with "
                        "`apt-get install vagrant-libvirt` or `bin/setup-host --libvirt`")
    proc = host.run(["virsh", "-c", URI, "version"])
    if proc.returncode != 0:
        raise UserError(f"libvirtd: not reachable at {URI} (`virsh version`: "
                        f"{last_line(proc.stderr or proc.stdout)}); start it with `bin/setup-host --libvirt`")
    if driver == "qemu" and not host.which("qemu-system-x86_64"):
        raise UserError("qemu-system-x86_64: not found on PATH; install it with `apt-get install qemu-system-x86`")
    if not host.which("dnsmasq"):
        raise UserError("dnsmasq: not found on PATH (libvirt's DHCP for the management network); "
                        "install it with `apt-get install dnsmasq-base`")


# --- what exists in libvirt -----------------------------------------------------------------------
def _names(proc: subprocess.CompletedProcess) -> list[str]:
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()] if proc.returncode == 0 else []


def lab_domains(lab: Lab, run: Runner | None = None) -> list[str]:
    names = _names((run or run_virsh)(["list", "--all", "--name"]))
    return [n for n in names if n.startswith(domain_prefix(lab))]


def lab_volumes(lab: Lab, run: Runner | None = None) -> list[str]:
    proc = (run or run_virsh)(["vol-list", STORAGE_POOL])
    # `virsh vol-list`: a header, a rule, then "NAME PATH" lines
    names = [line.split()[0] for line in proc.stdout.splitlines()[2:] if line.strip()] \
        if proc.returncode == 0 else []
    return [n for n in names if n.startswith(domain_prefix(lab))]


def network_bridge(lab: Lab, run: Runner | None = None) -> str | None:
    """The lab network's host bridge, if the network exists."""
    proc = (run or run_virsh)(["net-info", network_name(lab)])
    if proc.returncode != 0:
        return None
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Bridge":
            return value.strip() or None
    return None


def network_exists(lab: Lab, run: Runner | None = None) -> bool:
    return network_name(lab) in _names((run or run_virsh)(["net-list", "--all", "--name"]))


def remove_leftovers(lab: Lab, run: Runner | None = None) -> list[str]:
    """What a failed `vagrant up` or a lost state folder left: this lab's domains, their
    volumes and the lab network, by name. Never anything of another lab."""
    run = run or run_virsh
    removed = []
    for name in lab_domains(lab, run):
        run(["destroy", name])  # fails harmlessly when it is not running
        if run(["undefine", name, "--nvram"]).returncode == 0 or \
                run(["undefine", name]).returncode == 0:
            removed.append(f"domain {name}")
    for name in lab_volumes(lab, run):
        if run(["vol-delete", name, "--pool", STORAGE_POOL]).returncode == 0:
            removed.append(f"volume {name}")
    if network_exists(lab, run):
        run(["net-destroy", network_name(lab)])
        if run(["net-undefine", network_name(lab)]).returncode == 0:
            removed.append(f"network {network_name(lab)}")
    return removed


def leftovers(lab: Lab, run: Runner | None = None) -> list[str]:
    run = run or run_virsh
    found = [f"domain {n}" for n in lab_domains(lab, run)]
    found += [f"volume {n}" for n in lab_volumes(lab, run)]
    if network_exists(lab, run):
        found.append(f"network {network_name(lab)}")
    return found


def inspect(lab: Lab, run: Runner | None = None) -> dict[str, str]:
    run = run or run_virsh
    out = {}
    for name in lab_domains(lab, run):
        out[f"virsh-dumpxml-{name}.xml"] = run(["dumpxml", name]).stdout
    if network_exists(lab, run):
        out["virsh-net-dumpxml.xml"] = run(["net-dumpxml", network_name(lab)]).stdout
    for machine in lab.machines:
        log = console_log(lab, machine.name)
        if log.is_file():
            out[f"console-{machine.name}.log"] = log.read_text(errors="replace")
    return out
