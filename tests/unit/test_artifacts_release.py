"""The release source against a local HTTP server: verified installs, refused mismatches, and
download locations that come only from the host's configuration."""

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
from harness.artifacts.release_urls import configured_bases, parse_sums
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


def _etcd_release(root: Path, good: bool = True) -> None:
    """An etcd-shaped release under root: <version>/<archive> and <version>/SHA256SUMS."""
    archive = _tar_gz({"etcd-v3.6.16-linux-amd64/etcd": FAKE_BINARY,
                       "etcd-v3.6.16-linux-amd64/etcdctl": b"#!/bin/sh\necho etcdctl\n"})
    name = "etcd-v3.6.16-linux-amd64.tar.gz"
    (root / "v3.6.16").mkdir()
    (root / "v3.6.16" / name).write_bytes(archive)
    digest = hashlib.sha256(archive if good else b"something else").hexdigest()
    (root / "v3.6.16" / "SHA256SUMS").write_text(f"{'0' * 64}  other.tar.gz\n{digest}  {name}\n")


def test_good_checksum_installs_both_binaries(server, tmp_path):
    base, root = server
    _etcd_release(root)
    source = ReleaseSource(bases={"etcd": base})
    cache = ArtifactCache(tmp_path / "cache")
    results = ArtifactStore(cache).ensure(ETCD, ["etcd", "etcdctl"], source)
    assert {r.binary: r.status for r in results} == {"etcd": "built", "etcdctl": "built"}
    installed = cache.binary_path("etcd", "v3.6.16", "etcd")
    assert installed.read_bytes() == FAKE_BINARY
    assert installed.stat().st_mode & 0o111
    assert list((cache.root / "tmp").iterdir()) == []


def test_checksum_mismatch_is_refused_and_writes_nothing(server, tmp_path):
    base, root = server
    _etcd_release(root, good=False)
    source = ReleaseSource(bases={"etcd": base})
    cache = ArtifactCache(tmp_path / "cache")
    with pytest.raises(UserError, match="checksum mismatch.*nothing installed"):
        ArtifactStore(cache).ensure(ETCD, ["etcd", "etcdctl"], source)
    assert not cache.component_dir("etcd", "v3.6.16").exists()
    assert list((cache.root / "tmp").iterdir()) == []


def _kube_sidecar_tree(root: Path, good: bool) -> None:
    """Kubernetes' layout below its base: <base>/<v>/bin/linux/amd64/<bin> and <bin>.sha256."""
    where = root / f"k8s/{K8S}/bin/linux/amd64"
    where.mkdir(parents=True)
    data = f"#!/bin/sh\necho 'Client Version: {K8S}'\n".encode()
    (where / "kubectl").write_bytes(data)
    digest = hashlib.sha256(data if good else b"tampered").hexdigest()
    (where / "kubectl.sha256").write_text(digest)


@pytest.fixture
def host_config(tmp_path, monkeypatch):
    """No release location on this host unless a test sets one."""
    for name in ("KUBERNETES", "ETCD", "FLANNEL"):
        monkeypatch.delenv(f"K8S_HA_LAB_RELEASE_BASE_{name}", raising=False)
    monkeypatch.setenv("K8S_HA_LAB_RELEASE_MIRRORS", str(tmp_path / "release-mirrors.yaml"))
    monkeypatch.setenv("K8S_HA_LAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "release-mirrors.yaml"


@pytest.mark.parametrize("good,status", [(True, 0), (False, 2)])
def test_cli_release_build_from_the_base_in_the_environment(server, tmp_path, monkeypatch, capsys,
                                                             host_config, good, status):
    base, root = server
    _kube_sidecar_tree(root, good)
    monkeypatch.setenv("K8S_HA_LAB_RELEASE_BASE_KUBERNETES", f"{base}/k8s/")
    assert artifacts_main(["build", "--source", "release", "--only", "kubectl"]) == status
    out, err = capsys.readouterr()
    installed = tmp_path / f"cache/bin/kubernetes@{K8S}/kubectl"
    if good:
        assert f"kubectl {K8S} (fetched in" in out
        assert installed.is_file()
    else:
        assert "checksum mismatch" in err and len(err.strip().splitlines()) == 1
        assert not installed.exists()


def test_cli_release_build_from_the_hosts_mirrors_file(server, tmp_path, capsys, host_config):
    base, root = server
    _kube_sidecar_tree(root, True)
    host_config.write_text(f"kubernetes: {base}/k8s\n")
    assert artifacts_main(["list", "--source", "release", "--only", "kubernetes"]) == 0
    out = capsys.readouterr().out
    assert f"{base}/k8s/{K8S}/bin/linux/amd64/kube-apiserver, checked against {base}/k8s/{K8S}/bin/linux/amd64/kube-apiserver.sha256" in out
    assert artifacts_main(["build", "--source", "release", "--only", "kubectl"]) == 0
    assert (tmp_path / f"cache/bin/kubernetes@{K8S}/kubectl").is_file()


def test_release_without_a_configured_location_is_refused_in_one_line(host_config, capsys):
    message = ("release source: no download location configured for kubernetes; set "
               f"$K8S_HA_LAB_RELEASE_BASE_KUBERNETES or `kubernetes: <base URL>` in {host_config} "
               "(docs/hardening.md, \"Release downloads\")")
    assert artifacts_main(["build", "--source", "release", "--only", "kubectl"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"
    assert artifacts_main(["list", "--source", "release", "--only", "kubectl"]) == 0  # says why, per binary
    assert f"kubectl                  missing {message}" in capsys.readouterr().out


def test_the_environment_wins_over_the_file_and_bad_entries_are_refused(tmp_path):
    config = tmp_path / "mirrors.yaml"
    config.write_text("kubernetes: https://files.example/k8s/\netcd: http://mirror.example/etcd\n")
    environ = {"K8S_HA_LAB_RELEASE_MIRRORS": str(config),
               "K8S_HA_LAB_RELEASE_BASE_ETCD": "http://near.example/etcd"}
    assert configured_bases(environ) == {"kubernetes": "https://files.example/k8s",
                                         "etcd": "http://near.example/etcd"}
    assert configured_bases({"XDG_CONFIG_HOME": str(tmp_path / "none")}) == {}
    for text, message in (("coredns: http://x/\n", r"'coredns': unknown project"),
                          ("kubernetes: ftp.example/k8s\n", r"kubernetes: 'ftp.example/k8s' is not a base URL"),
                          ("- kubernetes\n", r"must map a project"),
                          ("a: [\n", r"cannot be read as YAML")):
        config.write_text(text)
        with pytest.raises(UserError, match=message):
            configured_bases(environ)
    with pytest.raises(UserError, match=r"^\$K8S_HA_LAB_RELEASE_BASE_FLANNEL: 'not a url'"):
        configured_bases({"K8S_HA_LAB_RELEASE_BASE_FLANNEL": "not a url", "XDG_CONFIG_HOME": str(tmp_path)})


def test_missing_asset_is_a_user_error(server, tmp_path):
    base, _root = server
    source = ReleaseSource(bases={"kubernetes": base})
    with pytest.raises(UserError, match="kubernetes v1.35.4"):
        source.fetch(KUBE, ["kubelet"], tmp_path)


def test_flannel_without_pinned_checksum_is_refused(server, tmp_path, monkeypatch):
    base, _root = server
    monkeypatch.setattr("harness.artifacts.sources.release.pinned_checksums", lambda: {})
    flannel = Component("flannel", "v0.28.10", "release")
    with pytest.raises(UserError, match="no sha256 known"):
        ReleaseSource(bases={"flannel": base}).fetch(flannel, ["flanneld"], tmp_path)


def test_flannel_pinned_by_file_name_installs(server, tmp_path, monkeypatch):
    base, root = server
    archive = _tar_gz({"flanneld": b"#!/bin/sh\necho v0.28.10\n"})
    (root / "v0.28.10").mkdir()
    (root / "v0.28.10" / "flannel-v0.28.10-linux-amd64.tar.gz").write_bytes(archive)
    monkeypatch.setattr("harness.artifacts.sources.release.pinned_checksums",
                        lambda: {"flannel-v0.28.10-linux-amd64.tar.gz": hashlib.sha256(archive).hexdigest()})
    flannel = Component("flannel", "v0.28.10", "release")
    installed = ReleaseSource(bases={"flannel": base}).fetch(flannel, ["flanneld"], tmp_path)
    assert installed["flanneld"].read_bytes() == b"#!/bin/sh\necho v0.28.10\n"


def test_layouts_render_below_the_base():
    lines = ReleaseSource(bases={"kubernetes": "http://m:1/k8s/"}).describe(KUBE, ["kubelet"])
    assert lines == ["http://m:1/k8s/v1.35.4/bin/linux/amd64/kubelet, checked against "
                     "http://m:1/k8s/v1.35.4/bin/linux/amd64/kubelet.sha256"]
    etcd = ReleaseSource(bases={"etcd": "file:///srv/etcd"}).describe(ETCD, ["etcdctl"])[0]
    assert etcd == ("file:///srv/etcd/v3.6.16/etcd-v3.6.16-linux-amd64.tar.gz "
                    "(etcd-v3.6.16-linux-amd64/etcdctl), checked against file:///srv/etcd/v3.6.16/SHA256SUMS")


def test_parse_sums_accepts_binary_marker():
    assert parse_sums(f"{'a' * 64} *dir/f.tgz\n", "f.tgz") == "a" * 64
    assert parse_sums("garbage\n", "f.tgz") is None
