"""The packet-filter rules and chains the lab left, found in `iptables-save` output and removed
with `iptables-restore --noflush` (one atomic commit per table, nothing else touched).

Ours: chains named by kube-proxy and the kubelet (KUBE-), flannel (FLANNEL-) and the CNI plugins
(CNI-); every rule that jumps to one of them; every rule with the harness's own comment; and
kube-proxy's unit's REJECT rules for the service range (harness.render.units.service_cidr_reject).
Everything else (docker's, the admin's) stays as it is.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from harness.footprint import CHAIN_PREFIXES, RULE_COMMENT


@dataclass
class Table:
    name: str
    chains: list[str] = field(default_factory=list)   # every chain, in declaration order
    rules: list[str] = field(default_factory=list)    # "-A CHAIN ..." lines


def parse_save(text: str) -> list[Table]:
    tables, current = [], None
    for line in text.splitlines():
        line = line.rstrip()
        if line.startswith("*"):
            current = Table(line[1:])
            tables.append(current)
        elif current is None or not line or line.startswith("#"):
            continue
        elif line.startswith(":"):
            current.chains.append(line[1:].split()[0])
        elif line.startswith("-A "):
            current.rules.append(line)
    return tables


def ours(chain: str) -> bool:
    return chain.startswith(CHAIN_PREFIXES)


def _target(words: list[str]) -> str | None:
    for flag in ("-j", "-g"):
        if flag in words:
            index = words.index(flag)
            if index + 1 < len(words):
                return words[index + 1]
    return None


def rule_is_ours(rule: str, service_cidr: str | None = None) -> bool:
    try:
        words = shlex.split(rule)
    except ValueError:  # an unbalanced quote: not a rule this lab wrote
        return False
    chain, target = words[1], _target(words)
    if ours(chain) or (target and ours(target)):
        return True
    if "--comment" in words and RULE_COMMENT in words[words.index("--comment") + 1]:
        return True
    # kube-proxy's unit: `CHAIN -d SERVICE_CIDR -p PROTO -m conntrack ! --ctstate DNAT -j REJECT ...`
    return bool(service_cidr and chain in ("FORWARD", "OUTPUT") and target == "REJECT"
                and f"-d {service_cidr}" in rule and "! --ctstate DNAT" in rule)


def cleanup_input(save_text: str, service_cidr: str | None = None) -> str:
    """What to feed `iptables-restore --noflush` so nothing of the lab is left: the rules that
    belong to it deleted (in chains that stay), then its chains flushed and removed. Empty when
    there is nothing to remove."""
    out = []
    for table in parse_save(save_text):
        mine = [c for c in table.chains if ours(c)]
        deletions = [f"-D {rule[3:]}" for rule in table.rules
                     if rule_is_ours(rule, service_cidr) and not ours(rule.split()[1])]
        if not mine and not deletions:
            continue
        out.append(f"*{table.name}")
        out += deletions
        out += [f"-F {c}" for c in mine]
        out += [f"-X {c}" for c in mine]
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""


def leftovers(save_text: str, service_cidr: str | None = None) -> list[str]:
    """Chains and rules of the lab still present, as `table: chain` / `table: rule` lines."""
    found = []
    for table in parse_save(save_text):
        found += [f"{table.name}: chain {c}" for c in table.chains if ours(c)]
        found += [f"{table.name}: {rule}" for rule in table.rules
                  if rule_is_ours(rule, service_cidr) and not ours(rule.split()[1])]
    return found
