"""The artifacts CLI offline: list, the dir source, progress lines and one-line errors."""

from __future__ import annotations

import io

import pytest

from harness.versions import load_versions

from harness.artifacts.__main__ import main as artifacts_main
from harness.artifacts.progress import Progress

K8S = load_versions().kubernetes.version  # the pinned version, whatever it is


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("K8S_HA_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("K8S_HA_LAB_RELEASE_MIRRORS", str(tmp_path / "no-release-mirrors.yaml"))
    monkeypatch.setenv("K8S_HA_LAB_RELEASE_BASE_KUBERNETES", "https://files.example/k8s")
    return tmp_path / "cache"


def test_list_release_prints_the_download_urls(cache, capsys):
    assert artifacts_main(["list", "--source", "release", "--only", "kubernetes"]) == 0
    out = capsys.readouterr().out
    assert f"https://files.example/k8s/{K8S}/bin/linux/amd64/kube-apiserver" in out
    assert "kube-apiserver.sha256" in out and "missing" in out


def test_list_is_the_default_source_per_component(cache, capsys):
    assert artifacts_main(["list", "--only", "etcd"]) == 0
    out = capsys.readouterr().out
    assert "etcd v3.6.16 (source: gomod)" in out
    assert "go.etcd.io/etcd/server/v3@v3.6.16" in out


def test_dir_source_copies_into_the_cache(cache, tmp_path, capsys):
    brought = tmp_path / "mine"
    brought.mkdir()
    binary = brought / "kubectl"
    binary.write_text(f"#!/bin/sh\necho 'Client Version: {K8S}'\n")
    binary.chmod(0o755)
    assert artifacts_main(["build", "--source", "dir", "--dir", str(brought),
                           "--only", "kubectl"]) == 0
    assert (cache / f"bin/kubernetes@{K8S}/kubectl").read_bytes() == binary.read_bytes()
    out = capsys.readouterr().out
    assert f"ok   kubectl {K8S} (fetched in" in out       # plain text: not a terminal
    assert artifacts_main(["verify", "--only", "kubectl"]) == 0
    assert f"Client Version: {K8S}" in capsys.readouterr().out


def test_dir_source_needs_dir_and_the_binary(cache, tmp_path, capsys):
    assert artifacts_main(["build", "--source", "dir", "--only", "kubelet"]) == 2
    assert "--source dir needs --dir" in capsys.readouterr().err
    assert artifacts_main(["build", "--source", "dir", "--dir", str(tmp_path),
                           "--only", "kubelet"]) == 2
    err = capsys.readouterr().err
    assert f"no kubelet for kubernetes {K8S}" in err and len(err.strip().splitlines()) == 1


def test_verify_fails_on_a_wrong_version(cache, capsys):
    target = cache / "bin/etcd@v3.6.16/etcdctl"
    target.parent.mkdir(parents=True)
    target.write_text("#!/bin/sh\necho 'etcdctl version: 3.5.0'\n")
    target.chmod(0o755)
    assert artifacts_main(["verify", "--only", "etcdctl"]) == 2
    captured = capsys.readouterr()
    assert "FAIL etcdctl v3.6.16" in captured.out
    assert "expected 'etcdctl version: 3.6.16'" in captured.err


def test_unknown_only_is_one_line(cache, capsys):
    assert artifacts_main(["build", "--only", "kube-nothing"]) == 2
    assert capsys.readouterr().err.startswith("error: --only kube-nothing: not a component")


def test_progress_marks_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    Progress(stream).done("kube-apiserver", "v1.35.4", "built in 312.4s")
    assert stream.getvalue() == "✓ kube-apiserver v1.35.4 (built in 312.4s)\n"
