"""Builds the lab's OCI image archives into the cache, rebuilding only when the recipe changed."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from harness.artifacts.cache import ArtifactCache
from harness.artifacts.images import nginx_image, pause_image
from harness.artifacts.images.oci import write_archive
from harness.errors import UserError
from harness.versions import Component

IMAGE_COMPONENTS = ("pause", "nginx")


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
        if not component.image:
            raise UserError(f"versions.yaml: {component.name} has no 'image' name")
        return component.image.rsplit("/", 1)[-1]

    def recipe_key(self, component: Component, scratch: Path) -> str:
        if component.name == "pause":
            return pause_image.recipe_key(component.version)
        if component.name == "nginx":
            return nginx_image.recipe_key(component.version, scratch)
        raise UserError(f"{component.name}: no image recipe (images: "
                        f"{', '.join(IMAGE_COMPONENTS)})")

    def archive_path(self, component: Component) -> Path:
        return self.cache.image_path(self.short_name(component), component.version)

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
        # The .debs are kept in the cache: a recipe change then downloads nothing again.
        deb_dir = self.cache.root / "images" / "debs"
        return nginx_image.build_spec(component.image, component.version, scratch, deb_dir)
