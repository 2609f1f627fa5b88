"""The VictoriaLogs image: victoria-logs (the store, its HTTP API and its web UI, which is
compiled into the binary) and vlagent (the collector) from the one Go module, in one image.

Two binaries share one layer, so a node imports one archive for both the store's Deployment and
the collectors' DaemonSet; each pod names its binary in `command` (no entrypoint). The layer is
gobinary_image's: /etc/passwd and /etc/group with root and nobody, and a world-writable /tmp.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from harness.artifacts.images.debroot import sha256_file
from harness.artifacts.images.gobinary_image import GROUP, PASSWD
from harness.artifacts.images.oci import ImageSpec, LayerEntry
from harness.errors import UserError

RECIPE_REVISION = "1"
COMPONENT = "victorialogs"
BINARIES = ("victoria-logs", "vlagent")
# victoria-logs' -httpListenAddr default; vlagent's is 9429.
EXPOSED_PORTS = ("9428/tcp", "9429/tcp")


def cached_binaries(cache, version: str) -> dict[str, Path]:
    """binary -> its path in the artifact cache; both must have been built."""
    paths = {}
    for binary in BINARIES:
        if not cache.has_binary(COMPONENT, version, binary):
            raise UserError(f"image victorialogs: {binary} {version} is not in the artifact cache "
                            f"({cache.binary_path(COMPONENT, version, binary)}); run `python -m "
                            f"harness artifacts build --only {COMPONENT}`")
        paths[binary] = cache.binary_path(COMPONENT, version, binary)
    return paths


def recipe_key(version: str, binaries: dict[str, Path]) -> str:
    digest = hashlib.sha256()
    for part in (RECIPE_REVISION, version, ",".join(EXPOSED_PORTS), PASSWD, GROUP,
                 *(f"{name}={sha256_file(binaries[name])}" for name in BINARIES)):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


def build_spec(name: str, version: str, binaries: dict[str, Path]) -> ImageSpec:
    entries = [LayerEntry("etc", kind="dir", mode=0o755),
               LayerEntry("etc/passwd", data=PASSWD.encode()),
               LayerEntry("etc/group", data=GROUP.encode()),
               LayerEntry("tmp", kind="dir", mode=0o1777)]
    entries += [LayerEntry(binary, data=binaries[binary].read_bytes(), mode=0o755) for binary in BINARIES]
    return ImageSpec(name=name, tag=version, entries=entries, entrypoint=[], user="",
                     exposed_ports=list(EXPOSED_PORTS))
