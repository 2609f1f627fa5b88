"""The ssh provider: chosen by the lab file, its refusals (one line naming the machine and what
is missing, exit 2), reachability by a real TCP connect, no power control, and `provision`,
`delete` and `leftovers` driving the baseline and uninstall scripts over a fake transport.
The scripts themselves run on real machines in scenarios/test_ssh_provider.py; here they are
only parsed by bash."""

from __future__ import annotations

import dataclasses
import socket
import subprocess

import pytest
import yaml

from harness import baseline, machines, providers, uninstall
from harness import footprint as fp
from harness.errors import UserError
from harness.labfile import load_lab
from harness.providers import base, ssh, ssh_checks
from harness.transport import CommandResult
from tests.unit.conftest import SEED, SMALL


@pytest.fixture
def ssh_lab(tmp_path):
    """labs/small.yaml with a provider section; every machine reached on 127.0.0.1."""
    key = tmp_path / "id_lab"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    data = yaml.safe_load(SMALL.read_text())
    data["provider"] = {"name": "ssh", "user": "admin", "key": str(key)}
    for machine in data["machines"]:
        machine["ssh"] = {"address": "127.0.0.1", "port": 1}
    path = tmp_path / "ssh-small.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_lab(path)


@pytest.fixture
def listening():
    """A real TCP port that answers, and one that does not."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    yield server.getsockname()[1], closed_port
    server.close()


def with_ports(lab, ports: dict[str, int]):
    changed = tuple(dataclasses.replace(m, ssh=dataclasses.replace(m.ssh, port=ports.get(m.name, m.ssh.port)))
                    for m in lab.machines)
    return dataclasses.replace(lab, machines=changed)


class FakeTransport:
    """Answers each command with the first reply whose needle it contains."""

    def __init__(self, name, replies=(), fail=None):
        self.name, self.replies, self.fail, self.commands, self.closed = name, list(replies), fail, [], False

    def run(self, command, check=True, timeout=300.0):
        if self.fail:
            raise self.fail
        self.commands.append(command)
        for needle, (status, out) in self.replies:
            if needle in command:
                return CommandResult(command, status, out, "")
        return CommandResult(command, 0, "", "")

    def close(self):
        self.closed = True


def fake_transports(monkeypatch, by_name):
    monkeypatch.setattr(ssh.SshProvider, "_transports", lambda self: by_name)
    return by_name


# --- which provider -------------------------------------------------------------------------------
def test_the_lab_files_provider_section_selects_ssh(ssh_lab, tmp_path):
    assert isinstance(providers.resolve_provider(ssh_lab, tmp_path), ssh.SshProvider)
    providers.remember_provider(tmp_path, "docker")   # the file wins over what was remembered
    assert providers.resolve_provider(ssh_lab, tmp_path).name == "ssh"
    with pytest.raises(UserError, match=r"^--provider docker: lab small's file says provider ssh$"):
        providers.resolve_provider(ssh_lab, tmp_path, "docker")


def test_ssh_is_never_chosen_for_a_lab_that_lists_no_logins(tmp_path, monkeypatch):
    lab = load_lab(SMALL)
    with pytest.raises(UserError, match=r"^provider ssh: lab small lists no machines to log in to"):
        providers.resolve_provider(lab, tmp_path, "ssh")
    monkeypatch.setenv("K8S_HA_LAB_PROVIDER", "ssh")
    with pytest.raises(UserError, match=r"K8S_HA_LAB_PROVIDER=ssh: not a provider that makes machines"):
        providers.detect_provider()
    with pytest.raises(UserError, match="lists no machines to log in to"):
        ssh.SshProvider(lab, tmp_path).sanity_checks(None)


def test_a_lab_without_a_provider_section_behaves_as_before(tmp_path, monkeypatch):
    monkeypatch.setenv("K8S_HA_LAB_PROVIDER", "docker")
    assert providers.resolve_provider(load_lab(SEED), tmp_path).name == "docker"


# --- reachability and power -------------------------------------------------------------------------
def test_list_machines_is_a_real_tcp_connect(ssh_lab, tmp_path, listening):
    open_port, closed_port = listening
    lab = with_ports(ssh_lab, {"ctl1": open_port, "ctl2": open_port, "ctl3": closed_port})
    states = {s.name: s.state for s in ssh.SshProvider(lab, tmp_path).list_machines()}
    assert states == {"ctl1": "running", "ctl2": "running", "ctl3": "unreachable"}


def test_the_lab_is_up_guard_asks_the_ssh_port(ssh_lab, tmp_path, listening):
    open_port, closed_port = listening
    lab = with_ports(ssh_lab, {"ctl1": open_port, "ctl2": open_port, "ctl3": closed_port})
    providers.remember_provider(tmp_path, "ssh")
    with pytest.raises(UserError, match=r"^lab small: machine ctl3 is unreachable according to ssh"):
        providers.require_up(lab, tmp_path)
    asked = []
    lab = with_ports(ssh_lab, {m.name: open_port for m in ssh_lab.machines})
    providers.require_up(lab, tmp_path, ssh_answers=lambda *a: asked.append(a) or True)
    assert asked == [("127.0.0.1", open_port)] * 3


@pytest.mark.parametrize("call,capability", [(lambda p: p.power_off("ctl1"), "a clean power-off"),
                                             (lambda p: p.power_off("ctl1", force=True), "a forced power-off"),
                                             (lambda p: p.power_on("ctl1"), "power-on")])
def test_no_power_control_refused_in_one_line_with_exit_2(ssh_lab, tmp_path, call, capability):
    provider = ssh.SshProvider(ssh_lab, tmp_path)
    assert provider.capabilities == frozenset()
    with pytest.raises(UserError) as refused:
        call(provider)
    assert refused.value.exit_status == 2
    assert str(refused.value).endswith(f"needs {capability}, which provider ssh does not offer "
                                       "(it offers: no power control)")
    with pytest.raises(UserError, match="scenario node-poweroff needs a clean power-off"):
        base.require_capability(provider, base.POWER_OFF, "scenario node-poweroff")


# --- sanity checks ------------------------------------------------------------------------------------
def test_an_unreadable_key_is_refused_first(ssh_lab, tmp_path):
    gone = tmp_path / "gone"
    m = ssh_lab.machines[1]
    lab = dataclasses.replace(ssh_lab, machines=(ssh_lab.machines[0], dataclasses.replace(
        m, ssh=dataclasses.replace(m.ssh, key=gone)), ssh_lab.machines[2]))
    with pytest.raises(UserError, match=rf"^machine ctl2: ssh key {gone} is not a file this user can read$"):
        ssh.SshProvider(lab, tmp_path).sanity_checks(None)


def test_a_machine_that_does_not_answer_is_named(ssh_lab, tmp_path, listening):
    open_port, closed_port = listening
    lab = with_ports(ssh_lab, {"ctl1": open_port, "ctl2": closed_port, "ctl3": closed_port})
    with pytest.raises(UserError, match=rf"^machine ctl2: nothing answers on 127.0.0.1:{closed_port} \(ssh\); nor on ctl3$"):
        ssh.SshProvider(lab, tmp_path).sanity_checks(None)


def test_what_a_machine_lacks_is_one_line_naming_it(ssh_lab, tmp_path, listening, monkeypatch):
    lab = with_ports(ssh_lab, {m.name: listening[0] for m in ssh_lab.machines})
    missing = ("command: ctr\ncommand: sshfs\nunit: haproxy.service\n"
               "address: 10.240.0.12 on eth1 (it has: eth0 172.18.0.3/16; )\nexists: /var/lib/etcd\n")
    fake_transports(monkeypatch, {"ctl1": FakeTransport("ctl1"), "ctl3": FakeTransport("ctl3"),
                                  "ctl2": FakeTransport("ctl2", [("PATH=", (0, missing))])})
    with pytest.raises(UserError) as refused:
        ssh.SshProvider(lab, tmp_path).sanity_checks(None)
    assert str(refused.value) == (
        f"machine ctl2 (admin@127.0.0.1:{listening[0]}): no ctr command; no sshfs command; no haproxy.service "
        "unit; no 10.240.0.12 on eth1 (it has: eth0 172.18.0.3/16; ); /var/lib/etcd exists and was not made by k8s-ha-lab")
    assert "\n" not in str(refused.value) and refused.value.exit_status == 2


def test_a_refused_login_is_named(ssh_lab, tmp_path, listening, monkeypatch):
    lab = with_ports(ssh_lab, {m.name: listening[0] for m in ssh_lab.machines})
    fake_transports(monkeypatch, {m.name: FakeTransport(m.name, fail=RuntimeError("ctl1 (127.0.0.1:22): key refused"))
                                  for m in lab.machines})
    with pytest.raises(UserError, match=r"^machine ctl1: cannot log in as admin@127.0.0.1:\d+ with key .*key refused$"):
        ssh.SshProvider(lab, tmp_path).sanity_checks(None)


def test_a_machine_with_everything_passes(ssh_lab, tmp_path, listening, monkeypatch):
    lab = with_ports(ssh_lab, {m.name: listening[0] for m in ssh_lab.machines})
    fakes = fake_transports(monkeypatch, {m.name: FakeTransport(m.name) for m in lab.machines})
    ssh.SshProvider(lab, tmp_path).sanity_checks(None)
    assert all(len(f.commands) == 1 and "command -v" in f.commands[0] for f in fakes.values())


def test_the_probe_asks_for_what_each_role_needs(ssh_lab):
    lab = load_lab(SEED)
    node, lb = lab.machine("node01"), lab.machine("master01")
    assert {"containerd", "ctr", "conntrack", "sshfs", "fusermount3"} <= set(ssh_checks.required_commands(lab, node))
    assert "haproxy" not in ssh_checks.required_commands(lab, node)
    assert {"haproxy", "keepalived"} <= set(ssh_checks.required_commands(lab, lb))
    assert ssh_checks.required_units(lab, lb) == ["haproxy.service", "keepalived.service"]
    storage = lab.machine(lab.registry.storage_server)
    assert "ssh.service" in ssh_checks.required_units(lab, storage)
    assert "useradd" in ssh_checks.required_commands(lab, storage)
    assert ssh_checks.problems("root: commands run as uid 1000, not root\nsystemd: not the init system\n") == \
        ["root: commands run as uid 1000, not root", "systemd: not the init system"]


# --- provision, delete, leftovers ---------------------------------------------------------------------
SUMMARY = ("lab small\nexisted /etc/containerd/config.toml\nexisted /etc/keepalived\n"
           "sha256 aaaa /etc/containerd/config.toml\nunit containerd.service enabled active\n"
           "unit haproxy.service disabled inactive\nunit etcd.service absent inactive\n"
           "sysctl net.ipv4.ip_forward=0\n")


def test_provision_records_each_baseline_and_keeps_a_copy(ssh_lab, tmp_path, monkeypatch):
    fakes = fake_transports(monkeypatch, {m.name: FakeTransport(m.name, [("set -eu", (0, SUMMARY))])
                                          for m in ssh_lab.machines})
    provider = ssh.SshProvider(ssh_lab, tmp_path)
    lines = list(provider.provision(["ctl1", "ctl2", "ctl3"]))
    assert lines == [f"==> {n}: baseline recorded (2 paths existed)" for n in ("ctl1", "ctl2", "ctl3")]
    kept = provider.host_baseline("ctl2")
    assert kept.units["containerd.service"] == ("enabled", "active") and kept.sysctls == {"net.ipv4.ip_forward": "0"}
    assert baseline.BASELINE_DIR in fakes["ctl1"].commands[0]


def test_provision_refuses_a_machine_with_somebody_elses_cluster(ssh_lab, tmp_path, monkeypatch):
    fake_transports(monkeypatch, {m.name: FakeTransport(m.name, [("set -eu", (
        4 if m.name == "ctl3" else 0, "refused: /var/lib/kubelet exists and is not k8s-ha-lab's\n"
        if m.name == "ctl3" else SUMMARY))]) for m in ssh_lab.machines})
    with pytest.raises(UserError, match=r"^machine ctl3 \(admin@127.0.0.1:1\): /var/lib/kubelet exists and is "
                                        r"not k8s-ha-lab's$"):
        list(ssh.SshProvider(ssh_lab, tmp_path).provision(["ctl1", "ctl2", "ctl3"]))


SAVE = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:KUBE-FORWARD - [0:0]
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -d 10.32.0.0/24 -p tcp -m conntrack ! --ctstate DNAT -j REJECT --reject-with tcp-reset
COMMIT
"""


def test_delete_stops_then_clears_the_packet_filter_then_removes(ssh_lab, tmp_path, monkeypatch):
    monkeypatch.setattr(ssh, "tcp_answers", lambda address, port: True)
    replies = [("echo stopped", (0, "stopped\n")), ("echo removed", (0, "removed\n")),
               ("command -v iptables-save", (0, SAVE)), ("iptables-restore --noflush", (0, ""))]
    fakes = fake_transports(monkeypatch, {m.name: FakeTransport(m.name, replies) for m in ssh_lab.machines})
    removed = ssh.SshProvider(ssh_lab, tmp_path).delete()
    assert removed == [f"{n}: units stopped, 4 packet-filter lines removed, files restored"
                       for n in ("ctl1", "ctl2", "ctl3")]
    commands = fakes["ctl1"].commands
    order = [next(i for i, c in enumerate(commands) if needle in c)
             for needle in ("echo stopped", "iptables-restore --noflush", "echo removed")]
    assert order == sorted(order)
    restore = next(c for c in commands if "iptables-restore --noflush" in c)
    assert "-D FORWARD -d 10.32.0.0/24 -p tcp" in restore and "-X KUBE-FORWARD" in restore


def test_delete_leaves_a_machine_without_this_labs_baseline_alone(ssh_lab, tmp_path, monkeypatch):
    monkeypatch.setattr(ssh, "tcp_answers", lambda address, port: address != "gone")
    fakes = fake_transports(monkeypatch, {m.name: FakeTransport(m.name, [("echo stopped", (0, "no baseline\n"))])
                                          for m in ssh_lab.machines})
    removed = ssh.SshProvider(ssh_lab, tmp_path).delete()
    assert removed == [f"{n}: no baseline of this lab: nothing installed" for n in ("ctl1", "ctl2", "ctl3")]
    assert all(len(f.commands) == 1 for f in fakes.values())


def test_a_failed_uninstall_names_the_machine(ssh_lab, tmp_path, monkeypatch):
    from harness.errors import ProviderError
    monkeypatch.setattr(ssh, "tcp_answers", lambda address, port: True)
    fake_transports(monkeypatch, {m.name: FakeTransport(m.name, [("echo stopped", (3, "refused: the baseline of lab seed is there\n"))])
                                  for m in ssh_lab.machines})
    with pytest.raises(ProviderError, match=r"ctl1: stopping the lab's units failed \(exit 3\): refused: the baseline of lab seed"):
        ssh.SshProvider(ssh_lab, tmp_path).delete()


def test_leftovers_are_judged_against_the_baseline():
    before = baseline.Baseline.parse(SUMMARY)
    report = ("file aaaa /etc/containerd/config.toml\nfile bbbb /usr/local/bin/kubelet\n"
              "path /etc/keepalived\npath /etc/cni/net.d\n"
              "unit containerd.service enabled active\nunit haproxy.service enabled active\n"
              "unit etcd.service absent inactive\ntree /var/lib/etcd\ninterface flannel.1\n"
              "vip 10.240.0.250\nsysctl net.ipv4.ip_forward=1\nuser k8s-ha-lab-registry\n")
    assert uninstall.judge(report, before) == [
        "file /usr/local/bin/kubelet", "directory /etc/cni/net.d",
        "unit haproxy.service enabled/active (before: disabled/inactive)", "tree /var/lib/etcd",
        "interface flannel.1", "vip 10.240.0.250", "sysctl net.ipv4.ip_forward=1 (before: 0)",
        "user k8s-ha-lab-registry"]
    changed = report.replace("file aaaa", "file cccc")
    assert "file /etc/containerd/config.toml (changed)" in uninstall.judge(changed, before)
    clean = ("file aaaa /etc/containerd/config.toml\npath /etc/keepalived\nunit containerd.service enabled active\n"
             "unit haproxy.service disabled inactive\nsysctl net.ipv4.ip_forward=0\n")
    assert uninstall.judge(clean, before) == []
    # without the host's copy only what is the lab's by name counts
    assert uninstall.judge(report, None) == ["tree /var/lib/etcd", "interface flannel.1", "vip 10.240.0.250",
                                             "user k8s-ha-lab-registry"]


def test_the_baseline_summary_round_trips():
    parsed = baseline.Baseline.parse(SUMMARY)
    assert baseline.Baseline.parse(parsed.render()) == parsed


def test_up_on_ssh_machines_prepares_every_one_and_skips_the_hosts_memory_and_subnet(tmp_path, monkeypatch, ssh_lab):
    monkeypatch.setenv("K8S_HA_LAB_STATE", str(tmp_path))
    provider = ssh.SshProvider(ssh_lab, tmp_path / "small")
    monkeypatch.setattr(provider, "list_machines", lambda: [base.MachineState(m.name, "running") for m in ssh_lab.machines])
    monkeypatch.setattr(provider, "sanity_checks", lambda host: None)
    started = []
    monkeypatch.setattr(provider, "provision", lambda names: started.append(names) or iter(()))
    monkeypatch.setattr(machines, "resolve_provider", lambda *a: provider)
    for check in ("check_memory", "check_subnet"):
        monkeypatch.setattr(machines.preflight, check, lambda *a: pytest.fail(f"{check} on ssh machines"))
    monkeypatch.setattr(machines, "write_ssh_config", lambda lab, state: None)
    monkeypatch.setattr(machines, "wait_ready", lambda lab, state_dir: {m.name: "running" for m in lab.machines})
    machines.up(ssh_lab)
    assert started == [["ctl1", "ctl2", "ctl3"]]


# --- the scripts are valid shell, POSIX sh too ------------------------------------------------------------------------
@pytest.mark.parametrize("lab_file", [SEED, SMALL], ids=["seed", "small"])
def test_every_script_parses(lab_file, tmp_path):
    lab = load_lab(lab_file)
    scripts = {"record": baseline.record_script(lab), "stop": uninstall.stop_script(lab),
               "remove": uninstall.remove_script(lab), "leftovers": uninstall.leftovers_script(lab),
               **{f"probe-{m.name}": ssh_checks.probe_script(lab, m) for m in lab.machines}}
    for name, script in scripts.items():   # root's login shell runs them, or `sudo sh -c` (dash on Debian)
        for shell in ("bash", "sh"):
            proc = subprocess.run([shell, "-n"], input=script, text=True, capture_output=True)
            assert proc.returncode == 0, f"{name} ({shell}): {proc.stderr}"
    # every footprint list reaches the scripts that act on it
    assert all(t in scripts["record"] for t in fp.TREES) and all(f in scripts["remove"] for f in fp.FILES)
    assert all(u in scripts["stop"] for u in fp.OWN_UNITS)


# --- scenarios that need power control refuse on it ----------------------------------------------------
def _power_helpers(module) -> set[str]:
    import inspect
    return {name for name, fn in vars(module).items()   # the private helpers, e.g. _halt
            if name.startswith("_") and inspect.isfunction(fn) and "provider.power_" in inspect.getsource(fn)}


def test_every_scenario_that_switches_machines_says_so():
    """A scenario (or its drill) that powers a machine off or on lists the capabilities it needs,
    so a provider without them refuses it before anything breaks."""
    import inspect

    from harness.failover import registry_scenario, scenarios
    helpers = _power_helpers(scenarios) | _power_helpers(registry_scenario)
    assert {"_halt", "_power_off_node"} <= helpers
    for s in scenarios.SCENARIOS.values():
        sources = [inspect.getsource(s.act)] + ([inspect.getsource(s.drill.breaks)] if s.drill else [])
        powered = any("provider.power_" in src or any(h + "(" in src for h in helpers) for src in sources)
        assert powered == bool(s.needs), f"{s.name}: needs={s.needs}"
    assert {n for n, s in scenarios.SCENARIOS.items() if s.needs} == {
        "master-poweroff", "master-hard-kill", "node-poweroff", "registry-node-lost"}


def test_run_scenario_refuses_before_the_probe_starts(ssh_lab, tmp_path, monkeypatch):
    from harness.failover import runner
    from harness.failover.scenarios import Env

    monkeypatch.setattr(runner, "Probe", lambda *a: pytest.fail("the probe started"))
    env = Env(ctx=None, provider=ssh.SshProvider(ssh_lab, tmp_path))
    with pytest.raises(UserError) as refused:
        runner.run_scenario(env, "master-hard-kill")
    assert str(refused.value) == ("scenario master-hard-kill needs a forced power-off, which provider ssh "
                                  "does not offer (it offers: no power control)")
    assert refused.value.exit_status == 2


def test_the_transports_own_refusal_is_passed_on_as_it_is(ssh_lab, tmp_path, listening, monkeypatch):
    lab = with_ports(ssh_lab, {m.name: listening[0] for m in ssh_lab.machines})
    line = "machine ctl1: user admin on 127.0.0.1 cannot run commands as root without a password"
    fake_transports(monkeypatch, {m.name: FakeTransport(m.name, fail=UserError(line)) for m in lab.machines})
    with pytest.raises(UserError) as refused:
        ssh.SshProvider(lab, tmp_path).sanity_checks(None)
    assert str(refused.value) == line
