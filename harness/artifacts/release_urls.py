"""Where each component's release binaries are downloaded from, and how they are checksummed.

The repo names no download host. The host that runs the harness says where each project's
releases are (a mirror of its own, or the project's download site), one base URL per project:

- `$K8S_HA_LAB_RELEASE_BASE_<PROJECT>` (`..._KUBERNETES`, `..._ETCD`, `..._FLANNEL`), or
- a YAML file `<project>: <base URL>`: `$K8S_HA_LAB_RELEASE_MIRRORS`, else
  `$XDG_CONFIG_HOME/k8s-ha-lab/release-mirrors.yaml` (`~/.config/...` without XDG_CONFIG_HOME).

The environment wins over the file. Asking the `release` source for a project with no base is
refused in one line (exit 2). Below its base each project keeps its own layout (`LAYOUTS`):
Kubernetes publishes each binary with a `<url>.sha256` beside it, etcd a tarball and a
SHA256SUMS file; for a project that publishes no checksum file (flannel) the sha256 must be
pinned by file name in release_checksums.yaml beside this module: nothing is installed
unverified.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import yaml

from harness.errors import UserError

PINNED_CHECKSUMS_FILE = Path(__file__).with_name("release_checksums.yaml")
BASE_ENV_PREFIX = "K8S_HA_LAB_RELEASE_BASE_"
MIRRORS_FILE_ENV = "K8S_HA_LAB_RELEASE_MIRRORS"
URL_SCHEMES = ("http://", "https://", "file://")


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

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ReleaseTemplate:
    """A project's layout below its base URL ({base}, {version}, {bare_version}, {binary}, {arch})."""
    url: str
    checksum_kind: str
    sums_url: str = ""
    members: dict[str, str] | None = None

    def render(self, base: str, version: str, binary: str = "", arch: str = "amd64") -> ReleaseAsset:
        fields = {"base": base.rstrip("/"), "version": version, "binary": binary, "arch": arch,
                  "bare_version": version.lstrip("v")}
        members = ({b: m.format(**fields) for b, m in self.members.items()}
                   if self.members else None)
        return ReleaseAsset(url=self.url.format(**fields), checksum_kind=self.checksum_kind,
                            sums_url=self.sums_url.format(**fields), members=members)


LAYOUTS: dict[str, ReleaseTemplate] = {
    "kubernetes": ReleaseTemplate(
        url="{base}/{version}/bin/linux/{arch}/{binary}",
        checksum_kind="sidecar"),
    "etcd": ReleaseTemplate(
        url="{base}/{version}/etcd-{version}-linux-{arch}.tar.gz",
        checksum_kind="sums",
        sums_url="{base}/{version}/SHA256SUMS",
        members={"etcd": "etcd-{version}-linux-{arch}/etcd",
                 "etcdctl": "etcd-{version}-linux-{arch}/etcdctl",
                 "etcdutl": "etcd-{version}-linux-{arch}/etcdutl"}),
    "flannel": ReleaseTemplate(
        url="{base}/{version}/flannel-{version}-linux-{arch}.tar.gz",
        checksum_kind="pinned",
        members={"flanneld": "flanneld"}),
}


# --- the host's configuration ----------------------------------------------------------------
def mirrors_file(environ: Mapping[str, str] = os.environ) -> Path:
    if environ.get(MIRRORS_FILE_ENV):
        return Path(environ[MIRRORS_FILE_ENV]).expanduser()
    config_home = environ.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    return Path(config_home) / "k8s-ha-lab" / "release-mirrors.yaml"


def base_env(project: str) -> str:
    return BASE_ENV_PREFIX + project.upper()


def _checked(url: str, where: str) -> str:
    if not isinstance(url, str) or not url.startswith(URL_SCHEMES) or any(c.isspace() for c in url):
        raise UserError(f"{where}: {url!r} is not a base URL ({', '.join(URL_SCHEMES)}...)")
    return url.rstrip("/")


def configured_bases(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """project -> base URL, from the mirrors file and the environment (which wins)."""
    bases: dict[str, str] = {}
    path = mirrors_file(environ)
    if path.exists():
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise UserError(f"{path}: cannot be read as YAML ({type(exc).__name__})") from None
        if not isinstance(data, dict):
            raise UserError(f"{path}: must map a project ({', '.join(LAYOUTS)}) to its base URL")
        for project, url in data.items():
            if project not in LAYOUTS:
                raise UserError(f"{path}: {project!r}: unknown project (known: {', '.join(LAYOUTS)})")
            bases[project] = _checked(url, f"{path}: {project}")
    for project in LAYOUTS:
        if environ.get(base_env(project)):
            bases[project] = _checked(environ[base_env(project)], f"${base_env(project)}")
    return bases


def require_base(project: str, bases: Mapping[str, str], environ: Mapping[str, str] = os.environ) -> str:
    if project in bases:
        return bases[project]
    raise UserError(f"release source: no download location configured for {project}; set "
                    f"${base_env(project)} or `{project}: <base URL>` in {mirrors_file(environ)} "
                    "(docs/hardening.md, \"Release downloads\")")


# --- checksums --------------------------------------------------------------------------------
def pinned_checksums(path: Path = PINNED_CHECKSUMS_FILE) -> dict[str, str]:
    """asset file name -> sha256."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError:
        return {}
    return {str(name): str(digest).lower() for name, digest in data.items()}


def parse_sums(text: str, filename: str) -> str | None:
    """The digest for filename in `sha256sum` output (`<hex>  <name>` or `<hex> *<name>`)."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[-1].lstrip("*").split("/")[-1] == filename:
            return parts[0].lower()
    return None
