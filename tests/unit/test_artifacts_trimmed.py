"""A module built without some of its packages: the copy, the dropped import, the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.artifacts.go_recipes import GO_RECIPES
from harness.artifacts.gomod_wrapper import wrapper_gomod
from harness.artifacts.trimmed_module import trimmed_copy
from harness.errors import UserError

MOD = "example.com/proj"
MAIN = f"""package main

import (
\t"fmt"

\t_ "{MOD}/pkg/backend/vxlan"
\t_ "{MOD}/pkg/backend/cloud" // registers itself
)

func main() {{ fmt.Println("hi") }}
"""


def _module(root: Path) -> Path:
    (root / "pkg/backend/vxlan").mkdir(parents=True)
    (root / "pkg/backend/cloud").mkdir(parents=True)
    (root / "go.mod").write_text(f"module {MOD}\n\ngo 1.26.0\n")
    (root / "main.go").write_text(MAIN)
    (root / "pkg/backend/vxlan/vxlan.go").write_text("package vxlan\n")
    (root / "pkg/backend/cloud/cloud.go").write_text('package cloud\n\nimport "cloud.sdk/vpc"\n')
    for path in [root, *root.rglob("*")]:       # as read-only as the module cache
        path.chmod(0o555 if path.is_dir() else 0o444)
    return root


def test_copy_leaves_out_the_package_and_its_blank_import(tmp_path):
    src = _module(tmp_path / "cache")
    dest = trimmed_copy(MOD, src, tmp_path / "w/src", ("pkg/backend/cloud",))
    assert not (dest / "pkg/backend/cloud").exists()
    assert (dest / "pkg/backend/vxlan/vxlan.go").exists()
    main = (dest / "main.go").read_text()
    assert "backend/cloud" not in main and f'_ "{MOD}/pkg/backend/vxlan"' in main
    assert (src / "pkg/backend/cloud/cloud.go").exists()       # the cache is untouched
    # idempotent: a second copy over the first gives the same tree
    trimmed_copy(MOD, src, dest, ("pkg/backend/cloud",))
    assert (dest / "main.go").read_text() == main


def test_a_package_called_by_name_is_refused(tmp_path):
    src = _module(tmp_path / "cache")
    (src / "main.go").chmod(0o644)
    (src / "main.go").write_text(MAIN.replace(f'_ "{MOD}/pkg/backend/cloud"',
                                              f'cloud "{MOD}/pkg/backend/cloud"'))
    with pytest.raises(UserError, match="main.go imports example.com/proj/pkg/backend/cloud by name"):
        trimmed_copy(MOD, src, tmp_path / "w/src", ("pkg/backend/cloud",))


def test_a_missing_package_is_refused(tmp_path):
    src = _module(tmp_path / "cache")
    with pytest.raises(UserError, match="pkg/nope to leave out does not exist"):
        trimmed_copy(MOD, src, tmp_path / "w/src", ("pkg/nope",))


def test_wrapper_points_the_module_at_the_copy():
    text = wrapper_gomod("w", {MOD: "v1.0.0"}, [], lambda path: None, {MOD: "./src"})
    assert f"\t{MOD} => ./src" in text and f"\t{MOD} v1.0.0" in text


def test_flannel_is_built_without_its_tencent_backend_only():
    assert GO_RECIPES["flannel"].without == ("pkg/backend/tencentvpc",)
    assert [name for name, r in GO_RECIPES.items() if r.without] == ["flannel"]
