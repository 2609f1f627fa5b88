"""Which binaries make up each component, and how each one reports its version.

This is the one list of binaries the sources, the cache, the CLI and the tests agree on. How a
binary is *obtained* is each source's business (gomod recipes, release URLs, a local dir).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import UserError


@dataclass(frozen=True)
class BinarySpec:
    name: str
    version_args: tuple[str, ...]
    # The text `<binary> <version_args>` must print; {v} is the version without a leading "v".
    version_text: str

    def expected_output(self, version: str) -> str:
        return self.version_text.format(v=version.lstrip("v"))


KUBE_VERSION_TEXT = "Kubernetes v{v}"

COMPONENT_BINARIES: dict[str, tuple[BinarySpec, ...]] = {
    "kubernetes": (
        BinarySpec("kube-apiserver", ("--version",), KUBE_VERSION_TEXT),
        BinarySpec("kube-controller-manager", ("--version",), KUBE_VERSION_TEXT),
        BinarySpec("kube-scheduler", ("--version",), KUBE_VERSION_TEXT),
        BinarySpec("kubelet", ("--version",), KUBE_VERSION_TEXT),
        BinarySpec("kube-proxy", ("--version",), KUBE_VERSION_TEXT),
        BinarySpec("kubectl", ("version", "--client"), "Client Version: v{v}"),
    ),
    "etcd": (
        BinarySpec("etcd", ("--version",), "etcd Version: {v}"),
        BinarySpec("etcdctl", ("version",), "etcdctl version: {v}"),
        BinarySpec("etcdutl", ("version",), "etcdutl version: {v}"),
    ),
    "flannel": (
        BinarySpec("flanneld", ("--version",), "v{v}"),
    ),
    # The add-ons' binaries go only into their images (coredns, metrics-server), never onto a
    # machine; they are cached like the others so that a rebuilt image reuses them.
    "coredns": (
        BinarySpec("coredns", ("-version",), "CoreDNS-{v}"),
    ),
    "metrics_server": (
        # prints client-go's gitVersion alone, e.g. "v0.9.0"
        BinarySpec("metrics-server", ("--version",), "v{v}"),
    ),
    # VictoriaLogs (victoria-logs) and its collector (vlagent): one module, one image; vlagent
    # also runs on the masters, outside Kubernetes, for the apiservers' audit logs.
    "victorialogs": (
        BinarySpec("victoria-logs", ("-version",), "-tags-v{v}-0-"),
        BinarySpec("vlagent", ("-version",), "-tags-v{v}-0-"),
    ),
    # The registry (its image) and crane, the push tool the registry's check and benchmark run
    # on a node.
    "registry": (
        BinarySpec("registry", ("--version",), "github.com/distribution/distribution/v3 v{v}"),
    ),
    "crane": (
        BinarySpec("crane", ("version",), "v{v}"),
    ),
    # traefik (the ingress add-on): `traefik version` prints "Version:      3.6.12" first.
    "traefik": (
        BinarySpec("traefik", ("version",), "Version:      {v}"),
    ),
}

BINARY_COMPONENTS = tuple(COMPONENT_BINARIES)

# Built only when asked for by name (the kubeadm baseline, benchmarks/baseline_kubeadm.py):
# never part of `artifacts build` without --only, so CI does not build them. kubeadm has no
# versions.yaml entry: it is always the `kubernetes` component's version
# (harness.kubeadm_baseline.artifacts.kubeadm_component), as kubeadm's skew policy wants.
OPT_IN_BINARIES: dict[str, tuple[BinarySpec, ...]] = {
    # `kubeadm version -o short` prints the gitVersion alone, e.g. "v1.37.2"
    "kubeadm": (BinarySpec("kubeadm", ("version", "-o", "short"), "v{v}"),),
}


def binaries_of(component: str) -> list[str]:
    return [spec.name for spec in COMPONENT_BINARIES[component]]


def binary_spec(binary: str) -> BinarySpec:
    for specs in (*COMPONENT_BINARIES.values(), *OPT_IN_BINARIES.values()):
        for spec in specs:
            if spec.name == binary:
                return spec
    raise KeyError(binary)


def select(only: str | None, also_known: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """component -> binaries selected by --only, which names a component or a single binary."""
    if not only:
        return {c: binaries_of(c) for c in COMPONENT_BINARIES}
    if only in COMPONENT_BINARIES:
        return {only: binaries_of(only)}
    for component, specs in COMPONENT_BINARIES.items():
        if any(spec.name == only for spec in specs):
            return {component: [only]}
    names = [*COMPONENT_BINARIES, *also_known,
             *(spec.name for specs in COMPONENT_BINARIES.values() for spec in specs)]
    known = list(dict.fromkeys(names))
    raise UserError(f"--only {only}: not a component or binary (known: {', '.join(known)})")
