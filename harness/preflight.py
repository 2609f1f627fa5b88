"""Host checks run before any machine is touched (molecule's sanity_checks).

Each check raises UserError with one line that names what is missing and how to get it; the CLI
prints it and exits 2. The host is reached through a small `Host` object so the checks can be
tested with a fake one, without Docker or Vagrant. What a provider needs (vagrant, a docker
daemon, a hypervisor) is that provider's `sanity_checks`; this module holds what every lab
needs whatever makes its machines on this host: memory and a free subnet (machines that already
exist elsewhere, the ssh provider's, need neither).
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Collection

from harness.errors import UserError
from harness.lab import Lab

if TYPE_CHECKING:
    from harness.providers.base import Provider


@dataclass
class Host:
    """The few ways preflight looks at the host; tests replace each one."""
    which: Callable[[str], str | None] = shutil.which
    run: Callable[[list[str]], subprocess.CompletedProcess] = lambda argv: subprocess.run(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace", timeout=60)
    meminfo: Callable[[], str] = lambda: open("/proc/meminfo").read()
    read_text: Callable[[str], str | None] = lambda path: (
        open(path).read() if os.path.exists(path) else None)


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


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


def check_subnet(host: Host, lab: Lab, own_interfaces: Collection[str] = ()) -> None:
    """The lab network must be free on the host: a second bridge or route on the same subnet
    would send the tests' traffic somewhere that is not the lab. `own_interfaces` are the
    lab's own (its provider says which), which may hold it."""
    proc = host.run(["ip", "-json", "-4", "addr", "show"])
    for iface in json.loads(proc.stdout or "[]"):
        for addr in iface.get("addr_info", []):
            net = ipaddress.IPv4Network(f"{addr['local']}/{addr['prefixlen']}", strict=False)
            if net.overlaps(lab.network) and iface["ifname"] not in own_interfaces:
                raise UserError(f"network.cidr {lab.network}: already used on this host by "
                                f"{iface['ifname']} ({addr['local']}/{addr['prefixlen']}); "
                                "choose another network.cidr in the lab file or remove that interface")
    proc = host.run(["ip", "-json", "-4", "route", "show"])
    for route in json.loads(proc.stdout or "[]"):
        dst = route.get("dst", "")
        if dst in ("default", "") or route.get("dev") in own_interfaces:
            continue
        net = ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False)
        if net.overlaps(lab.network):
            raise UserError(f"network.cidr {lab.network}: the host routes {dst} via "
                            f"{route.get('dev', '?')}; choose another network.cidr in the lab file")


def sanity_checks(lab: Lab, provider: "str | Provider", host: Host | None = None,
                  already_running_mb: int = 0) -> None:
    """Everything the host must have before `up`: the provider's own checks, then memory and
    the subnet. The first thing missing raises UserError."""
    from harness.providers import EXISTING_MACHINES, provider_class
    from harness.state import state_root

    host = host or Host()
    if isinstance(provider, str):  # a provider only looks at the host here: no state folder made
        provider = provider_class(provider)(lab, state_root() / lab.name)
    provider.sanity_checks(host)
    if provider.name in EXISTING_MACHINES:
        return  # the machines run elsewhere: this host's memory and subnets are not theirs
    check_memory(host, lab, already_running_mb)
    check_subnet(host, lab, provider.own_host_interfaces(host))
