"""What a machine already has, read in one round trip per machine before each step.

A re-run on a lab that is up changes nothing, so its cost is the questions it asks: is this
file's content already there, is this binary, is this unit enabled and running. Asked one at a
time that was about 200 commands for the core steps (issue 14, the fast loop). The runner now
asks them all at once per machine at the start of a step: the digest and mode of the step's
rendered files, the stamped digests of the pinned binaries, and every unit the harness manages.
The step's helpers (sync_files, install_binaries, start_units in harness.steps.actions) answer
from these facts and only fall back to a command for what was not asked.

Facts live for one step. Whatever the step uploads is forgotten at once, and a unit whose file
changed is reloaded and restarted as before, so a fact is never used after the step changed it.
"""

from __future__ import annotations

import shlex
import threading
from dataclasses import dataclass, field

from harness import footprint
from harness.lab import Machine
from harness.render import BIN_DIR, UNIT_DIR
from harness.steps.context import BINARY_COMPONENT, StepContext

UNIT_PROPERTIES = ("Id", "ActiveState", "UnitFileState", "NeedDaemonReload")
SECTIONS = ("sha256", "stat", "stamps", "units")


@dataclass
class UnitFacts:
    active: str            # ActiveState: active, inactive, activating, failed ...
    enabled: str           # UnitFileState: enabled, disabled, "" when the unit is unknown
    needs_reload: bool     # NeedDaemonReload: its file changed since systemd read it


@dataclass
class Facts:
    asked: set[str]                                  # every path the script asked about
    files: dict[str, tuple[str, str]]                # path -> (sha256, octal mode), if it exists
    units: dict[str, UnitFacts]                      # "etcd" -> ...
    touched_units: bool = False                      # the step uploaded a unit file or drop-in
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def state(self, paths: list[str]) -> dict[str, tuple[str, str]] | None:
        """The facts for these paths, or None when any was not asked (or forgotten)."""
        with self._lock:
            if not set(paths) <= self.asked:
                return None
            return {p: self.files[p] for p in paths if p in self.files}

    def forget(self, path: str) -> None:
        with self._lock:
            self.asked.discard(path)
            self.files.pop(path, None)
            if path.startswith(UNIT_DIR + "/"):
                self.touched_units = True

    def running(self, unit: str) -> bool:
        """Enabled and active when the step began (a unit the step restarts never asks)."""
        u = self.units.get(_unit_key(unit))
        return bool(u) and u.active == "active" and u.enabled == "enabled"

    def reload_needed(self, units: list[str]) -> bool:
        """daemon-reload is due unless no unit file changed in this step and systemd says none
        of these units needs one."""
        if self.touched_units:
            return True
        keys = [_unit_key(unit) for unit in units]
        return any(key not in self.units or self.units[key].needs_reload for key in keys)


def _unit_key(unit: str) -> str:
    """Facts name units as systemctl's Id without ".service"; the steps name them either way."""
    return unit.removesuffix(".service")


def binary_paths() -> list[str]:
    return [f"{BIN_DIR}/{name}" for name in sorted(BINARY_COMPONENT)]


def facts_script(files: list[str], binaries: list[str], units: list[str]) -> str:
    """Five processes whatever the count: on a loaded 2-core host every fork counts. A binary's
    digest is its stamp's (harness.steps.actions.remote_state_script) when the stamp was taken
    from the same inode, size and mtime; otherwise it is left unasked, and the step hashes it."""
    from harness.steps.actions import STAMP_DIR, STAMP_KEY

    paths = " ".join(shlex.quote(p) for p in files)
    every = " ".join(shlex.quote(p) for p in [*files, *binaries])
    props = " ".join(f"-p {p}" for p in UNIT_PROPERTIES)
    return "; ".join([
        "echo '--- sha256'", *([f"sha256sum -- {paths} 2>/dev/null"] if files else []),
        "echo '--- stat'", f"stat -c '%a {STAMP_KEY} %n' -- {every} 2>/dev/null",
        "echo '--- stamps'", f"grep -H '' {STAMP_DIR}/* 2>/dev/null",
        "echo '--- units'", f"systemctl show {props} {' '.join(shlex.quote(u) for u in units)} 2>/dev/null",
        "true"])


def _sections(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {name: [] for name in SECTIONS}
    current = None
    for line in text.splitlines():
        if line.startswith("--- ") and line[4:] in found:
            current = line[4:]
        elif current:
            found[current].append(line)
    return found


def parse_facts(text: str, files: list[str], binaries: list[str]) -> Facts:
    from harness.steps.actions import STAMP_KEY, stamp_path

    part = _sections(text)
    digests = {}
    for line in part["sha256"]:
        digest, _, path = line.partition("  ")
        digests[path] = digest
    stats = {}
    for line in part["stat"]:
        mode, rest = line.split(" ", 1)
        *key, path = rest.split(" ", STAMP_KEY.count(" ") + 1)
        stats[path] = (mode, " ".join(key))
    stamps = {}
    for line in part["stamps"]:
        name, _, content = line.partition(":")
        digest, _, key = content.partition(" ")
        stamps[name] = (digest, key)
    state, asked = {}, set(files)
    for path in files:
        if path in digests and path in stats:
            state[path] = (digests[path], stats[path][0])
    for path in binaries:
        if path not in stats:
            asked.add(path)                     # absent: known
            continue
        digest, key = stamps.get(stamp_path(path), ("", ""))
        if key == stats[path][1] and len(digest) == 64:
            state[path] = (digest, stats[path][0])
            asked.add(path)                     # else unasked: the step hashes it and stamps it
    units: dict[str, UnitFacts] = {}
    for block in "\n".join(part["units"]).strip().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if props.get("Id"):
            units[_unit_key(props["Id"])] = UnitFacts(
                props.get("ActiveState", ""), props.get("UnitFileState", ""),
                props.get("NeedDaemonReload", "yes") != "no")
    return Facts(asked, state, units)


def gather(ctx: StepContext, step: str, machine: Machine, files: list[str] | None = None) -> Facts:
    """One command: the step's files (or `files`), the binaries and the units, on this machine."""
    from harness.steps.actions import run

    files = [f.path for f in ctx.files_for(step, machine)] if files is None else files
    units = [_unit_key(u) for u in footprint.units()]
    out = run(ctx, step, machine, facts_script(files, binary_paths(), units)).stdout
    return parse_facts(out, files, binary_paths())


def gather_for_step(ctx: StepContext, step: str) -> None:
    """Facts on every machine the step has files for, all at once; replaces the last step's."""
    from harness.steps.parallel import for_each

    forget_all(ctx)
    machines = [m for m in ctx.lab.machines if ctx.files_for(step, m)]
    ctx.facts = for_each(ctx, step, machines, lambda m: gather(ctx, step, m), quiet=True)
    ctx.facts_step = step


def gather_for_files(ctx: StepContext, step: str, machine: Machine, files: list[str]) -> None:
    """Facts for files a step renders itself (the registry's per-node keys), during that step."""
    if ctx.facts_step == step:
        ctx.facts[machine.name] = gather(ctx, step, machine, files)


def forget_all(ctx: StepContext) -> None:
    ctx.facts, ctx.facts_step = {}, ""
