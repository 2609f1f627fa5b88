"""The nginx image: Debian bookworm's nginx binary, its shared libraries and the stock page.

Everything comes from .debs fetched with `apt-get download` (see images/debroot.py; Debian's
archive is reachable where no registry is). Only the files nginx needs are kept: the binary, the
closure of its ELF NEEDED libraries plus the dynamic loader, mime.types and the "Welcome to
nginx!" page, with a config of our own that runs nginx in the foreground on port 80.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from harness.artifacts.images.debroot import DebSet, RootfsBuilder
from harness.artifacts.images.oci import ImageSpec

# nginx's Depends (libc6, libcrypt1, libpcre2-8-0, libssl3, zlib1g) plus nginx-common for
# mime.types and the page. debconf and iproute2 are maintainer-script needs, not runtime ones.
PACKAGES = ("nginx", "nginx-common", "libc6", "libcrypt1", "libpcre2-8-0", "libssl3", "zlib1g")
RECIPE_REVISION = "1"
WELCOME_PAGE = "usr/share/nginx/html/index.html"

NGINX_CONF = """\
# k8s-ha-lab nginx image: Debian's nginx in the foreground, the stock page on port 80.
daemon off;
user www-data;
worker_processes 1;
pid /run/nginx.pid;
error_log stderr notice;

events {
    worker_connections 512;
}

http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /dev/stdout;
    sendfile on;

    server {
        listen 80 default_server;
        root /usr/share/nginx/html;
        index index.html;
    }
}
"""
PASSWD = ("root:x:0:0:root:/root:/usr/sbin/nologin\n"
          "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
GROUP = "root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n"


DEBS = DebSet("nginx image", PACKAGES)


def pinned_debs(scratch: Path) -> list[tuple[str, str]]:
    """(file name, sha256) of the .debs apt would fetch now, without fetching them."""
    return DEBS.pinned_debs(scratch)


def recipe_key(version: str, scratch: Path) -> str:
    digest = hashlib.sha256()
    for part in (RECIPE_REVISION, version, NGINX_CONF, PASSWD, GROUP):
        digest.update(part.encode() + b"\0")
    DEBS.digest_into(digest, scratch)
    return digest.hexdigest()


def build_spec(name: str, version: str, workdir: Path, deb_dir: Path) -> ImageSpec:
    tree = RootfsBuilder(DEBS.unpacked(deb_dir, workdir), "nginx image")
    tree.add_program("usr/sbin/nginx")
    tree.copy("etc/nginx/mime.types")
    tree.copy(WELCOME_PAGE)
    tree.add_file("etc/nginx/nginx.conf", NGINX_CONF.encode())
    tree.add_file("etc/passwd", PASSWD.encode())
    tree.add_file("etc/group", GROUP.encode())
    for d in ("run", "var/lib/nginx", "var/log/nginx", "var/www"):
        tree.add_dir(d)
    tree.add_dir("tmp", 0o1777)
    # nginx opens its compiled-in default log paths before reading nginx.conf.
    tree.add_symlink("var/log/nginx/error.log", "/dev/stderr")
    tree.add_symlink("var/log/nginx/access.log", "/dev/stdout")
    return ImageSpec(name=name, tag=version, entries=tree.entries(),
                     entrypoint=["/usr/sbin/nginx"], exposed_ports=["80/tcp"],
                     stop_signal="SIGQUIT")
