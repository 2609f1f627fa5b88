"""OCI image archives: layout, digests, determinism; and the pause program's behaviour."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time

import pytest

from harness.artifacts.images import pause_image
from harness.artifacts.images.oci import (ImageSpec, LayerEntry, check_archive, read_archive,
                                          write_archive)


def _spec() -> ImageSpec:
    return ImageSpec(name="k8s-ha-lab.local/demo", tag="1.0",
                     entries=[LayerEntry("bin", kind="dir", mode=0o755),
                              LayerEntry("bin/hello", data=b"#!/bin/sh\necho hi\n", mode=0o755),
                              LayerEntry("bin/hi", kind="symlink", target="hello")],
                     entrypoint=["/bin/hello"], user="65535:65535")


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_archive_has_oci_layout_and_valid_digests(tmp_path):
    path = write_archive(_spec(), tmp_path / "demo.oci.tar")
    with tarfile.open(path) as tar:
        names = tar.getnames()
        layout = json.loads(tar.extractfile("oci-layout").read())
    assert "index.json" in names and layout == {"imageLayoutVersion": "1.0.0"}
    index, blobs = read_archive(path)
    for digest, blob in blobs.items():
        assert hashlib.sha256(blob).hexdigest() == digest
    [mdesc] = index["manifests"]
    assert mdesc["annotations"]["io.containerd.image.name"] == "k8s-ha-lab.local/demo:1.0"
    assert mdesc["annotations"]["org.opencontainers.image.ref.name"] == "1.0"
    manifest_blob = blobs[mdesc["digest"].split(":")[1]]
    assert _sha(manifest_blob) == mdesc["digest"] and len(manifest_blob) == mdesc["size"]
    manifest = json.loads(manifest_blob)
    config_blob = blobs[manifest["config"]["digest"].split(":")[1]]
    assert _sha(config_blob) == manifest["config"]["digest"]
    [layer_desc] = manifest["layers"]
    layer = blobs[layer_desc["digest"].split(":")[1]]
    assert _sha(layer) == layer_desc["digest"] and len(layer) == layer_desc["size"]
    config = json.loads(config_blob)
    # diff_ids are digests of the *uncompressed* layer.
    assert config["rootfs"]["diff_ids"] == [_sha(gzip.decompress(layer))]
    assert config["config"]["Entrypoint"] == ["/bin/hello"]
    assert config["config"]["User"] == "65535:65535"
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin/hello"].mode == 0o755 and members["bin/hi"].linkname == "hello"
    assert check_archive(path) == []


def test_archives_are_reproducible(tmp_path):
    first = write_archive(_spec(), tmp_path / "a.tar").read_bytes()
    second = write_archive(_spec(), tmp_path / "b.tar").read_bytes()
    assert first == second


def test_check_archive_reports_a_corrupt_blob(tmp_path):
    good = write_archive(_spec(), tmp_path / "good.tar")
    bad = tmp_path / "bad.tar"
    with tarfile.open(good) as src, tarfile.open(bad, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None
            if data is not None and member.name.startswith("blobs/") and data[:1] == b"\x1f":
                data = data[:-1] + bytes([data[-1] ^ 1])        # flip one bit of the layer
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    problems = check_archive(bad)
    assert any("does not match its sha256" in p for p in problems)


needs_gcc = pytest.mark.skipif(not shutil.which("gcc"), reason="gcc not installed")


@needs_gcc
def test_pause_image_is_one_static_binary(tmp_path):
    spec = pause_image.build_spec("k8s-ha-lab.local/pause", "3.10", tmp_path)
    assert [e.path for e in spec.entries] == ["pause"] and spec.entrypoint == ["/pause"]
    out = subprocess.run(["file", str(tmp_path / "pause")], capture_output=True, text=True)
    if out.returncode == 0:
        assert "statically linked" in out.stdout
    assert pause_image.recipe_key("3.10") != pause_image.recipe_key("3.11")


@needs_gcc
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_pause_exits_cleanly_on_stop_signals(tmp_path, sig):
    pause_image.build_spec("k8s-ha-lab.local/pause", "3.10", tmp_path)
    proc = subprocess.Popen([str(tmp_path / "pause")], stderr=subprocess.DEVNULL)
    time.sleep(0.2)
    assert proc.poll() is None            # still sleeping
    proc.send_signal(sig)
    assert proc.wait(timeout=5) == 0


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return [int(p) for p in handle.read().split()]


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


@needs_gcc
def test_pause_reaps_orphans(tmp_path):
    """As PID 1 of a PID namespace, pause inherits orphans and must reap them: no zombies."""
    pause_image.build_spec("k8s-ha-lab.local/pause", "3.10", tmp_path)
    if not shutil.which("nsenter") or subprocess.run(
            ["unshare", "--fork", "--pid", "true"], capture_output=True).returncode:
        pytest.skip("cannot create a PID namespace here")
    outer = subprocess.Popen(["unshare", "--fork", "--pid", "--mount-proc",
                              str(tmp_path / "pause")], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while not _children(outer.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        [pause_pid] = _children(outer.pid)
        # The inner sh exits at once; its sleeps are orphaned to the namespace's PID 1: pause.
        subprocess.run(["nsenter", "-t", str(pause_pid), "-p", "-m", "sh", "-c",
                        "sh -c 'sleep 0.2 & sleep 0.3 & exit 0'"], check=True, timeout=10)
        time.sleep(0.1)
        adopted = _children(pause_pid)
        assert len(adopted) == 2                # the orphans really were reparented to pause
        time.sleep(1)
        assert [(pid, _state(pid)) for pid in _children(pause_pid)] == []   # none left, no Z
        assert _state(pause_pid) in ("S", "R")
    finally:
        # unshare does not forward signals: stop pause (PID 1 there), then unshare returns.
        for pid in _children(outer.pid) if outer.poll() is None else []:
            os.kill(pid, signal.SIGTERM)
        outer.wait(timeout=10)
