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
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source_dir, dest, symlinks=True)
    for path in [dest, *dest.rglob("*")]:          # the module cache is read-only
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    for rel in without:
        package_dir = dest / rel
        if not package_dir.is_dir():
            raise UserError(f"{module}: package {rel} to leave out does not exist in {source_dir}")
        shutil.rmtree(package_dir)
        _drop_blank_imports(module, dest, f"{module}/{rel}")
    return dest


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
