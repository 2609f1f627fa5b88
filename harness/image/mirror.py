"""The Debian mirror debootstrap uses: the one the host's own apt already uses.

No archive host is written in the repo. The mirror is, in order: `--mirror`,
`$K8S_HA_LAB_DEBIAN_MIRROR`, else the first Debian archive in the host's apt sources, read
from both formats: one-line `deb URI SUITE COMPONENTS` entries in /etc/apt/sources.list and
sources.list.d/*.list, and deb822 stanzas (`Types:`, `URIs:`, `Suites:`, `Components:`) in
sources.list.d/*.sources.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UserError

MIRROR_ENV = "K8S_HA_LAB_DEBIAN_MIRROR"
APT_DIR = Path("/etc/apt")
SCHEMES = ("http://", "https://", "file://")  # what debootstrap can fetch from


@dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    origin: str  # file it came from, for messages


def _one_line_sources(path: Path) -> list[AptSource]:
    found = []
    for line in path.read_text(errors="replace").splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):  # [ option=value ... ]
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2:
            found.append(AptSource(words[0], (words[1],), tuple(words[2:]), str(path)))
    return found


def _deb822_sources(path: Path) -> list[AptSource]:
    found = []
    stanzas, fields, key = [], {}, None
    for line in path.read_text(errors="replace").splitlines() + [""]:
        if not line.strip():
            if fields:
                stanzas.append(fields)
            fields, key = {}, None
        elif line.lstrip().startswith("#"):
            continue
        elif line[0].isspace() and key:  # a folded continuation line
            fields[key] += " " + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            fields[key] = value.strip()
    for fields in stanzas:
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        suites = tuple(fields.get("suites", "").split())
        components = tuple(fields.get("components", "").split())
        for uri in fields.get("uris", "").split():
            found.append(AptSource(uri, suites, components, str(path)))
    return found


def apt_sources(apt_dir: Path = APT_DIR) -> list[AptSource]:
    """Every `deb` source of the host, in apt's order: sources.list, then sources.list.d."""
    found: list[AptSource] = []
    main = apt_dir / "sources.list"
    if main.is_file():
        found += _one_line_sources(main)
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list" and path.is_file():
                found += _one_line_sources(path)
            elif path.suffix == ".sources" and path.is_file():
                found += _deb822_sources(path)
    return found


def _is_debian_archive(source: AptSource) -> bool:
    """The main archive: a plain suite (not -security, -updates, -backports) with `main`."""
    return (source.uri.startswith(SCHEMES) and "main" in source.components
            and any("-" not in suite and "/" not in suite for suite in source.suites)
            and "debian-security" not in source.uri)


def host_debian_mirror(suite: str, apt_dir: Path = APT_DIR) -> str | None:
    """The host's Debian archive, preferring one that lists `suite` itself."""
    archives = [s for s in apt_sources(apt_dir) if _is_debian_archive(s)]
    ranked = ([s for s in archives if suite in s.suites]
              + [s for s in archives if s.uri.rstrip("/").endswith("/debian")] + archives)
    return ranked[0].uri if ranked else None


def debian_mirror(suite: str, given: str | None = None, apt_dir: Path = APT_DIR) -> str:
    mirror = given or os.environ.get(MIRROR_ENV) or host_debian_mirror(suite, apt_dir)
    if not mirror:
        raise UserError(f"Debian mirror: none found in {apt_dir}/sources.list or "
                        f"{apt_dir}/sources.list.d/ (*.list, *.sources); set ${MIRROR_ENV} or pass "
                        "--mirror to `python -m harness image build`")
    return mirror
