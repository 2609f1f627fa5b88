"""Kubernetes' own [Conformance] suite against a lab.

artifacts()  e2e.test, ginkgo and the suite's images in the artifact cache (built if missing)
prepare()    those images imported into every node's containerd (on demand, not by `up`)
run()        ginkgo + e2e.test from the host through MASTER_URL on the VIP, with progress,
             JUnit, the e2e log and a per-SIG table in artifacts/<run>/conformance/
"""

from __future__ import annotations

import re
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from harness.artifacts.cache import ArtifactCache
from harness.artifacts.conformance_build import ConformanceBuilder
from harness.conformance import images as e2e_images
from harness.conformance import pull_always, report, runner
from harness.errors import UserError


@dataclass
class Artifacts:
    e2e_test: Path
    ginkgo: Path
    kubectl: Path
    archives: dict[str, Path]      # image ref -> OCI archive


def _say(message: str) -> None:
    print(message, flush=True)


def artifacts(versions, cache: ArtifactCache | None = None, force: bool = False,
              say=_say) -> Artifacts:
    """Builds what is missing: the programs first (images are made of some of them)."""
    cache = cache or ArtifactCache()
    kube = versions["kubernetes"].version
    etcd = versions["etcd"]
    builder = ConformanceBuilder(cache)
    paths = builder.ensure(kube, lambda b, v, d: say(f" ✓ {b} {v} ({d})"), force=force)
    binaries = {name: paths[name] for name in ("agnhost", "nnp", "sample-apiserver")}
    for name in ("etcd", "etcdctl"):
        binaries[name] = cache.binary_path(etcd.name, etcd.version, name)
        if not binaries[name].is_file():
            raise UserError(f"{name} {etcd.version} is not in the artifact cache; run "
                            f"`python -m harness artifacts build --only etcd`")
    kubectl = cache.binary_path("kubernetes", kube, "kubectl")
    if not kubectl.is_file():
        raise UserError(f"kubectl {kube} is not in the artifact cache; run "
                        f"`python -m harness artifacts build --only kubernetes`")
    module = e2e_images.module_dir(kube)
    needed = e2e_images.needed_images(module)
    images = e2e_images.lab_images(needed)
    archives = e2e_images.build_images(
        images, binaries, module, versions, cache, force=force,
        report=lambda ref, detail, path: say(f" ✓ image {ref} ({detail}, "
                                             f"{path.stat().st_size / 2**20:.1f} MiB)"))
    _check_against_binary(paths["e2e.test"], list(archives), cache)
    return Artifacts(paths["e2e.test"], paths["ginkgo"], kubectl, archives)


def _check_against_binary(e2e_test: Path, refs: list[str], cache: ArtifactCache) -> None:
    """Every image built must be one e2e.test asks for under the repo list."""
    with cache.staging_dir("repo-list") as scratch:
        repo_list = scratch / "repo-list.yaml"
        repo_list.write_text(e2e_images.repo_list_yaml())
        listed = set(e2e_images.list_images(e2e_test, repo_list))
    unknown = [ref for ref in refs if ref not in listed]
    if unknown:
        raise UserError(f"e2e.test --list-images does not name {', '.join(unknown)}: the "
                        f"image manifest and the binary disagree")


def prepare(ctx, built: Artifacts, say=_say) -> int:
    started = time.monotonic()
    count = e2e_images.import_images(ctx, built.archives,
                                     report=lambda machine, ref: say(f" ✓ {machine}: {ref}"))
    say(f" ✓ conformance images on {len(ctx.lab.nodes)} node(s): {count} imported, "
        f"{len(built.archives) * len(ctx.lab.nodes) - count} already there "
        f"({time.monotonic() - started:.1f}s)")
    if pull_always.available(ctx.lab):
        started = time.monotonic()
        pushed = pull_always.publish(ctx, built.archives,
                                     report=lambda machine, ref: say(f" ✓ {machine}: pushed {ref}"))
        say(f" ✓ conformance images in the lab registry: {pushed} pushed, "
            f"{len(built.archives) - pushed} already there ({time.monotonic() - started:.1f}s)")
    else:
        say(f" ! {ctx.lab.name} has no registry add-on: specs whose pods pull with "
            "imagePullPolicy Always cannot start them (docs/conformance.md)")
    return count


@dataclass
class Outcome:
    status: int
    results: list[report.Result]
    out_dir: Path
    seconds: float

    @property
    def passed(self) -> int:
        return sum(r.status == "passed" for r in self.results)

    @property
    def failed(self) -> int:
        return sum(r.status == "failed" for r in self.results)


def run(ctx, built: Artifacts, out_dir: Path, cfg: runner.RunConfig, say=_say) -> Outcome:
    # absolute: ginkgo runs e2e.test from the binary's own directory
    out_dir = Path(out_dir).resolve()
    skips = runner.load_skips()
    skip = runner.skip_regex(skips, cfg.skip)
    kc, repo_list = runner.prepare_dir(ctx.lab, ctx.pki_dir, out_dir,
                                       e2e_images.repo_list_yaml())
    env = runner._env(kc, repo_list, built.kubectl)
    args = (built.ginkgo, built.e2e_test, kc, out_dir, built.kubectl, ctx.lab, cfg, skip)
    progress = report.Progress(total=runner.count_specs(runner.ginkgo_command(
        *args, dry_run=True), env))
    say(f"[conformance] {progress.total} spec(s) selected by --focus {cfg.focus!r}"
        + (f", {len(skips)} skipped by skips.yaml" if skips else "")
        + (f", --skip {cfg.skip!r}" if cfg.skip else "") + f", --parallel {cfg.parallel}")
    if progress.total == 0:
        raise UserError(f"no spec matches --focus {cfg.focus!r}")
    started = time.monotonic()
    with (pull_always.served(ctx) if pull_always.available(ctx.lab) else nullcontext()):
        status = runner.run_suite(runner.ginkgo_command(*args), env, out_dir / "e2e.log", progress)
    seconds = time.monotonic() - started
    junit = out_dir / "junit_01.xml"
    if not junit.is_file():
        raise UserError(f"the suite wrote no JUnit ({junit}); see {out_dir / 'e2e.log'}")
    focus = re.compile(cfg.focus)
    results = report.read_junit(junit, focus)
    skip_re = re.compile(skip) if skip else None
    for r in results:
        # specs the focus selects but the skip list or --skip leaves out: "skipped" with reason
        if r.status == "skipped" and skip_re is not None and skip_re.search(r.name):
            r.message = next((s.reason for s in skips if s.name in r.name), "--skip")
    table = report.table_text(results)
    summary = report.summary_line(results)
    failures = [r for r in results if r.status == "failed"]
    lines = [table, ""]
    lines += [f"FAILED {r.name}\n  {r.message.splitlines()[0] if r.message else ''}"
              for r in failures]
    lines += [f"skipped by skips.yaml: {s.name} ({s.reason})" for s in skips]
    lines += [f"{seconds:.0f}s with --parallel {cfg.parallel}", summary]
    (out_dir / "summary.txt").write_text("\n".join(lines) + "\n")
    say(table)
    for r in failures:
        say(f"FAILED {r.name}")
    say(f"[conformance] JUnit {junit}, log {out_dir / 'e2e.log'}, {seconds:.0f}s")
    say(summary)
    return Outcome(status, results, out_dir, seconds)
