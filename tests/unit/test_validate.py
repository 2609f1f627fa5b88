"""Every bad lab is refused before anything runs: one line naming the field, exit status 2."""

import copy
import subprocess
import sys

import pytest

from harness import REPO_ROOT
from harness.cli import main


def _mutate(data, path, value):
    """Set data[a][b]... = value; path like 'cluster.service_cidr' or 'machines.1.ip'."""
    target = data
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    last = keys[-1]
    if value is DELETE:
        del target[int(last) if last.isdigit() else last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value


DELETE = object()

BAD_LABS = [
    # (id, path, value, expected start of the message)
    ("unknown-top-field", "colour", "blue", "colour: unknown field"),
    ("unknown-machine-field", "machines.0.rolez", ["etcd"], "machines[0].rolez: unknown field"),
    ("unknown-role", "machines.3.roles", ["node", "worker"], "machines[3].roles: unknown role 'worker'"),
    ("duplicate-name", "machines.4.name", "node01", "machines[4].name: duplicate name 'node01'"),
    ("duplicate-ip", "machines.4.ip", "192.168.220.200", "machines[4].ip: duplicate IP 192.168.220.200"),
    ("ip-outside-network", "machines.3.ip", "192.168.221.200",
     "machines[3].ip: 192.168.221.200 is outside the machine network 192.168.220.0/24"),
    ("not-an-ip", "machines.3.ip", "192.168.220.300", "machines[3].ip: '192.168.220.300' is not an IPv4 address"),
    ("vip-is-a-machine", "vip", "192.168.220.101", "vip: 192.168.220.101 is already the IP of machine master02"),
    ("vip-outside-network", "vip", "10.0.0.224", "vip: 10.0.0.224 is outside the machine network"),
    ("service-overlaps-cluster", "cluster.service_cidr", "172.30.0.0/16",
     "cluster.cluster_cidr: 172.30.0.0/16 overlaps cluster.service_cidr 172.30.0.0/16"),
    ("cluster-overlaps-machines", "cluster.cluster_cidr", "192.168.0.0/16",
     "cluster.cluster_cidr: 192.168.0.0/16 overlaps network.cidr 192.168.220.0/24"),
    ("service-overlaps-machines", "cluster.service_cidr", "192.168.220.128/25",
     "cluster.service_cidr: 192.168.220.128/25 overlaps network.cidr"),
    ("service-ip-outside", "cluster.kubernetes_service_ip", "10.253.0.1",
     "cluster.kubernetes_service_ip: 10.253.0.1 is outside cluster.service_cidr 10.254.0.0/16"),
    ("dns-ip-outside", "cluster.dns_service_ip", "10.0.0.2",
     "cluster.dns_service_ip: 10.0.0.2 is outside cluster.service_cidr 10.254.0.0/16"),
    ("service-ip-not-first", "cluster.kubernetes_service_ip", "10.254.0.5",
     "cluster.kubernetes_service_ip: must be the first address of 10.254.0.0/16"),
    ("bad-token", "cluster.bootstrap_token", "not-a-token",
     "cluster.bootstrap_token: must be 32 lowercase hex characters"),
    ("short-token", "cluster.bootstrap_token", "f3be89d17cf7d80847f3bc8b8ea5825",
     "cluster.bootstrap_token: must be 32 lowercase hex characters"),
    ("nodeport-reversed", "cluster.node_port_range", "32766-30000",
     "cluster.node_port_range: '32766-30000' is not a range"),
    ("nodeport-word", "cluster.node_port_range", "thirty-thousand",
     "cluster.node_port_range: 'thirty-thousand' is not a range"),
    ("nodeport-single", "cluster.node_port_range", 30000, "cluster.node_port_range: '30000' is not a range"),
    ("nodeport-too-high", "cluster.node_port_range", "30000-70000", "cluster.node_port_range: '30000-70000' is not a range"),
    ("network-not-cidr", "network.cidr", "192.168.220.1/24", "network.cidr: '192.168.220.1/24' is not a network"),
    ("priority-for-non-lb", "keepalived.priorities", {"master01": 100, "node01": 99},
     "keepalived.priorities.node01: is not a machine with the lb role"),
    ("priority-tie", "keepalived.priorities", {"master01": 100, "master02": 100},
     "keepalived.priorities: priorities must differ"),
    ("flannel-backend", "flannel.backend", "weave", "flannel.backend: unknown backend 'weave'"),
    ("missing-cluster", "cluster", DELETE, "cluster: is required"),
]


@pytest.mark.parametrize("path,value,message", [c[1:] for c in BAD_LABS], ids=[c[0] for c in BAD_LABS])
def test_bad_lab_exits_2_naming_the_field(seed_data, write_lab, capsys, path, value, message):
    data = copy.deepcopy(seed_data)
    _mutate(data, path, value)
    assert main(["validate", str(write_lab(data))]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}"), err
    assert err.count("\n") == 1, f"expected one line, got: {err!r}"


def _with_roles(seed_data, roles_by_index):
    data = copy.deepcopy(seed_data)
    for index, roles in roles_by_index.items():
        data["machines"][index]["roles"] = roles
    return data


@pytest.mark.parametrize("roles_by_index,message", [
    ({2: ["master", "node"]}, "machines: need an odd number of etcd members for a quorum, got 2"),
    ({0: ["master", "lb"], 1: ["master", "lb"], 2: ["master", "node"]},
     "machines: need an odd number of etcd members for a quorum, got 0"),
    ({0: ["etcd", "master"], 1: ["etcd", "master"]}, "machines: 3 masters need at least one lb machine"),
], ids=["even-etcd", "zero-etcd", "masters-without-lb"])
def test_topology_errors(seed_data, write_lab, capsys, roles_by_index, message):
    data = _with_roles(seed_data, roles_by_index)
    data["keepalived"].pop("priorities")
    assert main(["validate", str(write_lab(data))]) == 2
    assert capsys.readouterr().err.startswith(f"error: {message}")


def test_invalid_yaml_names_the_file_and_line(write_lab, capsys):
    path = write_lab("name: seed\nmachines: [\n  {name: a, ip: 1\n", "broken.yaml")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: invalid YAML at line") and err.count("\n") == 1


def test_missing_file_is_one_line(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read lab file" in capsys.readouterr().err


def test_unknown_version_override(seed_data, write_lab, capsys):
    seed_data["versions"] = {"kubernets": {"version": "v1.2.3"}}
    assert main(["validate", str(write_lab(seed_data))]) == 2
    assert capsys.readouterr().err.startswith("error: versions.kubernets: unknown component")


def test_the_real_entry_point_exits_2(seed_data, write_lab):
    """Through `python -m harness`, as a user runs it, not just main()."""
    seed_data["vip"] = "192.168.220.100"
    proc = subprocess.run([sys.executable, "-m", "harness", "validate", str(write_lab(seed_data))],
                          capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 2
    assert proc.stderr == "error: vip: 192.168.220.100 is already the IP of machine master01\n"
    assert proc.stdout == ""


def test_good_labs_validate(capsys):
    for name in ("seed", "small"):
        assert main(["validate", str(REPO_ROOT / "labs" / f"{name}.yaml")]) == 0
    assert capsys.readouterr().out.count("lab is valid") == 2
