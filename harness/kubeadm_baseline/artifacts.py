"""What the kubeadm baseline needs from the artifact cache, built only when missing.

kubeadm itself: a Go build of k8s.io/kubernetes/cmd/kubeadm at the `kubernetes` component's
version (versions.yaml has no kubeadm entry: kubeadm must match the control plane it installs),
with the same tags and version ldflags as the harness's kube-* binaries, cached as
bin/kubeadm@<version>/kubeadm.

Images: the control plane, etcd, kube-proxy and flannel made of the harness's cached binaries
(harness.artifacts.images.kubeadm_images), plus the harness's own pause, CoreDNS and nginx.

    python -m harness.kubeadm_baseline.artifacts     # build what is missing, print where it is
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.artifacts.cache import ArtifactCache
from harness.artifacts.images import kubeadm_images
from harness.artifacts.images.builder import ImageBuilder
from harness.versions import Component, Versions, load_versions

KUBEADM = "kubeadm"
# The harness's own images that kubeadm's cluster runs as they are.
HARNESS_IMAGES = ("pause", "coredns", "nginx")


def kubeadm_component(versions: Versions) -> Component:
    kube = versions.kubernetes
    return Component(name=KUBEADM, version=kube.version, source="gomod", module=kube.module)


@dataclass(frozen=True)
class BaselineArtifacts:
    kubeadm: Path
    images: dict[str, tuple[str, Path]]     # image name -> (ref, archive)

    def for_masters(self) -> list[tuple[str, Path]]:
        return list(self.images.values())

    def for_workers(self) -> list[tuple[str, Path]]:
        """A machine without a control plane runs pause, kube-proxy, flannel and the pods."""
        return [self.images[n] for n in ("pause", "kube-proxy", "flannel", "coredns", "nginx")]


def kubeadm_path(versions: Versions, cache: ArtifactCache | None = None) -> Path:
    component = kubeadm_component(versions)
    return (cache or ArtifactCache()).binary_path(component.name, component.version, KUBEADM)


def ensure_kubeadm(versions: Versions, cache: ArtifactCache, say: Callable[[str], None]) -> Path:
    from harness.artifacts.sources.gomod import GoModSource
    from harness.artifacts.store import ArtifactStore

    component = kubeadm_component(versions)
    for result in ArtifactStore(cache).ensure(component, [KUBEADM], GoModSource(log_dir=cache.root / "logs")):
        detail = "cached" if result.status == "cached" else f"built in {result.seconds:.1f}s"
        say(f"kubeadm {component.version}: {detail}")
    return kubeadm_path(versions, cache)


def ensure_all(versions: Versions, cache: ArtifactCache | None = None,
               say: Callable[[str], None] = print) -> BaselineArtifacts:
    cache = cache or ArtifactCache()
    kubeadm = ensure_kubeadm(versions, cache, say)
    images: dict[str, tuple[str, Path]] = {}
    for image in kubeadm_images.BASELINE_IMAGES:
        result = kubeadm_images.ensure(image, versions, cache)
        say(f"image {result.ref}: {result.status}" + (f" in {result.seconds:.1f}s" if result.seconds else ""))
        images[image.name] = (result.ref, result.path)
    builder = ImageBuilder(cache)
    for name in HARNESS_IMAGES:
        result = builder.ensure(versions[name])
        say(f"image {result.ref}: {result.status}")
        images[name] = (result.ref, result.path)
    return BaselineArtifacts(kubeadm, images)


def main() -> int:
    from harness.errors import UserError

    try:
        found = ensure_all(load_versions())
    except UserError as exc:
        print(f"error: {exc}")
        return 2
    print(f"kubeadm: {found.kubeadm}")
    for ref, path in found.images.values():
        print(f"{ref}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
