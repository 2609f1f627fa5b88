"""Builds binaries from Go modules fetched through the Go module proxy."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from harness.artifacts.go_recipes import GO_RECIPES, GoRecipe, Stub
from harness.artifacts.gomod_wrapper import GoModFile, parse_gomod, wrapper_gomod
from harness.artifacts.gotool import Children, GoRunner, find_go, go_env
from harness.artifacts.trimmed_module import stubbed_copy, trimmed_copy
from harness.artifacts.sources.base import ArtifactSource, OnReady, _ignore
from harness.errors import UserError
from harness.versions import Component


class GoModSource(ArtifactSource):
    name = "gomod"

    def __init__(self, log_dir: Path | None = None, go: str | None = None):
        self.log_dir = log_dir
        self.go = go

    def recipe(self, component: Component) -> GoRecipe:
        try:
            return GO_RECIPES[component.name]
        except KeyError:
            raise UserError(f"{component.name}: no Go recipe (gomod builds: "
                            f"{', '.join(GO_RECIPES)})") from None

    def describe(self, component: Component, binaries: list[str]) -> list[str]:
        recipe = self.recipe(component)
        without = f", without {', '.join(recipe.without)}" if recipe.without else ""
        return [f"go build {recipe.packages[b]} from {self._module_of(recipe, b)}"
                f"@{component.version} (wrapper module, "
                f"{'cgo, -static' if recipe.cgo else 'CGO_ENABLED=0'}{without})" for b in binaries]

    def resolve(self, component: Component, wrapper: Path, log: Path,
                children: Children | None = None) -> GoRunner:
        """The wrapper module in `wrapper`, with every module its packages need downloaded into
        Go's module cache; returns the runner that builds in it."""
        recipe = self.recipe(component)
        wrapper.mkdir(parents=True, exist_ok=True)
        log.parent.mkdir(parents=True, exist_ok=True)
        runner = GoRunner(self.go or find_go(), wrapper, log,
                          go_env({"CGO_ENABLED": "1" if recipe.cgo else "0"}), children)
        what = f"{component.name} {component.version}"
        self.write_wrapper(recipe, component.version, runner, what)
        # Resolve every main package (not only the wanted ones) so go.sum is complete.
        # Each with @version: a bare path would mean @upgrade and pull in a newer release.
        runner.run_network(["get", *[f"{pkg}@{component.version}"
                                     for pkg in recipe.packages.values()]], what)
        return runner

    def log_path(self, component: Component, dest_dir: Path, suffix: str = "") -> Path:
        return (self.log_dir or dest_dir) / f"{component.name}@{component.version}{suffix}.log"

    def fetch(self, component: Component, binaries: list[str], dest_dir: Path,
              on_ready: OnReady = _ignore) -> dict[str, Path]:
        recipe = self.recipe(component)
        out_dir = dest_dir / "out"
        out_dir.mkdir(parents=True, exist_ok=True)
        runner = self.resolve(component, dest_dir / "wrapper", self.log_path(component, dest_dir))
        what = f"{component.name} {component.version}"

        built: dict[str, Path] = {}
        for number, group in enumerate(one_build_groups(recipe, binaries)):
            # One `go build` for several commands: their links (one core each) overlap the
            # other commands' compiles, and go loads the package graph once. Go names each
            # output after its package (default_exe_name); it is renamed to the binary's name.
            group_dir = dest_dir / f"build-{number}"
            group_dir.mkdir(parents=True, exist_ok=True)
            started = time.monotonic()
            runner.run(["build", "-trimpath", "-tags", ",".join(recipe.tags),
                        "-ldflags", recipe.ldflags_for(component.version),
                        "-o", f"{group_dir}/", *(recipe.packages[b] for b in group)],
                       f"build of {', '.join(group)} ({what})")
            seconds = time.monotonic() - started
            for binary in group:
                target = out_dir / binary
                (group_dir / default_exe_name(recipe.packages[binary])).replace(target)
                built[binary] = target
                on_ready(binary, target, seconds)
        return built

    def write_wrapper(self, recipe: GoRecipe, version: str, runner: GoRunner, what: str) -> Path:
        """Writes wrapper/go.mod from the go.mod files of the recipe's modules."""
        sources = []
        local: dict[str, str] = {}
        for module in recipe.modules:
            # Outside any module so that only the named module@version is fetched.
            runner.workdir.joinpath("go.mod").unlink(missing_ok=True)
            info = self._download(runner, module, version, what)
            sources.append(parse_gomod(Path(info["GoMod"]).read_text()))
            if recipe.without and module == recipe.modules[0]:
                trimmed_copy(module, Path(info["Dir"]), runner.workdir / "src", recipe.without)
                local[module] = "./src"
        for number, stub in enumerate(recipe.stubs):
            local[stub.module] = self._stubbed(stub, sources[0], runner, what, number)
        text = wrapper_gomod(f"k8s-ha-lab.local/build/{recipe.component}",
                             {m: version for m in recipe.modules}, sources,
                             recipe.published(version), local)
        path = runner.workdir / "go.mod"
        path.write_text(text)
        return path

    @staticmethod
    def _download(runner: GoRunner, module: str, version: str, what: str) -> dict:
        """`go mod download -json module@version` (run outside any module): its Dir, GoMod..."""
        info = json.loads(runner.run_network(["mod", "download", "-json", f"{module}@{version}"],
                                             what))
        if info.get("Error"):
            raise UserError(f"{what}: {module}@{version} not available from the Go module "
                            f"proxy: {info['Error'].splitlines()[0]}")
        return info

    @staticmethod
    def _stubbed(stub: Stub, requirer: GoModFile, runner: GoRunner, what: str, number: int) -> str:
        """A copy of the stub's module, at the version the recipe's module requires, with the
        package stubbed; returns its directory relative to the wrapper."""
        version = requirer.requires.get(stub.module)
        if not version:
            raise UserError(f"{what}: {requirer.module} does not require {stub.module}, whose "
                            f"{stub.package} the recipe stubs")
        info = GoModSource._download(runner, stub.module, version, what)
        directory = f"stub-{number}"
        stubbed_copy(stub.module, Path(info["Dir"]), runner.workdir / directory, stub.package,
                     stub.path)
        return f"./{directory}"

    @staticmethod
    def _module_of(recipe: GoRecipe, binary: str) -> str:
        package = recipe.packages[binary]
        return max((m for m in recipe.modules if package.startswith(m)), key=len)


def default_exe_name(package: str) -> str:
    """The file name `go build -o dir/` gives a main package: its last path element, or the one
    before it when the last is a major version (go.etcd.io/etcd/server/v3 -> server), as
    cmd/go's DefaultExecName does in module mode."""
    head, _, last = package.rpartition("/")
    if head and re.fullmatch(r"v([2-9]|[1-9][0-9]+)", last):
        return head.rpartition("/")[2]
    return last


def one_build_groups(recipe: GoRecipe, binaries: list[str]) -> list[list[str]]:
    """The wanted binaries split into `go build` runs: one, unless two packages would get the
    same output name, which a later run then takes."""
    groups: list[dict[str, str]] = []   # each: output name -> binary
    for binary in binaries:
        name = default_exe_name(recipe.packages[binary])
        group = next((g for g in groups if name not in g), None)
        if group is None:
            groups.append(group := {})
        group[name] = binary
    return [list(group.values()) for group in groups]
