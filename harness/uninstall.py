"""`down` on machines the harness did not create: remove what it installed (harness.footprint)
and put back what it changed, from the machine's baseline (harness.baseline).

Three passes per machine, each one SSH command except the packet filter:
1. stop: the kubelet, every pod (containerd's k8s.io namespace emptied and removed), the lab's
   units and the packages' units it started; the pods' network namespaces and mounts go.
2. the packet filter: the lab's chains and rules, computed here from `iptables-save`
   (harness.netfilter), removed with `iptables-restore --noflush`; IPv4 and IPv6, nft and legacy.
3. remove and restore: interfaces and the VIP, files (the ones that existed put back from the
   baseline), trees, the registry's user, the /etc/hosts block, kernel settings, the directories
   the harness made, and each unit's enablement and state as they were; the baseline goes last.

A machine with no baseline of this lab is left alone: nothing of the lab was installed there.
"""

from __future__ import annotations

import shlex
from typing import Callable

from harness import footprint as fp
from harness import netfilter
from harness.baseline import BASELINE_DIR, Baseline, unit_states_sh, words
from harness.lab import Lab

Run = Callable[..., object]   # Transport.run(command, check=..., timeout=...) -> CommandResult
KILLED_UNITS = ("kube-apiserver.service", "kube-controller-manager.service", "kube-scheduler.service",
                "etcd.service")
NETFILTER_TOOLS = (("iptables-save", "iptables-restore"), ("ip6tables-save", "ip6tables-restore"),
                   ("iptables-legacy-save", "iptables-legacy-restore"),
                   ("ip6tables-legacy-save", "ip6tables-legacy-restore"))


def _guard(lab: Lab) -> str:
    name = shlex.quote(lab.name)
    return f"""B={BASELINE_DIR}
if [ ! -f "$B/summary" ]; then echo "no baseline"; exit 0; fi
if [ "$(cat "$B/lab")" != {name} ]; then echo "refused: the baseline of lab $(cat "$B/lab") is there"; exit 3; fi
enabled_before() {{ awk -v u="$1" '$1 == "unit" && $2 == u {{print $3}}' "$B/summary"; }}
active_before() {{ awk -v u="$1" '$1 == "unit" && $2 == u {{print $4}}' "$B/summary"; }}
existed() {{ grep -qxF "existed $1" "$B/summary"; }}
"""


def _mount_pattern() -> str:
    return "|".join(f"^{p}" for p in fp.MOUNT_PREFIXES).replace(".", "\\.")


def stop_script(lab: Lab) -> str:
    # In the reverse order of the steps that started them: the apiserver stopped after etcd
    # waits for its storage until systemd's 90 s stop timeout kills it.
    own = words(reversed(fp.OWN_UNITS))
    ns = fp.CONTAINERD_NAMESPACE
    mounts = _mount_pattern()
    return "set -u\n" + _guard(lab) + f"""for u in kubelet.service kube-proxy.service; do systemctl stop "$u" 2>/dev/null; done
if systemctl is-active -q containerd.service && command -v ctr >/dev/null; then
  C="ctr -n {ns}"
  systemctl kill --signal=SIGKILL kubepods.slice 2>/dev/null   # every pod process at once
  for t in $($C tasks ls -q 2>/dev/null); do $C tasks kill -s SIGKILL "$t" >/dev/null 2>&1; done
  for t in $($C tasks ls -q 2>/dev/null); do $C tasks delete -f "$t" >/dev/null 2>&1; done
  for c in $($C containers ls -q 2>/dev/null); do $C containers delete "$c" >/dev/null 2>&1; done
  images=$($C images ls -q 2>/dev/null)
  if [ -n "$images" ]; then $C images rm --sync $images >/dev/null 2>&1; fi
  for l in $($C leases ls -q 2>/dev/null); do $C leases rm "$l" >/dev/null 2>&1; done
  for pass in 1 2 3 4 5; do   # a snapshot goes only after its children
    for s in $($C snapshots ls 2>/dev/null | awk 'NR > 1 {{print $1}}'); do $C snapshots rm "$s" >/dev/null 2>&1; done
  done
  for d in $($C content ls -q 2>/dev/null); do $C content rm "$d" >/dev/null 2>&1; done
  ctr namespaces remove {ns} >/dev/null 2>&1
fi
systemctl stop kubepods.slice 2>/dev/null
# Their data goes next, so no graceful shutdown is owed: an apiserver drains its watches for 60 s.
for u in {words(KILLED_UNITS)}; do systemctl kill --signal=SIGKILL "$u" 2>/dev/null; done
for u in {own} {words(fp.PACKAGED_UNITS)}; do systemctl stop "$u" 2>/dev/null; done   # one by one: a unit not loaded fails only itself
for n in $(ip netns list 2>/dev/null | awk '{{print $1}}' | grep '^{fp.NETNS_PREFIX}'); do ip netns delete "$n"; done
findmnt -rn -o TARGET | grep -E '{mounts}' | sort -r | while read -r m; do umount -l "$m"; done
echo stopped
"""


def remove_script(lab: Lab) -> str:
    traces = fp.LabTraces.of(lab)
    iface, vip = shlex.quote(traces.interface), traces.vip
    keep_last = fp.TREES.index("/var/lib/k8s-ha-lab")
    trees = [t for i, t in enumerate(fp.TREES) if i != keep_last]
    begin, end = (shlex.quote(m) for m in fp.HOSTS_MARKERS)
    return "set -u\n" + _guard(lab) + f"""for v in $(ip -o link show master cni0 2>/dev/null | awk -F': ' '{{print $2}}' | cut -d@ -f1); do
  ip link delete "$v"; done
for i in {words(fp.INTERFACES)}; do ip link delete "$i" 2>/dev/null; done
for a in $(ip -4 -o addr show dev {iface} 2>/dev/null | awk '{{print $4}}' | grep '^{vip.replace('.', '[.]')}/'); do
  ip addr delete "$a" dev {iface}; done
for u in {words(fp.units())}; do
  if [ "$(enabled_before "$u")" != enabled ] && [ "$(systemctl is-enabled "$u" 2>/dev/null)" = enabled ]; then
    systemctl disable --quiet "$u"; fi
done
reload_sshd=; if [ -e {fp.SSHD_DROPIN} ]; then reload_sshd=yes; fi
rm -f {words(fp.FILES)}
tar -xpf "$B/files.tar" --numeric-owner -C /
for d in {words(fp.CRI_STATE_DIRS)}; do if [ -d "$d" ]; then find "$d" -mindepth 1 -maxdepth 1 -exec rm -rf {{}} +; fi; done
for d in {words(fp.cri_dirs())}; do if ! existed "$d" && [ -d "$d" ]; then rmdir "$d" 2>/dev/null; fi; done
if [ -f "$B/containerd.dirs" ]; then   # containerd is stopped: its new, empty folders go, children first
  find {words(fp.CONTAINERD_ROOTS)} -mindepth 1 -maxdepth {fp.CONTAINERD_DEPTH} -type d 2>/dev/null | sort -r |
    while read -r d; do grep -qxF "$d" "$B/containerd.dirs" || rmdir "$d" 2>/dev/null; done
fi
for f in {words(fp.PACKAGED_UNIT_TRACES)}; do if ! existed "$f" && [ -e "$f" ]; then rm -f "$f"; fi; done
for f in {words(fp.CONTAINERD_LAZY_FILES)}; do
  if ! existed "$f" && [ -f "$f" ] && [ -z "$(ls -A "$(dirname "$f")/snapshots" 2>/dev/null)" ]; then rm -f "$f"; fi
done
rm -rf --one-file-system {words(trees)}
for g in {' '.join(fp.SCRATCH_GLOBS)}; do rm -rf "$g"; done
for u in {words(fp.USERS)}; do
  if id -u "$u" >/dev/null 2>&1 && ! grep -qx "user $u" "$B/summary"; then userdel "$u"; fi
done
if tar -xOf "$B/accounts.tar" etc/passwd 2>/dev/null | cmp -s - /etc/passwd \\
   && tar -xOf "$B/accounts.tar" etc/group 2>/dev/null | cmp -s - /etc/group; then
  tar -xpf "$B/accounts.tar" --numeric-owner -C /   # the FILE- backups useradd and userdel rewrote
fi
awk -v b={begin} -v e={end} '$0 == b {{skip = 1; next}} $0 == e {{skip = 0; next}} !skip' /etc/hosts > "$B/hosts.now"
if [ "$(cat "$B/hosts.now")" = "$(cat "$B/hosts")" ]; then cat "$B/hosts" > /etc/hosts; else cat "$B/hosts.now" > /etc/hosts; fi
grep '^sysctl ' "$B/summary" | cut -d' ' -f2- | while IFS= read -r kv; do sysctl -q -w "$kv" 2>/dev/null; done
for d in {words(fp.parent_dirs())}; do if ! existed "$d" && [ -d "$d" ]; then rmdir "$d" 2>/dev/null; fi; done
systemctl daemon-reload
for u in {words(fp.units())}; do systemctl reset-failed "$u" 2>/dev/null; done
for u in {words(fp.units())}; do
  if [ "$(enabled_before "$u")" = enabled ]; then systemctl enable --quiet "$u"; fi
  if [ "$(active_before "$u")" = active ]; then systemctl restart "$u"; fi
done
if [ -n "$reload_sshd" ] && systemctl is-active -q {words(fp.RELOADED_UNITS)}; then   # without the registry's drop-in
  systemctl reload {words(fp.RELOADED_UNITS)}; fi
rm -rf --one-file-system /var/lib/k8s-ha-lab
echo removed
"""


def netfilter_pass(run: Run, service_cidr: str) -> int:
    """Remove the lab's chains and rules from every packet-filter tool the machine has; returns
    how many restore lines were applied."""
    applied = 0
    for save, restore in NETFILTER_TOOLS:
        for _ in range(3):  # a rule gone between save and restore fails the commit: save again
            dump = run(f"command -v {save} >/dev/null && {save}", check=False, timeout=60)
            if getattr(dump, "exit_status", 1) != 0:
                break
            text = netfilter.cleanup_input(dump.stdout, service_cidr)
            if not text:
                break
            result = run(f"{restore} --noflush <<'K8S_HA_LAB_RULES'\n{text}K8S_HA_LAB_RULES", check=False,
                         timeout=60)
            if result.exit_status == 0:
                applied += sum(1 for line in text.splitlines() if line.startswith("-"))
                break
    return applied


def uninstall(run: Run, lab: Lab) -> str:
    """Everything of the lab off one machine; returns what was done, in a few words."""
    stopped = run(stop_script(lab), check=False, timeout=600)
    if "no baseline" in stopped.stdout:
        return "no baseline of this lab: nothing installed"
    if stopped.exit_status != 0 or "stopped" not in stopped.stdout:
        raise RuntimeError(f"stopping the lab's units failed (exit {stopped.exit_status}): "
                           f"{(stopped.stderr or stopped.stdout).strip()[-400:]}")
    rules = netfilter_pass(run, str(lab.cluster.service_cidr))
    removed = run(remove_script(lab), check=False, timeout=600)
    if removed.exit_status != 0 or "removed" not in removed.stdout:
        raise RuntimeError(f"removing the lab's files failed (exit {removed.exit_status}): "
                           f"{(removed.stderr or removed.stdout).strip()[-400:]}")
    return f"units stopped, {rules} packet-filter lines removed, files restored"


# --- what remains ---------------------------------------------------------------------------------
def leftovers_script(lab: Lab) -> str:
    traces = fp.LabTraces.of(lab)
    begin = shlex.quote(fp.HOSTS_MARKERS[0])
    return f"""for t in {words(fp.TREES)}; do if [ -e "$t" ] || [ -L "$t" ]; then echo "tree $t"; fi; done
for g in {' '.join(fp.SCRATCH_GLOBS)}; do if [ -e "$g" ]; then echo "tree $g"; fi; done
for f in {words((*fp.FILES, *fp.parent_dirs(), *fp.cri_dirs(), *fp.PACKAGED_UNIT_TRACES))}; do
  if [ -f "$f" ]; then echo "file $(sha256sum < "$f" | cut -d' ' -f1) $f"
  elif [ -e "$f" ] || [ -L "$f" ]; then echo "path $f"; fi
done
{unit_states_sh()}
for u in {words(fp.USERS)}; do if id -u "$u" >/dev/null 2>&1; then echo "user $u"; fi; done
for i in {words(fp.INTERFACES)}; do if ip link show "$i" >/dev/null 2>&1; then echo "interface $i"; fi; done
for n in $(ip netns list 2>/dev/null | awk '{{print $1}}' | grep '^{fp.NETNS_PREFIX}'); do echo "netns $n"; done
if ip -4 -o addr show dev {shlex.quote(traces.interface)} 2>/dev/null | grep -q ' {traces.vip}/'; then echo "vip {traces.vip}"; fi
if grep -qxF {begin} /etc/hosts; then echo "hosts-block /etc/hosts"; fi
if command -v ctr >/dev/null && systemctl is-active -q containerd.service \\
   && ctr namespaces ls -q 2>/dev/null | grep -qx {fp.CONTAINERD_NAMESPACE}; then
  echo "containerd-namespace {fp.CONTAINERD_NAMESPACE}"; fi
findmnt -rn -o TARGET | grep -E '{_mount_pattern()}' | sed 's/^/mount /'
for k in {words(fp.sysctl_keys(lab))}; do if v=$(sysctl -n "$k" 2>/dev/null); then echo "sysctl $k=$v"; fi; done
true
"""


def judge(report: str, before: Baseline | None) -> list[str]:
    """What of the lab the leftovers report shows. With the host's copy of the baseline, a file,
    directory, unit or kernel setting is judged against how it was; without it, only what is the
    lab's by name counts (a /usr/local/bin/kubectl may be the admin's own)."""
    found = []
    own_unit_files = {f"{fp.UNIT_DIR}/{u}" for u in fp.OWN_UNITS} | set(fp.UNIT_DROPINS)
    for line in report.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "file":
            digest, _, path = rest.partition(" ")
            if before is None:
                if "k8s-ha-lab" in path or path in own_unit_files:
                    found.append(f"file {path}")
            elif path not in before.existed:
                found.append(f"file {path}")
            elif before.sha256.get(path) not in (None, digest):
                found.append(f"file {path} (changed)")
        elif kind == "path":
            if before is not None and rest not in before.existed:
                found.append(f"directory {rest}")
        elif kind == "unit":
            unit, enabled, active = (rest.split() + ["", ""])[:3]
            if before is not None and unit in before.units:
                was_enabled, was_active = before.units[unit]
                if (enabled == "enabled") != (was_enabled == "enabled") or \
                        (active == "active") != (was_active == "active"):
                    found.append(f"unit {unit} {enabled}/{active} (before: {was_enabled}/{was_active})")
            elif unit in fp.OWN_UNITS and (enabled == "enabled" or active == "active"):
                found.append(f"unit {unit} {enabled}/{active}")
        elif kind == "user":
            if before is None or rest not in before.users:
                found.append(line)
        elif kind == "sysctl":
            key, _, value = rest.partition("=")
            if before is not None and key in before.sysctls and before.sysctls[key] != value:
                found.append(f"sysctl {key}={value} (before: {before.sysctls[key]})")
        elif kind:   # tree, interface, netns, vip, hosts-block, containerd-namespace, mount
            found.append(line)
    return found


def leftovers(run: Run, lab: Lab, before: Baseline | None) -> list[str]:
    report = run(leftovers_script(lab), check=False, timeout=120).stdout
    found = judge(report, before)
    for save, _ in NETFILTER_TOOLS:
        dump = run(f"command -v {save} >/dev/null && {save}", check=False, timeout=60)
        if getattr(dump, "exit_status", 1) == 0:
            found += [f"{save}: {x}" for x in netfilter.leftovers(dump.stdout, str(lab.cluster.service_cidr))]
    return found
