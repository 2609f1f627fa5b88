"""Checks that cached artifacts are what versions.yaml pins: binaries run and say their version."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.artifacts.catalog import binary_spec


@dataclass(frozen=True)
class VersionCheck:
    binary: str
    path: Path
    expected: str
    output: str
    ok: bool

    @property
    def first_line(self) -> str:
        lines = self.output.strip().splitlines()
        return lines[0] if lines else ""


def check_binary_version(binary: str, path: Path, version: str) -> VersionCheck:
    """Runs `<binary> <version args>` and looks for the pinned version in what it prints."""
    spec = binary_spec(binary)
    expected = spec.expected_output(version)
    if not path.is_file():
        return VersionCheck(binary, path, expected, "not in the cache", False)
    try:
        proc = subprocess.run([str(path), *spec.version_args], capture_output=True, text=True,
                              timeout=60)
        output = proc.stdout + proc.stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        return VersionCheck(binary, path, expected, f"could not run: {exc}", False)
    matching = [line for line in output.splitlines() if expected in line]
    return VersionCheck(binary, path, expected, "\n".join(matching) or output, bool(matching))
