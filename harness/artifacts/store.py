"""Fills the artifact cache from a source: only what is missing, each binary moved in atomically."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.artifacts.cache import ArtifactCache
from harness.artifacts.sources.base import ArtifactSource
from harness.versions import Component


@dataclass(frozen=True)
class BinaryResult:
    component: str
    binary: str
    version: str
    path: Path
    # "cached": was already there, nothing run; "built": obtained now from the source
    status: str
    seconds: float = 0.0
    source: str = ""


Report = Callable[[BinaryResult], None]


class ArtifactStore:
    def __init__(self, cache: ArtifactCache | None = None):
        self.cache = cache or ArtifactCache()

    def ensure(self, component: Component, binaries: list[str], source: ArtifactSource,
               report: Report = lambda result: None, force: bool = False) -> list[BinaryResult]:
        """Makes each binary present in the cache; a cache hit runs nothing from the source."""
        results = []
        wanted = binaries if force else self.cache.missing_binaries(
            component.name, component.version, binaries)
        for binary in binaries:
            if binary not in wanted:
                result = BinaryResult(component.name, binary, component.version,
                                      self.cache.binary_path(component.name, component.version,
                                                             binary), "cached")
                results.append(result)
                report(result)
        if not wanted:
            return results

        def install(binary: str, built: Path, seconds: float) -> None:
            entry = {"source": source.name, "seconds": round(seconds, 1),
                     "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            final = self.cache.install_binary(component.name, component.version, binary, built,
                                              entry)
            result = BinaryResult(component.name, binary, component.version, final, "built",
                                  seconds, source.name)
            results.append(result)
            report(result)

        with self.cache.staging_dir(f"{component.name}@{component.version}") as scratch:
            # Binaries already handed to install() are in the cache; a failure later in the
            # same fetch keeps them, and removes only the scratch dir with partial output.
            source.fetch(component, wanted, scratch, install)
        return results

    def paths(self, component: Component, binaries: list[str]) -> dict[str, Path]:
        return {b: self.cache.binary_path(component.name, component.version, b)
                for b in binaries}
