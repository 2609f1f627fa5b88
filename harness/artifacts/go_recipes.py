"""How each Go-built component is compiled: modules, main packages, tags and version ldflags.

The flags follow each project's own release build (Kubernetes: hack/lib/golang.sh and
hack/lib/version.sh; etcd: scripts/build-binary; flannel, CoreDNS and metrics-server: their
Makefiles), minus what needs their git checkout, so `--version` prints the pinned version as a
release binary would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.artifacts.gomod_wrapper import (PublishedVersion, kubernetes_staging_version,
                                             same_version_under)


@dataclass(frozen=True)
class Stub:
    """A dependency's package built from one small file instead of its own: see
    trimmed_module.py. The module is taken at the version the recipe's first module requires."""
    module: str       # e.g. github.com/go-acme/lego/v4
    package: str      # relative to the module root, e.g. providers/dns
    file: str         # under harness/artifacts/files/

    @property
    def path(self) -> Path:
        return Path(__file__).parent / "files" / self.file


@dataclass(frozen=True)
class GoRecipe:
    component: str
    # modules the wrapper requires, all at the component's version
    modules: tuple[str, ...]
    # binary -> main package
    packages: dict[str, str]
    tags: tuple[str, ...]
    ldflags: Callable[[str], list[str]]
    published: Callable[[str], PublishedVersion]
    # cgo: only where a package has no pure-Go build (flannel's udp backend), then linked
    # -static so the binary still needs nothing from the node.
    cgo: bool = False
    # packages (relative to the first module) left out of the build: see trimmed_module.py
    without: tuple[str, ...] = ()
    # dependencies' packages replaced by a stub file (trimmed_module.py)
    stubs: tuple[Stub, ...] = ()

    def ldflags_for(self, version: str) -> str:
        # -s -w: no symbol table or DWARF, as in the projects' release builds (smaller binaries).
        static = ["-extldflags=-static"] if self.cgo else []
        return " ".join(["-s", "-w", *static, *self.ldflags(version)])


def _kubernetes_ldflags(version: str) -> list[str]:
    major, minor = version.lstrip("v").split(".")[:2]
    values = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        # No git checkout here; a fixed date keeps the binary reproducible.
        "buildDate": "1970-01-01T00:00:00Z",
    }
    flags = []
    for key, value in values.items():
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
            flags.append(f"-X {package}.{key}={value}")
    return flags


def _etcd_ldflags(version: str) -> list[str]:
    # The version itself is a constant in go.etcd.io/etcd/api/v3/version; only the git SHA is
    # stamped by etcd's build script, and we have no checkout to take it from.
    return [f"-X go.etcd.io/etcd/api/v3/version.GitSHA=module-{version}"]


def _flannel_ldflags(version: str) -> list[str]:
    return [f"-X github.com/flannel-io/flannel/pkg/version.Version={version}"]


def _coredns_ldflags(version: str) -> list[str]:
    # CoreDNS's Makefile stamps only coremain.GitCommit; the version is the constant
    # coremain.CoreVersion ("1.15.0"), printed by `coredns -version` as "CoreDNS-1.15.0".
    return [f"-X github.com/coredns/coredns/coremain.GitCommit=module-{version}"]


def _metrics_server_ldflags(version: str) -> list[str]:
    # metrics-server's Makefile stamps k8s.io/client-go/pkg/version (not component-base):
    # `metrics-server --version` prints version.Get().GitVersion of client-go.
    package = "k8s.io/client-go/pkg/version"
    return [f"-X {package}.gitVersion={version}",
            f"-X {package}.gitCommit=module-{version}",
            f"-X {package}.gitTreeState=clean",
            f"-X {package}.buildDate=1970-01-01T00:00:00Z"]


def _victorialogs_ldflags(version: str) -> list[str]:
    # The Makefile stamps lib/buildinfo.Version as <app>-<date>-tags-<tag>-<n>-g<sha>; the UI
    # and /metrics take the vX.Y.Z out of it. No checkout here: a fixed date and "module".
    return [f"-X github.com/VictoriaMetrics/VictoriaMetrics/lib/buildinfo.Version="
            f"victoria-logs-19700101-000000-tags-{version}-0-module"]


def _registry_ldflags(version: str) -> list[str]:
    # Distribution's Makefile stamps version.version, revision and mainpkg; `registry --version`
    # prints "<argv0> github.com/distribution/distribution/v3 v3.1.2".
    package = "github.com/distribution/distribution/v3"
    return [f"-X {package}/version.version={version}", f"-X {package}/version.revision=module-{version}",
            f"-X {package}/version.mainpkg={package}"]


def _crane_ldflags(version: str) -> list[str]:
    # goreleaser's -X of cmd/crane/cmd.Version; `crane version` prints it alone.
    return [f"-X github.com/google/go-containerregistry/cmd/crane/cmd.Version={version}"]


def _traefik_ldflags(version: str) -> list[str]:
    # traefik's release build (.goreleaser.yml.tmpl, CODENAME from .github/workflows/release.yaml)
    # stamps pkg/version: Version is goreleaser's {{.Version}} (the tag without "v"), BuildDate
    # its {{.Date}}; no checkout here, so a fixed date. `traefik version` prints them.
    package = "github.com/traefik/traefik/v3/pkg/version"
    return [f"-X {package}.Version={version.lstrip('v')}",
            f"-X {package}.Codename=ramequin",
            f"-X {package}.BuildDate=1970-01-01T00:00:00Z"]


KUBE_CMDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet",
             "kube-proxy", "kubectl")

GO_RECIPES: dict[str, GoRecipe] = {
    "kubernetes": GoRecipe(
        component="kubernetes",
        modules=("k8s.io/kubernetes",),
        packages={cmd: f"k8s.io/kubernetes/cmd/{cmd}" for cmd in KUBE_CMDS},
        # selinux,notest,grpcnotrace: the tags of Kubernetes' own non-debug release build.
        tags=("selinux", "notest", "grpcnotrace"),
        ldflags=_kubernetes_ldflags,
        published=kubernetes_staging_version,
    ),
    # The kubeadm baseline (harness/kubeadm_baseline/, a benchmark, not a product path): kubeadm
    # from the same module, version, tags and ldflags as the cluster binaries above, under its
    # own component so `artifacts build` without --only never builds it (catalog.py).
    "kubeadm": GoRecipe(
        component="kubeadm",
        modules=("k8s.io/kubernetes",),
        packages={"kubeadm": "k8s.io/kubernetes/cmd/kubeadm"},
        tags=("selinux", "notest", "grpcnotrace"),
        ldflags=_kubernetes_ldflags,
        published=kubernetes_staging_version,
    ),
    "etcd": GoRecipe(
        component="etcd",
        # The root module go.etcd.io/etcd/v3 is not served for v3.6.x; the etcd main package is
        # the server module's root, etcdctl and etcdutl (snapshot restore, since v3.6) their own.
        modules=("go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/etcdctl/v3", "go.etcd.io/etcd/etcdutl/v3"),
        packages={"etcd": "go.etcd.io/etcd/server/v3", "etcdctl": "go.etcd.io/etcd/etcdctl/v3",
                  "etcdutl": "go.etcd.io/etcd/etcdutl/v3"},
        tags=(),
        ldflags=_etcd_ldflags,
        published=lambda version: same_version_under("go.etcd.io/etcd/", version),
    ),
    "flannel": GoRecipe(
        component="flannel",
        modules=("github.com/flannel-io/flannel",),
        packages={"flanneld": "github.com/flannel-io/flannel"},
        tags=(),
        ldflags=_flannel_ldflags,
        published=lambda version: (lambda path: None),
        # pkg/backend/udp on amd64 calls C (proxy.c): it does not compile with CGO_ENABLED=0.
        cgo=True,
        # Since v0.28 main.go links the Tencent Cloud backend, whose SDK module (vpc) the proxy
        # refuses; the lab runs vxlan. Everything else is the published source.
        without=("pkg/backend/tencentvpc",),
    ),
    "coredns": GoRecipe(
        component="coredns",
        # The main package is the module root; core/plugin/zplugin.go (the plugin list from
        # plugin.cfg) is generated and committed upstream, so no `go generate` is needed.
        modules=("github.com/coredns/coredns",),
        packages={"coredns": "github.com/coredns/coredns"},
        tags=(),
        ldflags=_coredns_ldflags,
        published=lambda version: (lambda path: None),
        # Plugins for clouds and services the offline lab cannot reach (Datadog/Zipkin tracing,
        # Route 53, Azure DNS, Google Cloud DNS, Nomad), left out as CoreDNS's own plugin.cfg
        # allows: a quarter of the packages its build compiled (1764 of 7732 Go files).
        without=("plugin/trace", "plugin/route53", "plugin/azure", "plugin/clouddns",
                 "plugin/nomad"),
    ),
    "metrics_server": GoRecipe(
        component="metrics_server",
        modules=("sigs.k8s.io/metrics-server",),
        packages={"metrics-server": "sigs.k8s.io/metrics-server/cmd/metrics-server"},
        tags=(),
        ldflags=_metrics_server_ldflags,
        published=lambda version: (lambda path: None),
    ),
    "victorialogs": GoRecipe(
        component="victorialogs",
        modules=("github.com/VictoriaMetrics/VictoriaLogs",),
        # vlagent's kubernetescollector and filecollector are in the same main package.
        packages={"victoria-logs": "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs",
                  "vlagent": "github.com/VictoriaMetrics/VictoriaLogs/app/vlagent"},
        # CGO_ENABLED=0 is upstream's "-pure" build: zstd in Go instead of gozstd's C.
        tags=(),
        ldflags=_victorialogs_ldflags,
        published=lambda version: (lambda path: None),
    ),
    "registry": GoRecipe(
        component="registry",
        modules=("github.com/distribution/distribution/v3",),
        packages={"registry": "github.com/distribution/distribution/v3/cmd/registry"},
        tags=(),
        ldflags=_registry_ldflags,
        published=lambda version: (lambda path: None),
    ),
    "crane": GoRecipe(
        component="crane",
        modules=("github.com/google/go-containerregistry",),
        packages={"crane": "github.com/google/go-containerregistry/cmd/crane"},
        tags=(),
        ldflags=_crane_ldflags,
        published=lambda version: (lambda path: None),
    ),
    "traefik": GoRecipe(
        component="traefik",
        modules=("github.com/traefik/traefik/v3",),
        # webui/static holds only a placeholder in the module (the dashboard is built by yarn in
        # traefik's release): the binary embeds it, the lab does not enable the dashboard.
        packages={"traefik": "github.com/traefik/traefik/v3/cmd/traefik"},
        tags=(),
        ldflags=_traefik_ldflags,
        published=lambda version: (lambda path: None),
        # lego's ACME DNS-01 providers (about 180 cloud DNS SDKs): the lab has no public DNS.
        stubs=(Stub("github.com/go-acme/lego/v4", "providers/dns", "lego-providers-dns.go"),),
    ),
}
