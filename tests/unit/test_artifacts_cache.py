"""The artifact cache: hits run nothing, failures leave nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.artifacts import catalog
from harness.artifacts.cache import ArtifactCache, cache_root
from harness.artifacts.sources.base import ArtifactSource
from harness.artifacts.store import ArtifactStore
from harness.errors import UserError
from harness.versions import Component

KUBE = Component("kubernetes", "v1.35.4", "gomod")


class FakeBuilder(ArtifactSource):
    """Writes a small script per binary; can fail part-way, after writing half a file."""

    name = "fake"

    def __init__(self, fail_on: str | None = None):
        self.calls: list[list[str]] = []
        self.fail_on = fail_on

    def describe(self, component, binaries):
        return [f"fake {b}" for b in binaries]

    def fetch(self, component, binaries, dest_dir, on_ready=lambda *a: None):
        self.calls.append(list(binaries))
        out = {}
        for binary in binaries:
            target = dest_dir / binary
            if binary == self.fail_on:
                target.write_bytes(b"\x7fELF half")   # the half-written output of a crash
                raise UserError(f"build of {binary} failed")
            target.write_text(f"#!/bin/sh\necho {binary}\n")
            out[binary] = target
            on_ready(binary, target, 0.1)
        return out


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("K8S_HA_LAB_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.delenv("K8S_HA_LAB_CACHE")
    assert cache_root() == Path("/var/cache/k8s-ha-lab")


def test_layout(tmp_path):
    cache = ArtifactCache(tmp_path)
    assert cache.binary_path("etcd", "v3.6.16", "etcd") == tmp_path / "bin/etcd@v3.6.16/etcd"
    assert cache.image_path("pause", "3.10") == tmp_path / "images/pause-3.10.oci.tar"


def test_second_build_is_a_cache_hit_that_runs_nothing(tmp_path):
    store = ArtifactStore(ArtifactCache(tmp_path))
    builder = FakeBuilder()
    binaries = catalog.binaries_of("kubernetes")
    first = store.ensure(KUBE, binaries, builder)
    assert {r.status for r in first} == {"built"}
    second = store.ensure(KUBE, binaries, builder)
    assert {r.status for r in second} == {"cached"}
    assert builder.calls == [binaries]          # only the first ensure reached the builder


def test_only_missing_binaries_are_built(tmp_path):
    store = ArtifactStore(ArtifactCache(tmp_path))
    builder = FakeBuilder()
    store.ensure(KUBE, ["kubectl"], builder)
    store.ensure(KUBE, ["kubectl", "kubelet"], builder)
    assert builder.calls == [["kubectl"], ["kubelet"]]


def test_force_rebuilds(tmp_path):
    store = ArtifactStore(ArtifactCache(tmp_path))
    builder = FakeBuilder()
    store.ensure(KUBE, ["kubectl"], builder)
    store.ensure(KUBE, ["kubectl"], builder, force=True)
    assert builder.calls == [["kubectl"], ["kubectl"]]


def test_failed_build_leaves_no_partial_binary(tmp_path):
    cache = ArtifactCache(tmp_path)
    with pytest.raises(UserError):
        ArtifactStore(cache).ensure(KUBE, ["kubelet"], FakeBuilder(fail_on="kubelet"))
    assert not cache.binary_path("kubernetes", "v1.35.4", "kubelet").exists()
    assert list((tmp_path / "tmp").iterdir()) == []     # scratch removed too


def test_binaries_finished_before_a_failure_are_kept(tmp_path):
    cache = ArtifactCache(tmp_path)
    with pytest.raises(UserError):
        ArtifactStore(cache).ensure(KUBE, ["kubectl", "kubelet"], FakeBuilder(fail_on="kubelet"))
    assert cache.has_binary("kubernetes", "v1.35.4", "kubectl")
    assert not cache.binary_path("kubernetes", "v1.35.4", "kubelet").exists()
    assert cache.provenance("kubernetes", "v1.35.4")["kubectl"]["source"] == "fake"


def test_image_key_change_means_rebuild(tmp_path):
    cache = ArtifactCache(tmp_path)
    built = tmp_path / "x.tar"
    built.write_bytes(b"archive")
    cache.install_image("pause", "3.10", built, "key-1")
    assert cache.image_is_current("pause", "3.10", "key-1")
    assert not cache.image_is_current("pause", "3.10", "key-2")


def test_only_selects_a_component_or_a_binary():
    assert catalog.select("etcd") == {"etcd": ["etcd", "etcdctl", "etcdutl"]}
    assert catalog.select("kubelet") == {"kubernetes": ["kubelet"]}
    assert set(catalog.select(None)) == set(catalog.COMPONENT_BINARIES) >= {
        "kubernetes", "etcd", "flannel", "coredns", "metrics_server"}
    with pytest.raises(UserError, match="--only nope"):
        catalog.select("nope")
