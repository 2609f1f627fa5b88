"""The lab's packet-filter rules found in `iptables-save` output and removed with
`iptables-restore --noflush`, leaving docker's and the admin's: first on text, then for real in
a fresh network namespace (`unshare -rn`: the kernel's own netfilter, nothing of the host's)."""

from __future__ import annotations

import os
import subprocess
import tempfile

from harness import REPO_ROOT, netfilter
from tests.unit.conftest import require_tool

# What a lab node's tables hold: kube-proxy's and the kubelet's (KUBE-), flannel's, the CNI
# plugins', kube-proxy's unit's REJECT rules for the service range, a scenario's partition rule,
# docker's embedded DNS and an admin's own chain and rule.
RULES = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:DOCKER_OUTPUT - [0:0]
:FLANNEL-POSTRTG - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-ABC - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-XYZ - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -d 127.0.0.11/32 -j DOCKER_OUTPUT
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A DOCKER_OUTPUT -d 127.0.0.11/32 -p tcp -m tcp --dport 53 -j DNAT --to-destination 127.0.0.11:41234
-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "flanneld masq" -j RETURN
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-SEP-ABC -p tcp -m comment --comment "default/nginx" -m tcp -j DNAT --to-destination 10.200.1.5:80
-A KUBE-SERVICES -d 10.32.0.20/32 -p tcp -m comment --comment "default/nginx cluster IP" -m tcp --dport 80 -j KUBE-SVC-XYZ
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-SVC-XYZ -m comment --comment "default/nginx -> 10.200.1.5:80" -j KUBE-SEP-ABC
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:ADMIN-OWN - [0:0]
:FLANNEL-FWD - [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
-A INPUT -j KUBE-FIREWALL
-A INPUT -p tcp -m tcp --dport 2222 -j ADMIN-OWN
-A INPUT -s 10.243.0.12/32 -m comment --comment k8s-ha-lab-partition -j DROP
-A FORWARD -d 10.32.0.0/24 -p tcp -m conntrack ! --ctstate DNAT -j REJECT --reject-with tcp-reset
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD
-A FORWARD -d 192.168.0.0/24 -j REJECT --reject-with icmp-port-unreachable
-A OUTPUT -d 10.32.0.0/24 -p udp -m conntrack ! --ctstate DNAT -j REJECT --reject-with icmp-port-unreachable
-A ADMIN-OWN -j ACCEPT
-A FLANNEL-FWD -s 10.200.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-IPTABLES-HINT - [0:0]
COMMIT
"""
SERVICE_CIDR = "10.32.0.0/24"
THEIRS = ["-A INPUT -p tcp -m tcp --dport 2222 -j ADMIN-OWN", "-A ADMIN-OWN -j ACCEPT",
          "-A FORWARD -d 192.168.0.0/24 -j REJECT --reject-with icmp-port-unreachable",
          "-A OUTPUT -d 127.0.0.11/32 -j DOCKER_OUTPUT"]


def test_the_cleanup_deletes_rules_then_flushes_and_removes_chains():
    text = netfilter.cleanup_input(RULES, SERVICE_CIDR)
    filter_table = text[text.index("*filter"):text.index("COMMIT", text.index("*filter"))]
    lines = filter_table.splitlines()[1:]
    kinds = [line.split()[0] for line in lines]
    assert kinds == sorted(kinds, key=["-D", "-F", "-X"].index)   # deletions, then flushes, then removals
    assert "-D FORWARD -d 10.32.0.0/24 -p tcp -m conntrack ! --ctstate DNAT -j REJECT --reject-with tcp-reset" in lines
    assert "-D INPUT -s 10.243.0.12/32 -m comment --comment k8s-ha-lab-partition -j DROP" in lines
    assert not any("ADMIN-OWN" in line or "192.168.0.0/24" in line for line in lines)
    assert "DOCKER" not in text
    assert netfilter.cleanup_input("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", SERVICE_CIDR) == ""


def test_leftovers_name_the_table_and_the_rule():
    found = netfilter.leftovers(RULES, SERVICE_CIDR)
    assert "mangle: chain KUBE-IPTABLES-HINT" in found
    assert 'nat: -A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG' in found
    assert not any("ADMIN-OWN" in line or "DOCKER" in line for line in found)


def test_removed_for_real_in_a_fresh_network_namespace():
    """Load the rules into a new network namespace, clean up with what cleanup_input computes
    from the kernel's own iptables-save, and compare: nothing of the lab, all of the rest."""
    require_tool("iptables-restore", why="the iptables package (a dependency of docker.io)")
    require_tool("unshare")
    script = (
        "set -e; iptables-restore < \"$1\"; iptables-save > \"$2\"; "
        "python3 -c 'import sys; from harness import netfilter; "
        "open(sys.argv[2], \"w\").write(netfilter.cleanup_input(open(sys.argv[1]).read(), sys.argv[3]))' "
        "\"$2\" \"$3\" " + SERVICE_CIDR + "; "
        "iptables-restore --noflush < \"$3\"; iptables-save")
    with tempfile.TemporaryDirectory() as folder:
        paths = [os.path.join(folder, name) for name in ("rules", "saved", "cleanup")]
        with open(paths[0], "w") as handle:
            handle.write(RULES)
        proc = subprocess.run(["unshare", "-rn", "sh", "-c", script, "sh", *paths], capture_output=True, text=True,
                              cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    after = proc.stdout
    assert netfilter.leftovers(after, SERVICE_CIDR) == []
    for rule in THEIRS:
        assert rule in after, f"{rule!r} was removed too"
