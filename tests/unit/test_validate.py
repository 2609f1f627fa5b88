"""Every bad lab is refused before anything runs: one line naming the field, exit status 2."""

import copy
import dataclasses
import re
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
    # issue 9: DNS
    ("dns-ip-is-kubernetes", "cluster.dns_service_ip", "10.254.0.1",
     "cluster.dns_service_ip: 10.254.0.1 is already the kubernetes service IP"),
    ("dns-ip-is-network-address", "cluster.dns_service_ip", "10.254.0.0",
     "cluster.dns_service_ip: 10.254.0.0 is the network address of cluster.service_cidr"),
    ("dns-ip-is-broadcast", "cluster.dns_service_ip", "10.254.255.255",
     "cluster.dns_service_ip: 10.254.255.255 is the broadcast address of cluster.service_cidr"),
    ("dns-domain-empty-label", "cluster.dns_domain", "cluster..local",
     "cluster.dns_domain: 'cluster..local' is not a DNS domain: it has an empty label"),
    ("dns-domain-leading-dot", "cluster.dns_domain", ".cluster.local",
     "cluster.dns_domain: '.cluster.local' is not a DNS domain: it has an empty label"),
    ("dns-domain-two-dots", "cluster.dns_domain", "cluster.local..",
     "cluster.dns_domain: 'cluster.local..' is not a DNS domain: it has an empty label"),
    ("dns-domain-underscore", "cluster.dns_domain", "cluster_local",
     "cluster.dns_domain: 'cluster_local' is not a DNS domain: label 'cluster_local'"),
    ("dns-domain-hyphen-end", "cluster.dns_domain", "cluster-.local",
     "cluster.dns_domain: 'cluster-.local' is not a DNS domain: label 'cluster-'"),
    ("dns-domain-long-label", "cluster.dns_domain", "a" * 64 + ".local",
     "cluster.dns_domain: '" + "a" * 64 + ".local' is not a DNS domain: label"),
    ("dns-domain-too-long", "cluster.dns_domain", ".".join(["abcdefghi"] * 26),
     "cluster.dns_domain: 'abcdefghi.abcdefghi.abcdefghi.abcdefghi.'... is not a DNS domain: longer than 253"),
    ("dns-domain-space", "cluster.dns_domain", "cluster.local; rm -rf /",
     "cluster.dns_domain: 'cluster.local; rm -rf /' is not a DNS domain"),
    ("dns-domain-empty", "cluster.dns_domain", ".", "cluster.dns_domain: '.' is not a DNS domain: it is empty"),
    ("dns-domain-numeric", "cluster.dns_domain", "10.254", "cluster.dns_domain: '10.254' is not a DNS domain"),
    # issue 13: every value that reaches a shell or a path
    ("interface-injection", "network.interface", "eth1; touch /tmp/x",
     "network.interface: 'eth1; touch /tmp/x' is not an interface name: ' ' is not allowed"),
    ("interface-too-long", "network.interface", "eth0123456789012",
     "network.interface: 'eth0123456789012' is not an interface name: must be 1-15 characters"),
    ("interface-empty", "network.interface", "", "network.interface: '' is not an interface name"),
    ("interface-slash", "network.interface", "eth/1", "network.interface: 'eth/1' is not an interface name"),
    ("interface-colon", "network.interface", "eth1:0", "network.interface: 'eth1:0' is not an interface name"),
    ("interface-dotdot", "network.interface", "..", "network.interface: '..' is not an interface name"),
    ("interface-newline", "network.interface", "eth1\nid", "network.interface: 'eth1\\nid' is not an interface name"),
    ("machine-name-injection", "machines.3.name", "node01;id",
     "machines[3].name: 'node01;id' is not a valid hostname"),
    ("machine-name-newline", "machines.3.name", "node01\n", "machines[3].name: 'node01\\n' is not a valid hostname"),
    ("machine-name-path", "machines.3.name", "../etc", "machines[3].name: '../etc' is not a valid hostname"),
    ("node-name-injection", "machines.2.node_name", "node03 $(id)",
     "machines[2].node_name: 'node03 $(id)' is not a valid node name"),
    ("master-url-injection", "master_url", "k8s-api.virtual.local$(id)",
     "master_url: 'k8s-api.virtual.local$(id)' is not a DNS domain"),
    ("master-url-ip", "master_url", "192.168.220.224", "master_url: '192.168.220.224' is not a DNS domain"),
    ("lab-name-path", "name", "../seed", "name: '../seed' must be lowercase letters, digits and '-'"),
    ("lab-name-space", "name", "seed lab", "name: 'seed lab' must be lowercase letters, digits and '-'"),
    ("etcd-prefix-dotdot", "flannel.etcd_prefix", "/kubernetes/../network",
     "flannel.etcd_prefix: '/kubernetes/../network' must be an absolute key path"),
    ("etcd-prefix-shell", "flannel.etcd_prefix", "/kubernetes/network;id",
     "flannel.etcd_prefix: '/kubernetes/network;id' must be an absolute key path"),
    ("token-newline", "cluster.bootstrap_token", "f3be89d17cf7d80847f3bc8b8ea5825a\n",
     "cluster.bootstrap_token: must be 32 lowercase hex characters"),
    ("ingress-domain-injection", "ingress.domain", "apps.local$(id)",
     "ingress.domain: 'apps.local$(id)' is not a DNS domain"),
    ("ingress-domain-space", "ingress.domain", "apps local", "ingress.domain: 'apps local' is not a DNS domain"),
    ("storage-server-unknown", "registry.storage_server", "master02;id",
     "registry.storage_server: 'master02;id' is not a machine of this lab"),
    ("check-inter-injection", "haproxy.check_inter", "2s\n  server evil 1.2.3.4:6443",
     "haproxy.check_inter: '2s\\n  server evil 1.2.3.4:6443' must be a duration"),
    ("flannel-backend-injection", "flannel.backend", "vxlan\"}", "flannel.backend: unknown backend"),
    ("version-injection", "versions", {"kubernetes": {"version": "v1.37.2; id"}},
     "versions.kubernetes.version: 'v1.37.2; id' is not a version"),
    # issue 13: the ssh provider's section (`key: lab.yaml` is the lab file itself: a file that exists)
    ("provider-unknown", "provider", {"name": "hyperv"}, "provider.name: unknown provider 'hyperv'"),
    ("provider-no-name", "provider", {"user": "root", "key": "lab.yaml"}, "provider.name: is required"),
    ("provider-not-mapping", "provider", "ssh", "provider: must be a mapping"),
    ("provider-docker-login", "provider", {"name": "docker", "user": "root"},
     "provider.user: only the ssh provider logs in to existing machines"),
    ("provider-unknown-field", "provider", {"name": "ssh", "key": "lab.yaml", "password": "x"},
     "provider.password: unknown field"),
    ("ssh-key-required", "provider", {"name": "ssh"}, "provider.key: is required"),
    ("ssh-key-missing", "provider", {"name": "ssh", "key": "no-such-key"},
     "provider.key: 'no-such-key' does not exist"),
    ("ssh-key-directory", "provider", {"name": "ssh", "key": "."}, "provider.key: '.' is not a file"),
    ("ssh-user-injection", "provider", {"name": "ssh", "key": "lab.yaml", "user": "root;id"},
     "provider.user: 'root;id' is not a user name"),
    ("ssh-user-option", "provider", {"name": "ssh", "key": "lab.yaml", "user": "-oProxyCommand=id"},
     "provider.user: '-oProxyCommand=id' is not a user name"),
    ("ssh-user-numeric", "provider", {"name": "ssh", "key": "lab.yaml", "user": 1000},
     "provider.user: '1000' is not a user name"),
    ("ssh-user-too-long", "provider", {"name": "ssh", "key": "lab.yaml", "user": "a" * 33},
     "provider.user: '" + "a" * 33 + "' is not a user name"),
    ("ssh-port-zero", "provider", {"name": "ssh", "key": "lab.yaml", "port": 0},
     "provider.port: must be an integer from 1 to 65535, got 0"),
    ("ssh-port-high", "provider", {"name": "ssh", "key": "lab.yaml", "port": 65536},
     "provider.port: must be an integer from 1 to 65535, got 65536"),
    ("ssh-port-text", "provider", {"name": "ssh", "key": "lab.yaml", "port": "22; id"},
     "provider.port: must be an integer from 1 to 65535, got '22; id'"),
    ("machine-ssh-without-provider", "machines.0.ssh", {"address": "10.0.0.1"},
     "machines[0].ssh: is only for machines of the ssh provider"),
]


@pytest.mark.parametrize("path,value,message", [c[1:] for c in BAD_LABS], ids=[c[0] for c in BAD_LABS])
def test_bad_lab_exits_2_naming_the_field(seed_data, write_lab, capsys, path, value, message):
    data = copy.deepcopy(seed_data)
    _mutate(data, path, value)
    assert main(["validate", str(write_lab(data))]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}"), err
    assert err.count("\n") == 1, f"expected one line, got: {err!r}"


SSH_PROVIDER = {"name": "ssh", "user": "admin", "key": "lab.yaml"}


@pytest.mark.parametrize("login,message", [
    ({"address": "host;id"}, "machines[1].ssh.address: 'host;id' is neither an IP address nor a host name"),
    ({"address": "-oProxyCommand=id"}, "machines[1].ssh.address: '-oProxyCommand=id' is neither"),
    ({"address": "host name"}, "machines[1].ssh.address: 'host name' is neither"),
    ({"address": "10.0.0.300"}, "machines[1].ssh.address: '10.0.0.300' is neither"),
    ({"address": "a" * 64 + ".example.org"}, "machines[1].ssh.address: '" + "a" * 64),
    ({"user": "ad min"}, "machines[1].ssh.user: 'ad min' is not a user name"),
    ({"user": ".hidden"}, "machines[1].ssh.user: '.hidden' is not a user name"),
    ({"port": -1}, "machines[1].ssh.port: must be an integer from 1 to 65535, got -1"),
    ({"port": True}, "machines[1].ssh.port: must be an integer from 1 to 65535, got True"),
    ({"key": "missing.pem"}, "machines[1].ssh.key: 'missing.pem' does not exist"),
    ({"key": "/"}, "machines[1].ssh.key: '/' is not a file"),
    ({"hostname": "x"}, "machines[1].ssh.hostname: unknown field (allowed: address, key, port, user)"),
    ("10.0.0.1", "machines[1].ssh: must be a mapping with address, key, port, user"),
], ids=["address-injection", "address-option", "address-space", "address-bad-ip", "address-long-label",
        "user-space", "user-dot", "port-negative", "port-bool", "key-missing", "key-directory",
        "unknown-field", "not-mapping"])
def test_bad_machine_logins_exit_2_naming_the_field(seed_data, write_lab, capsys, login, message):
    data = dict(copy.deepcopy(seed_data), provider=dict(SSH_PROVIDER))
    data["machines"][1]["ssh"] = login
    assert main(["validate", str(write_lab(data))]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}"), err
    assert err.count("\n") == 1


def test_an_ssh_lab_gets_a_login_per_machine(seed_data, write_lab, tmp_path, monkeypatch):
    """Defaults: the provider section's user, key and port, the machine's lab IP; a machine's
    `ssh:` overrides any of them; a relative key is read from the lab file's folder."""
    from harness.labfile import load_lab

    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "lab").write_text("not checked here\n")
    (tmp_path / "other").write_text("x\n")
    monkeypatch.chdir("/")   # relative to the lab file, not to where the command runs
    data = dict(copy.deepcopy(seed_data), provider={"name": "ssh", "user": "admin", "key": "keys/lab"})
    data["machines"][2]["ssh"] = {"address": "Node-3.example.org", "port": 2222, "user": "root",
                                  "key": str(tmp_path / "other")}
    data["machines"][3]["ssh"] = {"address": "fd00::3"}
    lab = load_lab(write_lab(data))
    assert lab.provider == "ssh"
    first, third, fourth = lab.machines[0].ssh, lab.machines[2].ssh, lab.machines[3].ssh
    assert (first.address, first.user, first.port, first.key) == \
        (str(lab.machines[0].ip), "admin", 22, tmp_path / "keys" / "lab")
    assert (third.address, third.user, third.port, third.key) == ("Node-3.example.org", "root", 2222, tmp_path / "other")
    assert (fourth.address, fourth.user) == ("fd00::3", "admin")
    for machine in lab.machines:
        assert SHELL_SAFE.fullmatch(machine.ssh.address) and SHELL_SAFE.fullmatch(machine.ssh.user)


def test_a_lab_without_a_provider_section_has_no_logins(seed_lab):
    assert seed_lab.provider is None and all(m.ssh is None for m in seed_lab.machines)


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


@pytest.mark.parametrize("override,message", [
    ({"version": "v1.37.2; rm -rf /"}, "versions.kubernetes.version: 'v1.37.2; rm -rf /' is not a version"),
    ({"version": "../../etc"}, "versions.kubernetes.version: '../../etc' is not a version"),
    ({"module": "k8s.io/kubernetes $(id)"}, "versions.kubernetes.module: 'k8s.io/kubernetes $(id)' is not a Go module path"),
    ({"image": "Evil Image"}, "versions.kubernetes.image: 'Evil Image' is not an image name"),
], ids=["version-shell", "version-path", "module-shell", "image-space"])
def test_version_overrides_are_held_to_their_shape(seed_data, write_lab, capsys, override, message):
    """A lab's version overrides reach cache paths and commands on the machines."""
    seed_data["versions"] = {"kubernetes": override}
    assert main(["validate", str(write_lab(seed_data))]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1, err


def test_the_real_entry_point_exits_2(seed_data, write_lab):
    """Through `python -m harness`, as a user runs it, not just main()."""
    seed_data["vip"] = "192.168.220.100"
    proc = subprocess.run([sys.executable, "-m", "harness", "validate", str(write_lab(seed_data))],
                          capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 2
    assert proc.stderr == "error: vip: 192.168.220.100 is already the IP of machine master01\n"
    assert proc.stdout == ""


@pytest.mark.parametrize("domain", ["cluster.local", "cluster.local.", "local", "k8s-1.example.org",
                                    ".".join(["a" * 63] * 3) + "." + "b" * 61])
def test_valid_dns_domains(seed_data, write_lab, capsys, domain):
    """The guide writes `cluster.local.`: the absolute form is allowed, and up to 253 characters."""
    seed_data["cluster"]["dns_domain"] = domain
    assert main(["validate", str(write_lab(seed_data))]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("interface", ["eth1", "enp0s8", "br-0123456789a", "vlan.100", "a"])
def test_valid_interface_names(seed_data, write_lab, capsys, interface):
    seed_data["network"]["interface"] = interface
    assert main(["validate", str(write_lab(seed_data))]) == 0, capsys.readouterr().err


def test_a_dns_ip_colliding_with_any_fixed_service_ip_is_refused(seed_data, write_lab, capsys):
    """Every service IP the lab fixes is checked, not only the kubernetes one."""
    from harness.validate import fixed_service_ips
    import ipaddress

    service = ipaddress.IPv4Network(seed_data["cluster"]["service_cidr"])
    fixed = fixed_service_ips(service)
    assert fixed, "the kubernetes service IP at least"
    for holder, ip in fixed.items():
        seed_data["cluster"]["dns_service_ip"] = str(ip)
        assert main(["validate", str(write_lab(seed_data))]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: cluster.dns_service_ip: {ip} is already") and err.count("\n") == 1


def _one_line_exit_2(path, capsys, expected):
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: {expected}"), err
    assert err.count("\n") == 1, err


def test_undecodable_lab_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: s\xe9ed\n".encode("latin-1"))
    _one_line_exit_2(path, capsys, "is not UTF-8 text (byte 0xe9 at offset 7)")


def test_binary_lab_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "lab.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    _one_line_exit_2(path, capsys, "is a binary file (NUL byte at offset 0)")


def test_a_lab_file_that_is_a_directory_is_one_line(tmp_path, capsys):
    _one_line_exit_2(tmp_path, capsys, "cannot read lab file")


def test_yaml_alias_bomb_is_refused_quickly(tmp_path, capsys):
    import time

    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\nname: *a9\n")
    started = time.monotonic()
    _one_line_exit_2(path, capsys, "expands to more than 100000 YAML nodes (an alias bomb?)")
    assert time.monotonic() - started < 5


def test_recursive_alias_and_deep_nesting_are_refused(tmp_path, capsys):
    path = tmp_path / "loop.yaml"
    path.write_text("name: &a [*a]\n")
    _one_line_exit_2(path, capsys, "has a recursive YAML alias")
    path.write_text("name: " + "[" * 5000 + "]" * 5000 + "\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: is nested") and err.count("\n") == 1, err


def test_anchors_within_reason_still_work(seed_data, write_lab, capsys):
    text = write_lab(seed_data).read_text()
    path = write_lab(text.replace("cluster:", "x-sizes: &sizes {cpus: 1}\ncluster:", 1)
                     .replace("x-sizes", "resources").replace("{cpus: 1}", "{node: {cpus: 1}}"), "anchors.yaml")
    assert "resources: &sizes" in path.read_text()
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err


def test_empty_lab_file_is_one_line(write_lab, capsys):
    _one_line_exit_2(write_lab(""), capsys, "a lab file must be a YAML mapping")


def test_lab_and_validate_import_in_either_order():
    """No import circle: harness.lab holds only types; harness.labfile uses both."""
    for first in ("harness.validate", "harness.lab", "harness.labfile", "harness.cli"):
        proc = subprocess.run([sys.executable, "-c", f"import {first}; import harness.labfile; "
                               "import harness.lab as l; assert l.load_lab is harness.labfile.load_lab"],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    lab_source = (REPO_ROOT / "harness" / "lab.py").read_text()
    assert "from harness.validate" not in lab_source and "import validate" not in lab_source
    assert "from harness.labfile" not in lab_source.split("def __getattr__")[0]


SHELL_SAFE = re.compile(r"[A-Za-z0-9@%+=:,./_~-]+")  # what shlex.quote leaves as it is


def _strings(value, where):
    """Every string a Lab holds, with where it is (the source path is the host's, not a value
    that reaches a machine)."""
    if isinstance(value, str):
        yield where, value
    elif dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            if f.name != "source":
                yield from _strings(getattr(value, f.name), f"{where}.{f.name}")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key, f"{where}[{key!r}] key")
            yield from _strings(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _strings(item, f"{where}[{i}]")


@pytest.mark.parametrize("name", ["seed", "small"])
def test_every_string_of_a_valid_lab_is_shell_safe(name):
    """What validation lets through can go into a command line or a path as it is: letters,
    digits and `@%+=:,./_~-`, never starting with '-' or '~'. The refusals above are the other
    half: each field that reaches a shell or a path, with a hostile value, is refused."""
    from harness.labfile import load_lab
    found = list(_strings(load_lab(REPO_ROOT / "labs" / f"{name}.yaml"), "lab"))
    assert len(found) > 40
    for where, text in found:
        assert SHELL_SAFE.fullmatch(text) and not text.startswith(("-", "~")), f"{where} = {text!r}"


def test_good_labs_validate(capsys):
    for name in ("seed", "small"):
        assert main(["validate", str(REPO_ROOT / "labs" / f"{name}.yaml")]) == 0
    assert capsys.readouterr().out.count("lab is valid") == 2


def test_logs_without_dns_is_refused(seed_data):
    from harness.errors import LabError
    from harness.validate import build_lab
    from harness.versions import load_versions
    data = dict(seed_data, addons=["metrics", "logs"])
    with pytest.raises(LabError, match=r"addons: 'logs' needs 'dns'"):
        build_lab(data, load_versions())
