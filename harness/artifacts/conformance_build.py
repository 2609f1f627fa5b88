"""The conformance suite's programs, built from Go modules into the artifact cache.

* `kubernetes-test@<kube version>/`: `e2e.test` (`go test -c k8s.io/kubernetes/test/e2e`) and
  the Go programs the test images are made of: `agnhost` (test/images/agnhost), `nnp`
  (test/images/nonewprivs) and `sample-apiserver` (the staging module k8s.io/sample-apiserver,
  published as v0.Y.Z). All through the same wrapper module as the server binaries, with the
  same tags and version ldflags, so `e2e.test` knows it is v1.37.2 like kube-apiserver does.
* `ginkgo@<version>/ginkgo`: the ginkgo CLI at the version Kubernetes' go.mod requires (it
  must match the library compiled into e2e.test). ginkgo has no replace directives, so a
  wrapper of its own that requires only it is enough.

kubectl is the one of `bin/kubernetes@<version>/`.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.artifacts.cache import ArtifactCache
from harness.artifacts.go_recipes import GO_RECIPES
from harness.artifacts.gomod_wrapper import kubernetes_staging_version
from harness.artifacts.gotool import GoRunner, find_go, go_env
from harness.artifacts.sources.gomod import GoModSource
from harness.errors import UserError

TEST_COMPONENT = "kubernetes-test"
GINKGO_COMPONENT = "ginkgo"
GINKGO_MODULE = "github.com/onsi/ginkgo/v2"
GINKGO_PACKAGE = "github.com/onsi/ginkgo/v2/ginkgo"


@dataclass(frozen=True)
class TestProgram:
    name: str
    package: str
    # "test": go test -c (e2e.test); "build": go build
    mode: str = "build"
    # the module the package belongs to, for `go get`; "" = k8s.io/kubernetes at the version
    staging_module: str = ""


TEST_PROGRAMS: tuple[TestProgram, ...] = (
    TestProgram("e2e.test", "k8s.io/kubernetes/test/e2e", mode="test"),
    TestProgram("agnhost", "k8s.io/kubernetes/test/images/agnhost"),
    TestProgram("nnp", "k8s.io/kubernetes/test/images/nonewprivs"),
    TestProgram("sample-apiserver", "k8s.io/sample-apiserver",
                staging_module="k8s.io/sample-apiserver"),
)
TEST_BINARIES = tuple(p.name for p in TEST_PROGRAMS)

Report = Callable[[str, str, str], None]   # (binary, version, "built in 12.3s" | "cached")


def ginkgo_version_from_gomod(text: str) -> str:
    """The ginkgo v2 version a go.mod requires (`github.com/onsi/ginkgo/v2 v2.32.0`)."""
    match = re.search(r"^\s*(?:require\s+)?github\.com/onsi/ginkgo/v2\s+(v[0-9][^\s]*)", text,
                      re.MULTILINE)
    if not match:
        raise UserError("k8s.io/kubernetes go.mod requires no github.com/onsi/ginkgo/v2")
    return match.group(1)


def get_args(kube_version: str) -> list[str]:
    """`go get` arguments: each program's package at its module's version."""
    staging = kubernetes_staging_version(kube_version)
    args = []
    for program in TEST_PROGRAMS:
        if program.staging_module:
            args.append(f"{program.package}@{staging(program.staging_module)}")
        else:
            args.append(f"{program.package}@{kube_version}")
    return args


def build_command(program: TestProgram, kube_version: str, out: Path) -> list[str]:
    recipe = GO_RECIPES["kubernetes"]
    verb = ["test", "-c"] if program.mode == "test" else ["build"]
    return [*verb, "-trimpath", "-tags", ",".join(recipe.tags),
            "-ldflags", recipe.ldflags_for(kube_version), "-o", str(out), program.package]


class ConformanceBuilder:
    def __init__(self, cache: ArtifactCache | None = None, go: str | None = None):
        self.cache = cache or ArtifactCache()
        self.go = go

    # ---- where things are ------------------------------------------------------------------
    def test_binary(self, kube_version: str, name: str) -> Path:
        return self.cache.binary_path(TEST_COMPONENT, kube_version, name)

    def ginkgo_dir(self) -> Path:
        return self.cache.root / "bin"

    def find_ginkgo(self) -> Path:
        """The cached ginkgo CLI (any version: the build picks the one go.mod names)."""
        found = sorted(self.ginkgo_dir().glob(f"{GINKGO_COMPONENT}@*/ginkgo"))
        if not found:
            raise UserError(f"ginkgo is not in the artifact cache ({self.ginkgo_dir()}); run "
                            f"`python -m harness conformance-artifacts build`")
        return found[-1]

    def require(self, kube_version: str, name: str) -> Path:
        path = self.test_binary(kube_version, name)
        if not self.cache.has_binary(TEST_COMPONENT, kube_version, name):
            raise UserError(f"{name} {kube_version} is not in the artifact cache ({path}); run "
                            f"`python -m harness conformance-artifacts build`")
        return path

    # ---- building --------------------------------------------------------------------------
    def _runner(self, workdir: Path, label: str) -> GoRunner:
        log_dir = self.cache.root / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        return GoRunner(self.go or find_go(), workdir, log_dir / f"{label}.log", go_env())

    def ensure(self, kube_version: str, report: Report = lambda *a: None,
               force: bool = False) -> dict[str, Path]:
        """e2e.test, the test images' programs and ginkgo, each built only when missing."""
        paths: dict[str, Path] = {}
        missing = list(TEST_BINARIES) if force else self.cache.missing_binaries(
            TEST_COMPONENT, kube_version, list(TEST_BINARIES))
        for name in TEST_BINARIES:
            if name not in missing:
                report(name, kube_version, "cached")
        ginkgo_version = None
        label = f"{TEST_COMPONENT}@{kube_version}"
        with self.cache.staging_dir(label) as scratch:
            wrapper = scratch / "wrapper"
            wrapper.mkdir()
            runner = self._runner(wrapper, label)
            what = f"{TEST_COMPONENT} {kube_version}"
            # The wrapper go.mod of the server binaries (k8s.io/kubernetes plus its staging
            # replaces); it also tells us which ginkgo Kubernetes was built against.
            GoModSource(go=runner.go).write_wrapper(GO_RECIPES["kubernetes"], kube_version,
                                                    runner, what)
            ginkgo_version = self.ginkgo_version(kube_version, runner, what)
            if missing:
                runner.run_network(["get", *get_args(kube_version)], what)
            for program in TEST_PROGRAMS:
                if program.name not in missing:
                    continue
                out = scratch / "out" / program.name
                out.parent.mkdir(exist_ok=True)
                started = time.monotonic()
                runner.run(build_command(program, kube_version, out),
                           f"build of {program.name} ({what})")
                seconds = time.monotonic() - started
                self.cache.install_binary(TEST_COMPONENT, kube_version, program.name, out,
                                          _provenance(f"{program.package}@{kube_version}",
                                                      seconds))
                report(program.name, kube_version, f"built in {seconds:.1f}s")
        for name in TEST_BINARIES:
            paths[name] = self.test_binary(kube_version, name)
        paths["ginkgo"] = self.ensure_ginkgo(ginkgo_version, report, force)
        return paths

    def ginkgo_version(self, kube_version: str, runner: GoRunner, what: str) -> str:
        runner.workdir.joinpath("go.mod").rename(runner.workdir / "go.mod.wrapper")
        try:
            info = json.loads(runner.run_network(
                ["mod", "download", "-json", f"k8s.io/kubernetes@{kube_version}"], what))
        finally:
            runner.workdir.joinpath("go.mod.wrapper").rename(runner.workdir / "go.mod")
        return ginkgo_version_from_gomod(Path(info["GoMod"]).read_text())

    def ensure_ginkgo(self, version: str, report: Report = lambda *a: None,
                      force: bool = False) -> Path:
        if not force and self.cache.has_binary(GINKGO_COMPONENT, version, "ginkgo"):
            report("ginkgo", version, "cached")
            return self.cache.binary_path(GINKGO_COMPONENT, version, "ginkgo")
        label = f"{GINKGO_COMPONENT}@{version}"
        with self.cache.staging_dir(label) as scratch:
            wrapper = scratch / "wrapper"
            wrapper.mkdir()
            runner = self._runner(wrapper, label)
            (wrapper / "go.mod").write_text(
                f"module k8s-ha-lab.local/build/ginkgo\n\ngo 1.23\n\n"
                f"require {GINKGO_MODULE} {version}\n")
            runner.run_network(["get", f"{GINKGO_PACKAGE}@{version}"], f"ginkgo {version}")
            out = scratch / "ginkgo"
            started = time.monotonic()
            runner.run(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(out),
                        GINKGO_PACKAGE], f"build of ginkgo {version}")
            seconds = time.monotonic() - started
            final = self.cache.install_binary(GINKGO_COMPONENT, version, "ginkgo", out,
                                              _provenance(f"{GINKGO_PACKAGE}@{version}",
                                                          seconds))
        report("ginkgo", version, f"built in {seconds:.1f}s")
        return final


def _provenance(source: str, seconds: float) -> dict:
    return {"source": "gomod", "package": source, "seconds": round(seconds, 1),
            "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
