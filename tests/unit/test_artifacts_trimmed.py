"""A module built without some of its packages: the copy, the dropped import, the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.artifacts.go_recipes import GO_RECIPES, Stub
from harness.artifacts.gomod_wrapper import wrapper_gomod
from harness.artifacts.trimmed_module import stubbed_copy, trimmed_copy
from harness.errors import UserError

MOD = "example.com/proj"
MAIN = f"""package main

import (
\t"fmt"

\t_ "{MOD}/pkg/backend/vxlan"
\t_ "{MOD}/pkg/backend/cloud" // registers itself
)

func main() {{ fmt.Println("hi") }}
"""


def _module(root: Path) -> Path:
    (root / "pkg/backend/vxlan").mkdir(parents=True)
    (root / "pkg/backend/cloud").mkdir(parents=True)
    (root / "go.mod").write_text(f"module {MOD}\n\ngo 1.26.0\n")
    (root / "main.go").write_text(MAIN)
    (root / "pkg/backend/vxlan/vxlan.go").write_text("package vxlan\n")
    (root / "pkg/backend/cloud/cloud.go").write_text('package cloud\n\nimport "cloud.sdk/vpc"\n')
    for path in [root, *root.rglob("*")]:       # as read-only as the module cache
        path.chmod(0o555 if path.is_dir() else 0o444)
    return root


def test_copy_leaves_out_the_package_and_its_blank_import(tmp_path):
    src = _module(tmp_path / "cache")
    dest = trimmed_copy(MOD, src, tmp_path / "w/src", ("pkg/backend/cloud",))
    assert not (dest / "pkg/backend/cloud").exists()
    assert (dest / "pkg/backend/vxlan/vxlan.go").exists()
    main = (dest / "main.go").read_text()
    assert "backend/cloud" not in main and f'_ "{MOD}/pkg/backend/vxlan"' in main
    assert (src / "pkg/backend/cloud/cloud.go").exists()       # the cache is untouched
    # idempotent: a second copy over the first gives the same tree
    trimmed_copy(MOD, src, dest, ("pkg/backend/cloud",))
    assert (dest / "main.go").read_text() == main


def test_a_package_called_by_name_is_refused(tmp_path):
    src = _module(tmp_path / "cache")
    (src / "main.go").chmod(0o644)
    (src / "main.go").write_text(MAIN.replace(f'_ "{MOD}/pkg/backend/cloud"',
                                              f'cloud "{MOD}/pkg/backend/cloud"'))
    with pytest.raises(UserError, match="main.go imports example.com/proj/pkg/backend/cloud by name"):
        trimmed_copy(MOD, src, tmp_path / "w/src", ("pkg/backend/cloud",))


def test_a_missing_package_is_refused(tmp_path):
    src = _module(tmp_path / "cache")
    with pytest.raises(UserError, match="pkg/nope to leave out does not exist"):
        trimmed_copy(MOD, src, tmp_path / "w/src", ("pkg/nope",))


def test_wrapper_points_the_module_at_the_copy():
    text = wrapper_gomod("w", {MOD: "v1.0.0"}, [], lambda path: None, {MOD: "./src"})
    assert f"\t{MOD} => ./src" in text and f"\t{MOD} v1.0.0" in text


def test_flannel_is_built_without_its_tencent_backend_only():
    assert GO_RECIPES["flannel"].without == ("pkg/backend/tencentvpc",)
    assert [name for name, r in GO_RECIPES.items() if r.without] == ["flannel", "coredns"]


def test_coredns_leaves_out_only_plugins_for_clouds_the_lab_cannot_reach():
    left_out = {path.removeprefix("plugin/") for path in GO_RECIPES["coredns"].without}
    assert left_out == {"trace", "route53", "azure", "clouddns", "nomad"}
    # what the lab's Corefile and checks use (scenarios/test_artifacts.py asks the binary)
    assert not left_out & {"kubernetes", "forward", "cache", "loop", "reload", "loadbalance",
                           "health", "ready", "prometheus", "errors", "hosts", "whoami", "log"}


DEP = "example.com/acme/v4"
REGISTRY = """package dns

import (
	"example.com/acme/v4/challenge"
	"example.com/acme/v4/providers/dns/cloudflare"
)

// NewDNSChallengeProviderByName is generated.
func NewDNSChallengeProviderByName(name string) (challenge.Provider, error) {
	return cloudflare.NewDNSProvider()
}

func helper() {}
"""
STUB = """package dns

import "example.com/acme/v4/challenge"

func NewDNSChallengeProviderByName(name string) (challenge.Provider, error) { return nil, nil }
"""


def _dependency(root: Path) -> Path:
    (root / "providers/dns/cloudflare").mkdir(parents=True)
    (root / "go.mod").write_text(f"module {DEP}\n\ngo 1.24\n")
    (root / "providers/dns/zz_gen_dns_providers.go").write_text(REGISTRY)
    (root / "providers/dns/dns_providers_test.go").write_text("package dns\n")
    (root / "providers/dns/cloudflare/cloudflare.go").write_text("package cloudflare\n")
    for path in [root, *root.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    return root


def test_a_stub_replaces_the_packages_go_files_but_not_its_tests(tmp_path):
    src = _dependency(tmp_path / "cache")
    stub = tmp_path / "stub.go"
    stub.write_text(STUB)
    dest = stubbed_copy(DEP, src, tmp_path / "w/stub-0", "providers/dns", stub)
    files = sorted(p.name for p in (dest / "providers/dns").glob("*.go"))
    assert files == ["dns_providers_test.go", "k8s_ha_lab_stub.go"]
    assert (dest / "providers/dns/k8s_ha_lab_stub.go").read_text() == STUB
    assert (dest / "go.mod").read_text().startswith(f"module {DEP}")
    assert (src / "providers/dns/zz_gen_dns_providers.go").read_text() == REGISTRY   # untouched


def test_a_stub_that_does_not_export_what_the_package_does_is_refused(tmp_path):
    src = _dependency(tmp_path / "cache")
    stub = tmp_path / "stub.go"
    stub.write_text(STUB.replace("NewDNSChallengeProviderByName", "NewByName"))
    with pytest.raises(UserError, match="exports NewByName but the package exports "
                                        "NewDNSChallengeProviderByName"):
        stubbed_copy(DEP, src, tmp_path / "w/stub-0", "providers/dns", stub)
    assert not (tmp_path / "w/stub-0").exists()


def test_a_stub_for_a_package_with_no_go_files_is_refused(tmp_path):
    src = _dependency(tmp_path / "cache")
    with pytest.raises(UserError, match="package providers/nope to stub has no Go files"):
        stubbed_copy(DEP, src, tmp_path / "w/stub-0", "providers/nope", tmp_path / "stub.go")


def test_traefik_stubs_legos_dns_providers_only():
    assert [name for name, r in GO_RECIPES.items() if r.stubs] == ["traefik"]
    (stub,) = GO_RECIPES["traefik"].stubs
    assert stub == Stub("github.com/go-acme/lego/v4", "providers/dns", "lego-providers-dns.go")
    text = stub.path.read_text()
    assert text.count("\nfunc ") == 1 and "func NewDNSChallengeProviderByName(" in text
    assert "\npackage dns\n" in text
