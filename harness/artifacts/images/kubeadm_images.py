"""The images the kubeadm baseline runs that the harness itself never runs in a container: the
control plane as static pods, kube-proxy and flannel as DaemonSets.

Each is made of binaries the harness already built into the artifact cache (the very files the
harness installs on its machines), so both clusters run the same code:

  kube-apiserver, kube-controller-manager,   bin/kubernetes@<v>/<binary> at /usr/local/bin
  kube-scheduler                             (static Go binaries, as upstream's distroless images)
  etcd                                       bin/etcd@<v>/etcd and etcdctl at /usr/local/bin
  kube-proxy                                 kube-proxy on a Debian iptables root (below)
  flannel                                    flanneld at /opt/bin, on the same iptables root

kube-proxy (iptables mode) and flanneld (--ip-masq) run the `iptables` programs, so their images
carry Debian's iptables 1.8 (the nf_tables variant, as the node image's own alternatives pick)
with its extension modules and the closure of their libraries, the way upstream's
distroless-iptables image does. pause and CoreDNS are the harness's own images
(harness.artifacts.images.builder), used as they are.

The image names are <repository>/<name>:<version>, where the repository is the one the lab's
own images use (versions.yaml's pause image: k8s-ha-lab.local), so kubeadm is told that one
name with `imageRepository` and never pulls from anywhere.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from harness.artifacts.cache import ArtifactCache
from harness.artifacts.images.builder import ImageResult
from harness.artifacts.images.debroot import DebSet, RootfsBuilder, sha256_file
from harness.artifacts.images.gobinary_image import GROUP, PASSWD
from harness.artifacts.images.oci import ImageSpec, LayerEntry, write_archive
from harness.errors import UserError
from harness.versions import Versions

RECIPE_REVISION = "1"
BIN_DIR = "usr/local/bin"

# iptables and every package that ships a library of xtables-nft-multi or of an extension
# module; netbase for /etc/protocols and /etc/services (iptables resolves `-p tcp` through it).
IPTABLES_PACKAGES = ("iptables", "libip4tc2", "libip6tc2", "libxtables12", "libnftnl11", "libmnl0",
                     "libnetfilter-conntrack3", "libnfnetlink0", "libc6", "netbase")
IPTABLES_DEBS = DebSet("kubeadm baseline iptables root", IPTABLES_PACKAGES)
XTABLES_MULTI = "usr/sbin/xtables-nft-multi"
XTABLES_MODULES = "usr/lib/x86_64-linux-gnu/xtables"
IPTABLES_LINKS = ("iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save",
                  "ip6tables-restore", "iptables-nft", "iptables-nft-save", "iptables-nft-restore",
                  "ip6tables-nft", "ip6tables-nft-save", "ip6tables-nft-restore")


@dataclass(frozen=True)
class BaselineImage:
    name: str                    # the image's last path part, e.g. kube-apiserver
    component: str               # the versions.yaml component whose cached binaries it holds
    binaries: tuple[str, ...]
    bin_dir: str = BIN_DIR       # where the binaries land in the image
    iptables: bool = False       # on the Debian iptables root

    def version(self, versions: Versions) -> str:
        return versions[self.component].version

    def ref(self, versions: Versions) -> str:
        return f"{image_repository(versions)}/{self.name}:{self.version(versions)}"


BASELINE_IMAGES = (
    BaselineImage("kube-apiserver", "kubernetes", ("kube-apiserver",)),
    BaselineImage("kube-controller-manager", "kubernetes", ("kube-controller-manager",)),
    BaselineImage("kube-scheduler", "kubernetes", ("kube-scheduler",)),
    BaselineImage("kube-proxy", "kubernetes", ("kube-proxy",), iptables=True),
    BaselineImage("etcd", "etcd", ("etcd", "etcdctl")),
    BaselineImage("flannel", "flannel", ("flanneld",), bin_dir="opt/bin", iptables=True),
)


def image_repository(versions: Versions) -> str:
    """The lab's own image repository: the pause image's, without its last path part."""
    image = versions.pause.image or ""
    if "/" not in image:
        raise UserError(f"versions.yaml: pause.image {image!r} has no repository part")
    return image.rsplit("/", 1)[0]


def baseline_image(name: str) -> BaselineImage:
    for image in BASELINE_IMAGES:
        if image.name == name:
            return image
    raise KeyError(name)


def archive_path(image: BaselineImage, versions: Versions, cache: ArtifactCache) -> Path:
    return cache.image_path(image.name, image.version(versions))


def cached_binaries(image: BaselineImage, versions: Versions, cache: ArtifactCache) -> dict[str, Path]:
    version = image.version(versions)
    paths = {b: cache.binary_path(image.component, version, b) for b in image.binaries}
    missing = [b for b, p in paths.items() if not p.is_file()]
    if missing:
        raise UserError(f"image {image.ref(versions)}: {', '.join(missing)} {version} not in the "
                        f"artifact cache; run `python -m harness artifacts build --only {image.component}`")
    return paths


def recipe_key(image: BaselineImage, version: str, binaries: dict[str, Path], scratch: Path) -> str:
    digest = hashlib.sha256()
    for part in (RECIPE_REVISION, image.name, version, image.bin_dir, PASSWD, GROUP,
                 " ".join(IPTABLES_LINKS) if image.iptables else ""):
        digest.update(part.encode() + b"\0")
    for name, path in sorted(binaries.items()):
        digest.update(f"{name} {sha256_file(path)}\0".encode())
    if image.iptables:
        IPTABLES_DEBS.digest_into(digest, scratch)
    return digest.hexdigest()


def iptables_root(scratch: Path, deb_dir: Path) -> RootfsBuilder:
    """xtables-nft-multi under every iptables name, its extension modules, their libraries."""
    tree = RootfsBuilder(IPTABLES_DEBS.unpacked(deb_dir, scratch), "kubeadm baseline iptables root")
    tree.add_program(XTABLES_MULTI)
    for link in IPTABLES_LINKS:
        tree.add_symlink(f"usr/sbin/{link}", "xtables-nft-multi")
    modules = sorted((tree.root / XTABLES_MODULES).iterdir())
    if not modules:
        raise UserError(f"kubeadm baseline iptables root: no extension modules in {XTABLES_MODULES}")
    for module in modules:
        relative = f"{XTABLES_MODULES}/{module.name}"
        if module.is_symlink():
            tree.add_symlink(relative, str(module.readlink()))
        else:
            tree.add_program(relative)
    for etc in ("etc/protocols", "etc/services"):
        tree.copy(etc)
    return tree


def build_spec(image: BaselineImage, versions: Versions, binaries: dict[str, Path], scratch: Path,
               deb_dir: Path) -> ImageSpec:
    version = image.version(versions)
    if image.iptables:
        tree = iptables_root(scratch, deb_dir)
        for name, path in binaries.items():
            tree.add_file(f"{image.bin_dir}/{name}", path.read_bytes(), 0o755)
        tree.add_file("etc/passwd", PASSWD.encode())
        tree.add_file("etc/group", GROUP.encode())
        tree.add_dir("tmp", 0o1777)
        tree.add_dir("run", 0o755)
        entries = tree.entries()
    else:
        entries = [LayerEntry("etc", kind="dir", mode=0o755),
                   LayerEntry("etc/passwd", data=PASSWD.encode()),
                   LayerEntry("etc/group", data=GROUP.encode()),
                   LayerEntry("tmp", kind="dir", mode=0o1777),
                   *(LayerEntry(d, kind="dir", mode=0o755) for d in _parents(image.bin_dir)),
                   *(LayerEntry(f"{image.bin_dir}/{name}", data=path.read_bytes(), mode=0o755)
                     for name, path in binaries.items())]
    return ImageSpec(name=f"{image_repository(versions)}/{image.name}", tag=version, entries=entries,
                     entrypoint=[f"/{image.bin_dir}/{image.binaries[0]}"])


def _parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def ensure(image: BaselineImage, versions: Versions, cache: ArtifactCache | None = None,
           force: bool = False) -> ImageResult:
    """The image's archive in the cache, built only when its recipe key changed."""
    cache = cache or ArtifactCache()
    version = image.version(versions)
    binaries = cached_binaries(image, versions, cache)
    with cache.staging_dir(f"image-{image.name}") as scratch:
        key = recipe_key(image, version, binaries, scratch)
        if not force and cache.image_is_current(image.name, version, key):
            return ImageResult(image.name, image.ref(versions), archive_path(image, versions, cache), "cached")
        started = time.monotonic()
        spec = build_spec(image, versions, binaries, scratch, cache.root / "images" / "debs")
        built = write_archive(spec, scratch / "image.oci.tar")
        final = cache.install_image(image.name, version, built, key)
    return ImageResult(image.name, image.ref(versions), final, "built", time.monotonic() - started)
