"""The kubeadm baseline, offline: its configs from the lab, its images, its phase timing, and
which core checks it runs in which form."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

import checks
from harness.artifacts import catalog
from harness.artifacts.cache import ArtifactCache
from harness.artifacts.go_recipes import GO_RECIPES
from harness.artifacts.images import kubeadm_images
from harness.artifacts.images.oci import read_archive
from harness.kubeadm_baseline import bringup, config, flannel, phases
from harness.kubeadm_baseline import checks as kchecks
from harness.kubeadm_baseline.artifacts import kubeadm_component
from harness.labfile import load_lab
from harness.versions import load_versions
from tests.unit.conftest import SEED, SMALL


@pytest.fixture(scope="module", params=[SEED, SMALL], ids=["seed", "small"])
def lab(request):
    return load_lab(request.param)


def docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def test_join_secrets_have_kubeadms_formats():
    join = config.JoinSecrets.generate()
    assert re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", join.token)
    assert re.fullmatch(r"[0-9a-f]{64}", join.certificate_key)
    assert config.JoinSecrets.generate() != join


def test_init_config_takes_everything_from_the_lab(lab):
    init, cluster, kubelet, proxy = docs(config.init_config(lab, config.JoinSecrets.generate()))
    first = lab.masters[0]
    assert [d["kind"] for d in (init, cluster, kubelet, proxy)] == [
        "InitConfiguration", "ClusterConfiguration", "KubeletConfiguration", "KubeProxyConfiguration"]
    assert init["localAPIEndpoint"] == {"advertiseAddress": str(first.ip), "bindPort": lab.api_port}
    assert init["nodeRegistration"]["name"] == first.node_name
    assert {"name": "node-ip", "value": str(first.ip)} in init["nodeRegistration"]["kubeletExtraArgs"]
    assert cluster["controlPlaneEndpoint"] == f"{lab.master_url}:{lab.vip_port}"
    assert cluster["networking"] == {"serviceSubnet": str(lab.cluster.service_cidr),
                                     "podSubnet": str(lab.cluster.cluster_cidr), "dnsDomain": lab.dns_domain}
    assert str(lab.vip) in cluster["apiServer"]["certSANs"]
    assert cluster["kubernetesVersion"] == lab.versions.kubernetes.version
    assert cluster["etcd"]["local"]["imageTag"] == lab.versions.etcd.version
    assert cluster["dns"]["imageTag"] == lab.versions.coredns.version
    # the harness's cgroup v1 / containerd 1.6 settings reach kubeadm's kubelets; kubeadm's own keys do not
    assert kubelet["failCgroupV1"] is False and kubelet["cgroupDriver"] == "systemd"
    assert not set(config.KUBEADM_OWNED_KUBELET_KEYS) & set(kubelet)
    assert proxy["mode"] == "iptables" and proxy["conntrack"] == {"maxPerCore": 0}
    assert "hostnameOverride" not in proxy


def test_image_repository_is_the_labs_own(lab):
    cluster = docs(config.init_config(lab, config.JoinSecrets.generate()))[1]
    repository = lab.versions.pause.image.rsplit("/", 1)[0]
    assert cluster["imageRepository"] == cluster["etcd"]["local"]["imageRepository"] == repository
    assert all(ref.startswith(repository + "/") for ref in config.image_refs(lab).values())
    assert config.image_refs(lab)["kube-apiserver"] == f"{repository}/kube-apiserver:{lab.versions.kubernetes.version}"


def test_only_masters_that_are_not_nodes_keep_the_control_plane_taint(lab):
    for m in lab.machines:
        registration = config.node_registration(lab, m)
        if not m.has("master"):
            assert "taints" not in registration  # kubeadm's default for a worker: none
        elif m.has("node"):
            assert registration["taints"] == []
        else:
            assert registration["taints"] == [config.CONTROL_PLANE_TAINT]


def test_join_configs_masters_join_the_control_plane(lab):
    join = config.JoinSecrets.generate()
    for m in lab.machines:
        (doc,) = docs(config.join_config(lab, m, join, "sha256:" + "0" * 64))
        discovery = doc["discovery"]["bootstrapToken"]
        assert discovery["apiServerEndpoint"] == config.control_plane_endpoint(lab)
        assert discovery["token"] == join.token
        if m.has("master"):
            assert doc["controlPlane"] == {"localAPIEndpoint": {"advertiseAddress": str(m.ip),
                                                                "bindPort": lab.api_port},
                                           "certificateKey": join.certificate_key}
        else:
            assert "controlPlane" not in doc


def test_ca_cert_hash_is_what_openssl_computes(rendered_seed):
    """kubeadm's discovery hash (sha256 of the CA's DER public key), checked with openssl."""
    ca = (rendered_seed.pki_dir / "ca.pem").read_bytes()
    pubkey = subprocess.run(["openssl", "x509", "-pubkey", "-noout"], input=ca, capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pubkey, capture_output=True,
                         check=True).stdout
    digest = subprocess.run(["sha256sum"], input=der, capture_output=True, check=True).stdout.split()[0].decode()
    assert config.ca_cert_hash(ca) == f"sha256:{digest}"


def test_flannel_daemonset_runs_the_harness_build_in_kube_subnet_mgr_mode(lab):
    objects = {d["kind"]: d for d in docs(flannel.manifest(lab))}
    container = objects["DaemonSet"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == kubeadm_images.baseline_image("flannel").ref(lab.versions)
    assert container["image"].endswith(f"/flannel:{lab.versions.flannel.version}")
    assert "--kube-subnet-mgr" in container["args"] and f"--iface={lab.interface}" in container["args"]
    assert yaml.safe_load(objects["ConfigMap"]["data"]["net-conf.json"]) == lab.flannel_network_config


def test_every_image_rendered_is_one_of_the_lab_own(lab):
    """Nothing kubeadm or flannel is told to run can come from a public registry: every image
    and image repository is under the prefix of the images the lab builds (versions.yaml)."""
    import re
    own = lab.versions.pause.image.split("/", 1)[0]
    text = config.init_config(lab, config.JoinSecrets.generate()) + flannel.manifest(lab)
    refs = re.findall(r"(?:image|imageRepository):\s*(\S+)", text)
    assert refs and all(ref == own or ref.startswith(own + "/") for ref in refs), refs


def test_kubeadm_is_built_like_the_cluster_binaries_but_only_on_request():
    kube, kubeadm = GO_RECIPES["kubernetes"], GO_RECIPES["kubeadm"]
    assert kubeadm.modules == kube.modules and kubeadm.tags == kube.tags
    assert kubeadm.ldflags_for("v1.37.2") == kube.ldflags_for("v1.37.2")
    assert kubeadm.packages == {"kubeadm": "k8s.io/kubernetes/cmd/kubeadm"}
    assert "kubeadm" not in catalog.select(None)
    assert catalog.binary_spec("kubeadm").expected_output("v1.37.2") == "v1.37.2"


def test_kubeadm_follows_the_kubernetes_version_and_its_overrides():
    assert kubeadm_component(load_versions()).version == load_versions().kubernetes.version
    overridden = load_versions(overrides={"kubernetes": {"version": "v1.36.3"}})
    assert kubeadm_component(overridden).version == "v1.36.3"


def test_static_control_plane_image_holds_the_cached_binary(tmp_path):
    versions = load_versions()
    cache = ArtifactCache(tmp_path / "cache")
    image = kubeadm_images.baseline_image("kube-scheduler")
    binary = cache.binary_path("kubernetes", versions.kubernetes.version, "kube-scheduler")
    binary.parent.mkdir(parents=True)
    binary.write_bytes(b"\x7fELF not really a scheduler")
    built = kubeadm_images.ensure(image, versions, cache)
    assert built.status == "built" and built.ref == config.image_refs(
        load_lab(SEED))["kube-scheduler"]
    assert kubeadm_images.ensure(image, versions, cache).status == "cached"
    index, blobs = read_archive(built.path)
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == built.ref
    binary.write_bytes(b"\x7fELF another scheduler")  # a rebuilt binary rebuilds the image
    assert kubeadm_images.ensure(image, versions, cache).status == "built"


def test_an_image_without_its_binary_names_the_build_to_run(tmp_path):
    from harness.errors import UserError

    with pytest.raises(UserError, match="artifacts build --only etcd"):
        kubeadm_images.ensure(kubeadm_images.baseline_image("etcd"), load_versions(), ArtifactCache(tmp_path))


SAMPLE_INIT = """\
100.00 [init] Using Kubernetes version: v1.37.2
100.50 [preflight] Running pre-flight checks
101.00 [certs] Using certificateDir folder "/etc/kubernetes/pki"
101.20 [certs] Generating "ca" certificate and key
102.00 [kubeconfig] Writing "admin.conf" kubeconfig file
102.50 [etcd] Creating static Pod manifest for local etcd
102.60 [control-plane] Creating static Pod manifest for "kube-apiserver"
103.00 [kubelet-start] Starting the kubelet
103.10 [wait-control-plane] Waiting for the kubelet to boot up the control plane
110.00 [upload-config] Storing the configuration
111.00 [addons] Applied essential addon: CoreDNS
"""


def test_kubeadm_phases_are_timed_from_its_own_output():
    seconds = phases.phase_seconds(SAMPLE_INIT, 99.0, 112.0)
    assert seconds == {"init": 1.5, "preflight": 0.5, "certs": 1.0, "kubeconfig": 0.5, "etcd": 0.1,
                       "control-plane": 0.4, "kubelet-start": 0.1, "wait-control-plane": 6.9,
                       "upload-config": 1.0, "addons": 1.0}
    rows = bringup.rows_from_kubeadm(seconds)
    assert rows == {"control plane": 11.4, "certificates": 1.5, "etcd": 0.1}
    assert round(sum(rows.values()), 2) == 13.0


def test_harness_steps_map_onto_the_rows():
    from harness.steps import STEP_NAMES, steps_until

    core = [s.name for s in steps_until("workload")]
    assert set(bringup.HARNESS_ROWS) == set(core)  # every core step is in a row, no add-on is
    assert set(bringup.HARNESS_ROWS.values()) <= set(bringup.ROWS)
    assert bringup.rows_from_harness({"pki": 1.0, "kubectl": 0.5, "etcd": 3.0, "dns": 9.0}) == {
        "certificates": 1.5, "etcd": 3.0}
    assert "dns" in STEP_NAMES


def test_every_core_check_is_placed_and_resolves():
    assert list(kchecks.COMPARISON) == [name for name, _ in checks.CORE_CHECKS]
    for name, (how, target) in kchecks.COMPARISON.items():
        assert how in ("same", "kubeadm", "n/a"), name
        if how == "same":
            assert (name, target) in checks.CORE_CHECKS
        function = kchecks.check_function(name)
        assert (function is None) == (how == "n/a"), name


def test_timestamped_command_keeps_kubeadms_exit_status():
    """The timing wrapper must not turn a failed kubeadm into a success (pipefail)."""
    failed = subprocess.run(phases._timestamped("sh -c 'echo [init] x; exit 3'"), shell=True,
                            capture_output=True, text=True)
    assert failed.returncode == 3
    assert re.match(r"^\d+\.\d+ \[init\] x$", failed.stdout.strip())
