"""Every flag the rendered units pass exists in the pinned binary (its own `--help`), and the
Kubernetes binaries accept their rendered config files' API versions."""

from __future__ import annotations

import re
import subprocess

import pytest

from harness.steps.context import BINARY_COMPONENT, build_context

pytestmark = pytest.mark.artifacts

UNITS = {"etcd": "etcd", "flanneld": "flanneld", "kube-apiserver": "kube-apiserver",
         "kube-controller-manager": "kube-controller-manager", "kube-scheduler": "kube-scheduler",
         "kubelet": "kubelet", "kube-proxy": "kube-proxy"}


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    from harness.labfile import load_lab
    from harness import REPO_ROOT
    return build_context(load_lab(REPO_ROOT / "labs/seed.yaml"), tmp_path_factory.mktemp("state"))


def _flags(unit_text: str) -> list[str]:
    return re.findall(r"^\s+(--[a-z0-9-]+)", unit_text, re.M)


@pytest.mark.parametrize("binary", sorted(UNITS))
def test_every_rendered_flag_exists(ctx, binary):
    unit = next(f for f in ctx.files if f.path == f"/etc/systemd/system/{UNITS[binary]}.service")
    flags = _flags(unit.content.decode())
    assert flags, unit.path
    help_text = subprocess.run([str(ctx.binary(binary)), "--help"], capture_output=True, text=True)
    text = help_text.stdout + help_text.stderr
    # Go's flag package (flanneld) lists "-name", pflag (Kubernetes, etcd) "--name": accept both.
    missing = [f for f in flags
               if not re.search(rf"(^|[\s,])--?{re.escape(f.lstrip('-'))}([\s=]|$)", text, re.M)]
    assert missing == [], f"{binary} {ctx.lab.versions[BINARY_COMPONENT[binary]].version} has no {missing}"
