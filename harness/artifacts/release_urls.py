"""Where each component's official release binaries live upstream, and how they are checksummed.

Kubernetes publishes each binary with a `<url>.sha256` beside it; etcd publishes a tarball and a
SHA256SUMS file. For a project that publishes no checksum file (flannel), the sha256 must be
pinned in release_checksums.yaml beside this module: nothing is installed unverified.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

PINNED_CHECKSUMS_FILE = Path(__file__).with_name("release_checksums.yaml")
MIRROR_ENV = "K8S_HA_LAB_RELEASE_MIRROR"


@dataclass(frozen=True)
class ReleaseAsset:
    """One download: a bare binary (member is None) or a .tar.gz holding the binaries."""
    url: str
    # "sidecar": <url>.sha256 holds the hex digest; "sums": a SHA256SUMS-style file at sums_url;
    # "pinned": release_checksums.yaml must hold it
    checksum_kind: str
    sums_url: str = ""
    # binary -> path inside the archive; empty for a bare binary
    members: dict[str, str] | None = None


@dataclass(frozen=True)
class ReleaseTemplate:
    url: str
    checksum_kind: str
    sums_url: str = ""
    members: dict[str, str] | None = None

    def render(self, version: str, binary: str = "", arch: str = "amd64") -> ReleaseAsset:
        fields = {"version": version, "binary": binary, "arch": arch,
                  "bare_version": version.lstrip("v")}
        members = ({b: m.format(**fields) for b, m in self.members.items()}
                   if self.members else None)
        return ReleaseAsset(url=self.url.format(**fields), checksum_kind=self.checksum_kind,
                            sums_url=self.sums_url.format(**fields), members=members)


UPSTREAM: dict[str, ReleaseTemplate] = {
    "kubernetes": ReleaseTemplate(
        url="https://dl.k8s.io/release/{version}/bin/linux/{arch}/{binary}",
        checksum_kind="sidecar"),
    "etcd": ReleaseTemplate(
        url="https://github.com/etcd-io/etcd/releases/download/{version}/"
            "etcd-{version}-linux-{arch}.tar.gz",
        checksum_kind="sums",
        sums_url="https://github.com/etcd-io/etcd/releases/download/{version}/SHA256SUMS",
        members={"etcd": "etcd-{version}-linux-{arch}/etcd",
                 "etcdctl": "etcd-{version}-linux-{arch}/etcdctl",
                 "etcdutl": "etcd-{version}-linux-{arch}/etcdutl"}),
    "flannel": ReleaseTemplate(
        url="https://github.com/flannel-io/flannel/releases/download/{version}/"
            "flannel-{version}-linux-{arch}.tar.gz",
        checksum_kind="pinned",
        members={"flanneld": "flanneld"}),
}


def with_mirror(url: str, mirror: str | None = None) -> str:
    """https://host/path -> <mirror>/host/path when a mirror is configured."""
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV, "")
    if not mirror or "://" not in url:
        return url
    return mirror.rstrip("/") + "/" + url.split("://", 1)[1]


def pinned_checksums(path: Path = PINNED_CHECKSUMS_FILE) -> dict[str, str]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError:
        return {}
    return {str(url): str(digest).lower() for url, digest in data.items()}


def parse_sums(text: str, filename: str) -> str | None:
    """The digest for filename in `sha256sum` output (`<hex>  <name>` or `<hex> *<name>`)."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[-1].lstrip("*").split("/")[-1] == filename:
            return parts[0].lower()
    return None
