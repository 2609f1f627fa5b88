"""flannel on the kubeadm cluster: the harness's flanneld build as a DaemonSet, kube-subnet-mgr.

The guide runs flanneld as a systemd unit that keeps its leases in the guide's own etcd. kubeadm's
etcd belongs to the control plane (its client certificates are the apiserver's), so here flannel
does what its own kube-flannel manifest does: it reads each node's `spec.podCIDR`, which the
controller-manager allocates from the pod range (`networking.podSubnet`), and keeps its vxlan
details in node annotations. The network config is the lab's (`Lab.flannel_network_config`), the
same JSON the harness writes to etcd; the interface is the lab's.

flanneld writes /run/flannel/subnet.env on each machine (a hostPath), and the harness's own
`mk-cni-conf` turns that into the same bridge conflist the harness's cluster uses.
"""

from __future__ import annotations

import json

import yaml

from harness.artifacts.images.kubeadm_images import baseline_image
from harness.lab import Lab

NAMESPACE = "kube-flannel"
NAME = "kube-flannel-ds"
MANIFEST = "/etc/kubernetes/kubeadm/flannel.yaml"


def _rbac() -> list[dict]:
    rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
             {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
             {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]}]
    return [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": NAMESPACE, "labels": {"pod-security.kubernetes.io/enforce": "privileged"}}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "flannel", "namespace": NAMESPACE}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "flannel"}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "flannel"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "flannel"},
         "subjects": [{"kind": "ServiceAccount", "name": "flannel", "namespace": NAMESPACE}]},
    ]


def _daemonset(lab: Lab) -> dict:
    image = baseline_image("flannel")
    field = lambda path: {"valueFrom": {"fieldRef": {"fieldPath": path}}}  # noqa: E731
    container = {
        "name": "kube-flannel",
        "image": image.ref(lab.versions),
        "imagePullPolicy": "Never",
        "command": [f"/{image.bin_dir}/flanneld"],
        "args": ["--ip-masq", "--kube-subnet-mgr", f"--iface={lab.interface}",
                 "--net-config-path=/etc/kube-flannel/net-conf.json"],
        "env": [{"name": "POD_NAME", **field("metadata.name")},
                {"name": "POD_NAMESPACE", **field("metadata.namespace")},
                {"name": "EVENT_QUEUE_DEPTH", "value": "5000"}],
        "resources": {"requests": {"cpu": "50m", "memory": "50Mi"}},
        "securityContext": {"privileged": False,
                            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}},
        "volumeMounts": [{"name": "run", "mountPath": "/run/flannel"},
                         {"name": "flannel-cfg", "mountPath": "/etc/kube-flannel/"},
                         {"name": "xtables-lock", "mountPath": "/run/xtables.lock"}],
    }
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {"app": "flannel"}},
        "spec": {
            "selector": {"matchLabels": {"app": "flannel"}},
            "template": {
                "metadata": {"labels": {"app": "flannel"}},
                "spec": {
                    "hostNetwork": True,
                    "priorityClassName": "system-node-critical",
                    "serviceAccountName": "flannel",
                    "tolerations": [{"operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [container],
                    "volumes": [
                        {"name": "run", "hostPath": {"path": "/run/flannel", "type": "DirectoryOrCreate"}},
                        {"name": "flannel-cfg", "configMap": {"name": "kube-flannel-cfg"}},
                        {"name": "xtables-lock", "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"}},
                    ],
                },
            },
        },
    }


def manifest(lab: Lab) -> str:
    config_map = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "kube-flannel-cfg", "namespace": NAMESPACE},
                  "data": {"net-conf.json": json.dumps(lab.flannel_network_config, indent=2) + "\n"}}
    docs = [*_rbac(), config_map, _daemonset(lab)]
    return "---\n".join(yaml.safe_dump(doc, sort_keys=False) for doc in docs)
