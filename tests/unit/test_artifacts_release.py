"""The release source against a local HTTP server: verified installs, refused mismatches."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path

import pytest

from harness.versions import load_versions

from harness.artifacts.__main__ import main as artifacts_main
from harness.artifacts.cache import ArtifactCache
from harness.artifacts.release_urls import UPSTREAM, ReleaseTemplate, parse_sums, with_mirror
from harness.artifacts.sources.release import ReleaseSource
from harness.artifacts.store import ArtifactStore
from harness.errors import UserError
from harness.versions import Component

ETCD = Component("etcd", "v3.6.16", "release")
KUBE = Component("kubernetes", "v1.35.4", "release")
FAKE_BINARY = b"#!/bin/sh\necho 'etcd Version: 3.6.16'\n"

K8S = load_versions().kubernetes.version  # the pinned version, whatever it is


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def server(tmp_path):
    """An http.server on 127.0.0.1 serving tmp_path/www; yields (base url, docroot)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


def _etcd_release(root: Path, good: bool = True) -> dict[str, ReleaseTemplate]:
    """Writes an etcd-shaped archive + SHA256SUMS under root; returns templates pointing at it."""
    archive = _tar_gz({"etcd-v3.6.16-linux-amd64/etcd": FAKE_BINARY,
                       "etcd-v3.6.16-linux-amd64/etcdctl": b"#!/bin/sh\necho etcdctl\n"})
    name = "etcd-v3.6.16-linux-amd64.tar.gz"
    (root / name).write_bytes(archive)
    digest = hashlib.sha256(archive if good else b"something else").hexdigest()
    (root / "SHA256SUMS").write_text(f"{'0' * 64}  other.tar.gz\n{digest}  {name}\n")
    upstream = UPSTREAM["etcd"]
    return {"etcd": ReleaseTemplate(url="BASE/etcd-{version}-linux-{arch}.tar.gz",
                                    checksum_kind="sums", sums_url="BASE/SHA256SUMS",
                                    members=upstream.members)}


def _with_base(templates: dict[str, ReleaseTemplate], base: str) -> dict[str, ReleaseTemplate]:
    return {k: ReleaseTemplate(url=t.url.replace("BASE", base), checksum_kind=t.checksum_kind,
                               sums_url=t.sums_url.replace("BASE", base), members=t.members)
            for k, t in templates.items()}


def test_good_checksum_installs_both_binaries(server, tmp_path):
    base, root = server
    source = ReleaseSource(_with_base(_etcd_release(root), base))
    cache = ArtifactCache(tmp_path / "cache")
    results = ArtifactStore(cache).ensure(ETCD, ["etcd", "etcdctl"], source)
    assert {r.binary: r.status for r in results} == {"etcd": "built", "etcdctl": "built"}
    installed = cache.binary_path("etcd", "v3.6.16", "etcd")
    assert installed.read_bytes() == FAKE_BINARY
    assert installed.stat().st_mode & 0o111
    assert list((cache.root / "tmp").iterdir()) == []


def test_checksum_mismatch_is_refused_and_writes_nothing(server, tmp_path):
    base, root = server
    source = ReleaseSource(_with_base(_etcd_release(root, good=False), base))
    cache = ArtifactCache(tmp_path / "cache")
    with pytest.raises(UserError, match="checksum mismatch.*nothing installed"):
        ArtifactStore(cache).ensure(ETCD, ["etcd", "etcdctl"], source)
    assert not cache.component_dir("etcd", "v3.6.16").exists()
    assert list((cache.root / "tmp").iterdir()) == []


def _kube_sidecar_tree(root: Path, good: bool) -> None:
    """dl.k8s.io's layout under a mirror: <mirror>/dl.k8s.io/release/<v>/bin/linux/amd64/<bin>."""
    where = root / f"dl.k8s.io/release/{K8S}/bin/linux/amd64"
    where.mkdir(parents=True)
    data = f"#!/bin/sh\necho 'Client Version: {K8S}'\n".encode()
    (where / "kubectl").write_bytes(data)
    digest = hashlib.sha256(data if good else b"tampered").hexdigest()
    (where / "kubectl.sha256").write_text(digest)


@pytest.mark.parametrize("good,status", [(True, 0), (False, 2)])
def test_cli_release_build_through_a_mirror(server, tmp_path, monkeypatch, capsys, good, status):
    base, root = server
    _kube_sidecar_tree(root, good)
    monkeypatch.setenv("K8S_HA_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("K8S_HA_LAB_RELEASE_MIRROR", base)
    assert artifacts_main(["build", "--source", "release", "--only", "kubectl"]) == status
    out, err = capsys.readouterr()
    installed = tmp_path / f"cache/bin/kubernetes@{K8S}/kubectl"
    if good:
        assert f"kubectl {K8S} (fetched in" in out
        assert installed.is_file()
    else:
        assert "checksum mismatch" in err and len(err.strip().splitlines()) == 1
        assert not installed.exists()


def test_missing_asset_is_a_user_error(server, tmp_path):
    base, _root = server
    source = ReleaseSource(mirror=base)
    with pytest.raises(UserError, match="kubernetes v1.35.4"):
        source.fetch(KUBE, ["kubelet"], tmp_path)


def test_flannel_without_pinned_checksum_is_refused(server, tmp_path, monkeypatch):
    base, _root = server
    monkeypatch.setattr("harness.artifacts.sources.release.pinned_checksums", lambda: {})
    flannel = Component("flannel", "v0.28.10", "release")
    with pytest.raises(UserError, match="no sha256 known"):
        ReleaseSource(mirror=base).fetch(flannel, ["flanneld"], tmp_path)


def test_upstream_urls_render():
    lines = ReleaseSource(mirror="").describe(KUBE, ["kubelet"])
    assert lines[0].startswith("https://dl.k8s.io/release/v1.35.4/bin/linux/amd64/kubelet,")
    etcd = ReleaseSource(mirror="").describe(ETCD, ["etcdctl"])[0]
    assert "https://github.com/etcd-io/etcd/releases/download/v3.6.16/" \
           "etcd-v3.6.16-linux-amd64.tar.gz" in etcd
    assert with_mirror("https://dl.k8s.io/x", "http://m:1/") == "http://m:1/dl.k8s.io/x"


def test_parse_sums_accepts_binary_marker():
    assert parse_sums(f"{'a' * 64} *dir/f.tgz\n", "f.tgz") == "a" * 64
    assert parse_sums("garbage\n", "f.tgz") is None
