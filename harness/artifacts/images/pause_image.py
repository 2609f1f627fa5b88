"""The pause image: images/pause/pause.c compiled static, alone in a single layer."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from harness import REPO_ROOT
from harness.artifacts.images.oci import ImageSpec, LayerEntry
from harness.errors import UserError

PAUSE_SOURCE = REPO_ROOT / "images" / "pause" / "pause.c"
# Bump when the way the image is put together changes (not the source: that is hashed).
RECIPE_REVISION = "1"
CFLAGS = ["-static", "-Os", "-s", "-Wall"]


def _compiler() -> str:
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise UserError("pause image: no C compiler (gcc) on PATH; install Debian's gcc and "
                        "libc6-dev")
    return cc


def recipe_key(version: str) -> str:
    cc = _compiler()
    cc_version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    digest = hashlib.sha256()
    for part in (RECIPE_REVISION, version, " ".join(CFLAGS), cc_version.splitlines()[0]):
        digest.update(part.encode() + b"\0")
    digest.update(PAUSE_SOURCE.read_bytes())
    return digest.hexdigest()


def build_spec(name: str, version: str, workdir: Path) -> ImageSpec:
    binary = workdir / "pause"
    command = [_compiler(), *CFLAGS, f'-DPAUSE_VERSION="{version}"', "-o", str(binary),
               str(PAUSE_SOURCE)]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-4:])
        raise UserError(f"pause image: `{' '.join(command)}` failed: {tail} (a static build "
                        f"needs libc6-dev)")
    return ImageSpec(
        name=name, tag=version,
        entries=[LayerEntry("pause", mode=0o755, data=binary.read_bytes())],
        entrypoint=["/pause"],
        # The upstream pause image runs as nobody too: it needs no privilege at all.
        user="65535:65535",
    )
