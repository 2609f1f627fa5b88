"""The kubelet as kubeadm's packages install it: a bare unit and kubeadm's drop-in.

kubeadm does not install the kubelet; the distribution packages do, with a unit that only runs
/usr/bin/kubelet and a drop-in that points it at the files kubeadm writes later
(bootstrap-kubelet.conf, kubelet.conf, /var/lib/kubelet/config.yaml, kubeadm-flags.env). Until
`kubeadm init` or `join` has written them the kubelet restarts every few seconds: expected.
"""

from __future__ import annotations

from harness.render import BIN_DIR

KUBELET_UNIT = "/etc/systemd/system/kubelet.service"
KUBEADM_DROPIN = "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"


def kubelet_service() -> str:
    return f"""# Rendered by k8s-ha-lab (kubeadm baseline): the unit kubeadm's packages ship.
[Unit]
Description=kubelet: The Kubernetes Node Agent
Wants=network-online.target containerd.service
After=network-online.target containerd.service

[Service]
ExecStart={BIN_DIR}/kubelet
Restart=always
StartLimitInterval=0
RestartSec=2

[Install]
WantedBy=multi-user.target
"""


def kubeadm_dropin() -> str:
    return f"""# Rendered by k8s-ha-lab (kubeadm baseline): kubeadm's 10-kubeadm.conf.
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
# written by kubeadm init/join: the flags of this node
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart={BIN_DIR}/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""
