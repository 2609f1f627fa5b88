"""What a machine the harness did not create must have before any step runs on it: systemd as
init, root (directly or through password-less sudo), the lab IP on `network.interface`, the
commands and units the steps and `down` call for this machine's roles, and none of the
directories the harness would make (somebody else's cluster must not be touched).

One SSH command per machine prints what is missing, a line each; `problems` turns that into
words for the one-line refusal.
"""

from __future__ import annotations

import shlex

from harness import footprint as fp
from harness.baseline import BASELINE_DIR, words
from harness.lab import Lab, Machine
from harness.render import CNI_BIN_DIR
from harness.render.registry import storage_server

# Everywhere: the steps' helpers (actions.py: sync, install, systemctl, journalctl), the hosts
# step (sysctl), flannel (ip), and what `down` needs (tar, findmnt, the packet-filter tools).
COMMON = ("systemctl", "journalctl", "ip", "sysctl", "sha256sum", "stat", "install", "mkdir", "mv",
          "chown", "cut", "tr", "awk", "grep", "sed", "cmp", "tar", "find", "findmnt", "umount",
          "iptables", "iptables-save", "iptables-restore", "gunzip")   # gunzip: binaries travel gzipped
BY_ROLE = {
    "master": ("curl",),                            # readiness, the logs query, ingress checks
    "lb": ("haproxy", "keepalived"),
    "node": ("containerd", "ctr", "runc", "conntrack", "curl", "mountpoint"),
}
CNI_PLUGINS = ("bridge", "host-local", "portmap", "loopback")   # the conflist mk-cni-conf writes
UNITS_BY_ROLE = {"lb": ("haproxy.service", "keepalived.service"), "node": ("containerd.service",)}


def required_commands(lab: Lab, machine: Machine) -> list[str]:
    needed = list(COMMON)
    for role in machine.roles:
        needed += [c for c in BY_ROLE.get(role, ()) if c not in needed]
    if lab.has_addon("registry"):
        if machine.has("node"):
            needed += ["sshfs", "fusermount3"]
        if machine.name == storage_server(lab).name:
            needed += ["useradd", "userdel", "id"]
    return needed


def required_units(lab: Lab, machine: Machine) -> list[str]:
    units = [u for role in machine.roles for u in UNITS_BY_ROLE.get(role, ())]
    if lab.has_addon("registry") and machine.name == storage_server(lab).name:
        units.append("ssh.service")   # the registry step reloads it after adding the SFTP jail
    return list(dict.fromkeys(units))


def probe_script(lab: Lab, machine: Machine) -> str:
    iface = shlex.quote(lab.interface)
    files = [f"{CNI_BIN_DIR}/{p}" for p in CNI_PLUGINS] if machine.has("node") else []
    if lab.has_addon("registry") and machine.has("node"):
        files.append("/dev/fuse")
    if lab.has_addon("registry") and machine.name == storage_server(lab).name:
        files.append("/usr/sbin/sshd")
    name = shlex.quote(lab.name)
    return f"""PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
if [ "$(id -u)" != 0 ]; then echo "root: commands run as uid $(id -u), not root"; fi
if [ ! -d /run/systemd/system ]; then echo "systemd: not the init system (no /run/systemd/system)"; fi
for c in {words(required_commands(lab, machine))}; do
  command -v "$c" >/dev/null 2>&1 || echo "command: $c"; done
for f in {words(files)}; do [ -e "$f" ] || echo "file: $f"; done
for u in {words(required_units(lab, machine))}; do
  systemctl cat "$u" >/dev/null 2>&1 || echo "unit: $u"; done
if ! ip -4 -o addr show dev {iface} 2>/dev/null | grep -q ' {machine.ip}/'; then
  echo "address: {machine.ip} on {lab.interface} (it has: $(ip -4 -o addr show 2>/dev/null | awk '{{printf "%s %s; ", $2, $4}}'))"
fi
if [ -f {BASELINE_DIR}/lab ] && [ "$(cat {BASELINE_DIR}/lab)" != {name} ]; then
  echo "baseline: lab $(cat {BASELINE_DIR}/lab) is installed here"
elif [ ! -f {BASELINE_DIR}/lab ]; then
  for t in {words(fp.TREES)}; do if [ -e "$t" ] || [ -L "$t" ]; then echo "exists: $t"; fi; done
fi
true
"""


def problems(output: str) -> list[str]:
    """The probe's lines as words: `command: ctr` -> `no ctr command`."""
    found = []
    for line in output.splitlines():
        kind, _, what = line.partition(": ")
        if kind == "command":
            found.append(f"no {what} command")
        elif kind == "file":
            found.append(f"no {what}")
        elif kind == "unit":
            found.append(f"no {what} unit")
        elif kind == "address":
            found.append(f"no {what}")
        elif kind == "exists":
            found.append(f"{what} exists and was not made by k8s-ha-lab")
        elif kind in ("root", "systemd", "baseline"):
            found.append(f"{kind}: {what}")
    return found
