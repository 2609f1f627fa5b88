"""`artifacts build|list|verify`: the binaries and images the lab runs, in the cache.

register(subparsers) adds the sub-command to the harness CLI; the handler is stored as
`func` and returns the exit status. Failures are raised as UserError (one line, exit 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.artifacts import catalog
from harness.artifacts.cache import ArtifactCache
from harness.artifacts.images.builder import IMAGE_COMPONENTS, ImageBuilder
from harness.artifacts.images.oci import check_archive
from harness.artifacts.prefetch import modules_ahead
from harness.artifacts.progress import Progress, human_size
from harness.artifacts.sources.base import ArtifactSource
from harness.artifacts.sources.gomod import GoModSource
from harness.artifacts.sources.localdir import DirSource
from harness.artifacts.sources.release import ReleaseSource
from harness.artifacts.store import ArtifactStore, BinaryResult
from harness.artifacts.verify import check_binary_version
from harness.errors import UserError
from harness.versions import Component, Versions, load_versions

SOURCE_NAMES = ("gomod", "release", "dir")


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "artifacts", help="build, list and verify the cluster binaries and images",
        description="Binaries (Kubernetes, etcd, flannel, CoreDNS, metrics-server) and OCI "
                    "images (pause, nginx, coredns, metrics-server, toolbox) in the artifact "
                    "cache ($K8S_HA_LAB_CACHE, default /var/cache/k8s-ha-lab).")
    parser.add_argument("action", choices=("build", "list", "verify"))
    parser.add_argument("--source", choices=SOURCE_NAMES,
                        help="where binaries come from (default: each component's source in "
                             "versions.yaml)")
    parser.add_argument("--dir", type=Path, help="directory of binaries for --source dir")
    parser.add_argument("--only", metavar="COMPONENT",
                        help="one component (" + ", ".join(dict.fromkeys(
                            [*catalog.COMPONENT_BINARIES, *IMAGE_COMPONENTS, "conformance"]))
                        + ") or binary")
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    parser.add_argument("--runtime", action="store_true",
                        help="verify: also import and run the images in a private containerd")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace, versions: Versions | None = None,
        cache: ArtifactCache | None = None, progress: Progress | None = None) -> int:
    versions = versions or load_versions()
    cache = cache or ArtifactCache()
    progress = progress or Progress()
    if args.only == CONFORMANCE:
        return _build_conformance(args, versions, cache, progress)
    binaries, images = _selection(args.only)
    handler = {"build": _build, "list": _list, "verify": _verify}[args.action]
    status = handler(args, versions, cache, progress, binaries, images)
    if args.action == "build" and not args.only and (args.source or "gomod") == "gomod":
        # A full build also makes what `python -m harness conformance` runs, so a cold CI
        # has it: e2e.test, ginkgo and the [Conformance] images (made of etcd, built above).
        status = status or _build_conformance(args, versions, cache, progress)
    return status


CONFORMANCE = "conformance"


def _build_conformance(args, versions, cache, progress) -> int:
    """e2e.test, ginkgo and the suite's images (harness.conformance); `--only conformance`."""
    if args.action != "build":
        raise UserError(f"--only {CONFORMANCE}: only `build` (see `python -m harness "
                        f"conformance --help`)")
    from harness import conformance

    progress.step("conformance: e2e.test, ginkgo and the [Conformance] images")
    conformance.artifacts(versions, cache, force=args.force,
                          say=lambda text: progress.line(text))
    return 0


def _selection(only: str | None) -> tuple[dict[str, list[str]], list[str]]:
    """(component -> binaries, image components) chosen by --only.

    A component with both (coredns, metrics_server) selects both, binaries first: the image is
    made of the binary. Its binary's name (metrics-server) selects both too.
    """
    if not only:
        return catalog.select(None), list(IMAGE_COMPONENTS)
    binaries: dict[str, list[str]] = {}
    if only not in IMAGE_COMPONENTS or only in catalog.COMPONENT_BINARIES:
        binaries = catalog.select(only, also_known=IMAGE_COMPONENTS)
    images = [c for c in IMAGE_COMPONENTS if c == only or c in binaries]
    return binaries, images


def source_for(component: Component, args: argparse.Namespace,
               cache: ArtifactCache) -> ArtifactSource:
    name = args.source or (component.source if component.source in SOURCE_NAMES else "gomod")
    if name == "gomod":
        return GoModSource(log_dir=cache.root / "logs")
    if name == "release":
        return ReleaseSource()
    return DirSource(args.dir)


def _build(args, versions, cache, progress, binaries, images) -> int:
    plan = []
    for component_name, wanted in binaries.items():
        component = versions[component_name]
        missing = wanted if args.force else cache.missing_binaries(
            component.name, component.version, wanted)
        plan.append((component, wanted, source_for(component, args, cache), missing))
    # The later gomod components' modules are downloaded while the first one compiles.
    later = [c for c, _, source, missing in plan if missing and isinstance(source, GoModSource)][1:]
    with modules_ahead(GoModSource(log_dir=cache.root / "logs"), later, cache.root / "tmp"):
        _build_binaries(args, cache, progress, plan)
    builder = ImageBuilder(cache)
    for name in images:
        component = versions[name]
        result = builder.ensure(component, force=args.force)
        detail = ("cached" if result.status == "cached" else
                  f"built in {result.seconds:.1f}s") + f", {human_size(result.size)}"
        progress.done(result.ref, "", detail.strip())
    return 0


def _build_binaries(args, cache, progress, plan) -> None:
    store = ArtifactStore(cache)
    for component, wanted, source, missing in plan:
        if missing:
            progress.step(f"{component.name} {component.version}: {', '.join(missing)} from "
                          f"{source.name} (log: {cache.root / 'logs'})")

        def report(result: BinaryResult) -> None:
            detail = ("cached" if result.status == "cached" else
                      f"{'built' if result.source == 'gomod' else 'fetched'} in "
                      f"{result.seconds:.1f}s")
            progress.done(result.binary, result.version, detail)

        store.ensure(component, wanted, source, report, force=args.force)


def _list(args, versions, cache, progress, binaries, images) -> int:
    progress.line(f"artifact cache: {cache.root}")
    for component_name, wanted in binaries.items():
        component = versions[component_name]
        try:
            source = source_for(component, args, cache)
            origins = source.describe(component, wanted)
        except UserError as exc:
            source, origins = None, [str(exc)] * len(wanted)
        progress.line(f"{component.name} {component.version} "
                      f"(source: {source.name if source else args.source})")
        for binary, origin in zip(wanted, origins):
            state = ("cached" if cache.has_binary(component.name, component.version, binary)
                     else "missing")
            progress.line(f"  {binary:<24} {state:<7} {origin}")
    builder = ImageBuilder(cache)
    for name in images:
        component = versions[name]
        path = builder.archive_path(component)
        state = f"cached, {human_size(path.stat().st_size)}" if path.is_file() else "missing"
        progress.line(f"image {component.image_ref:<32} {state:<7} {path}")
    return 0


def _verify(args, versions, cache, progress, binaries, images) -> int:
    failures = []
    for component_name, wanted in binaries.items():
        component = versions[component_name]
        for binary in wanted:
            check = check_binary_version(
                binary, cache.binary_path(component.name, component.version, binary),
                component.version)
            progress.done(binary, component.version, check.first_line[:100], check.ok)
            if not check.ok:
                failures.append(f"{binary}: expected '{check.expected}', got "
                                f"'{check.first_line[:80]}'")
    builder = ImageBuilder(cache)
    archives = {}
    for name in images:
        component = versions[name]
        path = builder.archive_path(component)
        problems = check_archive(path) if path.is_file() else [f"{path} missing"]
        progress.done(component.image_ref, "", "; ".join(problems) or "valid OCI archive",
                      not problems)
        failures += [f"{component.image_ref}: {p}" for p in problems]
        archives[name] = (component.image_ref, path)
    if args.runtime and not failures and {"pause", "nginx"} <= set(archives):
        from harness.artifacts.containerd_check import check_images_run
        for passed in check_images_run(archives["pause"], archives["nginx"]):
            progress.done("containerd", "", passed)
    if args.runtime and not failures and {"coredns", "metrics_server", "toolbox"} <= set(archives):
        from harness.artifacts.containerd_check import check_addon_images_run
        pinned = {name: versions[name].version for name in ("coredns", "metrics_server")}
        for passed in check_addon_images_run(archives["coredns"], archives["metrics_server"],
                                             archives["toolbox"], pinned):
            progress.done("containerd", "", passed)
    if failures:
        raise UserError(f"artifacts verify: {len(failures)} problem(s): {failures[0]}"
                        + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""))
    return 0
