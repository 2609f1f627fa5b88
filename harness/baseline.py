"""The machine as it was before the harness touched it: recorded once, on the machine, by the
ssh provider's provision, so `down` can put back what it changed.

On the machine, in BASELINE_DIR: `summary` (which footprint paths existed, their sha256, each
unit's enablement and state, the kernel settings, which of the harness's users existed),
`files.tar` (the footprint files that existed, e.g. the packages' containerd and haproxy
configs), `accounts.tar` (/etc/passwd and friends, which useradd rewrites), `hosts` (a copy of
/etc/hosts), `containerd.dirs` (containerd's folders, a few levels deep) and `lab` (whose
baseline it is). A second `up` keeps the first record: the machine
is then no longer as it was. The host keeps a copy of the summary in the lab's state folder,
which `leftovers` compares the machine with after `down`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from harness import footprint as fp
from harness.lab import Lab

BASELINE_DIR = "/var/lib/k8s-ha-lab/baseline"
PARTIAL_DIR = "/var/lib/.k8s-ha-lab-baseline.partial"   # outside the tree, so a half record never counts


def words(paths) -> str:
    return " ".join(shlex.quote(p) for p in paths)


def unit_states_sh(indent: str = "") -> str:
    """Shell that prints `unit NAME ENABLED ACTIVE` for each unit the harness may touch: the
    baseline records it, the leftovers check compares it."""
    return "\n".join(indent + line for line in (
        f"for u in {words(fp.units())}; do",
        '  enabled=$(systemctl is-enabled "$u" 2>/dev/null) || true',
        '  active=$(systemctl is-active "$u" 2>/dev/null) || true',
        '  echo "unit $u ${enabled:-absent} ${active:-unknown}"',
        "done"))


def record_script(lab: Lab) -> str:
    """Writes the baseline unless this lab's is there already; prints the summary either way.
    Exit 3: another lab's baseline; exit 4: a footprint tree exists that the harness did not make."""
    name = shlex.quote(lab.name)
    relative = lambda paths: "\n".join(p.lstrip("/") for p in paths)  # noqa: E731
    return f"""set -eu
B={BASELINE_DIR}; P={PARTIAL_DIR}
if [ -f "$B/summary" ]; then
  if [ "$(cat "$B/lab")" != {name} ]; then echo "refused: the baseline of lab $(cat "$B/lab") is there"; exit 3; fi
  cat "$B/summary"; exit 0
fi
for t in {words(fp.TREES)}; do
  if [ -e "$t" ] || [ -L "$t" ]; then echo "refused: $t exists and is not k8s-ha-lab's"; exit 4; fi
done
rm -rf "$P"; mkdir -m 0700 "$P"
{{
  echo "lab "{name}
  for p in {words((*fp.FILES, *fp.parent_dirs(), *fp.ACCOUNT_FILES, *fp.cri_dirs(), *fp.CONTAINERD_LAZY_FILES,
                   *fp.PACKAGED_UNIT_TRACES))}; do
    if [ -e "$p" ] || [ -L "$p" ]; then echo "existed $p"; fi
  done
  for f in {words(fp.FILES)}; do
    if [ -f "$f" ]; then echo "sha256 $(sha256sum < "$f" | cut -d' ' -f1) $f"; fi
  done
{unit_states_sh("  ")}
  for k in {words(fp.sysctl_keys(lab))}; do
    if v=$(sysctl -n "$k" 2>/dev/null); then echo "sysctl $k=$v"; fi
  done
  for u in {words(fp.USERS)}; do
    if id -u "$u" >/dev/null 2>&1; then echo "user $u"; fi
  done
}} > "$P/summary"
cd /
printf '%s\\n' {words(p.lstrip('/') for p in fp.FILES)} | while read -r f; do
  if [ -f "/$f" ] || [ -L "/$f" ]; then echo "$f"; fi; done > "$P/files.list"
printf '%s\\n' {words(p.lstrip('/') for p in fp.ACCOUNT_FILES)} | while read -r f; do
  if [ -f "/$f" ]; then echo "$f"; fi; done > "$P/accounts.list"
tar -cpf "$P/files.tar" --numeric-owner -T "$P/files.list"
tar -cpf "$P/accounts.tar" --numeric-owner -T "$P/accounts.list"
cat /etc/hosts > "$P/hosts"
find {words(fp.CONTAINERD_ROOTS)} -maxdepth {fp.CONTAINERD_DEPTH} -type d 2>/dev/null | sort > "$P/containerd.dirs" || true
echo {name} > "$P/lab"
mkdir -p "$(dirname "$B")"
mv "$P" "$B"
cat "$B/summary"
"""


@dataclass
class Baseline:
    """The parsed summary: what the machine had before the harness's first `up`."""
    lab: str = ""
    existed: set[str] = field(default_factory=set)
    sha256: dict[str, str] = field(default_factory=dict)
    units: dict[str, tuple[str, str]] = field(default_factory=dict)  # unit -> (enabled, active)
    sysctls: dict[str, str] = field(default_factory=dict)
    users: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, text: str) -> "Baseline":
        out = cls()
        for line in text.splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "lab":
                out.lab = rest.strip()
            elif kind == "existed":
                out.existed.add(rest)
            elif kind == "sha256":
                digest, _, path = rest.partition(" ")
                out.sha256[path] = digest
            elif kind == "unit":
                unit, enabled, active = (rest.split() + ["", ""])[:3]
                out.units[unit] = (enabled, active)
            elif kind == "sysctl":
                key, _, value = rest.partition("=")
                out.sysctls[key] = value
            elif kind == "user":
                out.users.add(rest.strip())
        return out

    def render(self) -> str:
        lines = [f"lab {self.lab}"] + [f"existed {p}" for p in sorted(self.existed)]
        lines += [f"sha256 {d} {p}" for p, d in sorted(self.sha256.items())]
        lines += [f"unit {u} {e} {a}" for u, (e, a) in sorted(self.units.items())]
        lines += [f"sysctl {k}={v}" for k, v in sorted(self.sysctls.items())]
        lines += [f"user {u}" for u in sorted(self.users)]
        return "\n".join(lines) + "\n"
