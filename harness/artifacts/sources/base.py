"""The interface every binary source implements: gomod, release and dir."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

from harness.versions import Component

# Called by a source as soon as one binary is complete: (binary, path, seconds it took).
OnReady = Callable[[str, Path, float], None]


def _ignore(binary: str, path: Path, seconds: float) -> None:
    pass


class ArtifactSource(ABC):
    """Obtains a component's binaries into a scratch directory.

    A source never writes into the cache: the caller gives it a scratch dest_dir and moves each
    finished binary into the cache itself (see ArtifactStore), so every source gets atomic
    installation and cache hits for free.
    """

    name: str = ""

    @abstractmethod
    def fetch(self, component: Component, binaries: list[str], dest_dir: Path,
              on_ready: OnReady = _ignore) -> dict[str, Path]:
        """Puts each of `binaries` into dest_dir; returns binary -> path. Raises UserError."""

    @abstractmethod
    def describe(self, component: Component, binaries: list[str]) -> list[str]:
        """One human-readable line per binary saying where it would come from."""
