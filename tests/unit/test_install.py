"""A real install: `pip install .` (not editable) into a fresh venv, then the console script
from a directory outside the repo. Proves the package carries what it reads at run time
(checks/, the Vagrantfile, versions.yaml, the docs, the labs) instead of reaching into a checkout.

The venv gets the running interpreter's site-packages as plain paths (a .pth of directory
lines), so the dependencies are found without downloading anything, while the editable
install of this checkout that those directories may hold is never activated (its own .pth
files are not processed there).
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from harness import REPO_ROOT

_SKIP_ANYWHERE = shutil.ignore_patterns(".git", ".tox", ".venv", "*.egg-info", "__pycache__",
                                        ".pytest_cache", ".vagrant")
# Run outputs at the top only: harness/artifacts is a package and must be copied.
_SKIP_AT_TOP = {"artifacts", "build", "dist"}


def SKIP(directory: str, names: list[str]) -> set[str]:
    skipped = set(_SKIP_ANYWHERE(directory, names))
    if Path(directory).resolve() == REPO_ROOT.resolve():
        skipped |= _SKIP_AT_TOP & set(names)
    return skipped


def _can_build_offline() -> bool:
    """setuptools >= 70.1 makes wheels itself; older ones need the `wheel` package."""
    try:
        import setuptools
    except ImportError:
        return False
    version = tuple(int(part) for part in setuptools.__version__.split(".")[:2] if part.isdigit())
    if version >= (70, 1):
        return True
    try:
        import wheel  # noqa: F401
        return version >= (68, 0)
    except ImportError:
        return False


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The venv's bin directory after a non-editable install of a copy of the working tree."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"  # a copy, so the build's own files never land in the checkout
    shutil.copytree(REPO_ROOT, source, ignore=SKIP, symlinks=True)
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    deps = [p for p in site.getsitepackages() + [site.getusersitepackages()] if os.path.isdir(p)]
    Path(purelib, "host-deps.pth").write_text("".join(f"{p}\n" for p in deps))
    # Build with what is here when it can make a wheel; else pip's ordinary isolated build,
    # which fetches the build backend pyproject.toml names through pip's own configuration.
    offline = ["--no-build-isolation", "--no-index"] if _can_build_offline() else []
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                           "--no-deps", *offline, "--quiet", str(source)],
                          capture_output=True, text=True, cwd=root, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return env_dir / "bin"


def _run(bin_dir: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
               K8S_HA_LAB_STATE=str(cwd / "state"), HOME=str(cwd))
    return subprocess.run(["k8s-ha-lab", *argv], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


def test_installed_package_is_not_the_checkout(installed, tmp_path):
    where = subprocess.run([installed / "python", "-c",
                            "import harness, checks; print(harness.__file__); print(checks.__file__); "
                            "print(harness.REPO_ROOT)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout.split()
    venv_dir = str(installed.parent)
    assert all(path.startswith(venv_dir) for path in where), where
    data = Path(where[2])
    assert data.name == "_data"
    for path in ("vagrant/Vagrantfile", "versions.yaml", "docs/scenarios.md", "docs/machines.md",
                 "labs/seed.yaml", "images/pause/pause.c"):
        assert (data / path).is_file(), path
    assert (data / "versions.yaml").read_bytes() == (REPO_ROOT / "versions.yaml").read_bytes()


def test_validate_plan_and_render_from_outside_the_repo(installed, tmp_path):
    lab = tmp_path / "lab.yaml"
    shutil.copy(REPO_ROOT / "labs" / "small.yaml", lab)
    proc = _run(installed, tmp_path, "validate", "lab.yaml")
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith("lab is valid"), proc.stderr
    proc = _run(installed, tmp_path, "plan", "lab.yaml")
    assert proc.returncode == 0 and "steps, in the guide's order:" in proc.stdout, proc.stderr
    proc = _run(installed, tmp_path, "render", "lab.yaml", "--out", "out")
    assert proc.returncode == 0, proc.stderr
    assert "rendered" in proc.stdout and (tmp_path / "out" / "ctl1" / "etc").is_dir()
    assert not (tmp_path / "state" / "small" / "pki").is_dir() or \
        any((tmp_path / "state" / "small" / "pki").iterdir())


def test_installed_errors_stay_one_line(installed, tmp_path):
    (tmp_path / "bad.yaml").write_bytes(b"\xff\xfe not a lab")
    proc = _run(installed, tmp_path, "validate", "bad.yaml")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: bad.yaml: is not UTF-8 text")
