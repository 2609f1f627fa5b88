"""Reads versions.yaml, the one place a component version is written."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harness import REPO_ROOT
from harness.errors import LabError

VERSIONS_FILE = REPO_ROOT / "versions.yaml"
SOURCES = ("gomod", "debian", "repo", "release", "dir")
# Each value ends up in a cache path, a URL or a command line on the machines (image refs go to
# `ctr` and manifests), so a lab's override is held to the shape of the real thing.
FIELD_RULES = {
    "version": (re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}"), "a version like v1.37.2 or 1.6.20"),
    "module": (re.compile(r"[a-z0-9][A-Za-z0-9._~-]*(/[A-Za-z0-9._~-]+)*"), "a Go module path"),
    "package": (re.compile(r"[a-z0-9][a-z0-9+.-]+"), "a Debian package name"),
    "image": (re.compile(r"[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*"),
              "an image name without a tag, like k8s-ha-lab.local/pause"),
}


@dataclass(frozen=True)
class Component:
    name: str
    version: str
    source: str
    module: str | None = None
    package: str | None = None
    image: str | None = None

    @property
    def image_ref(self) -> str | None:
        """The image name the manifests and the containerd config use."""
        return f"{self.image}:{self.version}" if self.image else None


@dataclass(frozen=True)
class Versions:
    components: dict[str, Component] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Component:
        try:
            return self.components[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> Component:
        return self.components[name]

    @property
    def kubernetes_minor(self) -> tuple[int, int]:
        major, minor = self.components["kubernetes"].version.lstrip("v").split(".")[:2]
        return int(major), int(minor)


def parse_versions(data: dict, where: str = "versions") -> Versions:
    if not isinstance(data, dict):
        raise LabError(where, "must be a mapping of component name to {version, source}")
    components = {}
    for name, spec in data.items():
        path = f"{where}.{name}"
        if not isinstance(spec, dict):
            raise LabError(path, "must be a mapping with at least 'version' and 'source'")
        unknown = set(spec) - {"version", "source", "module", "package", "image"}
        if unknown:
            raise LabError(f"{path}.{sorted(unknown)[0]}", "unknown field")
        if not spec.get("version"):
            raise LabError(f"{path}.version", "is required")
        for key, (pattern, shape) in FIELD_RULES.items():
            value = spec.get(key)
            if value is not None and (not isinstance(value, (str, int, float)) or isinstance(value, bool)
                                      or not pattern.fullmatch(str(value)) or ".." in str(value)):
                raise LabError(f"{path}.{key}", f"{str(value)[:80]!r} is not {shape}")
        source = spec.get("source")
        if source not in SOURCES:
            raise LabError(f"{path}.source", f"must be one of {', '.join(SOURCES)}, got {source!r}")
        components[name] = Component(name=name, version=str(spec["version"]), source=source,
                                     module=spec.get("module"), package=spec.get("package"),
                                     image=spec.get("image"))
    return Versions(components)


def load_versions(path: Path = VERSIONS_FILE, overrides: dict | None = None) -> Versions:
    """The pinned versions, with a lab's optional per-component overrides applied on top."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise LabError(str(path), f"invalid YAML: {exc}".splitlines()[0]) from None
    for name, spec in (overrides or {}).items():
        if name not in data:
            raise LabError(f"versions.{name}", f"unknown component (known: {', '.join(data)})")
        if not isinstance(spec, dict):
            raise LabError(f"versions.{name}", "must be a mapping, e.g. {version: v1.37.2}")
        data[name] = {**data[name], **spec}
    return parse_versions(data)
