"""The guide's env.sh, its /etc/hosts record and its sysctls."""

from __future__ import annotations

from harness.lab import Lab, Machine

HOSTS_BEGIN = "# BEGIN k8s-ha-lab"
HOSTS_END = "# END k8s-ha-lab"


def env_sh(lab: Lab, machine: Machine) -> str:
    """The guide's global variables. BOOTSTRAP_TOKEN stays out: it lives only in token.csv and
    the bootstrap kubeconfig, both 0600, so this file can be world-readable."""
    c = lab.cluster
    lines = [
        "# Rendered by k8s-ha-lab from the lab file; the guide's environment.sh.",
        f"SERVICE_CIDR=\"{c.service_cidr}\"",
        f"CLUSTER_CIDR=\"{c.cluster_cidr}\"",
        f"NODE_PORT_RANGE=\"{c.node_port_range_str}\"",
        f"ETCD_ENDPOINTS=\"{lab.etcd_endpoints}\"",
        f"FLANNEL_ETCD_PREFIX=\"{lab.flannel.etcd_prefix}\"",
        f"CLUSTER_KUBERNETES_SVC_IP=\"{c.kubernetes_service_ip}\"",
        f"CLUSTER_DNS_SVC_IP=\"{c.dns_service_ip}\"",
        f"CLUSTER_DNS_DOMAIN=\"{lab.dns_domain}.\"",
        f"MASTER_URL=\"{lab.master_url}\"",
        f"KUBE_APISERVER=\"{lab.api_url}\"",
        f"NODE_NAME=\"{machine.node_name}\"",
        f"NODE_IP=\"{machine.ip}\"",
    ]
    return "\n".join(lines) + "\n"


def hosts_block(lab: Lab, machine: Machine) -> str:
    """The lines the hosts step keeps between markers in /etc/hosts on every machine.

    The ingress names get one line per node: glibc returns every address (`multi on`), and a
    client that finds one node's traefik down tries the next. The registry's name points at its
    Service's ClusterIP, which only machines running kube-proxy (the nodes) can reach."""
    lines = [HOSTS_BEGIN, f"{lab.api_address} {lab.master_url}"]
    for m in lab.machines:
        names = dict.fromkeys([m.name, m.node_name])
        lines.append(f"{m.ip} {' '.join(names)}")
    for app in lab.ingress_apps:
        lines.extend(f"{node.ip} {lab.ingress_host(app)}" for node in lab.nodes)
    if lab.has_addon("registry") and machine.has("node"):
        lines.append(f"{lab.registry.service_ip} {lab.registry_host}")
    lines.append(HOSTS_END)
    return "\n".join(lines) + "\n"


def merge_hosts(current: str, block: str) -> str:
    """/etc/hosts with our block replaced or appended; idempotent, other lines untouched."""
    lines = current.splitlines()
    if HOSTS_BEGIN in lines and HOSTS_END in lines:
        start, end = lines.index(HOSTS_BEGIN), lines.index(HOSTS_END)
        lines = lines[:start] + lines[end + 1:]
    body = "\n".join(lines).rstrip("\n")
    return (body + "\n" if body else "") + block


def sysctl_conf(lab: Lab, machine: Machine) -> str:
    lines = ["# k8s-ha-lab: what the guide sets in /etc/sysctl.conf", "net.ipv4.ip_forward = 1"]
    if machine.has("node"):  # pods hang off the cni0 bridge; iptables must see their traffic
        lines.append("net.bridge.bridge-nf-call-iptables = 1")
        lines.append("net.bridge.bridge-nf-call-ip6tables = 1")
    if machine.has("lb"):
        # haproxy binds the VIP even on the BACKUP, where the address is not (yet) local.
        lines.append("net.ipv4.ip_nonlocal_bind = 1")
    return "\n".join(lines) + "\n"
