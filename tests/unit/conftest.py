"""Offline fixtures: parsed labs and their rendered trees, built once per session in tmp."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from harness import REPO_ROOT, pki_store
from harness.lab import Lab
from harness.labfile import load_lab
from harness.render import RenderedFile
from harness.render.plan import build_plan, write_tree
from harness.state import LabSecrets, load_secrets

SEED = REPO_ROOT / "labs" / "seed.yaml"
SMALL = REPO_ROOT / "labs" / "small.yaml"


@dataclass
class RenderedLab:
    lab: Lab
    pki_dir: Path
    out: Path
    files: list[RenderedFile]
    secrets: LabSecrets

    def file(self, machine: str, path: str) -> RenderedFile:
        for f in self.files:
            if f.machine == machine and f.path == path:
                return f
        raise KeyError(f"{machine}:{path}")

    def text(self, machine: str, path: str) -> str:
        return self.file(machine, path).content.decode()


def _render(lab_path: Path, root: Path) -> RenderedLab:
    lab = load_lab(lab_path)
    pki_dir = root / "pki"
    pki_store.ensure_pki(lab, pki_dir)
    secrets = load_secrets(lab, root)
    files = build_plan(lab, pki_dir, secrets)
    write_tree(files, root / "out")
    return RenderedLab(lab, pki_dir, root / "out", files, secrets)


@pytest.fixture(scope="session")
def seed_lab() -> Lab:
    return load_lab(SEED)


@pytest.fixture(scope="session")
def rendered_seed(tmp_path_factory) -> RenderedLab:
    return _render(SEED, tmp_path_factory.mktemp("seed"))


@pytest.fixture(scope="session")
def rendered_small(tmp_path_factory) -> RenderedLab:
    return _render(SMALL, tmp_path_factory.mktemp("small"))


@pytest.fixture
def seed_data() -> dict:
    """The seed lab as a raw mapping, for tests that break one field."""
    return yaml.safe_load(SEED.read_text())


@pytest.fixture
def write_lab(tmp_path):
    def write(data: dict | str, name: str = "lab.yaml") -> Path:
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
        return path
    return write


def require_tool(*names: str, why: str = "bin/setup-host installs it") -> str:
    """The path of the first of `names` found on PATH (or where .ci/lint-tools.sh puts tools).
    Missing: a failure in CI, where bin/setup-host must have installed it; a skip saying so
    elsewhere, so a bare checkout still runs the rest of the offline suite."""
    import os
    import shutil

    for name in names:
        found = shutil.which(name) or next((str(p) for p in (Path("/usr/local/bin") / name,
                                                                Path.home() / "go" / "bin" / name)
                                            if p.exists()), None)
        if found:
            return found
    message = f"{' or '.join(names)} is not installed ({why})"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
