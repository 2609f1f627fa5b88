"""The libvirt provider's box: the node image's root filesystem, booted as a VM.

A vagrant-libvirt box is a tar of `box.img` (qcow2) and `metadata.json`. This one is made with
no loop device, no mount and no bootloader: Debian's kernel and initramfs-tools are installed
into a copy of the node image's root filesystem (chroot apt, from the host's Debian mirror),
the tree becomes an ext4 image straight from the directory (`mkfs.ext4 -d`), and qemu-img
turns it into qcow2. The kernel and the initramfs stay next to the box in the cache, and
vagrant-libvirt boots them directly (`kernel`, `initrd`, `cmd_line`, root=/dev/vda).

Cached like the node image: the box's name carries a hash of the node recipe and of what this
module adds, so an unchanged recipe reuses the box that is there. Only files are made here;
`vagrant box add` is the libvirt provider's (harness/providers/vagrant.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from harness.errors import UserError
from harness.image.build import _run, _unmount_below, build_rootfs
from harness.image.mirror import debian_mirror
from harness.image.recipe import CACHE_DIR, FILES_DIR, Recipe, node_recipe

Log = Callable[[str], None]

BOX_CACHE = Path(os.environ.get("K8S_HA_LAB_BOX_CACHE", str(CACHE_DIR.parent / "box")))
BOX_NAME_PREFIX = "k8s-ha-lab/node-vm"
# Debian's kernel, and the initramfs that loads virtio_blk/virtio_net (MODULES=most) before /.
KERNEL_PACKAGES = ("linux-image-amd64", "initramfs-tools")
DISK_GB = 10  # the qcow2's virtual size; only what is written takes space
BOX_SCRIPT = "box-customize.sh"
# Where each extra file lands in the box's root filesystem.
BOX_FILES = {"vm-init": ("/usr/local/sbin/k8s-ha-lab-vm-init", 0o755),
             "k8s-ha-lab-vm-init.service": ("/etc/systemd/system/k8s-ha-lab-vm-init.service", 0o644)}
# The kernel command line every VM from the box boots with: / is the whole virtio disk, the
# console is the serial port (vagrant-libvirt logs it), NICs keep the names eth0, eth1.
CMD_LINE = ("root=/dev/vda", "rw", "console=ttyS0", "net.ifnames=0", "biosdevname=0")
KEY_PARAMETER = "k8s_ha_lab.authorized_key"  # read by files/vm-init
REQUIRED_TOOLS = ("mkfs.ext4", "qemu-img", "chroot")
CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LC_ALL": "C",
              "DEBIAN_FRONTEND": "noninteractive"}


@dataclass(frozen=True)
class BoxRecipe:
    node: Recipe
    kernel_packages: tuple[str, ...] = KERNEL_PACKAGES
    disk_gb: int = DISK_GB
    files: dict[str, bytes] = field(default_factory=dict)  # name in FILES_DIR -> content

    def content_hash(self) -> str:
        data = {"node": self.node.content_hash(), "kernel": list(self.kernel_packages),
                "disk_gb": self.disk_gb,
                "files": {name: hashlib.sha256(body).hexdigest() for name, body in sorted(self.files.items())}}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    @property
    def version(self) -> str:
        return f"{self.node.suite}-{self.content_hash()[:12]}"

    @property
    def name(self) -> str:
        return f"{BOX_NAME_PREFIX}-{self.version}"

    @property
    def folder(self) -> Path:
        return BOX_CACHE / self.version

    @property
    def box_file(self) -> Path:
        return self.folder / "node-vm.box"

    @property
    def kernel(self) -> Path:
        return self.folder / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.folder / "initrd.img"


@dataclass(frozen=True)
class BoxResult:
    name: str
    built: bool
    seconds: float
    steps: tuple[str, ...]


def box_recipe(files_dir: Path = FILES_DIR) -> BoxRecipe:
    """The box as checked into the repo."""
    names = [*BOX_FILES, BOX_SCRIPT]
    return BoxRecipe(node=node_recipe(files_dir),
                     files={name: (files_dir / name).read_bytes() for name in names})


def key_parameter(public_line: str) -> str:
    """The lab's public key as one kernel parameter: `TYPE,BASE64` (no comment, no space)."""
    words = public_line.split()
    if len(words) < 2 or not words[0].startswith(("ssh-", "ecdsa-")):
        raise ValueError(f"not an OpenSSH public key: {public_line[:40]!r}")
    return f"{KEY_PARAMETER}={words[0]},{words[1]}"


def cmd_line(public_line: str) -> str:
    return " ".join([*CMD_LINE, key_parameter(public_line)])


def box_ready(recipe: BoxRecipe) -> bool:
    return all(path.is_file() for path in (recipe.box_file, recipe.kernel, recipe.initrd))


def metadata(recipe: BoxRecipe) -> dict:
    return {"provider": "libvirt", "format": "qcow2", "virtual_size": recipe.disk_gb}


# --- the steps --------------------------------------------------------------------------------
def _chroot(what: str, root: Path, command: str) -> str:
    return _run(what, ["chroot", str(root), "/bin/sh", "-c", command], env=CHROOT_ENV)


def _install_kernel(recipe: BoxRecipe, root: Path, mirror: str) -> None:
    """chroot apt from the host's mirror; the container image's resolv.conf is the build host's
    at debootstrap time, so the current one is copied in for the install and put back."""
    (root / "etc/apt/sources.list").write_text(f"deb {mirror} {recipe.node.suite} main\n")
    resolv = root / "etc/resolv.conf"
    saved = resolv.read_bytes() if resolv.is_file() and not resolv.is_symlink() else None
    resolv.unlink(missing_ok=True)
    shutil.copyfile("/etc/resolv.conf", resolv)
    try:
        _chroot("apt-get update (chroot)", root, "apt-get update -qq")
        _chroot("installing the kernel (chroot)", root,
                "apt-get install -y -qq --no-install-recommends " + " ".join(recipe.kernel_packages))
    finally:
        resolv.unlink(missing_ok=True)
        if saved is not None:
            resolv.write_bytes(saved)


def _customize(recipe: BoxRecipe, root: Path) -> None:
    for name, (target, mode) in BOX_FILES.items():
        path = root / target.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(recipe.files[name])
        path.chmod(mode)
    script = root / "tmp" / BOX_SCRIPT
    script.write_bytes(recipe.files[BOX_SCRIPT])
    script.chmod(0o755)
    try:
        _chroot("customizing the box (chroot)", root, f"/tmp/{BOX_SCRIPT}")
    finally:
        script.unlink(missing_ok=True)


def _one(root: Path, pattern: str) -> Path:
    found = sorted((root / "boot").glob(pattern))
    if len(found) != 1:
        raise RuntimeError(f"box build: expected one /boot/{pattern}, found {[p.name for p in found]}")
    return found[0]


def _disk(recipe: BoxRecipe, root: Path, work: Path) -> Path:
    """ext4 straight from the directory (no loop device, no mount), then qcow2."""
    raw, image = work / "disk.raw", work / "box.img"
    _run("mkfs.ext4 -d", ["mkfs.ext4", "-q", "-F", "-L", "k8s-ha-lab", "-d", str(root), str(raw),
                          f"{recipe.disk_gb}G"])
    _run("qemu-img convert", ["qemu-img", "convert", "-O", "qcow2", str(raw), str(image)])
    raw.unlink()
    return image


def build_box(recipe: BoxRecipe, force: bool = False, mirror: str | None = None,
              log: Log = lambda line: None) -> BoxResult:
    """Make sure the box, its kernel and its initramfs are in the cache; only missing work is done."""
    started = time.monotonic()
    if not force and box_ready(recipe):
        return BoxResult(recipe.name, False, time.monotonic() - started, ())
    for tool in REQUIRED_TOOLS:
        if shutil.which(tool) is None:
            raise UserError(f"{tool}: not found on PATH; install it with `bin/setup-host --libvirt`")
    steps = build_rootfs(recipe.node, mirror=mirror, log=log)
    mirror = debian_mirror(recipe.node.suite, mirror)
    BOX_CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="box-", dir=BOX_CACHE))
    root = work / "root"
    try:
        root.mkdir()
        log(f"unpacking {recipe.node.rootfs_tarball}")
        _run("unpacking the node's root filesystem",
             ["tar", "--numeric-owner", "--xattrs", "-C", str(root), "-xpf", str(recipe.node.rootfs_tarball)])
        log(f"installing {' '.join(recipe.kernel_packages)} from {mirror}")
        _install_kernel(recipe, root, mirror)
        steps.append("kernel")
        _customize(recipe, root)
        steps.append("customize")
        folder = Path(tempfile.mkdtemp(prefix="out-", dir=work))
        shutil.copyfile(_one(root, "vmlinuz-*"), folder / recipe.kernel.name)
        shutil.copyfile(_one(root, "initrd.img-*"), folder / recipe.initrd.name)
        log(f"ext4 image of {root} ({recipe.disk_gb} GiB virtual), qcow2")
        image = _disk(recipe, root, work)
        steps.append("disk")
        (work / "metadata.json").write_text(json.dumps(metadata(recipe)) + "\n")
        _run("packing the box", ["tar", "-C", str(work), "-cf", str(folder / recipe.box_file.name),
                                 "metadata.json", image.name])
        steps.append("box")
        for path in folder.iterdir():  # readable by qemu, which runs as its own user
            path.chmod(0o644)
        folder.chmod(0o755)
        if recipe.folder.exists():
            shutil.rmtree(recipe.folder)
        os.replace(folder, recipe.folder)  # all three files appear at once
    finally:
        _unmount_below(work)
        shutil.rmtree(work, ignore_errors=True)
    prune_stale(recipe, log)
    return BoxResult(recipe.name, True, time.monotonic() - started, tuple(steps))


def prune_stale(recipe: BoxRecipe, log: Log = lambda line: None) -> None:
    """Older recipes' box folders (the Vagrant boxes made from them are the provider's)."""
    for path in BOX_CACHE.glob(f"{recipe.node.suite}-*"):
        if path.is_dir() and path != recipe.folder:
            shutil.rmtree(path, ignore_errors=True)
            log(f"removed stale {path}")
