"""Which images the [Conformance] tests run, their archives, the repo list, the import.

The list is read from the k8s.io/kubernetes module itself, not typed here:

* test/utils/image/manifest.go: `configs[<ID>] = Config{list.<Registry>, "<name>", "<tag>"}`
  gives each image ID its registry key, name and tag (what `e2e.test --list-images` prints);
* every test/e2e file that declares a [Conformance] test (`framework.ConformanceIt`) is scanned
  for `imageutils.<ID>` and `imageutils.GetPauseImageName` (the pause image).

IDs the tests use on purpose to make a pull fail (a private or invalid registry) are left out:
they must stay unpullable. `e2e.test --list-images` then confirms each chosen image is one the
binary knows. Every chosen image must have a recipe (images/conformance_images.py): one
without is a build failure, never a silent gap.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness.artifacts.cache import ArtifactCache
from harness.artifacts.images.conformance_images import (E2E_PREFIX, E2EImage, Inputs,
                                                         build_spec, e2e_image, recipe_key)
from harness.artifacts.images.oci import write_archive
from harness.errors import UserError

MANIFEST = "test/utils/image/manifest.go"
CONFIG_LINE = re.compile(
    r'configs\[(\w+)\]\s*=\s*Config\{list\.(\w+),\s*"([^"]+)",\s*"([^"]+)"\}')
IMAGE_REF = re.compile(r"imageutils\.(\w+)")
# Used to make a pull fail on purpose: must never be present on a node.
UNPULLABLE = {"AgnhostPrivate", "InvalidRegistryImage"}
# manifest.go's RegistryList keys (yaml names) -> where they point in the lab. Every key is
# mapped, so no image name of the suite keeps a public registry.
REGISTRY_KEYS = ("promoterE2eRegistry", "buildImageRegistry", "gcEtcdRegistry", "gcRegistry",
                 "sigStorageRegistry", "privateRegistry", "invalidRegistry",
                 "dockerLibraryRegistry", "cloudProviderGcpRegistry")
ARCHIVE_DIR = "images/e2e"


@dataclass(frozen=True)
class ManifestImage:
    image_id: str
    registry_key: str       # Go field name, e.g. PromoterE2eRegistry
    name: str
    tag: str


def parse_manifest(text: str) -> dict[str, ManifestImage]:
    return {m.group(1): ManifestImage(m.group(1), m.group(2), m.group(3), m.group(4))
            for m in CONFIG_LINE.finditer(text)}


def conformance_files(module_dir: Path) -> list[Path]:
    return sorted(p for p in (module_dir / "test/e2e").rglob("*.go")
                  if not p.name.endswith("_test.go") and "ConformanceIt(" in p.read_text())


def referenced_ids(texts: list[str], known: set[str]) -> set[str]:
    ids = set()
    for text in texts:
        for name in IMAGE_REF.findall(text):
            if name in known:
                ids.add(name)
        if "imageutils.GetPauseImageName" in text:
            ids.add("Pause")
    return ids


def needed_images(module_dir: Path) -> list[ManifestImage]:
    """The images the [Conformance] tests reference, from the module's own source."""
    manifest = parse_manifest((module_dir / MANIFEST).read_text())
    if not manifest:
        raise UserError(f"{module_dir / MANIFEST}: no image configs found")
    files = conformance_files(module_dir)
    if not files:
        raise UserError(f"{module_dir}/test/e2e: no [Conformance] test found")
    ids = referenced_ids([f.read_text() for f in files], set(manifest)) - UNPULLABLE
    return sorted((manifest[i] for i in ids), key=lambda m: (m.name, m.tag))


def lab_images(needed: list[ManifestImage]) -> list[E2EImage]:
    return [e2e_image(m.name, m.tag) for m in needed]


def repo_list_yaml() -> str:
    """KUBE_TEST_REPO_LIST: every registry of the suite mapped into the lab-local prefix."""
    targets = {key: E2E_PREFIX for key in ("promoterE2eRegistry", "gcEtcdRegistry", "gcRegistry")}
    targets.update({
        "buildImageRegistry": f"{E2E_PREFIX}/build-image",
        "sigStorageRegistry": f"{E2E_PREFIX}/sig-storage",
        "dockerLibraryRegistry": f"{E2E_PREFIX}/library",
        "cloudProviderGcpRegistry": f"{E2E_PREFIX}/cloud-provider-gcp",
        # nothing is ever imported under these: tests that pull from them expect a failure
        "privateRegistry": f"{E2E_PREFIX}/private",
        "invalidRegistry": f"invalid.{E2E_PREFIX.split('/')[0]}/invalid",
    })
    lines = ["# KUBE_TEST_REPO_LIST written by harness.conformance: no public registry"]
    lines += [f"{key}: {targets[key]}" for key in REGISTRY_KEYS]
    return "\n".join(lines) + "\n"


def list_images(e2e_test: Path, repo_list: Path) -> list[str]:
    """`e2e.test --list-images` with our repo list: the names the binary will ask for."""
    proc = subprocess.run([str(e2e_test), "--list-images"], capture_output=True, text=True,
                          env={"KUBE_TEST_REPO_LIST": str(repo_list), "PATH": "/usr/bin:/bin"},
                          timeout=120)
    if proc.returncode != 0:
        raise UserError(f"{e2e_test} --list-images failed: {proc.stderr.strip()[-300:]}")
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


def module_dir(kube_version: str) -> Path:
    """The k8s.io/kubernetes module source in Go's module cache (downloaded if missing)."""
    import json

    from harness.artifacts.gotool import find_go, go_env

    proc = subprocess.run([find_go(), "mod", "download", "-json",
                           f"k8s.io/kubernetes@{kube_version}"], capture_output=True, text=True,
                          cwd="/", env=go_env())
    try:
        info = json.loads(proc.stdout)
    except ValueError:
        raise UserError(f"go mod download k8s.io/kubernetes@{kube_version} failed: "
                        f"{proc.stderr.strip()[-300:]}") from None
    if info.get("Error") or not info.get("Dir"):
        raise UserError(f"k8s.io/kubernetes@{kube_version}: {info.get('Error')}")
    return Path(info["Dir"])


# ---- archives in the artifact cache -----------------------------------------------------------
def archive_path(image: E2EImage, cache: ArtifactCache | None = None) -> Path:
    return (cache or ArtifactCache()).root / ARCHIVE_DIR / image.archive_name


def _lab_specs(versions, cache: ArtifactCache):
    """The lab's own nginx and pause recipes, under another name and tag, and their keys."""
    from harness.artifacts.images import nginx_image, pause_image

    deb_dir = cache.root / "images" / "debs"

    def nginx(name, tag, scratch):
        return nginx_image.build_spec(name, tag, scratch / "nginx", deb_dir)

    def pause(name, tag, scratch):
        (scratch / "pause").mkdir(exist_ok=True)
        return pause_image.build_spec(name, tag, scratch / "pause")

    return {"nginx": nginx, "pause": pause}


def _lab_keys(versions, scratch: Path) -> dict:
    from harness.artifacts.images import nginx_image, pause_image

    (scratch / "keys").mkdir(exist_ok=True)
    return {"nginx": nginx_image.recipe_key(versions["nginx"].version, scratch / "keys"),
            "pause": pause_image.recipe_key(versions["pause"].version)}


def build_images(images: list[E2EImage], binaries: dict[str, Path], module: Path, versions,
                 cache: ArtifactCache | None = None, report=lambda *a: None,
                 force: bool = False) -> dict[str, Path]:
    """Each image's archive in the cache (ref -> path), rebuilt only when its key changed."""
    cache = cache or ArtifactCache()
    deb_dir = cache.root / "images" / "debs"
    inputs = Inputs(binaries, module, deb_dir, _lab_specs(versions, cache))
    out = {}
    with cache.staging_dir("e2e-images") as scratch:
        lab_keys = _lab_keys(versions, scratch)
        for image in images:
            final = archive_path(image, cache)
            key_file = final.with_name(final.name + ".key")
            work = scratch / image.archive_name
            work.mkdir()
            key = recipe_key(image, inputs, work, lab_keys)
            current = (final.is_file() and key_file.is_file()
                       and key_file.read_text().strip() == key)
            if current and not force:
                report(image.ref, "cached", final)
                out[image.ref] = final
                continue
            started = time.monotonic()
            built = write_archive(build_spec(image, inputs, work), work / "image.oci.tar")
            final.parent.mkdir(parents=True, exist_ok=True)
            built.replace(final)
            cache._write_atomically(key_file, (key + "\n").encode())
            report(image.ref, f"built in {time.monotonic() - started:.1f}s", final)
            out[image.ref] = final
    return out


# ---- into every node's containerd --------------------------------------------------------------
IMAGE_DIR = "/var/lib/k8s-ha-lab/images"
STEP = "conformance"


def manifest_digest(archive: Path) -> str:
    """The digest an archive's image gets in containerd (its index.json's manifest)."""
    import json
    import tarfile

    with tarfile.open(archive) as tar:
        index = json.loads(tar.extractfile("index.json").read())
    return index["manifests"][0]["digest"]


def node_images(listing: str) -> dict[str, str]:
    """ref -> digest from `ctr images ls` (REF TYPE DIGEST SIZE PLATFORMS LABELS)."""
    images = {}
    for line in listing.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3 and parts[2].startswith("sha256:"):
            images[parts[0]] = parts[2]
    return images


def import_images(ctx, archives: dict[str, Path], report=lambda *a: None) -> int:
    """Imports each archive into every node's containerd (k8s.io namespace) unless the image is
    there already with the same digest (a rebuilt image replaces the old one): the approach of
    harness.steps.nodes.import_images, for refs outside versions.yaml. The nodes work at once,
    each on its own connection, as a step's machines do. Returns how many imports ran."""
    from harness.steps.actions import push_file, run
    from harness.steps.parallel import for_each

    wanted = {ref: manifest_digest(archive) for ref, archive in archives.items()}

    def on_node(machine) -> int:
        present = node_images(run(ctx, STEP, machine, "ctr -n k8s.io images ls",
                                  unit="containerd").stdout)
        count = 0
        for ref, archive in archives.items():
            if present.get(ref) == wanted[ref]:
                continue
            remote = f"{IMAGE_DIR}/e2e-{archive.name}"
            push_file(ctx, machine, archive, remote, mode=0o644)
            run(ctx, STEP, machine, "ctr -n k8s.io images import --no-unpack=false "
                                    f"{shlex.quote(remote)}", unit="containerd", timeout=600)
            run(ctx, STEP, machine, f"rm -f {shlex.quote(remote)}")
            report(machine.name, ref)
            count += 1
        return count
    return sum(for_each(ctx, STEP, ctx.lab.nodes, on_node, "e2e images", quiet=True).values())
