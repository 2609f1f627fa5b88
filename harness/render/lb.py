"""haproxy and keepalived: the VIP in front of the masters (the guide's "API HA" step)."""

from __future__ import annotations

from harness.lab import Lab, Machine

CHECK_HAPROXY = "/etc/keepalived/check_haproxy.sh"
CHECK_LAB_NETWORK = "/etc/keepalived/check_lab_network.sh"


def haproxy_cfg(lab: Lab, stats_password: str) -> str:
    """The guide's config minus its port-80 frontend: 1.8's insecure port 8080 is gone."""
    h = lab.haproxy
    servers = "\n".join(f"    server {m.name} {m.ip}:{lab.api_port} check" for m in lab.masters)
    return f"""# Rendered by k8s-ha-lab.
global
    log /dev/log local0
    maxconn 4096

defaults
    log global
    mode tcp
    option tcplog
    timeout connect 5s
    # long enough for kubectl watches through the VIP
    timeout client 10m
    timeout server 10m

listen stats
    bind *:{h.stats_port}
    mode http
    stats enable
    stats hide-version
    stats uri /stats
    stats refresh 30s
    stats realm Haproxy\\ Statistics
    stats auth admin:{stats_password}

frontend k8s-api
    bind {lab.vip}:{lab.vip_port}
    mode tcp
    tcp-request inspect-delay 5s
    tcp-request content accept if {{ req.ssl_hello_type 1 }}
    default_backend k8s-api

backend k8s-api
    mode tcp
    option tcp-check
    balance roundrobin
    default-server inter {h.check_inter} downinter {h.check_inter} rise {h.rise} fall {h.fall} maxconn 250 maxqueue 256 weight 100
{servers}
"""


def check_haproxy_sh() -> str:
    """keepalived's track script: fail when no haproxy process is alive, so the VIP moves."""
    return "#!/bin/sh\n# Rendered by k8s-ha-lab.\nexec /usr/bin/pgrep -x haproxy >/dev/null\n"


def check_lab_network_sh(lab: Lab, machine: Machine) -> str:
    """keepalived's second track script: fail when this machine reaches none of the others.

    Without it, a MASTER cut off the lab network keeps the VIP while the BACKUP, no longer
    hearing adverts, takes it too: split-brain. The peers are pinged in parallel so one run
    lasts at most a second."""
    peers = " ".join(str(m.ip) for m in lab.machines if m is not machine)
    return f"""#!/bin/sh
# Rendered by k8s-ha-lab.
ok=$(mktemp)
rm -f "$ok"
for ip in {peers}; do
    (ping -c 1 -W 1 "$ip" >/dev/null 2>&1 && touch "$ok") &
done
wait
[ -e "$ok" ] && rm -f "$ok"
"""


def keepalived_conf(lab: Lab, machine: Machine, auth_pass: str) -> str:
    k = lab.keepalived
    peer_ips = [f"        {m.ip}" for m in lab.lbs if m is not machine]
    # unicast: no multicast needed on the lab network
    unicast = (f"    unicast_src_ip {machine.ip}\n    unicast_peer {{\n" + "\n".join(peer_ips)
               + "\n    }\n") if peer_ips else ""
    return f"""! Rendered by k8s-ha-lab.
global_defs {{
    router_id {machine.name}
    script_user root
    enable_script_security
    vrrp_skip_check_adv_addr
}}

vrrp_script check_haproxy {{
    script "{CHECK_HAPROXY}"
    interval 1
    fall 2
    rise 2
}}

vrrp_script check_lab_network {{
    script "{CHECK_LAB_NETWORK}"
    interval 1
    timeout 2
    fall 1
    rise 2
}}

vrrp_instance VI_1 {{
    state {lab.vrrp_state(machine)}
    interface {lab.interface}
    virtual_router_id {k.virtual_router_id}
    priority {k.priorities[machine.name]}
    advert_int {k.advert_int}
    authentication {{
        auth_type PASS
        auth_pass {auth_pass}
    }}
{unicast}    virtual_ipaddress {{
        {lab.vip}/{lab.network.prefixlen} dev {lab.interface}
    }}
    track_script {{
        check_haproxy
        check_lab_network
    }}
}}
"""
