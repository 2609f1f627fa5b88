"""kubeadm's configuration files, rendered from the lab like every other file of the harness.

kubeadm reads one YAML file per machine: `kubeadm init --config` on the first master
(InitConfiguration, ClusterConfiguration, KubeletConfiguration, KubeProxyConfiguration) and
`kubeadm join --config` on the others (JoinConfiguration, with a `controlPlane` section on the
masters). What the lab says goes in: the VIP's MASTER_URL as the control-plane endpoint, the
service and pod ranges, the NodePort range, each machine's lab IP and node name; the kubelet
settings are the harness's own (harness.render.configs.kubelet_config) minus what kubeadm owns.

The join secrets (a bootstrap token and the key that encrypts the uploaded certificates) are
made per run here and go only into these files on the machines, never into the repo.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass

import yaml

from harness.artifacts.images.kubeadm_images import image_repository
from harness.lab import Lab, Machine
from harness.render import CONTAINERD_SOCKET
from harness.render.configs import kube_proxy_config, kubelet_config

API_VERSION = "kubeadm.k8s.io/v1beta4"
PKI_DIR = "/etc/kubernetes/pki"
CONFIG_DIR = "/etc/kubernetes/kubeadm"
INIT_CONFIG = f"{CONFIG_DIR}/init.yaml"
JOIN_CONFIG = f"{CONFIG_DIR}/join.yaml"
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
# The preflight checks a systemd container cannot pass and that say nothing about the cluster:
# no kernel config to read (SystemVerification), the host's swap, CPU count and memory as seen
# through the container. containerd 1.6's missing RuntimeConfig call (docs/artifacts.md, "cgroup
# v1 and containerd") is only a warning in kubeadm 1.37 (ContainerRuntimeVersion), so not here.
IGNORED_PREFLIGHT = ("SystemVerification", "Swap", "NumCPU", "Mem")
# KubeletConfiguration keys kubeadm sets itself (authn/authz, DNS, the node's address) or that
# only the harness's own TLS flow needs (serving certificates from CSRs the harness approves).
KUBEADM_OWNED_KUBELET_KEYS = ("address", "authentication", "authorization", "clusterDNS",
                              "clusterDomain", "serverTLSBootstrap")
KUBEADM_OWNED_PROXY_KEYS = ("bindAddress", "clientConnection", "hostnameOverride")


@dataclass(frozen=True)
class JoinSecrets:
    token: str            # [a-z0-9]{6}.[a-z0-9]{16}, kubeadm's bootstrap token format
    certificate_key: str  # 32 bytes in hex: AES key of the kubeadm-certs Secret (--upload-certs)

    @classmethod
    def generate(cls) -> "JoinSecrets":
        alphabet = string.ascii_lowercase + string.digits
        pick = lambda n: "".join(secrets.choice(alphabet) for _ in range(n))  # noqa: E731
        return cls(token=f"{pick(6)}.{pick(16)}", certificate_key=secrets.token_hex(32))


def control_plane_endpoint(lab: Lab) -> str:
    """MASTER_URL on the VIP's port: what every kubeconfig kubeadm writes points at."""
    port = lab.vip_port if lab.lbs else lab.api_port
    return f"{lab.master_url}:{port}"


def _dump(*docs: dict) -> str:
    return "---\n".join(yaml.safe_dump(doc, sort_keys=False) for doc in docs)


def _args(pairs: dict[str, str]) -> list[dict[str, str]]:
    # v1beta4 writes extra arguments as a list of name/value pairs
    return [{"name": k, "value": str(v)} for k, v in pairs.items()]


def node_registration(lab: Lab, machine: Machine) -> dict:
    """Each machine registers under its lab node name with its lab IP (not the default route's
    address, which is the provider's management network). Masters that are not nodes keep
    kubeadm's control-plane taint; a master that is also a node (master03/node03) drops it so
    the workload runs there as it does on the harness's cluster."""
    registration = {
        "name": machine.node_name,
        "criSocket": f"unix://{CONTAINERD_SOCKET}",
        "imagePullPolicy": "Never",  # every image is imported before kubeadm runs
        "kubeletExtraArgs": _args({"node-ip": str(machine.ip)}),
        "ignorePreflightErrors": list(IGNORED_PREFLIGHT),
    }
    if machine.has("master"):
        registration["taints"] = [] if machine.has("node") else [dict(CONTROL_PLANE_TAINT)]
    return registration


def kubelet_configuration(lab: Lab) -> dict:
    """The harness's KubeletConfiguration (cgroup v1 and containerd 1.6 settings, image GC,
    eviction) without the keys kubeadm owns; kubeadm spreads it to every kubelet."""
    doc = yaml.safe_load(kubelet_config(lab, lab.machines[0]))
    for key in KUBEADM_OWNED_KUBELET_KEYS:
        doc.pop(key, None)
    return doc


def kube_proxy_configuration(lab: Lab) -> dict:
    """The harness's KubeProxyConfiguration (iptables mode, conntrack left alone) without the
    per-machine keys: kubeadm's DaemonSet passes the node name and its own kubeconfig."""
    doc = yaml.safe_load(kube_proxy_config(lab, lab.machines[0]))
    for key in KUBEADM_OWNED_PROXY_KEYS:
        doc.pop(key, None)
    return doc


def cluster_configuration(lab: Lab) -> dict:
    versions, cluster = lab.versions, lab.cluster
    repository = image_repository(versions)
    return {
        "apiVersion": API_VERSION,
        "kind": "ClusterConfiguration",
        "clusterName": lab.name,
        "kubernetesVersion": versions.kubernetes.version,
        "controlPlaneEndpoint": control_plane_endpoint(lab),
        "imageRepository": repository,
        "certificatesDir": PKI_DIR,
        "networking": {"serviceSubnet": str(cluster.service_cidr),
                       "podSubnet": str(cluster.cluster_cidr),
                       "dnsDomain": lab.dns_domain},
        "apiServer": {
            # MASTER_URL is in the SANs as the endpoint; the VIP too, for clients by address
            "certSANs": [lab.master_url, str(lab.vip if lab.lbs else lab.masters[0].ip)],
            "extraArgs": _args({"service-node-port-range": cluster.node_port_range_str}),
        },
        # flannel's subnet length: the controller-manager hands each node a podCIDR of this size
        "controllerManager": {"extraArgs": _args({"node-cidr-mask-size": lab.flannel.subnet_len})},
        "etcd": {"local": {"imageRepository": repository, "imageTag": versions.etcd.version,
                           "dataDir": "/var/lib/etcd"}},
        "dns": {"imageRepository": repository, "imageTag": versions.coredns.version},
    }


def init_config(lab: Lab, join: JoinSecrets) -> str:
    first = lab.masters[0]
    init = {
        "apiVersion": API_VERSION,
        "kind": "InitConfiguration",
        "bootstrapTokens": [{"token": join.token, "ttl": "2h0m0s",
                             "groups": ["system:bootstrappers:kubeadm:default-node-token"],
                             "usages": ["signing", "authentication"]}],
        "certificateKey": join.certificate_key,
        "localAPIEndpoint": {"advertiseAddress": str(first.ip), "bindPort": lab.api_port},
        "nodeRegistration": node_registration(lab, first),
    }
    return _dump(init, cluster_configuration(lab), kubelet_configuration(lab),
                 kube_proxy_configuration(lab))


def join_config(lab: Lab, machine: Machine, join: JoinSecrets, ca_cert_hash: str) -> str:
    """A master joins as a control-plane instance (its certificates downloaded with the
    certificate key, a stacked etcd member added); any other machine as a worker."""
    doc = {
        "apiVersion": API_VERSION,
        "kind": "JoinConfiguration",
        "discovery": {"bootstrapToken": {"apiServerEndpoint": control_plane_endpoint(lab),
                                         "token": join.token,
                                         "caCertHashes": [ca_cert_hash]}},
        "nodeRegistration": node_registration(lab, machine),
    }
    if machine.has("master"):
        doc["controlPlane"] = {"localAPIEndpoint": {"advertiseAddress": str(machine.ip),
                                                    "bindPort": lab.api_port},
                               "certificateKey": join.certificate_key}
    return _dump(doc)


def ca_cert_hash(ca_pem: bytes) -> str:
    """kubeadm's discovery hash: sha256 of the CA's DER SubjectPublicKeyInfo."""
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    spki = x509.load_pem_x509_certificate(ca_pem).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def image_refs(lab: Lab) -> dict[str, str]:
    """What `kubeadm config images list` should print for this config, by image name."""
    from harness.artifacts.images.kubeadm_images import BASELINE_IMAGES

    versions = lab.versions
    refs = {i.name: i.ref(versions) for i in BASELINE_IMAGES if i.name != "flannel"}
    refs["coredns"] = versions.coredns.image_ref
    refs["pause"] = versions.pause.image_ref
    return refs
