"""What the node image is made of, and the content hash that names it.

The tag carries a hash of everything that shapes the image (suite, packages, the files copied
in, the `docker import` changes), so a changed recipe gives a new tag and an unchanged one
reuses the image that is already there.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

FILES_DIR = Path(__file__).resolve().parent / "files"
IMAGE_REPOSITORY = "k8s-ha-lab/node"
CACHE_DIR = Path(os.environ.get("K8S_HA_LAB_IMAGE_CACHE", "/var/cache/k8s-ha-lab/image"))

# What a lab node needs before any deployment step: systemd as init, sshd for the harness,
# the container runtime and networking tools the kubelet and kube-proxy call, the services the
# lb machines run, and python3 for testinfra modules that run code on the target.
NODE_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "openssh-server",
    "containerd", "runc", "containernetworking-plugins",
    "iptables", "conntrack", "ebtables", "ethtool", "iproute2", "iputils-ping", "socat",
    "haproxy", "keepalived",
    "curl", "ca-certificates", "procps", "psmisc", "kmod", "netcat-openbsd",
    "busybox-static",  # a static binary to make nested test containers from, with no registry
    "sshfs",  # the registry's shared storage: one machine exports a directory, the nodes mount it
    "wrk",  # the ingress benchmark's load generator (requests per second, latency percentiles)
    "python3",
)

# Applied by `docker import --change`. systemd wants `container` set; the entrypoint prepares
# the container, then execs /sbin/init. (import refuses STOPSIGNAL: the provider passes
# --stop-signal=SIGRTMIN+3 at create time so `docker stop` shuts systemd down cleanly.)
IMPORT_CHANGES = (
    'ENV container=docker',
    'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]',
    'CMD []',
)

# Where each file of FILES_DIR lands in the root filesystem; customize.sh only runs at build.
INSTALLED_FILES = {"entrypoint": ("/usr/local/bin/entrypoint", 0o755)}
CUSTOMIZE_SCRIPT = "customize.sh"


@dataclass(frozen=True)
class Recipe:
    suite: str = "bookworm"
    variant: str = "minbase"
    packages: tuple[str, ...] = NODE_PACKAGES
    changes: tuple[str, ...] = IMPORT_CHANGES
    files: dict[str, bytes] = field(default_factory=dict)  # name in FILES_DIR -> content

    def base_hash(self) -> str:
        """Identifies the debootstrap output alone, so a changed entrypoint reuses it."""
        return _digest({"suite": self.suite, "variant": self.variant,
                        "packages": sorted(self.packages)})

    def content_hash(self) -> str:
        return _digest({"base": self.base_hash(), "changes": list(self.changes),
                        "files": {name: hashlib.sha256(data).hexdigest()
                                  for name, data in sorted(self.files.items())}})

    @property
    def tag(self) -> str:
        return f"{IMAGE_REPOSITORY}:{self.suite}-{self.content_hash()[:12]}"

    @property
    def base_tarball(self) -> Path:
        return CACHE_DIR / f"debootstrap-{self.suite}-{self.base_hash()[:12]}.tar"

    @property
    def rootfs_tarball(self) -> Path:
        return CACHE_DIR / f"rootfs-{self.suite}-{self.content_hash()[:12]}.tar"


def _digest(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def read_files(files_dir: Path = FILES_DIR) -> dict[str, bytes]:
    names = [*INSTALLED_FILES, CUSTOMIZE_SCRIPT]
    return {name: (files_dir / name).read_bytes() for name in names}


def node_recipe(files_dir: Path = FILES_DIR) -> Recipe:
    """The recipe as checked into the repo."""
    return Recipe(files=read_files(files_dir))


def node_image_tag() -> str:
    """The tag the docker provider runs; `K8S_HA_LAB_IMAGE` overrides it (a hand-built image)."""
    return os.environ.get("K8S_HA_LAB_IMAGE") or node_recipe().tag
