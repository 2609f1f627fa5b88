"""The images the [Conformance] tests run, rebuilt here from Go modules and Debian packages.

Each image keeps the e2e name and tag the suite asks for (`agnhost:2.66.1`, `busybox:1.37.0-2`,
...) under the lab-local prefix E2E_PREFIX; the KUBE_TEST_REPO_LIST file written by
harness.conformance maps the suite's registries onto that prefix, and the images are imported
into every node's containerd, so no pull ever happens (tagged images are IfNotPresent).

Recipes, by upstream image (test/images/<name>/Dockerfile in k8s.io/kubernetes):

  agnhost       /agnhost (Go, test/images/agnhost), /agnhost-2 -> agnhost, /uploads, porter's
                localhost.crt/.key, the tools its Dockerfile installs: busybox (sh and the
                coreutils), bash as /bin/sh, dash, BIND's dig/host/nslookup, curl,
                netcat-openbsd, iproute2 (ss, ip),
                glibc's getent; user-defined-in-image (1000) in group-defined-in-image (50000).
                ENTRYPOINT /agnhost, CMD pause. The previous agnhost tag (2.55) is the same
                image: the tests only need a second, different reference.
  glibc-dns-testing  a glibc root with dig and getent (upstream: debian-base + dnsutils): the
                agnhost tools without agnhost.
  busybox       Debian's busybox-static with its applet links (also all in /bin); /bin/sh runs
                busybox ash, or bash for an environment ash would mangle (BUSYBOX_SH).
  nonroot       busybox, USER 1234.
  nonewprivs    busybox plus /usr/local/bin/nnp (Go, test/images/nonewprivs) set-uid root.
  nautilus, kitten   agnhost plus the picture and data.json from the module, CMD test-webserver.
  nginx (both tags)  the lab's nginx image (Debian's nginx serving its page on port 80).
  pause         the lab's pause image (images/pause/pause.c).
  etcd          the lab's etcd binary at /usr/local/bin/etcd (what the Aggregator test runs).
  sample-apiserver   /sample-apiserver (Go, k8s.io/sample-apiserver at the staging version).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from harness.artifacts.images.debroot import DebSet, RootfsBuilder, sha256_file
from harness.artifacts.images.oci import ImageSpec, LayerEntry
from harness.errors import UserError

E2E_PREFIX = "k8s-ha-lab.local/e2e"
RECIPE_REVISION = "4"

# /bin/sh in the busybox images: busybox's ash, as upstream's image has it (tests compare its
# messages word for word, e.g. "/bin/sh: can't create /file: Read-only file system") -- except
# when the environment holds a variable whose name is not a shell identifier (`data-1`, allowed
# in pods since 1.34): Debian's busybox 1.35 ash drops those before `env` or any child sees
# them (upstream's 1.37 keeps them), so then bash, which passes them through, runs the command.
BUSYBOX_DEBS = DebSet("e2e busybox image", ("busybox-static", "bash", "libc6", "libtinfo6"))
BUSYBOX_REVISION = "2"
BUSYBOX_SH = """#!/bin/bash
# k8s-ha-lab: busybox ash, or bash when a variable name ash would drop is in the environment.
if /bin/busybox env | /bin/busybox grep -q '^[^=]*[^A-Za-z0-9_=][^=]*='; then
    exec -a "$0" /bin/bash "$@"
fi
exec -a "$0" /bin/busybox "$@"
"""

TOOL_PROGRAM_PACKAGES = ("busybox-static", "dash", "bash", "bind9-dnsutils", "bind9-host",
                         "libc-bin", "curl", "netcat-openbsd", "iproute2")
TOOL_LIBRARY_PACKAGES = (
    # dig, host, nslookup (as in the toolbox image)
    "bind9-libs", "libc6", "libgcc-s1", "libstdc++6", "libjemalloc2", "libidn2-0",
    "libunistring2", "libuv1", "libfstrm0", "libprotobuf-c1", "libjson-c5", "liblmdb0",
    "libmaxminddb0", "libnghttp2-14", "libssl3", "zlib1g", "libxml2", "libicu72", "liblzma5",
    "libgssapi-krb5-2", "libkrb5-3", "libk5crypto3", "libkrb5support0", "libcom-err2",
    "libkeyutils1", "libedit2", "libbsd0", "libmd0", "libtinfo6",
    # curl
    "libcurl4", "libbrotli1", "libldap-2.5-0", "libpsl5", "librtmp1", "libssh2-1", "libzstd1",
    "libsasl2-2", "libgnutls30", "libhogweed6", "libnettle8", "libgmp10", "libp11-kit0",
    "libtasn1-6", "libffi8",
    # iproute2
    "libbpf1", "libelf1", "libmnl0", "libcap2", "libdb5.3", "libselinux1", "libpcre2-8-0",
    "libxtables12", "libtirpc3",
)
TOOL_DEBS = DebSet("e2e tools image", (*TOOL_PROGRAM_PACKAGES, *TOOL_LIBRARY_PACKAGES))
# image path -> path in the unpacked packages
TOOL_PROGRAMS = {
    # /bin/sh is bash, not busybox: Debian's busybox is built to prefer its applets, so a
    # busybox sh would run its own `nc` (no -u) and `nslookup` even with real ones on PATH;
    # and unlike dash and busybox ash, bash passes variables like `data-1` to its children.
    "bin/dash": "bin/dash",
    "bin/bash": "bin/bash",
    "usr/bin/dig": "usr/bin/dig",
    "usr/bin/host": "usr/bin/host",
    "usr/bin/nslookup": "usr/bin/nslookup",
    "usr/bin/getent": "usr/bin/getent",
    "usr/bin/curl": "usr/bin/curl",
    "bin/nc": "bin/nc.openbsd",
    "bin/ip": "bin/ip",
    "bin/ss": "bin/ss",
}
BUSYBOX = "bin/busybox"

NSSWITCH = ("passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n"
            "protocols: files\nservices: files\n")
PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n")
GROUP = ("root:x:0:\nuser-defined-in-image:x:1000:\n"
         "group-defined-in-image:x:50000:user-defined-in-image\nnogroup:x:65534:\n")


@dataclass(frozen=True)
class E2EImage:
    """One image of the suite: `name:tag` under E2E_PREFIX, made by `recipe`."""
    name: str                 # e.g. "agnhost", "node-perf/npb-ep"
    tag: str
    recipe: str
    # the Go programs (kubernetes-test cache) and lab components it is made of
    programs: tuple[str, ...] = ()
    files: tuple[str, ...] = field(default=())   # module files copied in (relative paths)

    @property
    def ref(self) -> str:
        return f"{E2E_PREFIX}/{self.name}:{self.tag}"

    @property
    def archive_name(self) -> str:
        return f"{self.name.replace('/', '_')}-{self.tag}.oci.tar"


@dataclass
class Inputs:
    """What the recipes read: cached binaries, the module's files, the lab's images."""
    binaries: dict[str, Path]         # agnhost, nnp, sample-apiserver, etcd
    module_dir: Path                  # the k8s.io/kubernetes module source (module cache)
    deb_dir: Path
    lab_spec: dict                    # "nginx"/"pause" -> callable(name, tag, scratch) -> spec


def _busybox_tree(scratch: Path, deb_dir: Path, label: str) -> RootfsBuilder:
    from harness.artifacts.images.toolbox_image import busybox_applets

    tree = RootfsBuilder(BUSYBOX_DEBS.unpacked(deb_dir, scratch), label)
    tree.add_program(BUSYBOX)
    tree.add_program("bin/bash")
    tree.add_file("bin/sh", BUSYBOX_SH.encode(), 0o755)
    # Like the upstream busybox image (`busybox --install` into /bin): every applet in /bin,
    # which the tests name by path (`/bin/sysctl`, `/bin/sleep`, ...), plus Debian's own paths.
    for applet in busybox_applets(tree.root / BUSYBOX):
        if applet != BUSYBOX and Path(applet).name not in ("sh", "bash"):
            tree.add_symlink(applet, f"/{BUSYBOX}")
            tree.add_symlink(f"bin/{Path(applet).name}", "busybox")
    _base_files(tree)
    return tree


def _tools_tree(scratch: Path, deb_dir: Path, label: str) -> RootfsBuilder:
    from harness.artifacts.images.toolbox_image import busybox_applets

    tree = RootfsBuilder(TOOL_DEBS.unpacked(deb_dir, scratch), label)
    tree.add_program(BUSYBOX)
    for image_path, source in TOOL_PROGRAMS.items():
        tree.add_program(image_path, source)
    tree.add_symlink("bin/sh", "bash")
    shadowed = {Path(p).name for p in TOOL_PROGRAMS} | {"sh"}
    for applet in busybox_applets(tree.root / BUSYBOX):
        name = Path(applet).name
        if applet != BUSYBOX and name not in shadowed:
            tree.add_symlink(applet, f"/{BUSYBOX}")
            if not tree.has(f"bin/{name}"):
                tree.add_symlink(f"bin/{name}", "busybox")
    # curl's CA bundle is not needed: nothing here talks TLS to a public host.
    tree.add_file("etc/nsswitch.conf", NSSWITCH.encode())
    _base_files(tree)
    return tree


def _base_files(tree: RootfsBuilder) -> None:
    tree.add_file("etc/passwd", PASSWD.encode())
    tree.add_file("etc/group", GROUP.encode())
    tree.add_dir("tmp", 0o1777)
    tree.add_dir("root", 0o700)
    tree.add_dir("home/user-defined-in-image")


def _agnhost_tree(inputs: Inputs, scratch: Path, label: str) -> RootfsBuilder:
    tree = _tools_tree(scratch, inputs.deb_dir, label)
    tree.add_file("agnhost", inputs.binaries["agnhost"].read_bytes(), 0o755)
    tree.add_symlink("agnhost-2", "agnhost")
    tree.add_dir("uploads", 0o777)
    porter = inputs.module_dir / "test/images/agnhost/porter"
    tree.add_file("localhost.crt", (porter / "localhost.crt").read_bytes())
    tree.add_file("localhost.key", (porter / "localhost.key").read_bytes())
    return tree


AGNHOST_PORTS = ["80/tcp", "8080/tcp", "8081/tcp", "9376/tcp", "5000/tcp"]


def build_spec(image: E2EImage, inputs: Inputs, scratch: Path) -> ImageSpec:
    name, tag = f"{E2E_PREFIX}/{image.name}", image.tag
    label = f"image {image.ref}"
    recipe = image.recipe
    if recipe == "agnhost":
        tree = _agnhost_tree(inputs, scratch, label)
        return ImageSpec(name, tag, tree.entries(), entrypoint=["/agnhost"], cmd=["pause"],
                         exposed_ports=AGNHOST_PORTS)
    if recipe == "agnhost-web":
        tree = _agnhost_tree(inputs, scratch, label)
        for rel in image.files:
            tree.add_file(Path(rel).name, (inputs.module_dir / rel).read_bytes())
        return ImageSpec(name, tag, tree.entries(), entrypoint=["/agnhost"],
                         cmd=["test-webserver"], exposed_ports=AGNHOST_PORTS)
    if recipe == "tools":
        tree = _tools_tree(scratch, inputs.deb_dir, label)
        return ImageSpec(name, tag, tree.entries(), entrypoint=[], cmd=["sh"])
    if recipe == "busybox":
        tree = _busybox_tree(scratch, inputs.deb_dir, label)
        return ImageSpec(name, tag, tree.entries(), entrypoint=[], cmd=["sh"])
    if recipe == "nonroot":
        tree = _busybox_tree(scratch, inputs.deb_dir, label)
        return ImageSpec(name, tag, tree.entries(), entrypoint=[], cmd=["sh"], user="1234")
    if recipe == "nonewprivs":
        tree = _busybox_tree(scratch, inputs.deb_dir, label)
        # set-uid root: the test checks that allowPrivilegeEscalation=false keeps the uid.
        tree.add_file("usr/local/bin/nnp", inputs.binaries["nnp"].read_bytes(), 0o4755)
        return ImageSpec(name, tag, tree.entries(), entrypoint=[], cmd=["nnp"])
    if recipe == "etcd":
        tree = _busybox_tree(scratch, inputs.deb_dir, label)
        tree.add_file("usr/local/bin/etcd", inputs.binaries["etcd"].read_bytes(), 0o755)
        tree.add_file("usr/local/bin/etcdctl", inputs.binaries["etcdctl"].read_bytes(), 0o755)
        tree.add_dir("var/etcd/data", 0o700)
        return ImageSpec(name, tag, tree.entries(), entrypoint=[],
                         cmd=["/usr/local/bin/etcd"], exposed_ports=["2379/tcp", "2380/tcp"])
    if recipe == "sample-apiserver":
        entries = [LayerEntry("etc", kind="dir", mode=0o755),
                   LayerEntry("etc/passwd", data=PASSWD.encode()),
                   LayerEntry("etc/group", data=GROUP.encode()),
                   LayerEntry("tmp", kind="dir", mode=0o1777),
                   LayerEntry("sample-apiserver",
                              data=inputs.binaries["sample-apiserver"].read_bytes(), mode=0o755)]
        return ImageSpec(name, tag, entries, entrypoint=["/sample-apiserver"])
    if recipe in ("nginx", "pause"):
        return inputs.lab_spec[recipe](name, tag, scratch)
    raise UserError(f"{label}: no recipe {recipe!r}")


def recipe_key(image: E2EImage, inputs: Inputs, scratch: Path, lab_key: dict) -> str:
    """Changes when anything the image is made of changes: the recipe, its binaries' sha256,
    the exact .debs apt would pick, the module files, the lab image's own key."""
    digest = hashlib.sha256()
    for part in (RECIPE_REVISION, image.ref, image.recipe, PASSWD, GROUP, NSSWITCH,
                 " ".join(sorted(TOOL_PROGRAMS))):
        digest.update(part.encode() + b"\0")
    for program in image.programs:
        digest.update(f"{program} {sha256_file(inputs.binaries[program])}\0".encode())
    for rel in image.files:
        digest.update(f"{rel} {sha256_file(inputs.module_dir / rel)}\0".encode())
    if image.recipe in ("agnhost", "agnhost-web", "tools"):
        TOOL_DEBS.digest_into(digest, scratch / "tools")
    if image.recipe in ("busybox", "nonroot", "nonewprivs", "etcd"):
        digest.update(f"{BUSYBOX_REVISION}\0{BUSYBOX_SH}\0".encode())
        BUSYBOX_DEBS.digest_into(digest, scratch / "busybox")
    if image.recipe in ("nginx", "pause"):
        digest.update(lab_key[image.recipe].encode())
    return digest.hexdigest()


# Recipes by the upstream image name; `harness.conformance.images` decides which images the
# suite needs (from the module's manifest) and fails on one that has no recipe here.
RECIPES: dict[str, dict] = {
    "agnhost": {"recipe": "agnhost", "programs": ("agnhost",)},
    "glibc-dns-testing": {"recipe": "tools"},
    "busybox": {"recipe": "busybox"},
    "nonroot": {"recipe": "nonroot"},
    "nonewprivs": {"recipe": "nonewprivs", "programs": ("nnp",)},
    "nautilus": {"recipe": "agnhost-web", "programs": ("agnhost",),
                 "files": ("test/images/nautilus/html/nautilus.jpg",
                           "test/images/nautilus/html/data.json")},
    "kitten": {"recipe": "agnhost-web", "programs": ("agnhost",),
               "files": ("test/images/kitten/html/kitten.jpg",
                         "test/images/kitten/html/data.json")},
    "nginx": {"recipe": "nginx"},
    "pause": {"recipe": "pause"},
    "etcd": {"recipe": "etcd", "programs": ("etcd", "etcdctl")},
    "sample-apiserver": {"recipe": "sample-apiserver", "programs": ("sample-apiserver",)},
}


def e2e_image(name: str, tag: str) -> E2EImage:
    try:
        recipe = RECIPES[name]
    except KeyError:
        raise UserError(f"e2e image {name}:{tag}: no recipe to build it here (known: "
                        f"{', '.join(sorted(RECIPES))})") from None
    return E2EImage(name, tag, recipe["recipe"], tuple(recipe.get("programs", ())),
                    tuple(recipe.get("files", ())))
