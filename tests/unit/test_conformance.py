"""The conformance harness's own logic, offline: image list, repo list, kubeconfig, skips,
progress and the per-SIG table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

MANIFEST_GO = '''
func initImageConfigs(list RegistryList) (map[ImageID]Config, map[ImageID]Config) {
	configs := map[ImageID]Config{}
	configs[AgnhostPrev] = Config{list.PromoterE2eRegistry, "agnhost", "2.55"}
	configs[Agnhost] = Config{list.PromoterE2eRegistry, "agnhost", "2.66.1"}
	configs[AgnhostPrivate] = Config{list.PrivateRegistry, "agnhost", "2.6"}
	configs[BusyBox] = Config{list.PromoterE2eRegistry, "busybox", "1.37.0-2"}
	configs[Pause] = Config{list.GcRegistry, "pause", "3.10.2"}
	configs[Perl] = Config{list.PromoterE2eRegistry, "perl", "5.26"}
	configs[NodePerfNpbEp] = Config{list.PromoterE2eRegistry, "node-perf/npb-ep", "1.6.0"}
'''


def _module(tmp_path: Path) -> Path:
    (tmp_path / "test/utils/image").mkdir(parents=True)
    (tmp_path / "test/utils/image/manifest.go").write_text(MANIFEST_GO)
    e2e = tmp_path / "test/e2e/node"
    e2e.mkdir(parents=True)
    (e2e / "pods.go").write_text(
        'framework.ConformanceIt("runs", func() { imageutils.GetE2EImage(imageutils.Agnhost)\n'
        'imageutils.GetPauseImageName(); imageutils.GetE2EImage(imageutils.AgnhostPrivate) })')
    # referenced, but by no file with a [Conformance] test: not needed
    (e2e / "perf.go").write_text('ginkgo.It("x", func() { imageutils.NodePerfNpbEp; imageutils.Perl })')
    (e2e / "pods_test.go").write_text('framework.ConformanceIt("y", imageutils.BusyBox)')
    return tmp_path


def test_needed_images_come_from_the_module_source(tmp_path):
    from harness.conformance.images import needed_images

    needed = needed_images(_module(tmp_path))
    assert [(m.image_id, m.name, m.tag) for m in needed] == [
        ("Agnhost", "agnhost", "2.66.1"), ("Pause", "pause", "3.10.2")]


def test_an_image_without_recipe_is_a_failure_not_a_gap():
    from harness.artifacts.images.conformance_images import e2e_image
    from harness.errors import UserError

    assert e2e_image("agnhost", "2.66.1").ref == "k8s-ha-lab.local/e2e/agnhost:2.66.1"
    with pytest.raises(UserError, match="perl:5.26: no recipe"):
        e2e_image("perl", "5.26")


def test_repo_list_maps_every_registry_into_the_lab():
    from harness.conformance.images import REGISTRY_KEYS, repo_list_yaml

    data = yaml.safe_load(repo_list_yaml())
    assert set(data) == set(REGISTRY_KEYS)
    assert all(v.startswith(("k8s-ha-lab.local/", "invalid.k8s-ha-lab.local/"))
               for v in data.values())
    assert data["promoterE2eRegistry"] == data["gcRegistry"] == "k8s-ha-lab.local/e2e"


def test_kubeconfig_targets_the_vip_with_master_url_as_tls_name(tmp_path):
    from harness.conformance.runner import kubeconfig
    from harness.lab import load_lab

    from harness import REPO_ROOT
    lab = load_lab(REPO_ROOT / "labs/small.yaml")
    for name in ("ca.pem", "admin.pem", "admin-key.pem"):
        (tmp_path / name).write_text(name)
    cluster = kubeconfig(lab, tmp_path)["clusters"][0]["cluster"]
    assert cluster["server"] == f"https://10.240.0.250:{lab.vip_port}"
    assert cluster["tls-server-name"] == "api.small.lab"


def test_every_skip_has_a_reason_and_the_regex_is_literal():
    from harness.conformance.runner import load_skips, skip_regex

    skips = load_skips()
    assert skips and all(s.reason for s in skips)
    pattern = re.compile(skip_regex(skips))
    assert pattern.search("[sig-node] ImageVolume should succeed with pod and pull policy of "
                          "Always [LinuxOnly] [MinimumKubeletVersion:1.35] [Conformance]")
    assert not pattern.search("[sig-node] Pods should be submitted and removed [Conformance]")


def test_ginkgo_command_uses_skeleton_provider_and_the_focus():
    from harness.conformance.runner import CI_FOCUS, RunConfig, ginkgo_command
    from harness.lab import load_lab

    from harness import REPO_ROOT
    lab = load_lab(REPO_ROOT / "labs/small.yaml")
    cmd = ginkgo_command(Path("/c/ginkgo"), Path("/c/e2e.test"), Path("/o/kc"), Path("/o"),
                         Path("/c/kubectl"), lab, RunConfig(focus=CI_FOCUS, parallel=3), "X")
    assert cmd[0] == "/c/ginkgo" and "--procs=3" in cmd and "--skip=X" in cmd
    assert cmd[cmd.index("/c/e2e.test") + 1] == "--"
    assert "--provider=skeleton" in cmd and "--kubeconfig=/o/kc" in cmd
    focus = re.compile(CI_FOCUS)
    assert focus.search("[sig-network] DNS should provide DNS for services  [Conformance]")
    assert focus.search("[sig-network] Networking Granular Checks: Pods should function for "
                        "intra-pod communication: http [NodeConformance] [Conformance]")
    assert not focus.search("[sig-network] Services should serve endpoints [Conformance]")


def test_progress_counts_ginkgo_verbose_spec_headers():
    from harness.conformance.report import Progress, ran_of

    p = Progress(total=3)
    for line in ["• [12.345 seconds]", "[sig-network] DNS ...", "• [FAILED] [3.2 seconds]",
                 "S [SKIPPED] [0.000 seconds]", "•  [0.5 seconds]"]:
        p.feed(line)
    assert (p.passed, p.failed, p.skipped, p.done) == (2, 1, 1, 3)
    assert p.line(75) == "[conformance] 3/3 done, 2 passed, 1 failed, elapsed 1m15s"
    assert ran_of("Ran 12 of 7040 Specs in 1.2 seconds") == (12, 7040)


JUNIT = """<?xml version="1.0"?>
<testsuites><testsuite name="Kubernetes e2e suite" tests="5">
 <testcase name="[SynchronizedBeforeSuite]" time="1"></testcase>
 <testcase name="[sig-network] DNS should provide DNS for the cluster [Conformance]" time="9"/>
 <testcase name="[sig-network] DNS should resolve [Conformance]" time="9">
   <failure message="timed out">timed out waiting</failure></testcase>
 <testcase name="[sig-node] ImageVolume should succeed [Conformance]"><skipped message="skipped"/></testcase>
 <testcase name="[sig-storage] Something else"><skipped/></testcase>
</testsuite></testsuites>"""


def test_junit_gives_the_per_sig_table_and_the_summary_line(tmp_path):
    from harness.conformance.report import read_junit, summary_line, table_text

    path = tmp_path / "junit_01.xml"
    path.write_text(JUNIT)
    results = read_junit(path, re.compile(r"\[Conformance\]"))
    assert [r.status for r in results] == ["passed", "failed", "skipped"]
    table = table_text(results)
    assert re.search(r"sig-network\s+1\s+1\s+0", table)
    assert re.search(r"sig-node\s+0\s+0\s+1", table)
    assert summary_line(results) == "1 passed, 1 failed"


def test_build_arguments_follow_the_server_binaries():
    from harness.artifacts.conformance_build import (TEST_PROGRAMS, build_command, get_args,
                                                     ginkgo_version_from_gomod)

    assert "k8s.io/kubernetes/test/e2e@v1.37.2" in get_args("v1.37.2")
    assert "k8s.io/sample-apiserver@v0.37.2" in get_args("v1.37.2")
    e2e = build_command(TEST_PROGRAMS[0], "v1.37.2", Path("/o/e2e.test"))
    assert e2e[:2] == ["test", "-c"]
    assert "-X k8s.io/component-base/version.gitVersion=v1.37.2" in e2e[e2e.index("-ldflags") + 1]
    gomod = "require (\n\tgithub.com/onsi/ginkgo/v2 v2.32.0\n\tgithub.com/onsi/gomega v1.40.0\n)"
    assert ginkgo_version_from_gomod(gomod) == "v2.32.0"


def test_artifacts_build_makes_the_conformance_artifacts_too(tmp_path, monkeypatch):
    """`artifacts build` (what .ci/artifacts.sh runs) ends with e2e.test, ginkgo and the
    images; `--only conformance` builds only those; other --only values leave them alone."""
    import argparse

    from harness import conformance
    from harness.artifacts import cli
    from harness.artifacts.cache import ArtifactCache

    calls = []
    monkeypatch.setattr(conformance, "artifacts", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(cli, "_build", lambda *a: 0)
    cache = ArtifactCache(tmp_path)

    def args(only=None, source=None):
        return argparse.Namespace(action="build", only=only, source=source, dir=None,
                                  force=False, runtime=False)
    assert cli.run(args(), cache=cache) == 0 and len(calls) == 1
    assert cli.run(args("conformance"), cache=cache) == 0 and len(calls) == 2
    assert cli.run(args("etcd"), cache=cache) == 0 and len(calls) == 2
    assert cli.run(args(source="release"), cache=cache) == 0 and len(calls) == 2


def test_node_images_are_compared_by_digest():
    from harness.conformance.images import node_images

    listing = ("REF                                TYPE                                  DIGEST      SIZE PLATFORMS LABELS\n"
               "k8s-ha-lab.local/e2e/busybox:1.37.0-2 application/vnd.oci.image.manifest.v1+json "
               "sha256:abc 1.0 MiB linux/amd64 io.cri-containerd.image=managed\n"
               "sha256:abc application/vnd.oci.image.manifest.v1+json sha256:abc 1.0 MiB linux/amd64 -\n")
    assert node_images(listing)["k8s-ha-lab.local/e2e/busybox:1.37.0-2"] == "sha256:abc"


def test_pull_always_maps_the_e2e_prefix_into_the_lab_registry():
    from harness.conformance import pull_always
    from harness.errors import UserError
    from harness.lab import load_lab

    from harness import REPO_ROOT
    lab = load_lab(REPO_ROOT / "labs/seed.yaml")
    assert pull_always.available(lab)
    assert (pull_always.registry_ref(lab, "k8s-ha-lab.local/e2e/agnhost:2.59")
            == f"{lab.registry_host}/e2e/agnhost:2.59")
    with pytest.raises(UserError, match="not an image under k8s-ha-lab.local/e2e"):
        pull_always.registry_ref(lab, "elsewhere.example/e2e/agnhost:2.59")
    text = pull_always.hosts_toml(lab, "user", "pw")
    assert pull_always.hosts_toml_path() == "/etc/containerd/certs.d/k8s-ha-lab.local/hosts.toml"
    assert f'[host."https://{lab.registry_host}"]' in text
    assert 'capabilities = ["pull", "resolve"]' in text            # never push
    assert 'ca = "/etc/kubernetes/ssl/ca.pem"' in text and "skip_verify" not in text
    assert 'Authorization = "Basic dXNlcjpwdw=="' in text           # base64("user:pw")


def test_pull_always_needs_the_registry_addon():
    from harness.conformance import pull_always
    from harness.lab import load_lab

    from harness import REPO_ROOT
    lab = load_lab(REPO_ROOT / "labs/seed.yaml")
    assert not pull_always.available(lab.__class__(**{**lab.__dict__, "addons": ("dns",)}))
