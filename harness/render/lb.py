"""haproxy and keepalived: the VIP in front of the masters (the guide's "API HA" step)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.lab import Lab, Machine

CHECK_HAPROXY = "/etc/keepalived/check_haproxy.sh"
CHECK_LAB_NETWORK = "/etc/keepalived/check_lab_network.sh"


@dataclass(frozen=True)
class HaproxyProfile:
    """What a profile sets that the guide leaves at haproxy's defaults. The checks' timing
    (inter, rise, fall) is the lab file's in both: the tuned profile reacts to the traffic
    itself, not to faster checks."""
    connect_timeout: str
    retries: int | None          # None: haproxy's default (3), no line written
    redispatch: bool             # a retried connection may go to another server
    shutdown_sessions: bool      # on-marked-down: cut the clients of a server marked down
    observe_errors: bool         # a failed connection marks its server down at once
    vip_released_first: bool = False  # at shutdown keepalived stops before haproxy and the apiserver

    def defaults_lines(self) -> list[str]:
        lines = [f"timeout connect {self.connect_timeout}"]
        if self.retries is not None:
            lines.append(f"retries {self.retries}")
        if self.redispatch:
            lines.append("option redispatch 1")
        return lines

    def server_options(self) -> str:
        words = []
        if self.shutdown_sessions:
            words.append("on-marked-down shutdown-sessions")
        if self.observe_errors:
            words.append("observe layer4 error-limit 1 on-error mark-down")
        return (" " + " ".join(words)) if words else ""


# Why each tuned value, for trainees (docs/failover-tuning.md has the measured effect):
# - connect 1s: a SYN to a dead or cut-off apiserver is given up after 1 s, not 5 s;
# - retries 2 + redispatch: the retry goes to another apiserver, so a client never sees it;
# - on-marked-down shutdown-sessions: connections held to a dead server are closed at once,
#   so clients reconnect instead of waiting for their own timeout;
# - observe layer4: the first failed connection marks the server down, before the checks do;
# - VIP released first: a machine shutting down gives the VIP away (priority 0) before its
#   haproxy and apiserver stop, not while clients still reach them through it.
HAPROXY_PROFILES = {
    "seed": HaproxyProfile("5s", None, False, False, False),
    "tuned": HaproxyProfile("1s", 2, True, True, True, vip_released_first=True),
}


KEEPALIVED_DROPIN = "keepalived.service.d/10-k8s-ha-lab.conf"  # under the unit folder


def keepalived_dropin(lab: Lab) -> str:
    """systemd stops units in the reverse of their start order: keepalived started After= haproxy
    and the apiserver is stopped before them. The seed profile keeps the package's unit as the
    guide has it (the drop-in is written empty, so switching profiles takes the order away)."""
    profile = lab.haproxy.profile
    if not HAPROXY_PROFILES[profile].vip_released_first:
        return f"# haproxy profile {profile}: keepalived's unit as Debian ships it\n"
    return (f"# haproxy profile {profile}: at shutdown, release the VIP before haproxy and the\n"
            "# apiserver stop (stop order is the reverse of After=)\n"
            "[Unit]\nAfter=haproxy.service kube-apiserver.service\n")


def haproxy_cfg(lab: Lab, stats_password: str) -> str:
    """The guide's config minus its port-80 frontend: 1.8's insecure port 8080 is gone."""
    h = lab.haproxy
    profile = HAPROXY_PROFILES[h.profile]
    servers = "\n".join(f"    server {m.name} {m.ip}:{lab.api_port} check" for m in lab.masters)
    defaults = "\n".join(f"    {line}" for line in profile.defaults_lines())
    return f"""# Rendered by k8s-ha-lab (haproxy profile: {h.profile}).
global
    log /dev/log local0
    maxconn 4096

defaults
    log global
    mode tcp
    option tcplog
{defaults}
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
    default-server inter {h.check_inter} downinter {h.check_inter} rise {h.rise} fall {h.fall} maxconn 250 maxqueue 256 weight 100{profile.server_options()}
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
