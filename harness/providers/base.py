"""The provider interface: everything the harness asks of whatever makes the lab's machines.

In the style of kind's `Provider` (provision, list the nodes, delete them, collect their logs)
with molecule's `sanity_checks` in front. The lifecycle (`harness.machines`), the lab-is-up
guard, preflight and the tests call only these methods, so a provider that is not Vagrant
(machines that already exist, reached over SSH) can stand in without the callers changing.

Power control is a capability, not a given: a provider lists what it can do in
`capabilities`, and whatever needs one calls `require_capability` first, which refuses in one
line with exit status 2 on a provider without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Protocol, runtime_checkable

from harness.errors import UserError
from harness.lab import Lab

if TYPE_CHECKING:
    from harness.preflight import Host

# What a provider may be able to do to one running machine besides creating and deleting it.
POWER_OFF = "power-off"            # a clean shutdown (systemd stops its units)
FORCED_POWER_OFF = "forced-power-off"  # no shutdown at all: every process dies at once
POWER_ON = "power-on"              # start a powered-off machine again, same name and address
CAPABILITIES = (POWER_OFF, FORCED_POWER_OFF, POWER_ON)


@dataclass(frozen=True)
class MachineState:
    name: str
    state: str  # the provider's word: running, stopped, exited, not_created, poweroff, ...

    @property
    def running(self) -> bool:
        return self.state == "running"


@runtime_checkable
class Provider(Protocol):
    name: str
    lab: Lab
    state_dir: Path
    capabilities: frozenset[str]

    def sanity_checks(self, host: "Host") -> None:
        """Before anything is touched: the host has what this provider needs. Raises
        UserError (one line, exit 2) naming what is missing and how to get it."""

    def own_host_interfaces(self, host: "Host") -> set[str]:
        """Host interfaces that are this lab's own (its bridge), which may hold the lab's
        subnet without that being a conflict."""

    def prepare(self, log: Callable[[str], None]) -> None:
        """What must exist before any machine is made (an image, a box)."""

    def provision(self, names: list[str]) -> Iterator[str]:
        """Create or start these machines; yields progress lines as they come."""

    def list_machines(self) -> list[MachineState]:
        """The provider's own view of every lab machine, fast: `not_created` for a missing one."""

    def power_off(self, name: str, force: bool = False) -> None:
        """Shut one machine down cleanly, or (force) cut it off with no shutdown at all."""

    def power_on(self, name: str) -> None:
        """Start one powered-off machine again; nothing when it runs."""

    def delete(self) -> list[str]:
        """Every machine and everything the provider made for them (networks, volumes).
        Returns what was removed."""

    def leftovers(self) -> list[str]:
        """What of this lab still exists after delete; empty when nothing does."""

    def collect_logs(self) -> dict[str, str]:
        """Provider-level facts for a failed run's logs: file name -> content."""


POWER_WORDS = {POWER_OFF: "a clean power-off", FORCED_POWER_OFF: "a forced power-off",
               POWER_ON: "power-on"}


def require_capability(provider: Provider, capability: str, who: str) -> None:
    """Refuse, before anything is done, what this provider cannot do: one line, exit 2."""
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r} (known: {', '.join(CAPABILITIES)})")
    if capability not in provider.capabilities:
        offers = ", ".join(sorted(provider.capabilities)) or "no power control"
        raise UserError(f"{who} needs {POWER_WORDS[capability]}, which provider {provider.name} "
                        f"does not offer (it offers: {offers})")
