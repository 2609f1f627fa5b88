"""Turns the lab into the files the guide writes by hand, one small module per kind of file.

Each renderer is a pure function of the lab (and of the PKI and secrets where a file embeds
them). `harness.render.plan` decides which machine gets which file; nothing here touches a
machine.
"""

from __future__ import annotations

from dataclasses import dataclass

BIN_DIR = "/usr/local/bin"
K8S_DIR = "/etc/kubernetes"
SSL_DIR = "/etc/kubernetes/ssl"
ETCD_SSL_DIR = "/etc/etcd/ssl"
FLANNEL_DIR = "/etc/flanneld"
UNIT_DIR = "/etc/systemd/system"
CNI_CONF_DIR = "/etc/cni/net.d"
CNI_BIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins
FLANNEL_SUBNET_FILE = "/run/flannel/subnet.env"
CONTAINERD_SOCKET = "/run/containerd/containerd.sock"


@dataclass(frozen=True)
class RenderedFile:
    """One file for one machine, tagged with the deployment step that installs it."""

    machine: str
    path: str          # absolute path on the machine
    content: bytes
    mode: int
    step: str
    owner: str = "root"

    @property
    def secret(self) -> bool:
        return self.mode & 0o077 == 0
