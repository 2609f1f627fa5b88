"""The registry image: the CNCF Distribution registry (`registry`, a static Go binary from the
artifact cache) and Apache's `htpasswd` from Debian's apache2-utils, in one layer.

`htpasswd -B` is the tool the registry's documentation names for its htpasswd file (bcrypt is
the only hash it accepts). The pod's initContainer runs it with the password from a Secret, so
the bcrypt file is made in the lab by the real tool and no hash is ever computed by the harness
(or stored in the repo). The registry then reads that file; both run from this one image.

Layer: /registry, /usr/bin/htpasswd with the closure of its ELF libraries and the loader,
/etc/passwd and /etc/group (root, nobody), a world-writable /tmp. No entrypoint: each container
names its program in `command`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from harness.artifacts.images.debroot import DebSet, RootfsBuilder, sha256_file
from harness.artifacts.images.gobinary_image import GROUP, PASSWD
from harness.artifacts.images.oci import ImageSpec
from harness.errors import UserError

RECIPE_REVISION = "1"
COMPONENT = "registry"
BINARY = "registry"
HTPASSWD = "usr/bin/htpasswd"
# htpasswd's package, then the packages that ship its libraries (the closure check names any
# soname a Debian update adds).
PACKAGES = ("apache2-utils", "libapr1", "libaprutil1", "libc6", "libcrypt1", "libssl3",
            "libuuid1", "libexpat1", "libdb5.3", "libgdbm6", "libcrypt1")
DEBS = DebSet("registry image", tuple(dict.fromkeys(PACKAGES)))
EXPOSED_PORTS = ("5000/tcp",)


def cached_binary(cache, version: str) -> Path:
    if not cache.has_binary(COMPONENT, version, BINARY):
        raise UserError(f"image registry: {BINARY} {version} is not in the artifact cache "
                        f"({cache.binary_path(COMPONENT, version, BINARY)}); run `python -m "
                        f"harness artifacts build --only {COMPONENT}`")
    return cache.binary_path(COMPONENT, version, BINARY)


def recipe_key(version: str, binary: Path, scratch: Path) -> str:
    digest = hashlib.sha256()
    for part in (RECIPE_REVISION, version, HTPASSWD, ",".join(EXPOSED_PORTS), PASSWD, GROUP,
                 sha256_file(binary)):
        digest.update(part.encode() + b"\0")
    DEBS.digest_into(digest, scratch)
    return digest.hexdigest()


def build_spec(name: str, version: str, binary: Path, scratch: Path, deb_dir: Path) -> ImageSpec:
    tree = RootfsBuilder(DEBS.unpacked(deb_dir, scratch), "registry image")
    tree.add_program(HTPASSWD)
    tree.add_file(BINARY, binary.read_bytes(), 0o755)
    tree.add_file("etc/passwd", PASSWD.encode())
    tree.add_file("etc/group", GROUP.encode())
    tree.add_dir("tmp", 0o1777)
    return ImageSpec(name=name, tag=version, entries=tree.entries(), entrypoint=[],
                     exposed_ports=list(EXPOSED_PORTS))
