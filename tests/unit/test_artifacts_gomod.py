"""The gomod source without compiling: wrapper go.mod generation and go's failure modes."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest

from harness.artifacts.go_recipes import GO_RECIPES
from harness.artifacts.gomod_wrapper import (kubernetes_staging_version, parse_gomod,
                                             same_version_under, wrapper_gomod)
from harness.artifacts.gotool import GoRunner, ProxyUnreachable, find_go, go_env
from harness.artifacts.sources.gomod import GoModSource, default_exe_name, one_build_groups
from harness.errors import UserError
from harness.versions import Component

KUBERNETES_GOMOD = """\
// This is a generated file. Do not edit directly.

module k8s.io/kubernetes

go 1.25.0

godebug default=go1.25

require (
	github.com/blang/semver/v4 v4.0.0
	k8s.io/api v0.0.0
	k8s.io/client-go v0.0.0 // indirect
)

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/client-go => ./staging/src/k8s.io/client-go
	k8s.io/kubelet => ./staging/src/k8s.io/kubelet // comment
	github.com/example/fork => github.com/example/fork v1.2.3
)
"""

ETCD_SERVER_GOMOD = """\
module go.etcd.io/etcd/server/v3

go 1.26.0

toolchain go1.26.10

replace (
	go.etcd.io/etcd/api/v3 => ../api
	go.etcd.io/etcd/client/v3 => ../client/v3
)

// Bad imports are sometimes causing attempts to pull that code.
replace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY
"""


def test_parse_reads_module_go_godebug_and_replaces():
    mod = parse_gomod(KUBERNETES_GOMOD)
    assert (mod.module, mod.go, mod.godebug) == ("k8s.io/kubernetes", "1.25.0", ["default=go1.25"])
    assert mod.replaces["k8s.io/api"] == ("./staging/src/k8s.io/api", "")
    assert mod.replaces["github.com/example/fork"] == ("github.com/example/fork", "v1.2.3")
    assert set(mod.local_replaces()) == {"k8s.io/api", "k8s.io/client-go", "k8s.io/kubelet"}


def test_kubernetes_wrapper_replaces_staging_with_published_versions():
    text = wrapper_gomod("k8s-ha-lab.local/build/kubernetes", {"k8s.io/kubernetes": "v1.35.4"},
                         [parse_gomod(KUBERNETES_GOMOD)], kubernetes_staging_version("v1.35.4"))
    assert text.startswith("module k8s-ha-lab.local/build/kubernetes\n\ngo 1.25.0\n")
    assert "godebug default=go1.25\n" in text
    assert "\tk8s.io/kubernetes v1.35.4\n" in text
    for staging in ("api", "client-go", "kubelet"):
        assert f"\tk8s.io/{staging} => k8s.io/{staging} v0.35.4\n" in text
    assert "\tgithub.com/example/fork => github.com/example/fork v1.2.3\n" in text
    assert "./staging" not in text
    # What go itself would accept: parse our own output back.
    again = parse_gomod(text)
    assert again.replaces["k8s.io/api"] == ("k8s.io/api", "v0.35.4")


def test_etcd_wrapper_maps_sibling_modules_and_drops_forbidden_ones():
    text = wrapper_gomod("w", {"go.etcd.io/etcd/server/v3": "v3.6.16"},
                         [parse_gomod(ETCD_SERVER_GOMOD)],
                         same_version_under("go.etcd.io/etcd/", "v3.6.16"))
    assert "go 1.26.0" in text
    assert "\tgo.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 v3.6.16\n" in text
    assert "FORBIDDEN" not in text
    # The replace to an unversioned local dir of the main repo (go.etcd.io/etcd) is dropped:
    assert "go.etcd.io/etcd =>" not in text


def test_recipes_set_version_ldflags():
    kube = GO_RECIPES["kubernetes"].ldflags_for("v1.35.4")
    assert "-X k8s.io/component-base/version.gitVersion=v1.35.4" in kube
    assert "-X k8s.io/component-base/version.gitMinor=35" in kube
    assert "-X k8s.io/client-go/pkg/version.gitMajor=1" in kube
    assert "-X github.com/flannel-io/flannel/pkg/version.Version=v0.28.10" in \
        GO_RECIPES["flannel"].ldflags_for("v0.28.10")
    assert go_env()["CGO_ENABLED"] == "0"


def _fake_go(tmp_path: Path, script: str) -> str:
    go = tmp_path / "go"
    go.write_text("#!/bin/sh\n" + script)
    go.chmod(go.stat().st_mode | stat.S_IEXEC)
    return str(go)


def test_missing_go_is_a_user_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("harness.artifacts.gotool.GO_FALLBACKS", ())
    with pytest.raises(UserError, match="Go toolchain missing"):
        find_go()


def test_unreachable_proxy_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(GoRunner, "network_attempts", 2)
    monkeypatch.setattr(GoRunner, "network_wait_max_s", 0.01)
    go = _fake_go(tmp_path, "echo 'go: k8s.io/kubernetes@v1.35.4: Get \"https://goproxy.invalid/"
                            "k8s.io/kubernetes/@v/v1.35.4.info\": dial tcp: lookup "
                            "goproxy.invalid: no such host'; echo try >> \"$0.count\"; exit 1\n")
    runner = GoRunner(go, tmp_path, tmp_path / "log", {"GOPROXY": "https://goproxy.invalid"})
    with pytest.raises(ProxyUnreachable, match="Go module proxy unreachable"):
        runner.run_network(["mod", "download", "x@v1"], "kubernetes v1.35.4")
    assert Path(go + ".count").read_text().count("try") == 2     # retried at the network edge


def test_build_failure_names_component_command_and_tail(tmp_path):
    lines = "".join(f"echo 'line {i}'; " for i in range(20))
    go = _fake_go(tmp_path, f"""
case "$1" in
  mod) printf '{{"Path":"x","GoMod":"%s","Dir":"%s"}}' "{tmp_path}/src.mod" "{tmp_path}/mod"; exit 0;;
  get) exit 0;;
  build) {lines} echo 'pkg/foo.go:3: undefined: Bar'; exit 1;;
esac
""")
    (tmp_path / "src.mod").write_text("module github.com/flannel-io/flannel\n\ngo 1.23\n")
    (tmp_path / "mod/pkg/backend/tencentvpc").mkdir(parents=True)
    (tmp_path / "mod/main.go").write_text(
        'package main\n\nimport _ "github.com/flannel-io/flannel/pkg/backend/tencentvpc"\n')
    source = GoModSource(log_dir=tmp_path / "logs", go=go)
    flannel = Component("flannel", "v0.28.10", "gomod")
    with pytest.raises(UserError) as caught:
        source.fetch(flannel, ["flanneld"], tmp_path / "work")
    message = str(caught.value)
    assert "build of flanneld (flannel v0.28.10)" in message
    assert "go build -trimpath" in message
    assert "undefined: Bar" in message and "line 0 " not in message
    assert "\n" not in message
    assert (tmp_path / "logs" / "flannel@v0.28.10.log").read_text().count("line 0") == 1
    wrapper = (tmp_path / "work" / "wrapper" / "go.mod").read_text()
    assert "\tgithub.com/flannel-io/flannel v0.28.10\n" in wrapper
    # built from a copy without the Tencent Cloud backend (its SDK module is not served)
    assert "\tgithub.com/flannel-io/flannel => ./src\n" in wrapper
    assert "tencentvpc" not in (tmp_path / "work/wrapper/src/main.go").read_text()


def test_describe_names_the_module(tmp_path):
    lines = GoModSource().describe(Component("etcd", "v3.6.16", "gomod"), ["etcd", "etcdctl"])
    assert "go.etcd.io/etcd/server/v3@v3.6.16" in lines[0]
    assert "go.etcd.io/etcd/etcdctl/v3@v3.6.16" in lines[1]
    assert os.path.basename(lines[0].split()[2]) == "v3"


def test_go_env_asks_the_compiler_for_no_dwarf_unless_the_caller_set_gcflags(monkeypatch):
    monkeypatch.setenv("GOFLAGS", "-p=2")
    assert go_env()["GOFLAGS"].split() == ["-p=2", "-mod=mod", "-gcflags=all=-dwarf=false"]
    monkeypatch.setenv("GOFLAGS", "-gcflags=all=-N")
    assert go_env()["GOFLAGS"].split() == ["-gcflags=all=-N", "-mod=mod"]


def _fake_proxy_go(tmp_path: Path, modules: dict[str, tuple[str, dict[str, str]]]) -> str:
    """A go whose `mod download -json M@V` answers from `modules` (M@V -> (go.mod, files))."""
    cases = []
    for at, (gomod, files) in modules.items():
        root = tmp_path / "proxy" / at
        for rel, text in {"go.mod": gomod, **files}.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        cases.append(f'  "{at}") printf \'{{"GoMod":"%s","Dir":"%s"}}\' "{root}/go.mod" "{root}";;')
    return _fake_go(tmp_path, 'case "$4" in\n' + "\n".join(cases) + "\n  *) exit 1;;\nesac\n")


def test_the_wrapper_points_a_stubbed_module_at_its_copy_at_the_required_version(tmp_path):
    lego, dns = "github.com/go-acme/lego/v4", "providers/dns/zz_gen_dns_providers.go"
    go = _fake_proxy_go(tmp_path, {
        "github.com/traefik/traefik/v3@v3.6.12": (
            f"module github.com/traefik/traefik/v3\n\ngo 1.25.0\n\nrequire (\n\t{lego} v4.33.0\n)\n", {}),
        f"{lego}@v4.33.0": (f"module {lego}\n\ngo 1.24.0\n", {
            dns: "package dns\n\nfunc NewDNSChallengeProviderByName(name string) {}\n"}),
    })
    runner = GoRunner(go, tmp_path / "wrapper", tmp_path / "log", {})
    runner.workdir.mkdir()
    GoModSource(go=go).write_wrapper(GO_RECIPES["traefik"], "v3.6.12", runner, "traefik v3.6.12")
    text = (tmp_path / "wrapper/go.mod").read_text()
    assert f"\t{lego} => ./stub-0\n" in text
    stub_dir = tmp_path / "wrapper/stub-0/providers/dns"
    assert sorted(p.name for p in stub_dir.iterdir()) == ["k8s_ha_lab_stub.go"]
    assert "built by k8s-ha-lab without ACME DNS-01" in (stub_dir / "k8s_ha_lab_stub.go").read_text()


def test_a_stub_of_a_module_the_recipe_does_not_require_is_refused(tmp_path):
    go = _fake_proxy_go(tmp_path, {"github.com/traefik/traefik/v3@v3.6.12": (
        "module github.com/traefik/traefik/v3\n\ngo 1.25.0\n", {})})
    runner = GoRunner(go, tmp_path / "wrapper", tmp_path / "log", {})
    runner.workdir.mkdir()
    with pytest.raises(UserError, match="traefik v3.6.12: github.com/traefik/traefik/v3 does not "
                                        "require github.com/go-acme/lego/v4"):
        GoModSource(go=go).write_wrapper(GO_RECIPES["traefik"], "v3.6.12", runner, "traefik v3.6.12")


@pytest.mark.parametrize("package, name", [
    ("k8s.io/kubernetes/cmd/kube-apiserver", "kube-apiserver"),
    ("go.etcd.io/etcd/server/v3", "server"),          # a major version names the element before it
    ("example.com/tool/v10", "tool"),
    ("example.com/tool/v1", "v1"),                    # v0 and v1 are no major-version suffix
    ("example.com/tool/v05", "v05"),
    ("github.com/coredns/coredns", "coredns"),
])
def test_default_exe_name_follows_go(package, name):
    assert default_exe_name(package) == name


def test_binaries_whose_outputs_would_clash_get_their_own_go_build():
    recipe = GO_RECIPES["etcd"]
    clash = dataclasses.replace(recipe, packages={**recipe.packages, "etcd2": "example.com/other/server"})
    assert one_build_groups(clash, ["etcd", "etcdctl", "etcd2", "etcdutl"]) == [
        ["etcd", "etcdctl", "etcdutl"], ["etcd2"]]
    assert one_build_groups(recipe, ["etcdutl"]) == [["etcdutl"]]


def test_a_components_binaries_come_from_one_go_build_renamed_to_their_names(tmp_path):
    go = _fake_go(tmp_path, f"""
case "$1" in
  mod) printf '{{"Path":"x","GoMod":"%s","Dir":"%s"}}' "{tmp_path}/src.mod" "{tmp_path}/mod"; exit 0;;
  get) exit 0;;
  build) while [ "$1" != "-o" ]; do shift; done; dir=$2; shift 2; echo "$@" >> "$0.builds"
         for p in "$@"; do n=${{p##*/}}; case $n in v3) n=$(basename "$(dirname "$p")");; esac
           echo "built from $p" > "$dir$n"; done;;
esac
""")
    (tmp_path / "src.mod").write_text("module go.etcd.io/etcd/server/v3\n\ngo 1.23\n")
    (tmp_path / "mod").mkdir()
    ready = []
    built = GoModSource(log_dir=tmp_path / "logs", go=go).fetch(
        Component("etcd", "v3.6.16", "gomod"), ["etcd", "etcdctl", "etcdutl"], tmp_path / "work",
        lambda binary, path, seconds: ready.append((binary, seconds)))
    assert Path(go + ".builds").read_text().splitlines() == [
        "go.etcd.io/etcd/server/v3 go.etcd.io/etcd/etcdctl/v3 go.etcd.io/etcd/etcdutl/v3"]
    assert built["etcd"].read_text() == "built from go.etcd.io/etcd/server/v3\n"
    assert {b: p.name for b, p in built.items()} == {"etcd": "etcd", "etcdctl": "etcdctl", "etcdutl": "etcdutl"}
    assert [b for b, _ in ready] == ["etcd", "etcdctl", "etcdutl"] and len({s for _, s in ready}) == 1
