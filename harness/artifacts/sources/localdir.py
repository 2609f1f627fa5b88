"""Binaries the user brings in a local directory (e.g. built elsewhere, or from a release)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from harness.artifacts.sources.base import ArtifactSource, OnReady, _ignore
from harness.errors import UserError
from harness.versions import Component


class DirSource(ArtifactSource):
    """Looks for <dir>/<binary> first, then <dir>/<component>@<version>/<binary>.

    The second form lets one directory hold several versions, laid out like the cache.
    """

    name = "dir"

    def __init__(self, directory: Path | str | None):
        if not directory:
            raise UserError("--source dir needs --dir PATH (a directory holding the binaries)")
        self.directory = Path(directory).expanduser()
        if not self.directory.is_dir():
            raise UserError(f"--dir {self.directory}: not a directory")

    def locate(self, component: Component, binary: str) -> Path | None:
        for candidate in (self.directory / binary,
                          self.directory / f"{component.name}@{component.version}" / binary):
            if candidate.is_file():
                return candidate
        return None

    def describe(self, component: Component, binaries: list[str]) -> list[str]:
        lines = []
        for binary in binaries:
            found = self.locate(component, binary)
            lines.append(f"copy of {found}" if found else
                         f"missing: neither {self.directory / binary} nor "
                         f"{self.directory / f'{component.name}@{component.version}' / binary}")
        return lines

    def fetch(self, component: Component, binaries: list[str], dest_dir: Path,
              on_ready: OnReady = _ignore) -> dict[str, Path]:
        # Check all first: a half-satisfied request should fail before copying anything.
        found = {b: self.locate(component, b) for b in binaries}
        missing = [b for b, path in found.items() if path is None]
        if missing:
            raise UserError(f"--dir {self.directory}: no {', '.join(missing)} for "
                            f"{component.name} {component.version}")
        result = {}
        for binary, path in found.items():
            if not os.access(path, os.X_OK):
                raise UserError(f"--dir {self.directory}: {path} is not executable")
            started = time.monotonic()
            target = dest_dir / binary
            shutil.copyfile(path, target)
            target.chmod(0o755)
            result[binary] = target
            on_ready(binary, target, time.monotonic() - started)
        return result
