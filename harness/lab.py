"""The lab model: one YAML file parsed into typed, validated objects.

Everything else (the Vagrantfile, the PKI, every rendered file, every step and check) reads a
`Lab`. Nothing repeats an address the lab already knows, so a lab on 10.240.0.0/24 works exactly
like the seed's 192.168.220.0/24. This module holds only the types: `harness.validate` builds
them from a raw mapping and `harness.labfile` reads the file (`load_lab`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from harness.versions import Versions

ROLES = ("etcd", "master", "lb", "node")
IPv4Address = ipaddress.IPv4Address
IPv4Network = ipaddress.IPv4Network


@dataclass(frozen=True)
class SshLogin:
    """How the harness logs in to a machine it did not create (the ssh provider).

    Machines the harness creates get the lab's own key as root on their lab IP; a machine that
    already exists says here where and as whom: a non-root user needs password-less sudo."""
    address: str  # host name or IP to connect to (the lab IP unless the lab file says otherwise)
    user: str
    port: int
    key: Path  # the private key file, on the host running the harness


@dataclass(frozen=True)
class Machine:
    name: str
    ip: IPv4Address
    roles: tuple[str, ...]
    node_name: str  # the Kubernetes node name; the guide calls master03 "node03" as a worker
    cpus: int
    memory_mb: int
    ssh: SshLogin | None = None  # None: a machine the provider made, reached as root on its IP

    def has(self, role: str) -> bool:
        return role in self.roles


@dataclass(frozen=True)
class Cluster:
    service_cidr: IPv4Network
    cluster_cidr: IPv4Network
    node_port_range: tuple[int, int]
    kubernetes_service_ip: IPv4Address
    dns_service_ip: IPv4Address
    dns_domain: str
    bootstrap_token: str | None  # None: generated per lab, see harness.state

    @property
    def node_port_range_str(self) -> str:
        return f"{self.node_port_range[0]}-{self.node_port_range[1]}"


@dataclass(frozen=True)
class Flannel:
    etcd_prefix: str
    subnet_len: int
    backend: str


@dataclass(frozen=True)
class Keepalived:
    virtual_router_id: int
    advert_int: int
    priorities: dict[str, int]  # lb machine name -> VRRP priority; the highest is MASTER


HAPROXY_PROFILES = ("seed", "tuned")


@dataclass(frozen=True)
class Haproxy:
    stats_port: int
    check_inter: str
    rise: int
    fall: int
    # seed: what the guide sets, everything else at haproxy's defaults; tuned: connect timeout,
    # retries and redispatch, sessions cut when a server goes down (harness/render/lb.py)
    profile: str = "seed"


@dataclass(frozen=True)
class Pki:
    expiry_hours: int
    key_size: int


@dataclass(frozen=True)
class Autoscaling:
    """The controller-manager's HorizontalPodAutoscaler timing, in seconds. Kubernetes' defaults
    (15 s sync, 300 s downscale window) make a scale-down demo take minutes of idle waiting."""
    sync_period_s: int = 15
    downscale_stabilization_s: int = 300


ADDONS = ("dns", "metrics", "ingress", "registry", "logs")
# The host names each add-on publishes through the ingress, as <app>.<ingress domain>. Every
# machine's /etc/hosts points them at every node (traefik listens on each node's own address).
INGRESS_APPS = {"ingress": ("nginx",), "logs": ("logs",)}


@dataclass(frozen=True)
class Ingress:
    """traefik on ports 80 and 443 of every node (the guide's traefik ingress)."""
    domain: str  # apps are published as <app>.<domain>
    http_port: int = 80
    https_port: int = 443


@dataclass(frozen=True)
class Registry:
    """The private registry (the guide's harbor): a fixed ClusterIP that /etc/hosts on every node
    names registry.<ingress domain>, and its storage on a directory that one machine exports."""
    service_ip: IPv4Address
    storage_server: str  # the machine that exports the registry's directory (sshfs here, NFS in VMs)


@dataclass(frozen=True)
class Lab:
    name: str
    source: Path | None
    network: IPv4Network
    interface: str
    vip: IPv4Address
    master_url: str
    api_port: int
    vip_port: int
    machines: tuple[Machine, ...]
    cluster: Cluster
    flannel: Flannel
    keepalived: Keepalived
    haproxy: Haproxy
    pki: Pki
    versions: Versions = field(repr=False)
    autoscaling: Autoscaling = field(default_factory=Autoscaling)
    addons: tuple[str, ...] = ADDONS  # the add-on steps this lab runs, in ADDONS order
    ingress: Ingress | None = None  # set by harness.validate (defaults derived from the lab)
    registry: Registry | None = None
    # The lab file's provider section: "ssh" for machines that already exist (each machine then
    # has `ssh`); None lets the host decide (VMs or systemd containers the harness makes).
    provider: str | None = None

    def has_addon(self, name: str) -> bool:
        return name in self.addons

    # --- who does what -------------------------------------------------------------------
    def with_role(self, role: str) -> list[Machine]:
        return [m for m in self.machines if m.has(role)]

    @property
    def etcd_members(self) -> list[Machine]:
        return self.with_role("etcd")

    @property
    def masters(self) -> list[Machine]:
        return self.with_role("master")

    @property
    def lbs(self) -> list[Machine]:
        return self.with_role("lb")

    @property
    def nodes(self) -> list[Machine]:
        return self.with_role("node")

    def machine(self, name: str) -> Machine:
        for m in self.machines:
            if m.name == name or m.node_name == name:
                return m
        raise KeyError(name)

    # --- derived values: computed here once so no other module re-derives them -----------
    def etcd_name(self, machine: Machine) -> str:
        """The guide's member names: etcd01, etcd02, ... in lab order."""
        return f"etcd{self.etcd_members.index(machine) + 1:02d}"

    @property
    def etcd_endpoints(self) -> str:
        return ",".join(f"https://{m.ip}:2379" for m in self.etcd_members)

    @property
    def etcd_initial_cluster(self) -> str:
        return ",".join(f"{self.etcd_name(m)}=https://{m.ip}:2380" for m in self.etcd_members)

    @property
    def api_url(self) -> str:
        """What clients outside the masters use: MASTER_URL, which /etc/hosts points at the VIP."""
        if self.lbs:
            return f"https://{self.master_url}:{self.vip_port}"
        return f"https://{self.master_url}:{self.api_port}"

    @property
    def api_address(self) -> IPv4Address:
        """Where MASTER_URL resolves: the VIP, or the only master when there is no lb."""
        return self.vip if self.lbs else self.masters[0].ip

    def vrrp_state(self, machine: Machine) -> str:
        top = max(self.keepalived.priorities.values())
        return "MASTER" if self.keepalived.priorities[machine.name] == top else "BACKUP"

    @property
    def flannel_network_config(self) -> dict:
        """The JSON the guide writes to FLANNEL_ETCD_PREFIX/config."""
        return {"Network": str(self.cluster.cluster_cidr), "SubnetLen": self.flannel.subnet_len,
                "Backend": {"Type": self.flannel.backend}}

    @property
    def dns_domain(self) -> str:
        return self.cluster.dns_domain.rstrip(".")

    # --- the add-ons' names ------------------------------------------------------------------
    def ingress_host(self, app: str) -> str:
        """The name an app answers to through the ingress, e.g. nginx.apps.virtual.local."""
        return f"{app}.{self.ingress.domain.rstrip('.')}"

    @property
    def ingress_apps(self) -> tuple[str, ...]:
        return tuple(app for addon, apps in INGRESS_APPS.items() if self.has_addon(addon) for app in apps)

    @property
    def registry_host(self) -> str:
        return self.ingress_host("registry")


def __getattr__(name: str):
    # `from harness.lab import load_lab` keeps working for older callers; the loader lives in
    # harness.labfile, which imports this module and harness.validate (never the reverse).
    if name in ("load_lab", "read_lab_yaml"):
        from harness import labfile
        return getattr(labfile, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
