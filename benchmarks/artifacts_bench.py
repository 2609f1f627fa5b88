"""Build times and sizes of the lab's artifacts.

For each Go-built component, in throw-away artifact caches:
  cold  empty artifact cache; with --cold-gocache also an empty Go build cache (a new machine)
  warm  empty artifact cache, Go build cache left warm by "cold" (a machine used before, e.g.
        after a version bump of another component): mostly linking
  hit   the same artifact cache again: nothing is built
Then the images (built fresh), their archive sizes, and the size of the real cache.

    python benchmarks/artifacts_bench.py [--only kubernetes] [--cold-gocache] [--json out.json]
    python benchmarks/artifacts_bench.py --image toolbox        # one image, no binaries

The Go module cache (~/go/pkg/mod) is shared throughout: downloads are not what is measured.
A cold Kubernetes build takes 20-30 minutes on 2 cores; use --only to measure one component.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.artifacts import catalog  # noqa: E402
from harness.artifacts.cache import ArtifactCache  # noqa: E402
from harness.artifacts.images.builder import IMAGE_COMPONENTS, ImageBuilder  # noqa: E402
from harness.artifacts.images.gobinary_image import GO_BINARY_IMAGES  # noqa: E402
from harness.artifacts.progress import human_size  # noqa: E402
from harness.artifacts.sources.gomod import GoModSource  # noqa: E402
from harness.artifacts.store import ArtifactStore  # noqa: E402
from harness.versions import load_versions  # noqa: E402


def _timed_ensure(cache_dir: Path, component, log_dir: Path) -> tuple[float, dict[str, float]]:
    store = ArtifactStore(ArtifactCache(cache_dir))
    started = time.monotonic()
    results = store.ensure(component, catalog.binaries_of(component.name),
                           GoModSource(log_dir=log_dir))
    return time.monotonic() - started, {r.binary: round(r.seconds, 1) for r in results}


def bench_component(component, scratch: Path, cold_gocache: bool) -> dict:
    if cold_gocache:
        # Only this process's builds use the fresh cache; the machine's stays untouched.
        os.environ["GOCACHE"] = str(scratch / "gocache")
    logs = scratch / "logs"
    cold_s, cold_bins = _timed_ensure(scratch / "cold", component, logs)
    warm_s, warm_bins = _timed_ensure(scratch / "warm", component, logs)
    hit_s, _ = _timed_ensure(scratch / "warm", component, logs)
    size = ArtifactCache(scratch / "warm").size_bytes(f"bin/{component.name}@{component.version}")
    return {"component": component.name, "version": component.version,
            "cold_gocache": cold_gocache, "cold_s": round(cold_s, 1), "cold_binaries": cold_bins,
            "warm_s": round(warm_s, 1), "warm_binaries": warm_bins, "hit_s": round(hit_s, 2),
            "size_bytes": size}


def bench_images(versions, scratch: Path, only: str | None = None) -> list[dict]:
    """Each image built into an empty cache (.debs downloaded again), then a cache hit.

    The CoreDNS and metrics-server images are made of their cached binary: it is copied from
    the real cache first (the image build itself is measured, not the Go build).
    """
    cache = ArtifactCache(scratch / "images")
    builder = ImageBuilder(cache)
    real = ArtifactCache()
    rows = []
    for name in IMAGE_COMPONENTS:
        if only and name != only:
            continue
        if name in GO_BINARY_IMAGES:
            component, binary = versions[name], GO_BINARY_IMAGES[name].binary
            source = real.binary_path(component.name, component.version, binary)
            if not source.is_file():
                print(f"image {name}: skipped, {source} not built", flush=True)
                continue
            target = cache.binary_path(component.name, component.version, binary)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        first = builder.ensure(versions[name])
        started = time.monotonic()
        again = builder.ensure(versions[name])
        rows.append({"image": first.ref, "build_s": round(first.seconds, 1),
                     "hit_s": round(time.monotonic() - started, 2), "status_again": again.status,
                     "size_bytes": first.size})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=catalog.BINARY_COMPONENTS)
    parser.add_argument("--cold-gocache", action="store_true",
                        help="cold = also an empty Go build cache (slow: a full compile)")
    parser.add_argument("--no-images", action="store_true")
    parser.add_argument("--image", choices=IMAGE_COMPONENTS,
                        help="measure only this image (and no binaries unless --only)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    versions = load_versions()
    figures: dict = {"components": [], "images": []}
    scratch_root = Path(tempfile.mkdtemp(prefix="artifacts-bench-"))
    if not args.cold_gocache:
        print("(Go build cache warm: 'cold' is an empty artifact cache only; "
              "use --cold-gocache for a new machine)", flush=True)
    try:
        names = ([args.only] if args.only else [] if args.image
                 else list(catalog.BINARY_COMPONENTS))
        for name in names:
            row = bench_component(versions[name], scratch_root / name, args.cold_gocache)
            figures["components"].append(row)
            print(f"{name:<14} {row['version']:<9} cold {row['cold_s']:>7.1f}s  "
                  f"warm {row['warm_s']:>6.1f}s  hit {row['hit_s']:>5.2f}s  "
                  f"{human_size(row['size_bytes'])}", flush=True)
            for binary, seconds in row["cold_binaries"].items():
                print(f"    {binary:<24} cold {seconds:>7.1f}s  warm "
                      f"{row['warm_binaries'].get(binary, 0):>6.1f}s", flush=True)
        if not args.no_images:
            for row in bench_images(versions, scratch_root, args.image):
                figures["images"].append(row)
                print(f"image {row['image']:<32} built {row['build_s']:>5.1f}s  "
                      f"hit {row['hit_s']:.2f}s  {human_size(row['size_bytes'])}", flush=True)
    finally:
        shutil.rmtree(scratch_root, ignore_errors=True)
    real = ArtifactCache()
    figures["cache"] = {"root": str(real.root), "bin_bytes": real.size_bytes("bin"),
                        "images_bytes": real.size_bytes("images")}
    print(f"artifact cache {real.root}: binaries {human_size(figures['cache']['bin_bytes'])}, "
          f"images {human_size(figures['cache']['images_bytes'])}")
    gocache = Path(os.environ.get("GOCACHE") or Path.home() / ".cache/go-build")
    if gocache.is_dir() and not args.cold_gocache:
        figures["gocache_bytes"] = ArtifactCache(gocache).size_bytes()
        print(f"Go build cache {gocache}: {human_size(figures['gocache_bytes'])}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
