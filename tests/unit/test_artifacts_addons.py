"""The add-on artifacts (CoreDNS, metrics-server, toolbox): pins, recipes, image specs, offline."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from harness.artifacts import catalog
from harness.artifacts.cache import ArtifactCache
from harness.artifacts.cli import _selection
from harness.artifacts.go_recipes import GO_RECIPES
from harness.artifacts.gomod_wrapper import parse_gomod, wrapper_gomod
from harness.artifacts.images import toolbox_image
from harness.artifacts.images.builder import IMAGE_COMPONENTS, ImageBuilder, image_archive_path
from harness.artifacts.images.debroot import (RootfsBuilder, library_closure, package_of,
                                              parse_print_uris)
from harness.artifacts.images.gobinary_image import GO_BINARY_IMAGES
from harness.artifacts.images.oci import ImageSpec, LayerEntry, image_blobs, read_archive
from harness.errors import UserError
from harness.versions import load_versions
from tests.unit.conftest import require_tool  # noqa: E402

VERSIONS = load_versions()


def _config(path: Path) -> dict:
    index, blobs = read_archive(path)
    manifest = json.loads(blobs[index["manifests"][0]["digest"].split(":")[1]])
    return json.loads(blobs[manifest["config"]["digest"].split(":")[1]])


def test_versions_pin_the_add_ons_with_their_images():
    assert VERSIONS.coredns.image_ref == "k8s-ha-lab.local/coredns:v1.15.0"
    assert VERSIONS.metrics_server.image_ref == "k8s-ha-lab.local/metrics-server:v0.9.0"
    assert VERSIONS.toolbox.image_ref == "k8s-ha-lab.local/toolbox:1.0"
    assert VERSIONS.coredns.module == "github.com/coredns/coredns"
    assert VERSIONS.metrics_server.module == "sigs.k8s.io/metrics-server"
    assert (VERSIONS.toolbox.source, VERSIONS.toolbox.package) == ("debian", "busybox-static")
    # Every image component has a recipe, and the build builds them all.
    assert {"coredns", "metrics_server", "toolbox"} <= set(IMAGE_COMPONENTS)


def test_go_recipes_stamp_the_pinned_version_as_the_makefiles_do():
    coredns = GO_RECIPES["coredns"]
    assert coredns.packages == {"coredns": "github.com/coredns/coredns"}
    assert not coredns.cgo
    assert ("-X github.com/coredns/coredns/coremain.GitCommit=module-v1.15.0"
            in coredns.ldflags_for("v1.15.0"))
    ms = GO_RECIPES["metrics_server"]
    assert ms.packages == {"metrics-server": "sigs.k8s.io/metrics-server/cmd/metrics-server"}
    flags = ms.ldflags_for("v0.9.0")
    assert "-X k8s.io/client-go/pkg/version.gitVersion=v0.9.0" in flags
    assert flags.startswith("-s -w ")


def test_the_module_modules_of_recipes_match_versions_yaml():
    for name in ("coredns", "metrics_server"):
        assert GO_RECIPES[name].modules == (VERSIONS[name].module,)


def test_wrapper_for_a_module_without_replaces():
    source = parse_gomod("module sigs.k8s.io/metrics-server\n\ngo 1.26.4\n\nrequire (\n"
                         "\tk8s.io/client-go v0.35.0\n)\n")
    text = wrapper_gomod("k8s-ha-lab.local/build/metrics_server",
                         {"sigs.k8s.io/metrics-server": "v0.9.0"}, [source],
                         GO_RECIPES["metrics_server"].published("v0.9.0"))
    assert "go 1.26.4" in text and "\tsigs.k8s.io/metrics-server v0.9.0" in text
    assert "replace" not in text


def test_catalog_knows_the_add_on_binaries_and_their_version_text():
    assert catalog.binaries_of("coredns") == ["coredns"]
    assert catalog.binaries_of("metrics_server") == ["metrics-server"]
    assert catalog.binary_spec("coredns").expected_output("v1.15.0") == "CoreDNS-1.15.0"
    assert catalog.binary_spec("metrics-server").expected_output("v0.9.0") == "v0.9.0"


@pytest.mark.parametrize("only,binaries,images", [
    ("coredns", {"coredns": ["coredns"]}, ["coredns"]),
    ("metrics_server", {"metrics_server": ["metrics-server"]}, ["metrics_server"]),
    ("metrics-server", {"metrics_server": ["metrics-server"]}, ["metrics_server"]),
    ("toolbox", {}, ["toolbox"]),
    ("nginx", {}, ["nginx"]),
    ("kubelet", {"kubernetes": ["kubelet"]}, []),
])
def test_only_selects_binaries_and_the_image_made_of_them(only, binaries, images):
    assert _selection(only) == (binaries, images)


def test_everything_is_selected_binaries_before_images():
    binaries, images = _selection(None)
    assert {"coredns", "metrics_server"} <= set(binaries)
    assert images == list(IMAGE_COMPONENTS)


def test_image_archive_path_uses_the_image_name_not_the_component_name(tmp_path):
    cache = ArtifactCache(tmp_path)
    assert image_archive_path(VERSIONS.metrics_server, cache) == \
        tmp_path / "images" / "metrics-server-v0.9.0.oci.tar"
    assert image_archive_path(VERSIONS.toolbox, cache) == tmp_path / "images/toolbox-1.0.oci.tar"
    assert ImageBuilder(cache).archive_path(VERSIONS.coredns) == \
        image_archive_path(VERSIONS.coredns, cache)


def _fake_binary(cache: ArtifactCache, component, data: bytes = b"\x7fELF fake") -> Path:
    binary = GO_BINARY_IMAGES[component.name].binary
    path = cache.binary_path(component.name, component.version, binary)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o755)
    return path


def test_go_binary_image_needs_the_binary_built_first(tmp_path):
    with pytest.raises(UserError, match="artifacts build --only coredns"):
        ImageBuilder(ArtifactCache(tmp_path)).ensure(VERSIONS.coredns)


def test_metrics_server_image_runs_as_nobody_with_a_writable_tmp(tmp_path):
    cache = ArtifactCache(tmp_path)
    _fake_binary(cache, VERSIONS.metrics_server)
    result = ImageBuilder(cache).ensure(VERSIONS.metrics_server)
    assert result.status == "built" and result.ref == "k8s-ha-lab.local/metrics-server:v0.9.0"
    assert result.path == image_archive_path(VERSIONS.metrics_server, cache)
    config = _config(result.path)["config"]
    assert config["Entrypoint"] == ["/metrics-server"]
    assert config["User"] == "65534:65534"
    spec = GO_BINARY_IMAGES["metrics_server"].build_spec("x", "v0.9.0", cache.binary_path(
        "metrics_server", "v0.9.0", "metrics-server"))
    entries = {e.path: e for e in spec.entries}
    assert entries["tmp"].kind == "dir" and entries["tmp"].mode == 0o1777
    assert entries["metrics-server"].mode == 0o755
    assert "nobody:x:65534:65534" in entries["etc/passwd"].data.decode()


def test_coredns_image_sets_no_user_and_is_rebuilt_when_the_binary_changes(tmp_path):
    cache = ArtifactCache(tmp_path)
    _fake_binary(cache, VERSIONS.coredns, b"first")
    builder = ImageBuilder(cache)
    first = builder.ensure(VERSIONS.coredns)
    config = _config(first.path)["config"]
    assert config["Entrypoint"] == ["/coredns"] and "User" not in config
    assert builder.ensure(VERSIONS.coredns).status == "cached"
    _fake_binary(cache, VERSIONS.coredns, b"second")
    assert builder.ensure(VERSIONS.coredns).status == "built"


def test_an_image_without_entrypoint_has_only_cmd():
    index, blobs = image_blobs(ImageSpec(name="x/toolbox", tag="1.0", entrypoint=[], cmd=["sh"],
                                         entries=[LayerEntry("bin", kind="dir")]))
    configs = [json.loads(b) for b in blobs.values() if b.startswith(b'{"architecture"')]
    [config] = configs
    assert config["config"]["Cmd"] == ["sh"] and "Entrypoint" not in config["config"]


def test_busybox_applets_become_links_unless_a_real_program_has_the_name():
    applets = [f"bin/{a}" for a in toolbox_image.REQUIRED_APPLETS] + ["usr/bin/nslookup",
                                                                      "bin/busybox"]
    links = toolbox_image.applet_links(applets, toolbox_image.PROGRAMS)
    assert links["bin/sh"] == "/bin/busybox" and links["bin/wget"] == "/bin/busybox"
    assert "usr/bin/nslookup" not in links          # BIND's nslookup is the real one
    assert "bin/busybox" not in links


def test_a_busybox_without_a_required_applet_is_refused():
    with pytest.raises(UserError, match="httpd"):
        toolbox_image.applet_links(["bin/sh", "usr/bin/wget"], {})


def test_toolbox_recipe_names_the_tools_and_the_nss_config():
    assert "hosts: files dns" in toolbox_image.NSSWITCH
    assert set(toolbox_image.PROGRAMS) == {"usr/bin/dig", "usr/bin/host", "usr/bin/nslookup",
                                           "usr/bin/getent"}
    assert {"busybox-static", "bind9-dnsutils", "libc-bin"} <= set(toolbox_image.PACKAGES)
    assert len(set(toolbox_image.PACKAGES)) == len(toolbox_image.PACKAGES)


def test_print_uris_parsing_and_package_names():
    out = ("'http://deb.example/pool/b/busybox/busybox-static_1%3a1.35.0-4_amd64.deb' "
           "busybox-static_1%3a1.35.0-4_amd64.deb 123 SHA256:" + "a" * 64 + "\n"
           "garbage line\n")
    assert parse_print_uris(out) == [("busybox-static_1%3a1.35.0-4_amd64.deb", "a" * 64)]
    assert package_of("busybox-static_1%3a1.35.0-4_amd64.deb") == "busybox-static"


def _host_root(tmp_path: Path, program: str) -> Path:
    """A fake unpacked root holding a host program and the host's libc and loader."""
    root = tmp_path / "rootfs"
    for rel in (program, "lib/x86_64-linux-gnu/libc.so.6", "lib64/ld-linux-x86-64.so.2",
                "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"):
        src = Path("/") / rel
        if not src.exists():
            pytest.skip(f"host lacks /{rel}")
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src.resolve(), dest)
    return root


def test_rootfs_builder_adds_a_program_with_its_libraries_and_parents(tmp_path):
    require_tool("readelf", why="binutils; .ci/artifacts.sh installs it")
    root = _host_root(tmp_path, "usr/bin/getent")
    tree = RootfsBuilder(root, "test image")
    tree.add_program("usr/bin/getent")
    tree.add_symlink("bin/sh", "/bin/busybox")
    tree.add_dir("tmp", 0o1777)
    entries = {e.path: e for e in tree.entries()}
    assert entries["usr/bin/getent"].mode == 0o755
    assert "lib/x86_64-linux-gnu/libc.so.6" in entries
    assert "lib64/ld-linux-x86-64.so.2" in entries
    assert entries["usr"].kind == "dir" and entries["bin"].kind == "dir"
    assert entries["tmp"].mode == 0o1777
    assert library_closure(root, root / "usr/bin/getent")


def test_a_library_missing_from_the_packages_is_named(tmp_path):
    require_tool("readelf", why="binutils; .ci/artifacts.sh installs it")
    root = _host_root(tmp_path, "usr/bin/getent")
    (root / "lib/x86_64-linux-gnu/libc.so.6").unlink()
    with pytest.raises(UserError, match="libc.so.6"):
        RootfsBuilder(root, "test image").add_program("usr/bin/getent")


def test_cli_namespace_fields_still_match(tmp_path):
    # The scenario suite builds with a bare Namespace; the fields the CLI reads must exist.
    args = argparse.Namespace(action="build", source=None, dir=None, only="toolbox",
                              force=False, runtime=False)
    assert _selection(args.only) == ({}, ["toolbox"])


def test_metrics_server_start_check_wants_to_reach_the_cluster_config():
    from harness.artifacts.containerd_check import _check_metrics_server_start
    _check_metrics_server_start("ms", "Error: unable to load in-cluster configuration, "
                                      "KUBERNETES_SERVICE_HOST must be defined")
    with pytest.raises(UserError, match="permission denied"):
        _check_metrics_server_start("ms", "panic: error creating self-signed certificates: "
                                          "mkdir apiserver.local.config: permission denied")


def test_apt_is_asked_once_per_package_list_in_a_process(tmp_path, monkeypatch):
    from harness.artifacts.images import debroot

    calls = tmp_path / "calls"
    apt = tmp_path / "bin" / "apt-get"
    apt.parent.mkdir()
    # answers `download --print-uris P...` with one .deb per package, and counts its runs
    apt.write_text(f"""#!/bin/sh
echo run >> {calls}
shift 2
for p in "$@"; do echo "'http://deb.example/$p.deb' ${{p}}_1_amd64.deb 1 SHA256:{"b" * 64}"; done
""")
    apt.chmod(0o755)
    monkeypatch.setenv("PATH", f"{apt.parent}:/usr/bin:/bin")
    monkeypatch.setattr(debroot, "_PINNED", {})

    first = debroot.DebSet("image a", ("bash", "libc6")).pinned_debs(tmp_path / "s1")
    again = debroot.DebSet("image b", ("bash", "libc6")).pinned_debs(tmp_path / "s2")
    assert first == again == [("bash_1_amd64.deb", "b" * 64), ("libc6_1_amd64.deb", "b" * 64)]
    assert calls.read_text().count("run") == 1
    debroot.DebSet("image c", ("busybox-static",)).pinned_debs(tmp_path / "s3")
    assert calls.read_text().count("run") == 2
    first.clear()                      # a caller's list is its own copy
    assert len(debroot.DebSet("image a", ("bash", "libc6")).pinned_debs(tmp_path / "s1")) == 2
