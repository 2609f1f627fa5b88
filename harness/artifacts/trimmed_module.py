"""A local copy of a Go module with some of its packages left out, for a wrapper to build from.

Why: a project can link in a package whose own dependency the Go module proxy does not serve.
flannel v0.28 imports its Tencent Cloud backend in `main.go` with a blank import, and that
backend's SDK module (tencentcloud-sdk-go/tencentcloud/vpc) is refused by the proxy, so the
module does not build as published. The lab uses the vxlan backend only. Leaving the package out
(its directory removed, the blank import that registers it dropped) builds everything else from
the published source, unchanged. The go.mod is left as it is: Go fetches only the modules of the
packages a build imports, so the refused module is never asked for.

Only blank imports (`_ "path"`) are removed: a package that other code calls cannot be left out,
and is refused with a clear error instead of a build that fails later.

A dependency's package can also be *stubbed*: its Go files replaced by one small file that keeps
its exported names (stubbed_copy). traefik links lego's registry of ACME DNS-01 providers, about
180 cloud DNS APIs and their SDKs, for a feature the lab cannot use (no public DNS, no ACME
server); compiling them was over four of traefik's ten minutes on a cold 2-core host. A stub
whose exported names differ from the package's is refused, so a new upstream version that adds
one is an error that names it, not a compile failure.
"""

from __future__ import annotations

import re
import shutil
import stat
from pathlib import Path

from harness.errors import UserError


def trimmed_copy(module: str, source_dir: Path, dest: Path, without: tuple[str, ...]) -> Path:
    """Copies source_dir (module's root, e.g. from the module cache) to dest without the packages
    `without` (paths relative to the module root). Returns dest. Idempotent: dest is rebuilt."""
    _writable_copy(source_dir, dest)
    for rel in without:
        package_dir = dest / rel
        if not package_dir.is_dir():
            raise UserError(f"{module}: package {rel} to leave out does not exist in {source_dir}")
        shutil.rmtree(package_dir)
        _drop_blank_imports(module, dest, f"{module}/{rel}")
    return dest


def stubbed_copy(module: str, source_dir: Path, dest: Path, package: str, stub: Path) -> Path:
    """Copies source_dir (module's root) to dest with the package's Go files (not its tests)
    replaced by the stub file. Returns dest. The stub must export exactly what they exported."""
    package_dir = source_dir / package
    originals = sorted(p for p in package_dir.glob("*.go") if not p.name.endswith("_test.go"))
    if not originals:
        raise UserError(f"{module}: package {package} to stub has no Go files in {source_dir}")
    wanted = set().union(*(_exported(p.read_text()) for p in originals))
    offered = _exported(stub.read_text())
    if wanted != offered:
        raise UserError(f"{module}: the stub {stub.name} for {package} exports "
                        f"{', '.join(sorted(offered)) or 'nothing'} but the package exports "
                        f"{', '.join(sorted(wanted)) or 'nothing'}")
    _writable_copy(source_dir, dest)
    for original in originals:
        (dest / original.relative_to(source_dir)).unlink()
    shutil.copyfile(stub, dest / package / "k8s_ha_lab_stub.go")
    return dest


_EXPORTED = re.compile(r"^(?:func|var|const|type)\s+([A-Z]\w*)", re.MULTILINE)


def _exported(go_source: str) -> set[str]:
    """The package-level exported names a Go file declares on a line of their own (functions
    without receivers, and single var, const and type declarations)."""
    return set(_EXPORTED.findall(go_source))


def _writable_copy(source_dir: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source_dir, dest, symlinks=True)
    for path in [dest, *dest.rglob("*")]:          # the module cache is read-only
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def _drop_blank_imports(module: str, root: Path, import_path: str) -> None:
    quoted = re.escape(f'"{import_path}"')
    blank = re.compile(rf"^\s*(import\s+)?_\s+{quoted}\s*(//.*)?$")
    any_use = re.compile(quoted)
    for go_file in root.rglob("*.go"):
        text = go_file.read_text()
        if import_path not in text:
            continue
        kept = []
        for line in text.splitlines(keepends=True):
            if blank.match(line):
                continue
            if any_use.search(line):
                rel = go_file.relative_to(root)
                raise UserError(f"{module}: {rel} imports {import_path} by name, not only for its "
                                f"side effects: it cannot be left out of the build")
            kept.append(line)
        go_file.write_text("".join(kept))
