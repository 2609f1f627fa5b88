"""flannel: the network config in etcd, one lease per machine, and pods reaching pods."""

from __future__ import annotations

import ipaddress
import json
import shlex

from harness.steps.actions import etcdctl, kubectl, run
from harness.steps.context import StepContext


def network_config(ctx: StepContext) -> dict:
    __tracebackhide__ = True
    first = ctx.lab.etcd_members[0]
    key = f"{ctx.lab.flannel.etcd_prefix}/config"
    value = etcdctl(ctx, "check:flannel", first, f"get {shlex.quote(key)} --print-value-only").stdout
    assert value.strip(), f"no flannel config at {key}"
    config = json.loads(value)
    assert config == ctx.lab.flannel_network_config, f"{key} holds {config}"
    return config


def leases(ctx: StepContext) -> dict[str, str]:
    """Exactly one subnet per machine, inside CLUSTER_CIDR, with that machine's PublicIP, and
    the same subnet on the machine's flannel.1. Returns machine -> subnet."""
    __tracebackhide__ = True
    lab = ctx.lab
    first = lab.etcd_members[0]
    prefix = f"{lab.flannel.etcd_prefix}/subnets/"
    out = etcdctl(ctx, "check:flannel", first, f"get {shlex.quote(prefix)} --prefix").stdout.splitlines()
    pairs = dict(zip(out[0::2], out[1::2]))
    by_ip: dict[str, list[str]] = {}
    for key, value in pairs.items():
        subnet = ipaddress.ip_network(key[len(prefix):].replace("-", "/"))
        assert subnet.prefixlen == lab.flannel.subnet_len, f"{key}: not a /{lab.flannel.subnet_len}"
        assert subnet.subnet_of(lab.cluster.cluster_cidr), f"{key}: outside {lab.cluster.cluster_cidr}"
        by_ip.setdefault(json.loads(value)["PublicIP"], []).append(str(subnet))
    want = {str(m.ip) for m in lab.machines}
    assert set(by_ip) == want, f"leases for {sorted(by_ip)}, machines are {sorted(want)}"
    assert all(len(v) == 1 for v in by_ip.values()), f"more than one lease for a machine: {by_ip}"
    result = {}
    for m in lab.machines:
        subnet = ipaddress.ip_network(by_ip[str(m.ip)][0])
        addr = run(ctx, "check:flannel", m, "ip -4 -o addr show dev flannel.1").stdout
        assert f" {subnet.network_address}/" in addr, f"{m.name}: flannel.1 has {addr.strip()}, lease {subnet}"
        result[m.name] = str(subnet)
    return result


def _pods_by_node(ctx: StepContext) -> dict[str, str]:
    listing = json.loads(kubectl(ctx, "check:flannel", "get pods -l app=nginx-ds -o json").stdout)
    return {p["spec"]["nodeName"]: p["status"]["podIP"] for p in listing["items"]
            if p["status"].get("phase") == "Running" and p["status"].get("podIP")}


def _pod_pid(ctx: StepContext, machine, pod_ip: str) -> str:
    """The PID of a process inside the pod that owns `pod_ip` on this node, found through
    containerd's tasks: each nginx task's network namespace is checked for the address."""
    script = ("for pid in $(ctr -n k8s.io task ls | awk 'NR>1{print $2}'); do "
              "nsenter -t $pid -n ip -4 -o addr 2>/dev/null | "
              f"grep -q ' {pod_ip}/' && echo $pid && break; done")
    return run(ctx, "check:flannel", machine, script).stdout.strip()


def pod_to_pod(ctx: StepContext) -> dict[str, list[str]]:
    """From inside the nginx pod on each node, HTTP to the nginx pod on every other node."""
    __tracebackhide__ = True
    pods = _pods_by_node(ctx)
    nodes = {m.node_name: m for m in ctx.lab.nodes}
    assert set(pods) == set(nodes), f"nginx pods on {sorted(pods)}, nodes are {sorted(nodes)}"
    reached: dict[str, list[str]] = {}
    for node_name, ip in pods.items():
        machine = nodes[node_name]
        pid = _pod_pid(ctx, machine, ip)
        assert pid, f"no process in the pod with IP {ip} on {node_name}"
        for other, other_ip in pods.items():
            if other == node_name:
                continue
            out = run(ctx, "check:flannel", machine,
                      f"nsenter -t {pid} -n curl -s -m 5 http://{other_ip}/", check=False)
            assert "Welcome to nginx!" in out.stdout, \
                f"pod {ip} on {node_name} could not reach pod {other_ip} on {other}: {out.stderr.strip()}"
            reached.setdefault(node_name, []).append(other)
    return reached
