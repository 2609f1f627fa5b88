"""Builds the lab's OCI image archives into the cache, rebuilding only when the recipe changed.

Recipes, by versions.yaml component:
  pause                     images/pause/pause.c compiled static (pause_image)
  nginx, toolbox            Debian .debs and the ELF closure of their programs (debroot)
  coredns, metrics_server,  the component's static Go binary from the artifact cache
  traefik                   (gobinary_image); `artifacts build` builds the binary first
  victorialogs              victoria-logs and vlagent from the cache (victorialogs_image)
  registry                  Distribution's registry from the cache and Debian's htpasswd
                            (registry_image)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from harness.artifacts.cache import ArtifactCache
from harness.artifacts.images import (nginx_image, pause_image, registry_image, toolbox_image,
                                      victorialogs_image)
from harness.artifacts.images.gobinary_image import GO_BINARY_IMAGES
from harness.artifacts.images.oci import write_archive
from harness.errors import UserError
from harness.versions import Component

IMAGE_COMPONENTS = ("pause", "nginx", "coredns", "metrics_server", "toolbox", "victorialogs",
                    "registry", "traefik")
# Images made from .debs: their recipe module and the package list (for messages).
DEB_IMAGES = {"nginx": nginx_image, "toolbox": toolbox_image}


def short_name(component: Component) -> str:
    """The archive's name in the cache: the image's last path part (metrics_server ->
    metrics-server)."""
    if not component.image:
        raise UserError(f"versions.yaml: {component.name} has no 'image' name")
    return component.image.rsplit("/", 1)[-1]


def image_archive_path(component: Component, cache: ArtifactCache | None = None) -> Path:
    """Where the OCI archive of a component's image lives (built or not).

    The one answer for everyone: the cache names archives after the image's short name, which
    is not always the versions.yaml component name (metrics_server -> metrics-server).
    """
    return (cache or ArtifactCache()).image_path(short_name(component), component.version)


@dataclass(frozen=True)
class ImageResult:
    component: str
    ref: str
    path: Path
    status: str          # "cached" or "built"
    seconds: float = 0.0

    @property
    def size(self) -> int:
        return self.path.stat().st_size


class ImageBuilder:
    def __init__(self, cache: ArtifactCache | None = None):
        self.cache = cache or ArtifactCache()

    def short_name(self, component: Component) -> str:
        return short_name(component)

    def archive_path(self, component: Component) -> Path:
        return image_archive_path(component, self.cache)

    def go_binary(self, component: Component) -> Path:
        """The cached binary a Go-binary image is made of; it must have been built already."""
        recipe = GO_BINARY_IMAGES[component.name]
        path = self.cache.binary_path(component.name, component.version, recipe.binary)
        if not self.cache.has_binary(component.name, component.version, recipe.binary):
            raise UserError(f"image {component.image_ref}: {recipe.binary} {component.version} "
                            f"is not in the artifact cache ({path}); run `python -m harness "
                            f"artifacts build --only {component.name}`")
        return path

    def recipe_key(self, component: Component, scratch: Path) -> str:
        if component.name == "pause":
            return pause_image.recipe_key(component.version)
        if component.name in DEB_IMAGES:
            return DEB_IMAGES[component.name].recipe_key(component.version, scratch)
        if component.name == victorialogs_image.COMPONENT:
            return victorialogs_image.recipe_key(
                component.version, victorialogs_image.cached_binaries(self.cache, component.version))
        if component.name == registry_image.COMPONENT:
            return registry_image.recipe_key(
                component.version, registry_image.cached_binary(self.cache, component.version), scratch)
        if component.name in GO_BINARY_IMAGES:
            return GO_BINARY_IMAGES[component.name].recipe_key(component.version,
                                                               self.go_binary(component))
        raise UserError(f"{component.name}: no image recipe (images: "
                        f"{', '.join(IMAGE_COMPONENTS)})")

    def ensure(self, component: Component, force: bool = False) -> ImageResult:
        name = self.short_name(component)
        with self.cache.staging_dir(f"image-{name}") as scratch:
            key = self.recipe_key(component, scratch)
            if not force and self.cache.image_is_current(name, component.version, key):
                return ImageResult(component.name, component.image_ref,
                                   self.archive_path(component), "cached")
            started = time.monotonic()
            spec = self._spec(component, scratch)
            built = write_archive(spec, scratch / "image.oci.tar")
            final = self.cache.install_image(name, component.version, built, key)
        return ImageResult(component.name, component.image_ref, final, "built",
                           time.monotonic() - started)

    def _spec(self, component: Component, scratch: Path):
        if component.name == "pause":
            return pause_image.build_spec(component.image, component.version, scratch)
        if component.name == victorialogs_image.COMPONENT:
            return victorialogs_image.build_spec(
                component.image, component.version,
                victorialogs_image.cached_binaries(self.cache, component.version))
        if component.name == registry_image.COMPONENT:
            return registry_image.build_spec(
                component.image, component.version,
                registry_image.cached_binary(self.cache, component.version), scratch,
                self.cache.root / "images" / "debs")
        if component.name in GO_BINARY_IMAGES:
            return GO_BINARY_IMAGES[component.name].build_spec(
                component.image, component.version, self.go_binary(component))
        # The .debs are kept in the cache: a recipe change then downloads nothing again.
        deb_dir = self.cache.root / "images" / "debs"
        return DEB_IMAGES[component.name].build_spec(component.image, component.version,
                                                     scratch, deb_dir)
