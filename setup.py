"""Build hook: the repo's top-level files the harness reads at run time ship inside the package.

The Vagrantfile, versions.yaml, the docs, the example labs and the pause image's source stay at
their top-level paths in the repo (the design says so). A non-editable build copies them into
`harness/_data/` with the same layout, and `harness.REPO_ROOT` points there when the package
runs outside a checkout. Editable installs read the checkout itself. Everything else about the
package is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# Also listed in MANIFEST.in, so an sdist carries them to the wheel build.
DATA = ("vagrant/Vagrantfile", "versions.yaml", "docs/*.md", "labs/*.yaml", "images/pause/pause.c")


class BuildPyWithData(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "harness" / "_data"
        copied = 0
        for pattern in DATA:
            for source in sorted(ROOT.glob(pattern)):
                dest = target / source.relative_to(ROOT)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest)
                copied += 1
        if not (target / "versions.yaml").is_file() or not (target / "vagrant" / "Vagrantfile").is_file():
            raise SystemExit(f"package data missing from {ROOT}: versions.yaml and vagrant/Vagrantfile are required")


setup(cmdclass={"build_py": BuildPyWithData})
