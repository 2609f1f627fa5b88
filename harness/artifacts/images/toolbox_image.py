"""The toolbox image: busybox plus the DNS tools, from Debian packages only.

What pods use it for: DNS checks (`dig`, `host`, `nslookup` from BIND 9, glibc's `getent
hosts`, which goes through /etc/nsswitch.conf and /etc/resolv.conf like any glibc program), a
CPU-burning CGI served by busybox `httpd`, and a load generator (`wget` in a loop).

* busybox-static: /bin/busybox and a symlink for each of its applets (`busybox --list-full`),
  except where a real program of the same name is in the image.
* bind9-dnsutils, bind9-host: /usr/bin/dig, /usr/bin/host, /usr/bin/nslookup, with the closure
  of their ELF NEEDED libraries (bind9-libs, Kerberos, ICU via libxml2, ...) and the loader.
* libc-bin: /usr/bin/getent. glibc 2.36 has the files and dns NSS modules inside libc.so.6, so
  no libnss_*.so is needed for "hosts: files dns".

No user is set (root); the default command is `sh`.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from harness.artifacts.images.debroot import DebSet, RootfsBuilder
from harness.artifacts.images.oci import ImageSpec
from harness.errors import UserError

# The programs' packages, then every package that ships a library in their closure; the
# closure check fails with the missing soname if a Debian update adds a dependency.
PROGRAM_PACKAGES = ("busybox-static", "bind9-dnsutils", "bind9-host", "libc-bin")
LIBRARY_PACKAGES = (
    "bind9-libs", "libc6", "libgcc-s1", "libstdc++6", "libjemalloc2", "libidn2-0",
    "libunistring2", "libuv1", "libfstrm0", "libprotobuf-c1", "libjson-c5", "liblmdb0",
    "libmaxminddb0", "libnghttp2-14", "libssl3", "zlib1g", "libxml2", "libicu72", "liblzma5",
    "libgssapi-krb5-2", "libkrb5-3", "libk5crypto3", "libkrb5support0", "libcom-err2",
    "libkeyutils1", "libedit2", "libbsd0", "libmd0", "libtinfo6",
)
PACKAGES = (*PROGRAM_PACKAGES, *LIBRARY_PACKAGES)
DEBS = DebSet("toolbox image", PACKAGES)
RECIPE_REVISION = "1"

BUSYBOX = "bin/busybox"
# image path -> path in the unpacked packages
PROGRAMS = {
    "usr/bin/dig": "usr/bin/dig",
    "usr/bin/host": "usr/bin/host",
    "usr/bin/nslookup": "usr/bin/nslookup",
    "usr/bin/getent": "usr/bin/getent",
}
# Applets the pods rely on; the build fails if busybox no longer has one of them.
REQUIRED_APPLETS = ("sh", "wget", "httpd", "sleep", "cat", "echo", "ls", "env", "nc", "ps",
                    "kill", "timeout", "seq", "awk", "sed", "grep", "head", "date", "hostname",
                    "ip", "ping", "top", "vi", "tr", "wc", "sha256sum", "mkdir", "rm", "chmod")

NSSWITCH = """\
# k8s-ha-lab toolbox: the kubelet mounts /etc/hosts and /etc/resolv.conf.
passwd: files
group: files
shadow: files
hosts: files dns
networks: files
protocols: files
services: files
"""
PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n")
GROUP = "root:x:0:\nnogroup:x:65534:\n"


def recipe_key(version: str, scratch: Path) -> str:
    digest = hashlib.sha256()
    for part in (RECIPE_REVISION, version, NSSWITCH, PASSWD, GROUP, " ".join(sorted(PROGRAMS)),
                 " ".join(REQUIRED_APPLETS)):
        digest.update(part.encode() + b"\0")
    DEBS.digest_into(digest, scratch)
    return digest.hexdigest()


def busybox_applets(busybox: Path) -> list[str]:
    """Image paths of busybox's applets ("bin/sh", "usr/bin/wget", ...), asked from busybox."""
    proc = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"toolbox image: `busybox --list-full` failed: {proc.stderr.strip()}")
    return sorted(line.strip().strip("/") for line in proc.stdout.splitlines() if line.strip())


def applet_links(applets: list[str], taken) -> dict[str, str]:
    """symlink path -> /bin/busybox for every applet not shadowed by a real program."""
    names = {Path(a).name for a in applets}
    missing = [a for a in REQUIRED_APPLETS if a not in names]
    if missing:
        raise UserError(f"toolbox image: busybox lacks the applet(s) {', '.join(missing)}")
    shadowed = {Path(p).name for p in taken}
    return {a: f"/{BUSYBOX}" for a in applets
            if a != BUSYBOX and Path(a).name not in shadowed}


def build_spec(name: str, version: str, workdir: Path, deb_dir: Path) -> ImageSpec:
    tree = RootfsBuilder(DEBS.unpacked(deb_dir, workdir), "toolbox image")
    tree.add_program(BUSYBOX)
    for image_path, source in PROGRAMS.items():
        tree.add_program(image_path, source)
    for link, target in applet_links(busybox_applets(tree.root / BUSYBOX), PROGRAMS).items():
        tree.add_symlink(link, target)
    tree.add_file("etc/nsswitch.conf", NSSWITCH.encode())
    tree.add_file("etc/passwd", PASSWD.encode())
    tree.add_file("etc/group", GROUP.encode())
    tree.add_dir("tmp", 0o1777)
    tree.add_dir("root", 0o700)
    tree.add_dir("var/www")
    return ImageSpec(name=name, tag=version, entries=tree.entries(), entrypoint=[],
                     cmd=["sh"])
