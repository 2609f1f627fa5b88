"""The uninstall inventory (harness.footprint) covers everything the steps install. Each test
here fails when a step starts installing something `down` on existing machines would leave: a
rendered file, a binary, a unit, a path named in a step or a unit, a hostPath, a user."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
import yaml

from harness import REPO_ROOT
from harness import footprint as fp
from harness.render import UNIT_DIR
from harness.steps import runner
from harness.steps.context import BINARY_COMPONENT, StepContext

STEPS_DIR = REPO_ROOT / "harness" / "steps"
ABSOLUTE = re.compile(r"(?<![\w.$}-])/(?:etc|var|usr|opt|srv|root|run|home|tmp|bin|sbin|lib|dev)(?![\w.-])"
                      r"(?:/[\w.@+-]+)*")
# Paths the steps and units name but never create: read, or the machine's own. Each says why.
NOT_INSTALLED = {
    "/etc/hosts": "edited in place between the BEGIN/END k8s-ha-lab markers; down removes the block",
    "/etc/resolv.conf": "the kubelet reads it",
    "/etc/ssh/ssh_host_ed25519_key.pub": "the registry step reads the storage server's host key",
    "/etc/sysctl.conf": "named in a comment of the sysctl file",
    "/usr/lib/cni": "the machine's CNI plugins (containernetworking-plugins), read",
    "/usr/bin/sshfs": "the sshfs package's binary, run by the registry mount unit",
    "/bin/mkdir": "coreutils, run by units",
    "/bin/fusermount3": "fuse3's binary, run by the registry mount unit",
    "/bin/sh": "the shell kube-proxy's unit runs its REJECT rules with",
    "/usr/sbin/sshd": "the machine's sshd, asked to test its config",
    "/usr/sbin/nologin": "the registry user's shell",
    "/dev/fuse": "the kernel's FUSE device",
    "/var/log": "vlagent reads the pods' logs there (hostPath, read-only)",
    "/var/lib/containerd": "containerd's root: its k8s.io namespace is emptied and removed",
    "/run/containerd": "containerd's state: the CRI plugin's per-pod entries are removed",
    "/run/containerd/containerd.sock": "containerd's socket",
    "/usr/bin": "a PATH entry",
    "/usr/local/bin": "the binaries' folder (each binary is listed)",
    "/etc/systemd/system": "the units' folder (each unit file is listed)",
    "/run/xtables.lock": "iptables' lock, shared with the machine",
    "/dev/null": "where errors go",
}


def _not_installed(path: str) -> bool:
    """Only read, or a prefix the steps match changed paths against (`/etc/containerd` of
    nodes.py's restart decision), which names nothing new."""
    return (path in NOT_INSTALLED or any(path.startswith(p + "/") for p in ("/usr/lib/cni", "/proc", "/sys"))
            or any(entry.startswith(path) for entry in (*fp.FILES, *fp.TREES)))


def test_every_rendered_file_is_covered(rendered_seed, rendered_small):
    for rendered in (rendered_seed, rendered_small):
        missing = sorted({f.path for f in rendered.files if not fp.covered(f.path)})
        assert not missing, f"rendered but not in harness.footprint: {missing}"


def test_the_registry_steps_own_files_are_covered(rendered_seed, tmp_path, monkeypatch):
    """The registry step builds its files itself (harness.steps.registry), not in the plan."""
    from harness.artifacts.cache import ArtifactCache
    from harness.render.registry import storage_server
    from harness.steps import registry

    crane = tmp_path / "crane"
    crane.write_bytes(b"#!/bin/true\n")
    monkeypatch.setattr(ArtifactCache, "binary_path", lambda self, *a: crane)
    lab = rendered_seed.lab
    ctx = StepContext(lab, rendered_seed.pki_dir.parent, rendered_seed.secrets, rendered_seed.files)
    keys = registry.load_registry_secrets(tmp_path)
    files = (registry.server_files(ctx, storage_server(lab), keys)
             + registry.node_files(ctx, lab.nodes[0], keys, "ssh-ed25519 AAAA host")
             + [registry.manifest_file(ctx, keys)])
    assert files and all(fp.covered(f.path) for f in files), [f.path for f in files if not fp.covered(f.path)]


def test_every_binary_the_steps_install_is_listed():
    assert set(BINARY_COMPONENT) <= set(fp.BINARIES), sorted(set(BINARY_COMPONENT) - set(fp.BINARIES))
    assert set(fp.CLUSTER_BINARIES) == set(BINARY_COMPONENT)  # no stale entry either


def test_every_rendered_unit_is_an_own_unit(rendered_seed):
    units = {f.path for f in rendered_seed.files if f.path.startswith(UNIT_DIR + "/")}
    own = {f"{UNIT_DIR}/{u}" for u in fp.OWN_UNITS} | set(fp.UNIT_DROPINS)
    assert units - own == set()


def _start_units_calls():
    """(module, unit names) for every `start_units(ctx, step, machine, [units], ...)` in the steps,
    the unit list evaluated in its module's namespace."""
    for path in sorted(STEPS_DIR.glob("*.py")):
        module = importlib.import_module(f"harness.steps.{path.stem}")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "start_units" and len(node.args) >= 4:
                units = eval(compile(ast.Expression(node.args[3]), str(path), "eval"), vars(module))  # noqa: S307
                yield path.stem, list(units)


def test_every_unit_a_step_starts_is_stopped_by_down():
    found = list(_start_units_calls())
    assert len(found) >= 8, found  # the scan sees the steps' calls (etcd, flannel, masters, ...)
    known = {u.removesuffix(".service") for u in fp.units()} | set(fp.units())
    for module, units in found:
        assert set(units) <= known, f"harness/steps/{module}.py starts {sorted(set(units) - known)}, " \
                                    "which harness.footprint does not list"


def _strings_of(path: Path) -> list[str]:
    """Every string literal of a module, f-strings with their module-level names filled in."""
    module = importlib.import_module(f"harness.steps.{path.stem}")
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append(node.value)
        elif isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                if isinstance(value, ast.Constant):
                    parts.append(str(value.value))
                else:
                    try:
                        parts.append(str(eval(compile(ast.Expression(value.value), "", "eval"), vars(module))))  # noqa: S307
                    except Exception:  # noqa: BLE001 - a local name: leave a hole
                        parts.append("{}")
            out.append("".join(parts))
    return out


def test_every_path_a_step_names_is_covered_or_only_read():
    """A new `install -d /var/lib/x` or upload to /etc/y in a step fails here until the
    footprint lists it (or NOT_INSTALLED says why it is not the harness's)."""
    uncovered = set()
    for path in sorted(STEPS_DIR.glob("*.py")):
        for text in _strings_of(path):
            for found in ABSOLUTE.findall(text):
                if not fp.covered(found) and not _not_installed(found):
                    uncovered.add(f"{path.name}: {found}")
    assert not uncovered, sorted(uncovered)


def test_every_path_a_rendered_unit_names_is_covered_or_only_read(rendered_seed):
    uncovered = set()
    for f in rendered_seed.files:
        if f.path.startswith(UNIT_DIR + "/"):
            for found in ABSOLUTE.findall(f.content.decode()):
                if not fp.covered(found) and not _not_installed(found):
                    uncovered.add(f"{f.path}: {found}")
    assert not uncovered, sorted(uncovered)


def _host_paths(document) -> list[str]:
    if isinstance(document, dict):
        found = [document["hostPath"]["path"]] if isinstance(document.get("hostPath"), dict) else []
        return found + [p for value in document.values() for p in _host_paths(value)]
    if isinstance(document, list):
        return [p for item in document for p in _host_paths(item)]
    return []


def test_every_host_path_a_manifest_mounts_is_covered_or_only_read(rendered_seed):
    """A pod that writes to the machine (hostPath) leaves files down must remove."""
    paths = set()
    for f in rendered_seed.files:
        if f.path.endswith(".yaml") and "/addons/" in f.path:
            for document in yaml.safe_load_all(f.content.decode()):
                paths.update(_host_paths(document))
    assert paths, "no hostPath found: the scan is broken"
    uncovered = sorted(p for p in paths if not fp.covered(p) and not _not_installed(p))
    assert not uncovered, uncovered


def test_the_registry_user_is_removed_by_down():
    source = (STEPS_DIR / "registry.py").read_text()
    assert "useradd" in source
    from harness.render.registry import SFTP_USER
    assert fp.USERS == (SFTP_USER,)


def test_every_kernel_setting_of_the_sysctl_file_is_restored(rendered_seed):
    keys = set(fp.sysctl_keys(rendered_seed.lab))
    for f in rendered_seed.files:
        if f.path == fp.SYSCTL_FILE:
            written = {line.split("=")[0].strip() for line in f.content.decode().splitlines()
                       if "=" in line and not line.startswith("#")}
            assert written and written <= keys


def test_every_step_module_is_scanned():
    assert {Path(m).stem for m in runner.MODULES.values()} <= {p.stem for p in STEPS_DIR.glob("*.py")}


@pytest.mark.parametrize("path,covered", [("/etc/kubernetes/ssl/ca.pem", True), ("/var/lib/etcd", True),
                                          ("/etc/kubernetes-old/x", False), ("/usr/local/bin/kubectl", True),
                                          ("/usr/local/bin/helm", False), ("/var/lib/etcdx", False)])
def test_covered_means_listed_or_inside_a_tree(path, covered):
    assert fp.covered(path) is covered


def test_no_tree_is_inside_another_and_parents_come_deepest_first():
    for tree in fp.TREES:
        assert not any(tree.startswith(other + "/") for other in fp.TREES if other != tree), tree
    parents = fp.parent_dirs()
    assert parents == sorted(parents, key=lambda p: (-p.count("/"), p))
    assert "/etc/systemd/system/containerd.service.d" in parents and "/" not in parents
