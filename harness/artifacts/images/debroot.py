"""Image contents from Debian packages: .debs from the archive, the ELF closure of chosen binaries.

Debian's archive is reachable where no registry is, so the images made of Debian programs (nginx,
toolbox) are put together from .debs: `apt-get download` fetches them (kept in a cache
directory, re-fetched only when apt would now pick another file), `dpkg-deb --fsys-tarfile`
unpacks their data into a scratch root without running any maintainer script, and only the files
an image needs are kept: the programs, the closure of their ELF NEEDED libraries and the
dynamic loader. The exact .deb file names and sha256 sums go into the image's recipe key, so a
Debian security update rebuilds the image.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from harness.artifacts.images.oci import LayerEntry
from harness.errors import UserError

LIB_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu")
LOADER = "lib64/ld-linux-x86-64.so.2"
# package list -> what apt-get --print-uris answered for it, in this process (DebSet.pinned_debs)
_PINNED: dict[tuple[str, ...], list[tuple[str, str]]] = {}


@dataclass(frozen=True)
class DebSet:
    """A fixed list of Debian packages an image is made from; `label` names it in errors."""
    label: str
    packages: tuple[str, ...]

    def _apt(self, args: list[str], cwd: Path) -> str:
        if not shutil.which("apt-get"):
            raise UserError(f"{self.label}: apt-get not found; this image is built from Debian "
                            f"packages and needs a Debian host")
        proc = subprocess.run(["apt-get", *args], cwd=cwd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            raise UserError(f"{self.label}: `apt-get {' '.join(args)}` failed: {tail} "
                            f"(run `apt-get update` first?)")
        return proc.stdout

    def pinned_debs(self, scratch: Path) -> list[tuple[str, str]]:
        """(file name, sha256) of the .debs apt would fetch now, without fetching them.

        Asked once per package list and process: each apt-get takes 1-2 s to start, and one
        `artifacts build` asks for the same lists up to 20 times (the e2e images share two).
        """
        if self.packages not in _PINNED:
            empty = scratch / "print-uris"
            empty.mkdir(parents=True, exist_ok=True)
            # --print-uris lists only what is not already in cwd, hence the empty directory.
            out = self._apt(["download", "--print-uris", *self.packages], empty)
            debs = parse_print_uris(out)
            if len(debs) != len(self.packages):
                raise UserError(f"{self.label}: apt-get listed {len(debs)} of {len(self.packages)} "
                                f"packages ({', '.join(self.packages)}); run `apt-get update`")
            _PINNED[self.packages] = sorted(debs)
        return list(_PINNED[self.packages])

    def digest_into(self, digest, scratch: Path) -> None:
        """Feeds the exact .debs (names and sha256) into a recipe-key hash."""
        for name, sha in self.pinned_debs(scratch):
            digest.update(f"{name} {sha}\0".encode())

    def fetch(self, deb_dir: Path, scratch: Path) -> list[Path]:
        """The .debs in deb_dir, downloading only those not there with the right sha256."""
        deb_dir.mkdir(parents=True, exist_ok=True)
        pinned = self.pinned_debs(scratch)
        stale = [name for name, sha in pinned
                 if not ((deb_dir / name).is_file() and sha256_file(deb_dir / name) == sha)]
        if stale:
            # One apt-get for all of them: each run costs seconds of start-up.
            for name in stale:
                (deb_dir / name).unlink(missing_ok=True)
            self._apt(["download", *(package_of(name) for name in stale)], deb_dir)
        paths = []
        for name, sha in pinned:
            path = deb_dir / name
            if not path.is_file():
                raise UserError(f"{self.label}: apt-get download did not produce {path}")
            if sha256_file(path) != sha:
                raise UserError(f"{self.label}: {path} does not have the sha256 apt listed")
            paths.append(path)
        return paths

    def unpacked(self, deb_dir: Path, scratch: Path) -> Path:
        """Fetches the packages and unpacks them into scratch/rootfs; returns that root."""
        root = scratch / "rootfs"
        unpack(self.fetch(deb_dir, scratch), root)
        return root


def parse_print_uris(out: str) -> list[tuple[str, str]]:
    debs = []
    for line in out.splitlines():
        match = re.match(r"^'[^']+' (\S+) \d+ SHA256:([0-9a-f]{64})$", line.strip())
        if match:
            debs.append((match.group(1), match.group(2)))
    return debs


def package_of(deb_file: str) -> str:
    """nginx_1.22.1-9_amd64.deb -> nginx (a file name's version part may hold an epoch as %3a)."""
    return deb_file.split("_", 1)[0]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def unpack(debs: list[Path], root: Path) -> None:
    """Extracts the data part of each .deb into root (no maintainer scripts run)."""
    root.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True,
                              check=True).stdout
        tar_path = root.parent / (deb.name + ".tar")
        tar_path.write_bytes(data)
        with tarfile.open(tar_path) as tar:
            tar.extractall(root, filter="tar")
        tar_path.unlink()


def needed_libraries(elf: Path) -> list[str]:
    if not shutil.which("readelf"):
        raise UserError("readelf not found (Debian package binutils); the Debian-based images "
                        "need it to find their programs' libraries")
    out = subprocess.run(["readelf", "-d", str(elf)], capture_output=True, text=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def resolve_in_root(root: Path, relative: str) -> Path:
    """Follows symlinks as if root were "/": absolute targets stay inside root, not the host."""
    path = root / relative
    for _ in range(40):
        if not path.is_symlink():
            return path
        target = path.readlink()
        path = root / str(target).lstrip("/") if target.is_absolute() else path.parent / target
    raise UserError(f"symlink loop at {relative} under {root}")


def find_library(root: Path, soname: str, label: str = "image") -> tuple[str, Path]:
    """(path in the image, real file under root) of a library by its soname."""
    for lib_dir in LIB_DIRS:
        candidate = resolve_in_root(root, f"{lib_dir}/{soname}")
        if candidate.is_file():
            return f"{lib_dir}/{soname}", candidate
    raise UserError(f"{label}: {soname} is in none of the image's packages; add the package "
                    f"that ships it")


def library_closure(root: Path, binary: Path, label: str = "image") -> dict[str, Path]:
    """image path -> real file, for every library binary needs, directly or not."""
    found: dict[str, Path] = {}
    pending = needed_libraries(binary)
    seen = set()
    while pending:
        soname = pending.pop()
        if soname in seen:
            continue
        seen.add(soname)
        image_path, real = find_library(root, soname, label)
        found[image_path] = real
        pending += needed_libraries(real)
    return found


class RootfsBuilder:
    """Collects the files of an image layer: programs with their libraries, config, dirs, links.

    `add_program` copies a program from the unpacked root and adds its ELF closure plus the
    loader (nothing for a static binary). `entries()` gives the layer with every parent
    directory, in a stable order.
    """

    def __init__(self, root: Path, label: str):
        self.root = root
        self.label = label
        self.files: dict[str, tuple[bytes, int]] = {}
        self.links: dict[str, str] = {}
        self.dirs: dict[str, int] = {}

    def add_file(self, image_path: str, data: bytes, mode: int = 0o644) -> None:
        self.files[image_path.strip("/")] = (data, mode)

    def copy(self, image_path: str, mode: int = 0o644, source: str | None = None) -> None:
        """Copies a file of the unpacked packages (following symlinks inside the root)."""
        real = resolve_in_root(self.root, (source or image_path).strip("/"))
        if not real.is_file():
            raise UserError(f"{self.label}: {source or image_path} is in none of the packages")
        self.add_file(image_path, real.read_bytes(), mode)

    def add_program(self, image_path: str, source: str | None = None) -> None:
        self.copy(image_path, 0o755, source)
        real = resolve_in_root(self.root, (source or image_path).strip("/"))
        closure = library_closure(self.root, real, self.label)
        if closure:
            self.copy(LOADER, 0o755)
        for lib_path, lib_real in closure.items():
            self.add_file(lib_path, lib_real.read_bytes(), 0o644)

    def add_symlink(self, image_path: str, target: str) -> None:
        self.links[image_path.strip("/")] = target

    def add_dir(self, image_path: str, mode: int = 0o755) -> None:
        self.dirs[image_path.strip("/")] = mode

    def has(self, image_path: str) -> bool:
        path = image_path.strip("/")
        return path in self.files or path in self.links

    def entries(self) -> list[LayerEntry]:
        dirs = dict(self.dirs)
        for path in [*self.files, *self.links, *self.dirs]:
            for parent in Path(path).parents:
                if str(parent) != ".":
                    dirs.setdefault(str(parent), 0o755)
        entries = [LayerEntry(d, kind="dir", mode=mode) for d, mode in sorted(dirs.items())]
        entries += [LayerEntry(p, data=data, mode=mode)
                    for p, (data, mode) in sorted(self.files.items())]
        entries += [LayerEntry(p, kind="symlink", target=t) for p, t in sorted(self.links.items())]
        return entries

    def size(self) -> int:
        return sum(len(data) for data, _mode in self.files.values())
