"""Reading a lab file: bytes -> text -> YAML -> a validated `Lab`.

The one loader every entry point uses (`harness.lab` holds only the types, `harness.validate`
only the checks; both are imported from here, never from each other). Whatever is wrong with
the file itself (unreadable, not UTF-8 text, binary, invalid YAML, an alias bomb, too deep) is
a LabError: one line naming the file, exit status 2.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from harness.errors import LabError
from harness.lab import Lab
from harness.validate import build_lab
from harness.versions import load_versions

MAX_BYTES = 1 << 20      # a lab file is a few KiB; a megabyte is not a lab
MAX_NODES = 100_000      # YAML nodes after aliases are expanded (the seed lab has ~300)
MAX_DEPTH = 64           # nesting; the deepest real field is 4


def _text(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise LabError(str(path), f"cannot read lab file: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise LabError(str(path), f"is larger than {MAX_BYTES // 1024} KiB; not a lab file")
    nul = data.find(bytes(1))
    if nul >= 0:
        raise LabError(str(path), f"is a binary file (NUL byte at offset {nul}), not a YAML lab file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LabError(str(path), f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                                  f"{exc.start})") from None


def _expanded_size(root: yaml.Node, where: str) -> int:
    """How many nodes the document has once every alias is expanded, without expanding it:
    each node's size is computed once (aliases share node objects), so a billion-laughs file
    is measured in linear time and refused before anything walks it."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int, path: set[int]) -> int:
        if depth > MAX_DEPTH:
            raise LabError(where, f"is nested deeper than {MAX_DEPTH} levels")
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in path:  # a recursive alias (&a [*a]): infinite once expanded
            raise LabError(where, "has a recursive YAML alias")
        path.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child, depth + 1, path) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k, depth + 1, path) + size(v, depth + 1, path) for k, v in node.value)
        path.discard(key)
        sizes[key] = min(total, MAX_NODES + 1)
        return sizes[key]

    return size(root, 0, set())


def _yaml_error(path: Path, exc: yaml.YAMLError) -> LabError:
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return LabError(str(path), f"invalid YAML{where}: {problem}")


def read_lab_yaml(path: str | Path) -> dict:
    """The raw mapping of a lab file, or a LabError that names the file."""
    path = Path(path)
    text = _text(path)
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
            if root is None:
                raise LabError(str(path), "a lab file must be a YAML mapping, the file is empty")
            nodes = _expanded_size(root, str(path))
            if nodes > MAX_NODES:
                raise LabError(str(path), f"expands to more than {MAX_NODES} YAML nodes "
                                          "(an alias bomb?); not a lab file")
            data = loader.construct_document(root)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise _yaml_error(path, exc) from None
    except RecursionError:
        raise LabError(str(path), "is nested too deeply to be a lab file") from None
    if not isinstance(data, dict):
        raise LabError(str(path), "a lab file must be a YAML mapping")
    return data


MAX_EXTENDS = 4  # a lab file that extends one that extends ... at most this deep


def _merged(base: dict, override: dict) -> dict:
    """`override` over `base`, mapping by mapping; any other value (a list too) replaces."""
    out = dict(base)
    for key, value in override.items():
        out[key] = (_merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict)
                    else value)
    return out


def read_lab_data(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict:
    """The lab file's mapping with `extends: OTHER.yaml` resolved: the other file (a path
    relative to this one) read first and this one's sections laid over it, so a variant of a
    lab (the seed lab with the tuned haproxy profile) repeats none of its addresses."""
    path = Path(path)
    data = read_lab_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent.endswith((".yaml", ".yml")):
        raise LabError(f"{path}: extends", f"must name another lab file (.yaml), got {parent!r}")
    target = (path.parent / parent).resolve()
    if target in _chain or target == path.resolve():
        raise LabError(f"{path}: extends", f"{parent} extends this file again (a loop)")
    if len(_chain) >= MAX_EXTENDS:
        raise LabError(f"{path}: extends", f"more than {MAX_EXTENDS} files deep")
    if not target.is_file():
        raise LabError(f"{path}: extends", f"{parent}: no such lab file")
    return _merged(read_lab_data(target, _chain + (path.resolve(),)), data)


def load_lab(path: str | Path) -> Lab:
    """Parse and validate a lab file. Raises LabError (exit 2) naming the bad field."""
    path = Path(path)
    data = read_lab_data(path)
    versions = load_versions(overrides=data.get("versions"))
    return build_lab(data, versions, source=path)
