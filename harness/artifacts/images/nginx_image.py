"""The nginx image: Debian bookworm's nginx binary, its shared libraries and the stock page.

Everything comes from .debs fetched with `apt-get download` (Debian's archive is reachable where
no registry is). Only the files nginx needs are kept: the binary, the closure of its ELF NEEDED
libraries plus the dynamic loader, mime.types and the "Welcome to nginx!" page, with a
config of our own that runs nginx in the foreground on port 80.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

from harness.artifacts.images.oci import ImageSpec, LayerEntry
from harness.errors import UserError

# nginx's Depends (libc6, libcrypt1, libpcre2-8-0, libssl3, zlib1g) plus nginx-common for
# mime.types and the page. debconf and iproute2 are maintainer-script needs, not runtime ones.
PACKAGES = ("nginx", "nginx-common", "libc6", "libcrypt1", "libpcre2-8-0", "libssl3", "zlib1g")
RECIPE_REVISION = "1"
LIB_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu")
LOADER = "lib64/ld-linux-x86-64.so.2"
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


def _apt(args: list[str], cwd: Path) -> str:
    if not shutil.which("apt-get"):
        raise UserError("nginx image: apt-get not found; the nginx image is built from Debian "
                        "packages and needs a Debian host")
    proc = subprocess.run(["apt-get", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise UserError(f"nginx image: `apt-get {' '.join(args)}` failed: {tail} "
                        f"(run `apt-get update` first?)")
    return proc.stdout


def pinned_debs(scratch: Path) -> list[tuple[str, str]]:
    """(file name, sha256) of the .debs apt would fetch now, without fetching them."""
    empty = scratch / "print-uris"
    empty.mkdir(parents=True, exist_ok=True)
    # --print-uris lists only what is not already in cwd, hence the empty directory.
    out = _apt(["download", "--print-uris", *PACKAGES], empty)
    debs = []
    for line in out.splitlines():
        match = re.match(r"^'[^']+' (\S+) \d+ SHA256:([0-9a-f]{64})$", line.strip())
        if match:
            debs.append((match.group(1), match.group(2)))
    if len(debs) != len(PACKAGES):
        raise UserError(f"nginx image: apt-get listed {len(debs)} of {len(PACKAGES)} packages "
                        f"({', '.join(PACKAGES)}); run `apt-get update`")
    return sorted(debs)


def recipe_key(version: str, scratch: Path) -> str:
    digest = hashlib.sha256()
    for part in (RECIPE_REVISION, version, NGINX_CONF, PASSWD, GROUP):
        digest.update(part.encode() + b"\0")
    for name, sha in pinned_debs(scratch):
        digest.update(f"{name} {sha}\0".encode())
    return digest.hexdigest()


def fetch_debs(deb_dir: Path, scratch: Path) -> list[Path]:
    """The .debs in deb_dir, downloading only those not there with the right sha256."""
    deb_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, sha in pinned_debs(scratch):
        path = deb_dir / name
        if not (path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha):
            _apt(["download", name.split("_", 1)[0]], deb_dir)
        if not path.is_file():
            raise UserError(f"nginx image: apt-get download did not produce {path}")
        paths.append(path)
    return paths


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
        raise UserError("nginx image: readelf not found (Debian package binutils)")
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
    raise UserError(f"nginx image: symlink loop at {relative}")


def _find_library(root: Path, soname: str) -> tuple[str, Path]:
    for lib_dir in LIB_DIRS:
        candidate = resolve_in_root(root, f"{lib_dir}/{soname}")
        if candidate.is_file():
            return f"{lib_dir}/{soname}", candidate
    raise UserError(f"nginx image: {soname} is in none of the packages {', '.join(PACKAGES)}")


def library_closure(root: Path, binary: Path) -> dict[str, Path]:
    """image path -> real file, for every library binary needs, directly or not."""
    found: dict[str, Path] = {}
    pending = needed_libraries(binary)
    seen = set()
    while pending:
        soname = pending.pop()
        if soname in seen:
            continue
        seen.add(soname)
        image_path, real = _find_library(root, soname)
        found[image_path] = real
        pending += needed_libraries(real)
    return found


def build_spec(name: str, version: str, workdir: Path, deb_dir: Path) -> ImageSpec:
    root = workdir / "rootfs"
    unpack(fetch_debs(deb_dir, workdir), root)
    nginx = root / "usr/sbin/nginx"
    files = {"usr/sbin/nginx": (nginx.read_bytes(), 0o755),
             "etc/nginx/mime.types": ((root / "etc/nginx/mime.types").read_bytes(), 0o644),
             WELCOME_PAGE: ((root / WELCOME_PAGE).read_bytes(), 0o644),
             LOADER: (resolve_in_root(root, LOADER).read_bytes(), 0o755),
             "etc/nginx/nginx.conf": (NGINX_CONF.encode(), 0o644),
             "etc/passwd": (PASSWD.encode(), 0o644),
             "etc/group": (GROUP.encode(), 0o644)}
    for image_path, real in library_closure(root, nginx).items():
        files[image_path] = (real.read_bytes(), 0o644)
    dirs = {str(Path(p).parent) for p in files}
    dirs |= {"run", "tmp", "var/lib/nginx", "var/log/nginx", "var/www"}
    for d in list(dirs):
        dirs |= {str(parent) for parent in Path(d).parents if str(parent) != "."}
    entries = [LayerEntry(d, kind="dir", mode=0o1777 if d == "tmp" else 0o755)
               for d in sorted(dirs)]
    entries += [LayerEntry(p, data=data, mode=mode) for p, (data, mode) in files.items()]
    # nginx opens its compiled-in default log paths before reading nginx.conf.
    entries += [LayerEntry("var/log/nginx/error.log", kind="symlink", target="/dev/stderr"),
                LayerEntry("var/log/nginx/access.log", kind="symlink", target="/dev/stdout")]
    return ImageSpec(name=name, tag=version, entries=entries,
                     entrypoint=["/usr/sbin/nginx"], exposed_ports=["80/tcp"],
                     stop_signal="SIGQUIT")
