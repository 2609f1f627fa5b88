"""Generates the go.mod of a small wrapper module that builds another module's commands.

Why a wrapper: `go install module/cmd@version` refuses modules whose go.mod has replace
directives, and k8s.io/kubernetes (and etcd) have many. They point at directories inside their
own repository (`k8s.io/api => ./staging/src/k8s.io/api`), which a dependency's go.mod cannot
use. The wrapper requires the module and replaces each of those with its published version
(for Kubernetes v1.X.Y the staging modules are published as v0.X.Y).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

# `published(module_path) -> version or None`: what a local-path replace becomes; None drops it.
PublishedVersion = Callable[[str], "str | None"]


@dataclass
class GoModFile:
    module: str = ""
    go: str = ""
    godebug: list[str] = field(default_factory=list)
    # module path -> the version this go.mod requires
    requires: dict[str, str] = field(default_factory=dict)
    # old path -> (new path, new version or "" for a local directory)
    replaces: dict[str, tuple[str, str]] = field(default_factory=dict)

    def local_replaces(self) -> list[str]:
        return [old for old, (new, ver) in self.replaces.items() if not ver and _is_local(new)]


def _is_local(path: str) -> bool:
    return path.startswith(("./", "../", "/"))


def _strip_comment(line: str) -> str:
    return line.split("//", 1)[0].strip()


def parse_gomod(text: str) -> GoModFile:
    """Reads the parts of a go.mod that a wrapper needs: module, go, godebug, require, replace."""
    mod = GoModFile()
    block = None
    for raw in text.splitlines():
        line = _strip_comment(raw)
        if not line:
            continue
        if block:
            if line == ")":
                block = None
            else:
                _parse_directive(mod, block, line)
            continue
        match = re.match(r"^(\w+)\s*\($", line)
        if match:
            block = match.group(1)
            continue
        keyword, _, rest = line.partition(" ")
        _parse_directive(mod, keyword, rest.strip())
    return mod


def _parse_directive(mod: GoModFile, keyword: str, rest: str) -> None:
    if keyword == "module":
        mod.module = rest.strip('"')
    elif keyword == "go":
        mod.go = rest
    elif keyword == "godebug":
        mod.godebug.append(rest)
    elif keyword == "require":
        parts = rest.split()
        if len(parts) >= 2:
            mod.requires[parts[0]] = parts[1]
    elif keyword == "replace":
        left, arrow, right = rest.partition("=>")
        if not arrow:
            return
        old = left.split()[0]
        new_parts = right.split()
        mod.replaces[old] = (new_parts[0], new_parts[1] if len(new_parts) > 1 else "")


def kubernetes_staging_version(kube_version: str) -> PublishedVersion:
    """k8s.io/<staging> for Kubernetes vX.Y.Z is published as v0.Y.Z."""
    _major, minor, patch = kube_version.lstrip("v").split(".")[:3]
    staging = f"v0.{minor}.{patch}"

    def published(path: str) -> str | None:
        return staging if path.startswith("k8s.io/") else None

    return published


def same_version_under(prefix: str, version: str) -> PublishedVersion:
    """Modules of one repository released together (etcd): same version, others dropped."""

    def published(path: str) -> str | None:
        return version if path.startswith(prefix) else None

    return published


def wrapper_gomod(wrapper_module: str, requires: dict[str, str], sources: list[GoModFile],
                  published: PublishedVersion, local: dict[str, str] | None = None) -> str:
    """The text of the wrapper's go.mod.

    requires: module -> version the wrapper builds from. sources: the parsed go.mod of each of
    those modules, whose replace directives (ignored by Go in a dependency) are carried over.
    local: module -> directory (relative to the wrapper) that replaces it, for a module built
    from a trimmed copy (trimmed_module.py).
    """
    go_version = max((m.go for m in sources if m.go), key=_version_key, default="1.22")
    godebug = []
    for m in sources:
        godebug += [g for g in m.godebug if g not in godebug]
    replaces: dict[str, str] = {}
    for m in sources:
        for old, (new, version) in m.replaces.items():
            if old in requires:
                continue
            if version:
                replaces[old] = f"{new} {version}"
            elif _is_local(new):
                target = published(old)
                if target:
                    replaces[old] = f"{old} {target}"
    for module, directory in (local or {}).items():
        replaces[module] = directory
    lines = [f"module {wrapper_module}", "", f"go {go_version}", ""]
    for entry in godebug:
        lines.append(f"godebug {entry}")
    if godebug:
        lines.append("")
    lines.append("require (")
    lines += [f"\t{path} {version}" for path, version in sorted(requires.items())]
    lines.append(")")
    if replaces:
        lines += ["", "replace ("]
        lines += [f"\t{old} => {new}" for old, new in sorted(replaces.items())]
        lines.append(")")
    return "\n".join(lines) + "\n"


def _version_key(go_version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", go_version))
