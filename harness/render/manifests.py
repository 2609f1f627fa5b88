"""What the guide writes to etcd and applies with kubectl: flannel's network, RBAC, nginx-ds."""

from __future__ import annotations

import json

import yaml

from harness.lab import Lab

NGINX_WELCOME = "Welcome to nginx!"


def flannel_network_json(lab: Lab) -> str:
    return json.dumps(lab.flannel_network_config, sort_keys=True) + "\n"


def rbac_yaml() -> str:
    """The guide's `kubectl create clusterrolebinding kubelet-bootstrap`, plus the two bindings a
    current cluster needs: auto-approval of kubelet client-cert renewals stays off (the guide
    approves by hand), and the apiserver may call kubelets (logs, exec) with its client cert."""
    def binding(name: str, role: str, kind: str, subject: str) -> dict:
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": subject}]}
    docs = [binding("kubelet-bootstrap", "system:node-bootstrapper", "User", "kubelet-bootstrap"),
            binding("kube-apiserver-kubelet-client", "system:kubelet-api-admin", "User",
                    "kube-apiserver-kubelet-client")]
    return yaml.safe_dump_all(docs, sort_keys=False)


def nginx_ds_yaml(lab: Lab) -> str:
    """The guide's nginx-ds DaemonSet and NodePort Service, in apps/v1. The image was imported
    into every node's containerd, so the kubelet must never try to pull it."""
    labels = {"app": "nginx-ds"}
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "nginx-ds", "labels": labels},
               "spec": {"type": "NodePort", "selector": labels,
                        "ports": [{"name": "http", "port": 80, "targetPort": 80}]}}
    daemonset = {"apiVersion": "apps/v1", "kind": "DaemonSet",
                 "metadata": {"name": "nginx-ds", "labels": {"addonmanager.kubernetes.io/mode": "Reconcile"}},
                 "spec": {"selector": {"matchLabels": labels},
                          "template": {"metadata": {"labels": labels},
                                       "spec": {"containers": [{
                                           "name": "my-nginx",
                                           "image": lab.versions.nginx.image_ref,
                                           "imagePullPolicy": "Never",
                                           "ports": [{"containerPort": 80}]}]}}}}
    return yaml.safe_dump_all([service, daemonset], sort_keys=False)
