"""Builds the node image from a Recipe: debootstrap, customize, tar, `docker import`.

Two caches, both keyed by hash: the debootstrap output (slow, network) and the customized
root filesystem. A docker image with the recipe's tag means there is nothing to do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.errors import UserError
from harness.image.mirror import debian_mirror
from harness.image.recipe import CACHE_DIR, CUSTOMIZE_SCRIPT, INSTALLED_FILES, Recipe
from harness.preflight import Host
from harness.providers.docker import check_docker

Log = Callable[[str], None]


class ImageBuildError(UserError):
    """A build command failed; the message names the command and ends with its output tail.
    Exit status 2 and no traceback, like every failed build (README: errors)."""

    def __init__(self, what: str, command: list[str], output: str):
        tail = "\n".join(output.strip().splitlines()[-20:])
        super().__init__(f"image build: {what} failed: `{' '.join(command)}`\n{tail}")


@dataclass(frozen=True)
class BuildResult:
    tag: str
    built: bool          # False: the image was already there
    seconds: float
    steps: tuple[str, ...]  # what was actually done, for the progress line and the benchmark


def _run(what: str, command: list[str], log_file: Path | None = None, **kwargs) -> str:
    proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", **kwargs)
    if log_file is not None:
        log_file.write_text(proc.stdout)
    if proc.returncode != 0:
        raise ImageBuildError(what, command, proc.stdout)
    return proc.stdout


def image_exists(tag: str) -> bool:
    proc = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", tag],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc.returncode == 0


def _write_tar(root: Path, dest: Path) -> None:
    partial = dest.with_suffix(".tar.partial")
    _run("archiving the root filesystem",
         ["tar", "--numeric-owner", "--xattrs", "-C", str(root), "-cpf", str(partial), "."])
    os.replace(partial, dest)


def _unmount_below(root: Path) -> None:
    """debootstrap mounts /proc and /sys (and may bind /dev) inside the target; a leftover mount
    must never be walked by the cleanup, or it would delete the host's files."""
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mountinfo") as handle:
        points = [line.split()[4] for line in handle]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


def _debootstrap(recipe: Recipe, root: Path, mirror: str) -> None:
    if shutil.which("debootstrap") is None:
        raise UserError("debootstrap: not found on PATH; install it with `apt-get install debootstrap`")
    command = ["debootstrap", f"--variant={recipe.variant}", f"--include={','.join(recipe.packages)}",
               recipe.suite, str(root), mirror]
    _run("debootstrap", command, log_file=CACHE_DIR / "debootstrap.log")


def _customize(recipe: Recipe, root: Path) -> None:
    for name, (target, mode) in INSTALLED_FILES.items():
        path = root / target.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(recipe.files[name])
        path.chmod(mode)
    script = root / "tmp" / CUSTOMIZE_SCRIPT
    script.write_bytes(recipe.files[CUSTOMIZE_SCRIPT])
    script.chmod(0o755)
    try:
        _run("customizing the root filesystem", ["chroot", str(root), f"/tmp/{CUSTOMIZE_SCRIPT}"],
             env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"})
    finally:
        script.unlink(missing_ok=True)


def _import(recipe: Recipe, tarball: Path) -> None:
    command = ["docker", "import"]
    for change in recipe.changes:
        command += ["--change", change]
    command += [str(tarball), recipe.tag]
    _run("docker import", command)


def require_daemon() -> None:
    """The docker daemon answers, or a UserError naming `docker info` and its reason."""
    check_docker(Host())


def build_image(recipe: Recipe, force: bool = False, mirror: str | None = None,
                log: Log = lambda line: None) -> BuildResult:
    """Make sure `recipe.tag` exists in docker, doing only the steps whose cache is missing."""
    started = time.monotonic()
    if not force and image_exists(recipe.tag):
        return BuildResult(recipe.tag, False, time.monotonic() - started, ())
    steps = build_rootfs(recipe, force, mirror, log)
    log(f"docker import {recipe.tag}")
    _import(recipe, recipe.rootfs_tarball)
    steps.append("import")
    prune_stale(recipe, log)
    return BuildResult(recipe.tag, True, time.monotonic() - started, tuple(steps))


def build_rootfs(recipe: Recipe, force: bool = False, mirror: str | None = None,
                 log: Log = lambda line: None) -> list[str]:
    """The customized root filesystem as a tarball (the image's content; the libvirt box is
    made from it too). Returns the steps that were done, none when it was cached."""
    steps: list[str] = []
    if not force and recipe.rootfs_tarball.exists():
        return steps
    mirror = debian_mirror(recipe.suite, mirror)  # --mirror, $K8S_HA_LAB_DEBIAN_MIRROR, the host's apt
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=CACHE_DIR))
    root = work / "root"
    try:
        if force or not recipe.base_tarball.exists():
            log(f"debootstrap {recipe.suite} ({len(recipe.packages)} packages) from {mirror}")
            _debootstrap(recipe, root, mirror)
            _write_tar(root, recipe.base_tarball)
            steps.append("debootstrap")
        else:
            log(f"reusing {recipe.base_tarball}")
            root.mkdir()
            _run("unpacking the debootstrap cache",
                 ["tar", "--numeric-owner", "--xattrs", "-C", str(root), "-xpf",
                  str(recipe.base_tarball)])
        log("customizing the root filesystem")
        _customize(recipe, root)
        _write_tar(root, recipe.rootfs_tarball)
        steps.append("customize")
    finally:
        _unmount_below(work)
        shutil.rmtree(work, ignore_errors=True)
    return steps


def prune_stale(recipe: Recipe, log: Log = lambda line: None) -> None:
    """Old recipes' images and root filesystems: removed unless a container still uses them."""
    proc = subprocess.run(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}",
                           recipe.tag.split(":")[0]], stdout=subprocess.PIPE, text=True)
    for tag in proc.stdout.split():
        if tag != recipe.tag and subprocess.run(["docker", "rmi", tag], stdout=subprocess.DEVNULL,
                                                stderr=subprocess.DEVNULL).returncode == 0:
            log(f"removed stale image {tag}")
    for path in CACHE_DIR.glob(f"rootfs-{recipe.suite}-*.tar"):
        if path != recipe.rootfs_tarball:
            path.unlink()
            log(f"removed stale {path}")


def cached_files(recipe: Recipe) -> dict[str, bool]:
    return {"image": image_exists(recipe.tag), "rootfs": recipe.rootfs_tarball.exists(),
            "debootstrap": recipe.base_tarball.exists()}
