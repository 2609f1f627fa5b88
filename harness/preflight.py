"""Host checks run before any machine is touched (molecule's sanity_checks).

Each check raises UserError with one line that names what is missing and how to get it; the CLI
prints it and exits 2. The host is reached through a small `Host` object so the checks can be
tested with a fake one, without Docker or Vagrant.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Callable

from harness.errors import UserError
from harness.lab import Lab


@dataclass
class Host:
    """The few ways preflight looks at the host; tests replace each one."""
    which: Callable[[str], str | None] = shutil.which
    run: Callable[[list[str]], subprocess.CompletedProcess] = lambda argv: subprocess.run(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace", timeout=60)
    meminfo: Callable[[], str] = lambda: open("/proc/meminfo").read()
    read_text: Callable[[str], str | None] = lambda path: (
        open(path).read() if os.path.exists(path) else None)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def check_vagrant(host: Host) -> None:
    if not host.which("vagrant"):
        raise UserError("vagrant: not found on PATH; install it with `apt-get install vagrant`")


def check_docker(host: Host) -> None:
    if not host.which("docker"):
        raise UserError("docker: not found on PATH; install it with `apt-get install docker.io`")
    proc = host.run(["docker", "info", "--format", "{{.ServerVersion}}"])
    if proc.returncode != 0:
        raise UserError("docker: the daemon is not reachable (`docker info`: "
                        f"{_last_line(proc.stderr or proc.stdout)}); start it with "
                        "`dockerd >/var/log/dockerd.log 2>&1 &` or `systemctl start docker`")


VBOX_NETWORKS_CONF = "/etc/vbox/networks.conf"
VBOX_DEFAULT_RANGE = ipaddress.IPv4Network("192.168.56.0/21")


def check_virtualbox(host: Host, lab: Lab) -> None:
    if not host.which("VBoxManage"):
        raise UserError("VBoxManage: not found on PATH; install VirtualBox "
                        "(https://www.virtualbox.org/wiki/Linux_Downloads)")
    # VirtualBox 6.1.28+ refuses host-only networks outside its allowed ranges.
    conf = host.read_text(VBOX_NETWORKS_CONF)
    allowed = [VBOX_DEFAULT_RANGE] if conf is None else [
        ipaddress.IPv4Network(word, strict=False)
        for line in conf.splitlines() if line.strip().startswith("*")
        for word in line.split()[1:] if ":" not in word]
    if not any(lab.network.subnet_of(net) for net in allowed):
        raise UserError(f"VirtualBox: host-only network {lab.network} is not allowed; add the line "
                        f"`* {lab.network}` to {VBOX_NETWORKS_CONF}")


def check_libvirt(host: Host) -> None:
    if not host.which("virsh"):
        raise UserError("virsh: not found on PATH; install libvirt with "
                        "`apt-get install libvirt-daemon-system libvirt-clients`")
    proc = host.run(["vagrant", "plugin", "list"])
    if "vagrant-libvirt" not in proc.stdout:
        raise UserError("vagrant-libvirt: plugin not installed; install it with "
                        "`apt-get install vagrant-libvirt`")


def available_memory_mb(host: Host) -> int:
    for line in host.meminfo().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    raise UserError("/proc/meminfo: no MemAvailable line; cannot tell whether the lab fits")


def check_memory(host: Host, lab: Lab, already_running_mb: int = 0) -> None:
    needed = sum(m.memory_mb for m in lab.machines) - already_running_mb
    available = available_memory_mb(host)
    if needed > available:
        raise UserError(f"memory: lab {lab.name} needs {needed} MiB for its machines but only "
                        f"{available} MiB is available; stop something or lower resources.* in the lab file")


def _lab_bridge(host: Host, lab: Lab) -> str | None:
    """The host bridge of this lab's own docker network, if it exists and holds only this
    lab's containers; that one may use the subnet."""
    from harness.providers.docker import bridge_interface, container_name, network_name

    proc = host.run(["docker", "network", "inspect", network_name(lab)])
    if proc.returncode != 0:
        return None
    net = (json.loads(proc.stdout or "[]") or [None])[0]
    if not net:
        return None
    prefix = container_name(lab, "")
    members = [c.get("Name", "") for c in (net.get("Containers") or {}).values()]
    if any(not name.startswith(prefix) for name in members):
        return None
    return bridge_interface(net)


def check_subnet(host: Host, lab: Lab) -> None:
    """The lab network must be free on the host: a second bridge or route on the same subnet
    would send the tests' traffic somewhere that is not the lab."""
    own_bridge = _lab_bridge(host, lab) if host.which("docker") else None
    proc = host.run(["ip", "-json", "-4", "addr", "show"])
    for iface in json.loads(proc.stdout or "[]"):
        for addr in iface.get("addr_info", []):
            net = ipaddress.IPv4Network(f"{addr['local']}/{addr['prefixlen']}", strict=False)
            if net.overlaps(lab.network) and iface["ifname"] != own_bridge:
                raise UserError(f"network.cidr {lab.network}: already used on this host by "
                                f"{iface['ifname']} ({addr['local']}/{addr['prefixlen']}); "
                                "choose another network.cidr in the lab file or remove that interface")
    proc = host.run(["ip", "-json", "-4", "route", "show"])
    for route in json.loads(proc.stdout or "[]"):
        dst = route.get("dst", "")
        if dst in ("default", "") or route.get("dev") == own_bridge:
            continue
        net = ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False)
        if net.overlaps(lab.network):
            raise UserError(f"network.cidr {lab.network}: the host routes {dst} via "
                            f"{route.get('dev', '?')}; choose another network.cidr in the lab file")


PROVIDER_CHECKS = {"docker": lambda host, lab: check_docker(host),
                   "virtualbox": check_virtualbox,
                   "libvirt": lambda host, lab: check_libvirt(host)}


def sanity_checks(lab: Lab, provider: str, host: Host | None = None,
                  already_running_mb: int = 0) -> None:
    """Everything the host must have before `up`; the first thing missing raises UserError."""
    host = host or Host()
    check_vagrant(host)
    PROVIDER_CHECKS[provider](host, lab)
    check_memory(host, lab, already_running_mb)
    check_subnet(host, lab)
