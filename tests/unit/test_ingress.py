"""The ingress add-on offline: traefik's manifest from the lab, its certificate, its image's file
capability, the hosts lines clients fail over with, and the failover loop's arithmetic."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from harness.artifacts import catalog
from harness.artifacts.go_recipes import GO_RECIPES
from harness.artifacts.images import filecaps
from harness.artifacts.images.builder import IMAGE_COMPONENTS
from harness.artifacts.images.gobinary_image import GO_BINARY_IMAGES
from harness.artifacts.images.oci import ImageSpec, LayerEntry, layer_tar
from harness.render import SSL_DIR, env, manifests
from harness.render import ingress as ing
from harness.versions import load_versions
from tests.unit.conftest import require_tool

MANIFEST = ing.MANIFEST


@pytest.fixture(scope="module")
def rendered_small_ingress(tmp_path_factory):
    """The small lab (10.240.0.0/24) with the ingress add-on under a domain of its own."""
    from tests.unit.conftest import SMALL, _render

    data = yaml.safe_load(SMALL.read_text())
    data["addons"] = ["dns", "ingress"]
    data["ingress"] = {"domain": "apps.small.lab"}
    root = tmp_path_factory.mktemp("small-ingress")
    path = root / "small.yaml"
    path.write_text(yaml.safe_dump(data))
    return _render(path, root)


def _docs(text: str) -> dict[str, dict]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(text)}


def _seed_docs(rendered) -> dict[str, dict]:
    return _docs(rendered.text(rendered.lab.masters[0].name, MANIFEST))


def test_manifest_is_on_the_first_master_only_and_root_only(rendered_seed, rendered_small):
    assert not any(f.path == MANIFEST for f in rendered_small.files)   # no ingress add-on there
    assert not (rendered_small.pki_dir / "ingress.pem").exists()
    lab = rendered_seed.lab
    holders = [f.machine for f in rendered_seed.files if f.path == MANIFEST]
    assert holders == [lab.masters[0].name]
    f = rendered_seed.file(lab.masters[0].name, MANIFEST)
    assert f.mode == 0o600 and f.step == "ingress"


def test_traefik_binds_each_nodes_own_address_with_least_privilege(rendered_seed):
    lab = rendered_seed.lab
    ds = _seed_docs(rendered_seed)["DaemonSet/traefik"]
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["serviceAccountName"] == ing.APP
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    (c,) = pod["containers"]
    assert c["image"] == lab.versions.traefik.image_ref and c["imagePullPolicy"] == "Never"
    env_ = {e["name"]: e for e in c["env"]}
    assert env_["HOST_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    addresses = [a.split("=", 1)[1] for a in c["args"] if a.startswith("--entryPoints.") and ".address=" in a]
    assert sorted(addresses) == sorted([f"$(HOST_IP):{lab.ingress.http_port}", f"$(HOST_IP):{lab.ingress.https_port}",
                                        f"$(HOST_IP):{ing.PING_PORT}"])
    assert not any("0.0.0.0" in a or a.startswith(":") for a in addresses)
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ping", "port": ing.PING_PORT}
    # a new certificate or file-provider config rolls the pods
    annotations = ds["spec"]["template"]["metadata"]["annotations"]
    assert {"k8s-ha-lab/tls-sha256", "k8s-ha-lab/dynamic-sha256"} <= set(annotations)


def test_rbac_is_read_only_and_bound_to_traefiks_own_account(rendered_seed):
    docs = _seed_docs(rendered_seed)
    role = docs["ClusterRole/traefik"]
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert verbs == {"get", "list", "watch"}
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert resources == {"services", "secrets", "nodes", "endpointslices", "ingresses", "ingressclasses"}
    binding = docs["ClusterRoleBinding/traefik"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": ing.APP, "namespace": ing.NAMESPACE}]
    assert "ServiceAccount/traefik" in docs


def test_ingress_class_and_nginx_ingress_match_the_nginx_service(rendered_seed, rendered_small_ingress):
    for rendered in (rendered_seed, rendered_small_ingress):
        lab = rendered.lab
        docs = _seed_docs(rendered)
        assert docs[f"IngressClass/{ing.INGRESS_CLASS}"]["spec"]["controller"] == ing.CONTROLLER
        args = docs["DaemonSet/traefik"]["spec"]["template"]["spec"]["containers"][0]["args"]
        assert f"--providers.kubernetesingress.ingressClass={ing.INGRESS_CLASS}" in args
        ingress = docs["Ingress/nginx"]
        assert ingress["metadata"]["namespace"] == ing.NGINX_NAMESPACE
        assert ingress["spec"]["ingressClassName"] == ing.INGRESS_CLASS
        (rule,) = ingress["spec"]["rules"]
        assert rule["host"] == lab.ingress_host("nginx") == f"nginx.{lab.ingress.domain}"
        backend = rule["http"]["paths"][0]["backend"]["service"]
        service = next(d for d in yaml.safe_load_all(manifests.nginx_ds_yaml(lab)) if d["kind"] == "Service")
        assert backend["name"] == service["metadata"]["name"]
        assert backend["port"]["number"] in [p["port"] for p in service["spec"]["ports"]]


def test_secret_holds_the_ingress_cert_and_its_key_never_the_ca_key(rendered_seed):
    import base64

    secret = _seed_docs(rendered_seed)["Secret/traefik-default-tls"]
    pki = rendered_seed.pki_dir
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    assert data["tls.crt"] == (pki / "ingress.pem").read_bytes()
    assert data["tls.key"] == (pki / "ingress-key.pem").read_bytes()
    ca_key = (pki / "ca-key.pem").read_bytes()
    manifest = rendered_seed.file(rendered_seed.lab.masters[0].name, MANIFEST).content
    assert base64.b64encode(ca_key) not in manifest and ca_key not in manifest


def test_ingress_certificate_verifies_for_every_app_name_against_the_lab_ca(rendered_seed, rendered_small_ingress):
    openssl = require_tool("openssl")
    for rendered in (rendered_seed, rendered_small_ingress):
        lab, pki = rendered.lab, rendered.pki_dir
        for name, ok in [(lab.ingress_host("nginx"), True), (lab.ingress_host("logs"), True),
                         (f"a.b.{lab.ingress.domain}", False), (lab.master_url, False)]:
            proc = subprocess.run([openssl, "verify", "-CAfile", str(pki / "ca.pem"), "-verify_hostname", name,
                                   "-purpose", "sslserver", str(pki / "ingress.pem")], capture_output=True, text=True)
            assert (proc.returncode == 0) == ok, f"{name}: {proc.stdout}{proc.stderr}"


def test_every_machine_resolves_each_app_name_to_every_node(seed_lab):
    lab = seed_lab
    for m in lab.machines:
        block = env.hosts_block(lab, m)
        for app in ("nginx", "logs"):
            host = lab.ingress_host(app)
            ips = [line.split()[0] for line in block.splitlines() if line.split()[1:] == [host]]
            assert ips == [str(n.ip) for n in lab.nodes], f"{m.name}: {host} -> {ips}"


def test_traefik_is_pinned_and_built_as_its_release_build_does():
    versions = load_versions()
    t = versions.traefik
    assert (t.version, t.source, t.module) == ("v3.6.12", "gomod", "github.com/traefik/traefik/v3")
    assert t.image_ref == "k8s-ha-lab.local/traefik:v3.6.12"
    recipe = GO_RECIPES["traefik"]
    assert recipe.packages == {"traefik": "github.com/traefik/traefik/v3/cmd/traefik"} and not recipe.cgo
    flags = recipe.ldflags_for(t.version)
    assert "-X github.com/traefik/traefik/v3/pkg/version.Version=3.6.12" in flags
    assert "-X github.com/traefik/traefik/v3/pkg/version.Codename=ramequin" in flags
    assert catalog.binary_spec("traefik").expected_output(t.version) == "Version:      3.6.12"
    assert "traefik" in IMAGE_COMPONENTS


def test_file_capability_bytes_are_what_setcap_writes(tmp_path):
    value = filecaps.vfs_cap_data(["CAP_NET_BIND_SERVICE"])
    assert filecaps.parse_vfs_cap_data(value) == (["CAP_NET_BIND_SERVICE"], True)
    setcap = require_tool("setcap", why="libcap2-bin")
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    proc = subprocess.run([setcap, "cap_net_bind_service=+ep", str(probe)], capture_output=True, text=True)
    if proc.returncode != 0 and os.geteuid() != 0:
        pytest.skip(f"setcap needs root here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    assert os.getxattr(probe, filecaps.XATTR) == value


def test_traefik_image_carries_cap_net_bind_service_on_its_binary(tmp_path):
    recipe = GO_BINARY_IMAGES["traefik"]
    binary = tmp_path / "traefik"
    binary.write_bytes(b"\x7fELF not really")
    spec = recipe.build_spec("k8s-ha-lab.local/traefik", "v3.6.12", binary)
    assert spec.user == "65534:65534"
    layer = tmp_path / "layer.tar"
    layer.write_bytes(layer_tar(spec.entries))
    with tarfile.open(layer) as tar:
        member = tar.getmember("traefik")
        assert member.pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape") == \
            filecaps.vfs_cap_data(["CAP_NET_BIND_SERVICE"])
    # The other Go-binary images keep their layers (and recipe keys) as they were.
    for name, other in GO_BINARY_IMAGES.items():
        if name != "traefik":
            assert not other.capabilities
    # GNU tar, another reader, restores it as the kernel's xattr: getcap reads it back.
    getcap, tar_ = require_tool("getcap", why="libcap2-bin"), require_tool("tar")
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run([tar_, "--xattrs", "--xattrs-include=security.capability", "-xf", str(layer), "-C", str(out)],
                          capture_output=True, text=True)
    if os.geteuid() != 0:
        pytest.skip("restoring security.capability needs root")
    assert proc.returncode == 0, proc.stderr
    shown = subprocess.run([getcap, str(out / "traefik")], capture_output=True, text=True).stdout
    assert "cap_net_bind_service=ep" in shown, shown


def test_plain_layer_entries_get_no_pax_xattrs(tmp_path):
    raw = layer_tar([LayerEntry("a", data=b"x")])
    assert b"SCHILY.xattr" not in raw
    assert ImageSpec("n", "t", [], []).ref == "n:t"


# --- the failover loop ---------------------------------------------------------------------------
def _line(at: float, codes: list[tuple[str, str]], victim: str) -> str:
    return f"{at:.2f} " + " ".join(f"{c},{ip}" for c, ip in codes) + f" victim={victim}"


def test_loop_summary_splits_the_outage_from_the_restart():
    from checks.ingress import parse_loop, summarize

    v, other = "192.168.220.102", "192.168.220.200"
    lines = [_line(10.0, [("200", v), ("200", v)], "200"),
             _line(10.2, [("200", v), ("000", v)], "200"),        # the request in flight at the kill
             _line(10.4, [("200", v), ("200", other)], "000"),     # asked before the victim went
             _line(10.6, [("200", other), ("200", other)], "000"),
             _line(10.8, [("404", v), ("404", v)], "404"),       # listening, routes not loaded yet
             _line(11.0, [("404", v), ("000", v)], "404"),       # any failure from it counts here
             _line(11.2, [("200", v), ("200", v)], "200"),
             "garbage line", ""]
    s = summarize(parse_loop("\n".join(lines)), v)
    assert s["rounds"] == 7 and s["requests"] == 14 and s["failures"] == 5
    assert s["failures_while_down"] == 1 and s["failures_from_restarted_victim"] == 4 and s["other_failures"] == 0
    assert s["failover_gap_s"] == 0.4          # 10.0 -> 10.4 on the second URL
    assert s["longest_gap_s"] == 0.6           # 10.6 (another node) -> 11.2: the restart included
    assert s["victim_down_rounds"] == 2 and s["victim_down_s"] == 0.2
    assert s["victim_restart_unrouted_s"] == 0.4 and s["victim_unrouted_answers"] == ["404"]
    assert s["answered_by_while_down"] == [other] and not s["victim_answered_while_down"]


def test_loop_summary_flags_what_the_checks_refuse():
    from checks.ingress import parse_loop, summarize

    v, other = "192.168.220.102", "192.168.220.200"
    s = summarize(parse_loop("\n".join([_line(1.0, [("200", v)], "000"), _line(1.2, [("200", v)], "000")])), v)
    assert s["victim_answered_while_down"]
    assert s["victim_restart_unrouted_s"] is None            # never seen serving again
    s = summarize(parse_loop("\n".join([_line(1.0, [("200", other)], "200"),
                                          _line(1.2, [("502", other)], "200")])), v)
    assert s["victim_down_rounds"] == 0 and s["other_failures"] == 1 and s["failover_gap_s"] is None


def test_loop_script_asks_by_name_and_the_victim_by_address(seed_lab):
    from checks.ingress import loop_script
    from harness.steps.context import StepContext

    ctx = StepContext(seed_lab, Path("/nonexistent"), None, [])
    script = loop_script(ctx, "192.168.220.102", 5)
    assert "http://nginx.apps.virtual.local/" in script and "https://nginx.apps.virtual.local/" in script
    assert "--resolve nginx.apps.virtual.local:80:192.168.220.102" in script
    assert f"--cacert {SSL_DIR}/ca.pem" in script


def test_scenario_bound_and_invariants(seed_lab):
    from types import SimpleNamespace

    from harness.failover import ingress_scenario
    from harness.failover.scenarios import SCENARIOS

    s = SCENARIOS["ingress-pod-killed"]
    assert s.measure == "failover_gap_s"
    b = ingress_scenario.bound(SimpleNamespace(lab=seed_lab))
    assert b.seconds == pytest.approx(0.6) and "0.1" in b.formula and "0.2" in b.formula
    good = {"ingress_requests": 100, "victim_down_rounds": 5, "failures_while_down": 1, "other_failures": 0,
            "victim_answered_while_down": False, "victim_node": "node03", "victim_restart_unrouted_s": 0.5}
    assert ingress_scenario.invariants(good, {}) == []
    for bad in ({"victim_down_rounds": 0}, {"failures_while_down": 2}, {"other_failures": 1},
                {"victim_answered_while_down": True}, {"victim_restart_unrouted_s": None},
                {"victim_restart_unrouted_s": 9.0}, {"ingress_requests": 10}):
        assert ingress_scenario.invariants({**good, **bad}, {}), bad
