"""Integration: the real artifact cache (built here if absent) holds what versions.yaml pins.

Every binary must report the pinned version, and the image archives must import into a real
containerd where, with real runc, pause stays up and nginx serves its welcome page over HTTP;
metrics-server prints its version from its image, the toolbox runs dig, busybox and getent,
and CoreDNS answers DNS queries made with the toolbox's dig, host, nslookup and getent.
For now the containerd runs on this host (a private instance, own socket under /tmp); the lab
will later run the same check inside a node machine.
"""

from __future__ import annotations

import argparse
import shutil

import pytest

from harness.artifacts import catalog
from harness.artifacts.cache import ArtifactCache
from harness.artifacts.cli import run as artifacts_run
from harness.artifacts.containerd_check import check_addon_images_run, check_images_run
from harness.artifacts.images.builder import IMAGE_COMPONENTS, ImageBuilder, image_archive_path
from harness.artifacts.images.oci import check_archive
from harness.artifacts.verify import check_binary_version
from harness.versions import load_versions

pytestmark = pytest.mark.artifacts

VERSIONS = load_versions()
ALL_BINARIES = [(component, binary) for component in catalog.BINARY_COMPONENTS
                for binary in catalog.binaries_of(component)]


def _args(only: str) -> argparse.Namespace:
    return argparse.Namespace(action="build", source=None, dir=None, only=only, force=False,
                              runtime=False)


@pytest.fixture(scope="module")
def cache() -> ArtifactCache:
    return ArtifactCache()


@pytest.fixture(scope="module")
def built(cache) -> ArtifactCache:
    """Builds whatever the cache lacks (a cold cache takes ~30 min on 2 cores)."""
    # --only <component> builds its binaries first, then the image made of them (coredns).
    for component in dict.fromkeys((*catalog.BINARY_COMPONENTS, *IMAGE_COMPONENTS)):
        artifacts_run(_args(component), VERSIONS, cache)
    return cache


@pytest.mark.parametrize("component,binary", ALL_BINARIES,
                         ids=[b for _c, b in ALL_BINARIES])
def test_binary_reports_pinned_version(built, component, binary):
    version = VERSIONS[component].version
    check = check_binary_version(binary, built.binary_path(component, version, binary), version)
    assert check.ok, f"{binary}: expected {check.expected!r} in: {check.output[:300]}"


@pytest.mark.parametrize("component", catalog.BINARY_COMPONENTS)
def test_binaries_are_static(built, component):
    """CGO_ENABLED=0: the nodes need no matching libc. `file` says so; skip if absent."""
    if not shutil.which("file"):
        pytest.skip("`file` not installed")
    import subprocess
    version = VERSIONS[component].version
    for binary in catalog.binaries_of(component):
        out = subprocess.run(["file", "-L", str(built.binary_path(component, version, binary))],
                             capture_output=True, text=True).stdout
        assert "statically linked" in out, out


@pytest.mark.parametrize("name", IMAGE_COMPONENTS)
def test_image_archive_is_valid(built, name):
    path = ImageBuilder(built).archive_path(VERSIONS[name])
    assert path == image_archive_path(VERSIONS[name], built)
    assert check_archive(path) == []


def test_coredns_has_the_plugins_a_cluster_dns_needs(built):
    """The Corefile of a cluster DNS uses these; `coredns -plugins` lists what is compiled in."""
    import subprocess
    version = VERSIONS["coredns"].version
    out = subprocess.run([str(built.binary_path("coredns", version, "coredns")), "-plugins"],
                         capture_output=True, text=True, timeout=30).stdout
    for plugin in ("kubernetes", "forward", "cache", "loop", "reload", "loadbalance", "health",
                   "ready", "prometheus", "errors", "hosts", "whoami", "log"):
        assert plugin in out.split(), plugin


def test_images_run_in_real_containerd(built):
    missing = [t for t in ("containerd", "ctr", "runc", "ip") if not shutil.which(t)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian containerd, runc, iproute2)")
    builder = ImageBuilder(built)
    pause, nginx = VERSIONS["pause"], VERSIONS["nginx"]
    passed = check_images_run((pause.image_ref, builder.archive_path(pause)),
                              (nginx.image_ref, builder.archive_path(nginx)))
    assert any("stays up" in line for line in passed)
    assert any("Welcome to nginx!" in line for line in passed)


def test_addon_images_run_in_real_containerd(built):
    missing = [t for t in ("containerd", "ctr", "runc", "ip") if not shutil.which(t)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian containerd, runc, iproute2)")
    coredns, ms, toolbox = (VERSIONS[n] for n in ("coredns", "metrics_server", "toolbox"))
    passed = check_addon_images_run(
        (coredns.image_ref, image_archive_path(coredns, built)),
        (ms.image_ref, image_archive_path(ms, built)),
        (toolbox.image_ref, image_archive_path(toolbox, built)),
        {"coredns": coredns.version, "metrics_server": ms.version})
    assert f"{ms.image_ref} --version: {ms.version}" in passed
    assert any("runs DiG 9." in line for line in passed)
    assert any("to dig, host, nslookup and getent" in line for line in passed)
    assert any("CGI" in line for line in passed)
