"""The add-ons' rendered manifests, their lab settings, and the DNS checks' own arithmetic.

CoreDNS itself parses the Corefile in the artifacts suite; here the manifests are checked for the
lab's values and for the properties the issue asks for (anti-affinity, probes, no forward)."""

from __future__ import annotations

import base64
import ipaddress

import pytest
import yaml

from harness.errors import LabError
from harness.render import K8S_DIR, addons
from harness.render.check_workloads import autoscaling_yaml, toolbox_yaml


def _docs(text: str) -> dict[str, dict]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(text)}


def test_coredns_sits_on_the_labs_dns_ip_with_two_spread_replicas(rendered_seed):
    lab = rendered_seed.lab
    docs = _docs(rendered_seed.text("master01", f"{K8S_DIR}/addons/coredns.yaml"))
    assert docs["Service/kube-dns"]["spec"]["clusterIP"] == str(lab.cluster.dns_service_ip)
    spec = docs["Deployment/coredns"]["spec"]
    assert spec["replicas"] >= 2
    pod = spec["template"]["spec"]
    term = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["image"] == lab.versions.coredns.image_ref and container["imagePullPolicy"] == "Never"
    assert pod["serviceAccountName"] == "coredns" and "ServiceAccount/coredns" in docs
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert "ClusterRoleBinding/system:coredns" in docs


def test_corefile_forwards_nowhere_and_serves_the_labs_zones(rendered_seed, rendered_small):
    for rendered in (rendered_seed, rendered_small):
        lab = rendered.lab
        core = addons.corefile(lab)
        plugins = [line.split()[0] for line in core.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        assert "forward" not in plugins and "proxy" not in plugins
        assert f"kubernetes {lab.dns_domain} " in core
        for zone in addons.reverse_zones(lab.cluster.service_cidr):
            assert zone in core
        for m in lab.machines:
            assert f"{m.ip} {m.name}" in core
        assert f"{lab.api_address} {lab.master_url}" in core
    assert "10.32" not in addons.corefile(rendered_seed.lab)


@pytest.mark.parametrize("cidr, zones", [
    ("10.254.0.0/16", ["254.10.in-addr.arpa"]),
    ("10.32.0.0/24", ["0.32.10.in-addr.arpa"]),
    ("172.30.0.0/15", ["30.172.in-addr.arpa", "31.172.in-addr.arpa"]),
    ("10.0.0.0/8", ["10.in-addr.arpa"]),
])
def test_reverse_zones_cover_the_network(cidr, zones):
    assert addons.reverse_zones(ipaddress.IPv4Network(cidr)) == zones


def test_metrics_server_verifies_kubelets_and_is_verified_by_the_aggregator(rendered_seed):
    lab = rendered_seed.lab
    f = rendered_seed.file("master01", f"{K8S_DIR}/addons/metrics-server.yaml")
    assert f.mode == 0o600  # it carries metrics-server's private key
    docs = _docs(f.content.decode())
    args = docs["Deployment/metrics-server"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not any("insecure" in a for a in args)
    assert "--kubelet-certificate-authority=/etc/metrics-server/ca/ca.crt" in args
    api = docs["APIService/v1beta1.metrics.k8s.io"]["spec"]
    assert base64.b64decode(api["caBundle"]) == (rendered_seed.pki_dir / "ca.pem").read_bytes()
    assert api.get("insecureSkipTLSVerify") is not True
    secret = docs["Secret/metrics-server-tls"]["data"]
    assert base64.b64decode(secret["tls.crt"]) == (rendered_seed.pki_dir / "metrics-server.pem").read_bytes()


def test_the_apiserver_has_the_aggregation_flags_and_the_front_proxy_certs(rendered_seed):
    unit = rendered_seed.text("master02", "/etc/systemd/system/kube-apiserver.service")
    for flag in ("--requestheader-client-ca-file=/etc/kubernetes/ssl/front-proxy-ca.pem",
                 "--proxy-client-cert-file=/etc/kubernetes/ssl/front-proxy-client.pem",
                 "--requestheader-allowed-names=front-proxy-client", "--enable-aggregator-routing=true",
                 "--kubelet-certificate-authority=/etc/kubernetes/ssl/ca.pem"):
        assert flag in unit
    paths = {f.path for f in rendered_seed.files if f.machine == "master02"}
    assert "/etc/kubernetes/ssl/front-proxy-client-key.pem" in paths
    # the front-proxy CA's key signs nothing in the cluster: it stays in the state folder
    assert not any(f.path.endswith("front-proxy-ca-key.pem") for f in rendered_seed.files)


def test_kubelets_get_the_labs_dns_and_serving_certs_from_the_ca(rendered_small):
    lab = rendered_small.lab
    for m in lab.nodes:
        config = yaml.safe_load(rendered_small.text(m.name, f"{K8S_DIR}/kubelet-config.yaml"))
        assert config["clusterDNS"] == [str(lab.cluster.dns_service_ip)]
        assert config["clusterDomain"] == lab.dns_domain
        assert config["serverTLSBootstrap"] is True


def test_the_hpa_timing_comes_from_the_lab(rendered_seed):
    unit = rendered_seed.text("master01", "/etc/systemd/system/kube-controller-manager.service")
    lab = rendered_seed.lab
    assert f"--horizontal-pod-autoscaler-sync-period={lab.autoscaling.sync_period_s}s" in unit
    assert f"--horizontal-pod-autoscaler-downscale-stabilization={lab.autoscaling.downscale_stabilization_s}s" in unit


def test_check_workloads_use_the_toolbox_image_and_never_pull(seed_lab):
    for text in (toolbox_yaml(seed_lab), autoscaling_yaml(seed_lab, 1)):
        for doc in yaml.safe_load_all(text):
            template = doc.get("spec", {}).get("template")
            if template:
                for c in template["spec"]["containers"]:
                    assert c["image"] == seed_lab.versions.toolbox.image_ref and c["imagePullPolicy"] == "Never"
    hpa = _docs(autoscaling_yaml(seed_lab, 0))["HorizontalPodAutoscaler/cpu-burner"]["spec"]
    assert hpa["minReplicas"] == 1 and hpa["maxReplicas"] >= 2
    assert "replicas" not in _docs(autoscaling_yaml(seed_lab, 0))["Deployment/cpu-burner"]["spec"]


def test_the_dns_loop_parser_counts_failures_and_the_longest_gap():
    from checks.dns import longest_gap, parse_loop

    out = "1700.00 ok\n1700.10 fail\n1701.60 fail\n1701.70 ok\nnoise\n1701.80 ok\n"
    samples = parse_loop(out)
    assert [ok for _, ok in samples] == [True, False, False, True, True]
    assert longest_gap(samples) == 1.7
    assert longest_gap(parse_loop("1700.00 ok\n1700.10 ok\n")) == 0.0
    assert longest_gap(parse_loop("1700.00 ok\n1702.00 fail\n")) == 2.0


def _lab_with(seed_data, write_lab, **changes):
    from harness.labfile import load_lab

    return load_lab(write_lab({**seed_data, **changes}))


@pytest.mark.parametrize("changes, field", [
    ({"addons": ["dns", "dashboard"]}, "addons"),
    ({"addons": "dns"}, "addons"),
    ({"autoscaling": {"sync_period": "fast"}}, "autoscaling.sync_period"),
    ({"autoscaling": {"downscale_stabilization": "2h"}}, "autoscaling.downscale_stabilization"),
    ({"autoscaling": {"sync": "5s"}}, "autoscaling.sync"),
])
def test_bad_addon_settings_are_refused_naming_the_field(seed_data, write_lab, changes, field):
    with pytest.raises(LabError) as err:
        _lab_with(seed_data, write_lab, **changes)
    assert str(err.value).startswith(field)


def test_a_lab_without_addons_renders_none(tmp_path, seed_data, write_lab):
    from harness import pki_store
    from harness.render.plan import build_plan
    from harness.state import load_secrets

    lab = _lab_with(seed_data, write_lab, addons=[], autoscaling={"sync_period": "1m", "downscale_stabilization": 0})
    assert lab.autoscaling.sync_period_s == 60 and lab.autoscaling.downscale_stabilization_s == 0
    pki_store.ensure_pki(lab, tmp_path / "pki")
    files = build_plan(lab, tmp_path / "pki", load_secrets(lab, tmp_path))
    assert not [f for f in files if f.step in ("dns", "metrics")]
