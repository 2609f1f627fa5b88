"""The artifact cache: built binaries and image archives, kept outside the repository.

Layout (root defaults to /var/cache/k8s-ha-lab, or $K8S_HA_LAB_CACHE):

    bin/<component>@<version>/<binary>       an executable, installed by an atomic rename
    bin/<component>@<version>/.provenance.json  where each binary came from and how long it took
    images/<name>-<version>.oci.tar          an OCI image archive
    images/<name>-<version>.oci.tar.key      the recipe key the archive was built from

Everything is first written into a temporary directory on the same filesystem and then renamed
into place, so an interrupted or failed build never leaves a half-written file where a reader
would take it for a finished one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

DEFAULT_ROOT = Path("/var/cache/k8s-ha-lab")
CACHE_ENV = "K8S_HA_LAB_CACHE"
PROVENANCE_FILE = ".provenance.json"


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_ROOT)


class ArtifactCache:
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else cache_root()

    # ---- binaries -------------------------------------------------------------------------
    def component_dir(self, component: str, version: str) -> Path:
        return self.root / "bin" / f"{component}@{version}"

    def binary_path(self, component: str, version: str, binary: str) -> Path:
        return self.component_dir(component, version) / binary

    def has_binary(self, component: str, version: str, binary: str) -> bool:
        path = self.binary_path(component, version, binary)
        return path.is_file() and os.access(path, os.X_OK)

    def missing_binaries(self, component: str, version: str, binaries: list[str]) -> list[str]:
        return [b for b in binaries if not self.has_binary(component, version, b)]

    @contextmanager
    def staging_dir(self, label: str) -> Iterator[Path]:
        """A scratch directory beside the cache entries, removed afterwards whatever happens.

        It sits on the same filesystem as the final paths so that install_* can rename.
        """
        base = self.root / "tmp"
        base.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=base))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def install_binary(self, component: str, version: str, binary: str, built: Path,
                       provenance: dict | None = None) -> Path:
        """Move a finished binary from a staging dir into the cache in one rename."""
        final = self.binary_path(component, version, binary)
        final.parent.mkdir(parents=True, exist_ok=True)
        built.chmod(0o755)
        # The staging dir lives under root/tmp: same filesystem, so os.replace is atomic.
        os.replace(built, final)
        if provenance is not None:
            self._record_provenance(final.parent, binary, provenance)
        return final

    def provenance(self, component: str, version: str) -> dict:
        path = self.component_dir(component, version) / PROVENANCE_FILE
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    def _record_provenance(self, component_dir: Path, binary: str, entry: dict) -> None:
        path = component_dir / PROVENANCE_FILE
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        data[binary] = entry
        self._write_atomically(path, json.dumps(data, indent=2, sort_keys=True).encode())

    # ---- images ---------------------------------------------------------------------------
    def image_path(self, name: str, version: str) -> Path:
        return self.root / "images" / f"{name}-{version}.oci.tar"

    def image_is_current(self, name: str, version: str, recipe_key: str) -> bool:
        archive = self.image_path(name, version)
        key_file = archive.with_name(archive.name + ".key")
        try:
            return archive.is_file() and key_file.read_text().strip() == recipe_key
        except OSError:
            return False

    def install_image(self, name: str, version: str, built: Path, recipe_key: str) -> Path:
        final = self.image_path(name, version)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(built, final)
        # Key written after the archive: a crash in between only causes a rebuild.
        self._write_atomically(final.with_name(final.name + ".key"), (recipe_key + "\n").encode())
        return final

    # ---- sizes ----------------------------------------------------------------------------
    def size_bytes(self, sub: str = "") -> int:
        base = self.root / sub if sub else self.root
        total = 0
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                try:
                    total += (Path(dirpath) / name).stat().st_size
                except OSError:
                    pass
        return total

    def _write_atomically(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o644)  # mkstemp creates 0600; these are not secrets
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
