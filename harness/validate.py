"""Turns a lab file's raw mapping into a `Lab`, refusing anything wrong before a machine starts.

Every refusal is a LabError whose message starts with the field path (`machines[2].ip`,
`cluster.service_cidr`) and says why in the same line. The CLI prints it and exits 2.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from pathlib import Path
from typing import Any

from harness.errors import LabError
from harness.lab import (ADDONS, HAPROXY_PROFILES, ROLES, Autoscaling, Cluster, Flannel, Haproxy, Ingress, Keepalived, Lab,
                         Machine, Pki, Registry, SshLogin)
from harness.versions import Versions

TOP_FIELDS = {"name", "network", "vip", "master_url", "api_port", "vip_port", "machines",
              "cluster", "flannel", "keepalived", "haproxy", "pki", "resources", "versions",
              "addons", "autoscaling", "ingress", "registry", "provider"}
# The guide's token: 16 random bytes as hex (`head -c 16 /dev/urandom | od -An -t x`).
TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
LABEL_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")  # an RFC 1123 label
IFNAMSIZ = 16  # Linux: an interface name is at most 15 bytes and a NUL
FLANNEL_BACKENDS = ("vxlan", "host-gw", "udp")
DEFAULT_RESOURCES = {"master": {"cpus": 2, "memory_mb": 2048}, "node": {"cpus": 1, "memory_mb": 1024}}


def _section(data: dict, key: str, allowed: set[str], required: bool = True) -> dict:
    value = data.get(key)
    if value is None:
        if required:
            raise LabError(key, "is required")
        return {}
    if not isinstance(value, dict):
        raise LabError(key, f"must be a mapping, got {type(value).__name__}")
    _no_unknown(value, allowed, key)
    return value


def _no_unknown(mapping: dict, allowed: set[str], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise LabError(f"{where}.{key}" if where else str(key),
                           f"unknown field (allowed: {', '.join(sorted(allowed))})")


def _need(mapping: dict, key: str, where: str) -> Any:
    if mapping.get(key) in (None, ""):
        raise LabError(f"{where}.{key}", "is required")
    return mapping[key]


def _ip(value: Any, where: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(str(value))
    except ValueError:
        raise LabError(where, f"{value!r} is not an IPv4 address") from None


def _net(value: Any, where: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(str(value), strict=True)
    except ValueError as exc:
        raise LabError(where, f"{value!r} is not a network in CIDR form ({exc})") from None


def _int(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise LabError(where, f"must be an integer from {low} to {high}, got {value!r}")
    return value


def _port_range(value: Any, where: str) -> tuple[int, int]:
    text = str(value)
    match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", text)
    if not match:
        raise LabError(where, f"{text!r} is not a range of the form LOW-HIGH")
    low, high = int(match[1]), int(match[2])
    if not 1 <= low < high <= 65535:
        raise LabError(where, f"{text!r} is not a range: need 1 <= LOW < HIGH <= 65535")
    return low, high


def _domain(value: Any, where: str) -> str:
    """A DNS domain as RFC 1123 and Kubernetes want it: lowercase labels of letters, digits and
    '-' (not at either end), 1-63 characters each, at most 253 in all; one trailing dot (the
    absolute form, `cluster.local.`) is allowed."""
    text = str(value)
    name = text[:-1] if text.endswith(".") else text
    if not name:
        raise LabError(where, f"{text!r} is not a DNS domain: it is empty")
    if len(name) > 253:
        raise LabError(where, f"{text[:40]!r}... is not a DNS domain: longer than 253 characters")
    for label in name.split("."):
        if not label:
            raise LabError(where, f"{text!r} is not a DNS domain: it has an empty label")
        if not LABEL_RE.fullmatch(label):
            raise LabError(where, f"{text!r} is not a DNS domain: label {label!r} must be 1-63 "
                                  "lowercase letters, digits or '-', not starting or ending with '-'")
    if name.rsplit(".", 1)[-1].isdigit():
        raise LabError(where, f"{text!r} is not a DNS domain: its last label is a number")
    return text


def _interface(value: Any, where: str) -> str:
    """A network interface name by the kernel's own rule (dev_valid_name): 1-15 bytes, not '.'
    or '..', no '/', ':' or whitespace. It reaches `ip ... dev NAME` on every machine."""
    name = str(value)
    bad = next((c for c in name if c in "/:" or c.isspace() or not c.isprintable()), None)
    if bad is not None:
        raise LabError(where, f"{name!r} is not an interface name: {bad!r} is not allowed "
                              "(no '/', ':', whitespace or control characters)")
    if not name or len(name.encode()) >= IFNAMSIZ:
        raise LabError(where, f"{name!r} is not an interface name: must be 1-{IFNAMSIZ - 1} characters")
    if name in (".", ".."):
        raise LabError(where, f"{name!r} is not an interface name")
    return name


def _machines(data: dict, network: ipaddress.IPv4Network, resources: dict) -> tuple[Machine, ...]:
    raw = data.get("machines")
    if not isinstance(raw, list) or not raw:
        raise LabError("machines", "must be a non-empty list")
    machines, names, ips = [], {}, {}
    for i, item in enumerate(raw):
        where = f"machines[{i}]"
        if not isinstance(item, dict):
            raise LabError(where, "must be a mapping with name, ip and roles")
        _no_unknown(item, {"name", "ip", "roles", "node_name", "cpus", "memory_mb", "ssh"}, where)
        name = str(_need(item, "name", where))
        if not NAME_RE.fullmatch(name):
            raise LabError(f"{where}.name", f"{name!r} is not a valid hostname (lowercase, digits, '-')")
        ip = _ip(_need(item, "ip", where), f"{where}.ip")
        if ip not in network or ip in (network.network_address, network.broadcast_address):
            raise LabError(f"{where}.ip", f"{ip} is outside the machine network {network}")
        roles = item.get("roles")
        if not isinstance(roles, list) or not roles:
            raise LabError(f"{where}.roles", f"must be a non-empty list of {', '.join(ROLES)}")
        for role in roles:
            if role not in ROLES:
                raise LabError(f"{where}.roles", f"unknown role {role!r} (known: {', '.join(ROLES)})")
        if len(set(roles)) != len(roles):
            raise LabError(f"{where}.roles", "lists a role twice")
        node_name = str(item.get("node_name") or name)
        if not NAME_RE.fullmatch(node_name):
            raise LabError(f"{where}.node_name", f"{node_name!r} is not a valid node name")
        for key, seen in ((name, names), (node_name, names)):
            if key in seen and seen[key] != i:
                raise LabError(f"{where}.name", f"duplicate name {key!r} (also machines[{seen[key]}])")
            seen[key] = i
        if ip in ips:
            raise LabError(f"{where}.ip", f"duplicate IP {ip} (also machines[{ips[ip]}])")
        ips[ip] = i
        kind = "master" if {"master", "etcd", "lb"} & set(roles) else "node"
        sizing = resources.get(kind, DEFAULT_RESOURCES[kind])
        cpus = _int(item.get("cpus", sizing.get("cpus", 1)), f"{where}.cpus", 1, 64)
        memory = _int(item.get("memory_mb", sizing.get("memory_mb", 1024)), f"{where}.memory_mb", 256, 1 << 20)
        machines.append(Machine(name, ip, tuple(roles), node_name, cpus, memory))
    return tuple(machines)


# A user name as POSIX allows it (portable filename characters, not starting with '-'), at most
# 32 characters as Linux's utmp holds; an all-digit name would read as a UID.
USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,31}")
SSH_FIELDS = {"address", "user", "key", "port"}


def _address(value: Any, where: str) -> str:
    """An IP address (v4 or v6) or a host name of RFC 1123 labels (any case)."""
    text = str(value)
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    labels = text.rstrip(".").split(".")
    if len(text) > 253 or not all(re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?", x)
                                  for x in labels) or labels[-1].isdigit():
        raise LabError(where, f"{text!r} is neither an IP address nor a host name")
    return text


def _user(value: Any, where: str) -> str:
    text = str(value)
    if not USER_RE.fullmatch(text) or text.isdigit():
        raise LabError(where, f"{text!r} is not a user name (letters, digits, '.', '_', '-'; "
                              "at most 32; not starting with '-' or '.', not all digits)")
    return text


def _key(value: Any, where: str, source: Path | None) -> Path:
    """The private key file on the host that runs the harness; `~` expands and a relative path
    is read from the lab file's folder, so a lab and its key can travel together."""
    path = Path(os.path.expanduser(str(value)))
    if not path.is_absolute():
        path = (Path(source).resolve().parent if source else Path.cwd()) / path
    if not path.exists():
        raise LabError(where, f"{str(value)!r} does not exist ({path})")
    if not path.is_file():
        raise LabError(where, f"{str(value)!r} is not a file ({path})")
    return path


def _provider(data: dict, source: Path | None) -> tuple[str | None, dict]:
    """The provider section: its name, and for ssh the login every machine gets by default."""
    raw = _section(data, "provider", {"name"} | SSH_FIELDS - {"address"}, required=False)
    if not raw:
        return None, {}
    from harness.providers import PROVIDERS

    name = str(_need(raw, "name", "provider"))
    if name not in PROVIDERS:
        raise LabError("provider.name", f"unknown provider {name!r} (known: {', '.join(sorted(PROVIDERS))})")
    if name != "ssh":
        extra = sorted(set(raw) - {"name"})
        if extra:
            raise LabError(f"provider.{extra[0]}", f"only the ssh provider logs in to existing machines; "
                                                   f"provider {name} makes its own")
    # Checked here even when every machine overrides them: a wrong default is still wrong.
    if raw.get("user") is not None:
        _user(raw["user"], "provider.user")
    if raw.get("port") is not None:
        _int(raw["port"], "provider.port", 1, 65535)
    if raw.get("key") not in (None, ""):
        _key(raw["key"], "provider.key", source)
    return name, raw


def _ssh_logins(data: dict, machines: tuple[Machine, ...], provider: str | None, defaults: dict,
                source: Path | None) -> tuple[Machine, ...]:
    """Each machine's login for the ssh provider: the provider section's user, key and port,
    overridden per machine by `ssh:`; the address is the lab IP unless given."""
    out = []
    for i, (machine, item) in enumerate(zip(machines, data["machines"])):
        where = f"machines[{i}].ssh"
        own = item.get("ssh")
        if own is not None and provider != "ssh":
            raise LabError(where, "is only for machines of the ssh provider (provider: {name: ssh, ...})")
        if provider != "ssh":
            out.append(machine)
            continue
        if own is None:
            own = {}
        if not isinstance(own, dict):
            raise LabError(where, f"must be a mapping with {', '.join(sorted(SSH_FIELDS))}")
        _no_unknown(own, SSH_FIELDS, where)

        def pick(key: str, default=None):
            if own.get(key) is not None:
                return own[key], f"{where}.{key}"
            if defaults.get(key) is not None:
                return defaults[key], f"provider.{key}"
            return default, f"{where}.{key}"
        address = _address(*pick("address", str(machine.ip)))
        user = _user(*pick("user", "root"))
        port = _int(*pick("port", 22), 1, 65535)
        key_value, key_where = pick("key")
        if key_value in (None, ""):
            raise LabError("provider.key", f"is required: the private key the harness logs in to "
                                           f"{machine.name} with (or machines[{i}].ssh.key)")
        key = _key(key_value, key_where, source)
        out.append(dataclasses.replace(machine, ssh=SshLogin(address, user, port, key)))
    return tuple(out)


def _resources(data: dict) -> dict:
    raw = _section(data, "resources", {"master", "node"}, required=False)
    for kind, spec in raw.items():
        if not isinstance(spec, dict):
            raise LabError(f"resources.{kind}", "must be a mapping with cpus and memory_mb")
        _no_unknown(spec, {"cpus", "memory_mb"}, f"resources.{kind}")
    return raw


def fixed_service_ips(service: ipaddress.IPv4Network) -> dict[str, ipaddress.IPv4Address]:
    """Service IPs the lab allocates itself besides DNS's, by what holds them. The kubernetes
    Service always takes the first address; every other Service the lab creates (nginx-ds,
    metrics-server, ...) gets a dynamic ClusterIP, which the apiserver never hands out when
    it is a fixed one."""
    return {"the kubernetes service IP (cluster.kubernetes_service_ip)": service.network_address + 1}


def _cluster(data: dict, network: ipaddress.IPv4Network) -> Cluster:
    raw = _section(data, "cluster", {"service_cidr", "cluster_cidr", "node_port_range",
                                     "kubernetes_service_ip", "dns_service_ip", "dns_domain",
                                     "bootstrap_token"})
    service = _net(_need(raw, "service_cidr", "cluster"), "cluster.service_cidr")
    pods = _net(_need(raw, "cluster_cidr", "cluster"), "cluster.cluster_cidr")
    for (a_name, a), (b_name, b) in (
            (("cluster.service_cidr", service), ("network.cidr", network)),
            (("cluster.cluster_cidr", pods), ("network.cidr", network)),
            (("cluster.cluster_cidr", pods), ("cluster.service_cidr", service))):
        if a.overlaps(b):
            raise LabError(a_name, f"{a} overlaps {b_name} {b}")
    k8s_ip = _ip(_need(raw, "kubernetes_service_ip", "cluster"), "cluster.kubernetes_service_ip")
    dns_ip = _ip(_need(raw, "dns_service_ip", "cluster"), "cluster.dns_service_ip")
    for where, ip in (("cluster.kubernetes_service_ip", k8s_ip), ("cluster.dns_service_ip", dns_ip)):
        if ip not in service:
            raise LabError(where, f"{ip} is outside cluster.service_cidr {service}")
    if k8s_ip != service.network_address + 1:
        # The apiserver always gives the kubernetes Service the first address of the range.
        raise LabError("cluster.kubernetes_service_ip",
                       f"must be the first address of {service} ({service.network_address + 1}), got {k8s_ip}")
    if dns_ip == k8s_ip:
        raise LabError("cluster.dns_service_ip", f"{dns_ip} is already the kubernetes service IP")
    if dns_ip in (service.network_address, service.broadcast_address):
        raise LabError("cluster.dns_service_ip",
                       f"{dns_ip} is the {'network' if dns_ip == service.network_address else 'broadcast'} "
                       f"address of cluster.service_cidr {service}; the apiserver cannot allocate it")
    for holder, ip in fixed_service_ips(service).items():
        if dns_ip == ip:
            raise LabError("cluster.dns_service_ip", f"{dns_ip} is already {holder}")
    domain = _domain(_need(raw, "dns_domain", "cluster"), "cluster.dns_domain")
    token = raw.get("bootstrap_token")
    if token is not None and not TOKEN_RE.fullmatch(str(token)):
        raise LabError("cluster.bootstrap_token",
                       "must be 32 lowercase hex characters (16 random bytes, as the guide makes it)")
    ports = _port_range(_need(raw, "node_port_range", "cluster"), "cluster.node_port_range")
    return Cluster(service, pods, ports, k8s_ip, dns_ip, domain, token)


def _flannel(data: dict, cluster: Cluster) -> Flannel:
    raw = _section(data, "flannel", {"etcd_prefix", "subnet_len", "backend"})
    prefix = str(_need(raw, "etcd_prefix", "flannel"))
    if not re.fullmatch(r"(/[A-Za-z0-9._-]+)+", prefix) or \
            any(part in (".", "..") for part in prefix.split("/")) or len(prefix) > 255:
        raise LabError("flannel.etcd_prefix", f"{prefix!r} must be an absolute key path like /kubernetes/network "
                                              "(letters, digits, '.', '_', '-'; no '.' or '..' parts)")
    subnet_len = _int(raw.get("subnet_len", 24), "flannel.subnet_len", 8, 30)
    if subnet_len <= cluster.cluster_cidr.prefixlen:
        raise LabError("flannel.subnet_len", f"/{subnet_len} must be smaller than cluster.cluster_cidr {cluster.cluster_cidr}")
    backend = raw.get("backend", "vxlan")
    if backend not in FLANNEL_BACKENDS:
        raise LabError("flannel.backend", f"unknown backend {backend!r} (known: {', '.join(FLANNEL_BACKENDS)})")
    return Flannel(prefix, subnet_len, backend)


def _keepalived(data: dict, lbs: list[Machine]) -> Keepalived:
    raw = _section(data, "keepalived", {"virtual_router_id", "advert_int", "priorities"}, required=bool(lbs))
    vrid = _int(raw.get("virtual_router_id", 51), "keepalived.virtual_router_id", 1, 255)
    advert = _int(raw.get("advert_int", 1), "keepalived.advert_int", 1, 255)
    given = raw.get("priorities")
    if given is None:  # default: the guide's 100, 99, ... in lab order
        priorities = {m.name: 100 - i for i, m in enumerate(lbs)}
    else:
        if not isinstance(given, dict):
            raise LabError("keepalived.priorities", "must map lb machine names to priorities")
        lb_names = {m.name for m in lbs}
        for name, prio in given.items():
            if name not in lb_names:
                raise LabError(f"keepalived.priorities.{name}", "is not a machine with the lb role")
            _int(prio, f"keepalived.priorities.{name}", 1, 254)
        missing = lb_names - set(given)
        if missing:
            raise LabError("keepalived.priorities", f"no priority for lb machine {sorted(missing)[0]}")
        if len(set(given.values())) != len(given):
            raise LabError("keepalived.priorities", "priorities must differ so exactly one machine is MASTER")
        priorities = dict(given)
    return Keepalived(vrid, advert, priorities)


def _haproxy(data: dict) -> Haproxy:
    raw = _section(data, "haproxy", {"stats_port", "check_inter", "rise", "fall", "profile"},
                   required=False)
    inter = str(raw.get("check_inter", "2s"))
    if not re.fullmatch(r"\d+(ms|s)", inter):
        raise LabError("haproxy.check_inter", f"{inter!r} must be a duration like 2s or 500ms")
    profile = raw.get("profile", "seed")
    if profile not in HAPROXY_PROFILES:
        raise LabError("haproxy.profile", f"must be one of {', '.join(HAPROXY_PROFILES)}, got {profile!r}")
    return Haproxy(_int(raw.get("stats_port", 9000), "haproxy.stats_port", 1, 65535), inter,
                   _int(raw.get("rise", 2), "haproxy.rise", 1, 100),
                   _int(raw.get("fall", 2), "haproxy.fall", 1, 100), profile)


def _pki(data: dict) -> Pki:
    raw = _section(data, "pki", {"expiry_hours", "key_size"}, required=False)
    size = raw.get("key_size", 2048)
    if size not in (2048, 3072, 4096):
        raise LabError("pki.key_size", f"must be 2048, 3072 or 4096, got {size!r}")
    return Pki(_int(raw.get("expiry_hours", 876000), "pki.expiry_hours", 1, 10_000_000), size)


def _seconds(value: Any, where: str, low: int, high: int) -> int:
    """A duration written like 30s, 2m or a bare number of seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*(s|m)?\s*", str(value))
    if not match or isinstance(value, bool):
        raise LabError(where, f"{value!r} must be a duration like 30s or 2m")
    seconds = int(match[1]) * (60 if match[2] == "m" else 1)
    if not low <= seconds <= high:
        raise LabError(where, f"{value!r} must be from {low}s to {high}s")
    return seconds


def _autoscaling(data: dict) -> Autoscaling:
    raw = _section(data, "autoscaling", {"sync_period", "downscale_stabilization"}, required=False)
    default = Autoscaling()
    return Autoscaling(
        _seconds(raw.get("sync_period", default.sync_period_s), "autoscaling.sync_period", 1, 600),
        _seconds(raw.get("downscale_stabilization", default.downscale_stabilization_s),
                 "autoscaling.downscale_stabilization", 0, 3600))


def _addons(data: dict) -> tuple[str, ...]:
    raw = data.get("addons", list(ADDONS))
    if not isinstance(raw, list):
        raise LabError("addons", f"must be a list of add-ons ({', '.join(ADDONS)})")
    for name in raw:
        if name not in ADDONS:
            raise LabError("addons", f"unknown add-on {name!r} (known: {', '.join(ADDONS)})")
    if "logs" in raw and "dns" not in raw:
        # vlagent finds the log store by its Service name, which only CoreDNS answers
        raise LabError("addons", "'logs' needs 'dns' (the collectors find the log store by its Service name)")
    return tuple(a for a in ADDONS if a in raw)


def _ingress(data: dict, master_url: str) -> Ingress:
    """Default domain: apps. plus MASTER_URL's parent domain (k8s-api.virtual.local ->
    apps.virtual.local), so the lab's names share one domain."""
    raw = _section(data, "ingress", {"domain"}, required=False)
    parent = master_url.rstrip(".").split(".", 1)
    default = f"apps.{parent[1] if len(parent) == 2 else parent[0]}"
    return Ingress(domain=_domain(raw.get("domain", default), "ingress.domain").rstrip("."))


def _registry(data: dict, cluster: Cluster, machines: tuple[Machine, ...]) -> Registry:
    """Default service IP: the service range's fifth address; default storage server: the last
    master that is not a node (so losing a node never takes the storage with it)."""
    raw = _section(data, "registry", {"service_ip", "storage_server"}, required=False)
    service = cluster.service_cidr
    ip = _ip(raw.get("service_ip", service.network_address + 5), "registry.service_ip")
    if ip not in service or ip in (service.network_address, service.broadcast_address):
        raise LabError("registry.service_ip", f"{ip} is not an allocatable address of cluster.service_cidr {service}")
    taken = {cluster.kubernetes_service_ip: "the kubernetes service IP (cluster.kubernetes_service_ip)",
             cluster.dns_service_ip: "the DNS service IP (cluster.dns_service_ip)"}
    if ip in taken:
        raise LabError("registry.service_ip", f"{ip} is already {taken[ip]}")
    names = [m.name for m in machines]
    candidates = [m.name for m in machines if m.has("master") and not m.has("node")] or names
    server = str(raw.get("storage_server", candidates[-1]))
    if server not in names:
        raise LabError("registry.storage_server", f"{server!r} is not a machine of this lab ({', '.join(names)})")
    return Registry(service_ip=ip, storage_server=server)


def _check_topology(machines: tuple[Machine, ...], network, vip) -> None:
    etcd = [m for m in machines if m.has("etcd")]
    if not etcd or len(etcd) % 2 == 0:
        raise LabError("machines", f"need an odd number of etcd members for a quorum, got {len(etcd)}")
    masters = [m for m in machines if m.has("master")]
    if not masters:
        raise LabError("machines", "need at least one machine with the master role")
    if not any(m.has("node") for m in machines):
        raise LabError("machines", "need at least one machine with the node role")
    lbs = [m for m in machines if m.has("lb")]
    if len(masters) > 1 and not lbs:
        raise LabError("machines", f"{len(masters)} masters need at least one lb machine for the VIP")
    if vip not in network or vip in (network.network_address, network.broadcast_address):
        raise LabError("vip", f"{vip} is outside the machine network {network}")
    for m in machines:
        if m.ip == vip:
            raise LabError("vip", f"{vip} is already the IP of machine {m.name}")


def build_lab(data: dict, versions: Versions, source: Path | None = None) -> Lab:
    _no_unknown(data, TOP_FIELDS, "")
    name = str(_need(data, "name", "lab")).strip()
    if not NAME_RE.fullmatch(name):
        raise LabError("name", f"{name!r} must be lowercase letters, digits and '-'")
    net_raw = _section(data, "network", {"cidr", "interface"})
    network = _net(_need(net_raw, "cidr", "network"), "network.cidr")
    interface = _interface(net_raw.get("interface", "eth1"), "network.interface")
    machines = _machines(data, network, _resources(data))
    provider, login_defaults = _provider(data, source)
    machines = _ssh_logins(data, machines, provider, login_defaults, source)
    vip = _ip(_need(data, "vip", "lab"), "vip")
    _check_topology(machines, network, vip)
    master_url = _domain(_need(data, "master_url", "lab"), "master_url")  # /etc/hosts, certificates
    cluster = _cluster(data, network)
    lbs = [m for m in machines if m.has("lb")]
    api_port = _int(data.get("api_port", 6443), "api_port", 1, 65535)
    vip_port = _int(data.get("vip_port", 443), "vip_port", 1, 65535)
    haproxy = _haproxy(data)
    if lbs and haproxy.stats_port in (vip_port, api_port):
        raise LabError("haproxy.stats_port", f"{haproxy.stats_port} collides with the API ports")
    return Lab(name=name, source=source, network=network, interface=interface, vip=vip,
               master_url=master_url.rstrip("."), api_port=api_port, vip_port=vip_port,
               machines=machines, cluster=cluster, flannel=_flannel(data, cluster),
               keepalived=_keepalived(data, lbs), haproxy=haproxy, pki=_pki(data),
               versions=versions, autoscaling=_autoscaling(data), addons=_addons(data),
               ingress=_ingress(data, master_url), registry=_registry(data, cluster, machines),
               provider=provider)
