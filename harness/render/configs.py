"""Component configuration files: kubelet, kube-proxy, scheduler, containerd, CNI, audit, tokens."""

from __future__ import annotations

import json

import yaml

from harness.lab import Lab, Machine
from harness.render import (CNI_BIN_DIR, CNI_CONF_DIR, CONTAINERD_SOCKET, K8S_DIR, SSL_DIR)

CERTS_D = "/etc/containerd/certs.d"


def _yaml(doc: dict) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


def token_csv(token: str) -> str:
    """The guide's static token file: the kubelet-bootstrap user in system:kubelet-bootstrap."""
    return f'{token},kubelet-bootstrap,10001,"system:kubelet-bootstrap"\n'


def audit_policy() -> str:
    """audit.k8s.io/v1 (the guide used v1beta1): metadata for everything, no request bodies,
    so secrets never land in the audit log."""
    return _yaml({"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
                  "omitStages": ["RequestReceived"],
                  "rules": [{"level": "None", "resources": [{"group": "", "resources": ["events"]}]},
                            {"level": "Metadata"}]})


def kube_scheduler_config() -> str:
    return _yaml({"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration",
                  "clientConnection": {"kubeconfig": f"{K8S_DIR}/kube-scheduler.kubeconfig"},
                  "leaderElection": {"leaderElect": True}})


def kubelet_config(lab: Lab, machine: Machine) -> str:
    return _yaml({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": str(machine.ip),
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": f"{SSL_DIR}/ca.pem"}},
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "systemd",
        "clusterDNS": [str(lab.cluster.dns_service_ip)],
        "clusterDomain": lab.dns_domain,
        "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCKET}",
        # cgroup v1 hosts: since 1.35 the kubelet refuses to start on v1 unless told otherwise.
        "failCgroupV1": False,
        "failSwapOn": False,
        "rotateCertificates": True,
        # Not in the guide: the kubelet's HTTPS server gets a cert from the cluster CA through a
        # kubelet-serving CSR (approved by the harness after checking its names), instead of a
        # self-signed one, so the apiserver and metrics-server can verify who they talk to.
        "serverTLSBootstrap": True,
        "serializeImagePulls": False,
        "resolvConf": "/etc/resolv.conf",
        # The lab's images are imported, not pulled: one removed by image GC never comes back
        # (a conformance run lost the pause image this way and no pod could start). And the
        # node's filesystem is the host's disk, shared with everything else on the host, so its
        # usage says nothing about the node: no disk-based image GC, and eviction on memory only.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi"},
    })


def kube_proxy_config(lab: Lab, machine: Machine) -> str:
    return _yaml({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "bindAddress": str(machine.ip),
        "clientConnection": {"kubeconfig": f"{K8S_DIR}/kube-proxy.kubeconfig"},
        "clusterCIDR": str(lab.cluster.cluster_cidr),
        "hostnameOverride": machine.node_name,
        "mode": "iptables",  # no IPVS in these kernels; iptables is what the guide's era used too
        # 0 keeps the host's nf_conntrack_max; a container may not write it.
        "conntrack": {"maxPerCore": 0},
    })


def containerd_config(lab: Lab) -> str:
    """containerd 1.6 (config version 2). The sandbox image is the one the harness imports,
    so nothing is ever pulled: the root fix for the guide's `docker tag` of the pause image."""
    pause = lab.versions.pause.image_ref
    return f"""version = 2
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = "{CONTAINERD_SOCKET}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  # Pods ask for a lower oom_score_adj than containerd's own; lowering it needs
  # CAP_SYS_RESOURCE, which a systemd-container machine may lack. Clamp instead of failing;
  # on a VM containerd already runs at -999, so this changes nothing there.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{CNI_CONF_DIR}"
  # Per-registry settings in certs.d/<host>/hosts.toml (the lab registry's CA): read at each pull.
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{CERTS_D}"
"""


def registry_trust(lab: Lab) -> list[tuple[str, str]]:
    """(path, content) of containerd's per-registry files: the lab registry, trusted by the lab
    CA (harness.render.registry.hosts_toml), when the lab has the add-on."""
    if not lab.has_addon("registry"):
        return []
    from harness.render.registry import hosts_toml, hosts_toml_path
    return [(hosts_toml_path(lab), hosts_toml(lab))]


def cni_conflist(lab: Lab, subnet: str, mtu: int) -> str:
    """A bridge on flannel's per-machine subnet: what docker0 was for the guide."""
    return json.dumps({
        "cniVersion": "0.4.0",
        "name": "flannel-bridge",
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False, "mtu": mtu,
             "hairpinMode": True,
             "ipam": {"type": "host-local", "subnet": subnet, "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ]}, indent=2) + "\n"


def mk_cni_conf(lab: Lab) -> str:
    """Reads flannel's subnet.env and writes the conflist; the guide's mk-docker-opts.sh.

    The JSON shape is the one `cni_conflist` produces; a unit test keeps the two equal."""
    template = cni_conflist(lab, "@SUBNET@", 0).replace('"mtu": 0', '"mtu": @MTU@')
    return f"""#!/bin/sh
# Rendered by k8s-ha-lab. Usage: mk-cni-conf SUBNET_ENV OUT
set -eu
. "$1"
: "${{FLANNEL_SUBNET:?flannel has not written a subnet yet}}" "${{FLANNEL_MTU:?}}"
# flannel gives the bridge address (172.30.5.1/24); host-local wants the network (172.30.5.0/24).
ip=${{FLANNEL_SUBNET%/*}}; len=${{FLANNEL_SUBNET#*/}}
old_ifs=$IFS; IFS=.; set -- "$1" "$2" $ip; IFS=$old_ifs
n=$(( ($3 << 24) | ($4 << 16) | ($5 << 8) | $6 ))
n=$(( n & ((0xffffffff << (32 - len)) & 0xffffffff) ))
network="$(( (n >> 24) & 255 )).$(( (n >> 16) & 255 )).$(( (n >> 8) & 255 )).$(( n & 255 ))/$len"
mkdir -p "$(dirname "$2")"
tmp="$2.tmp"
cat > "$tmp" <<'CONF'
{template}CONF
sed -i -e "s#@SUBNET@#$network#" -e "s#@MTU@#$FLANNEL_MTU#" "$tmp"
mv "$tmp" "$2"
"""
