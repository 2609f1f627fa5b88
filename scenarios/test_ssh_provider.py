"""The ssh provider on machines the harness did not make: three node containers started with a
plain `docker run` (no Vagrant) on a network this test creates, each with an admin user that
logs in with a key this test generates and becomes root through sudo, as on real servers.

The small lab's layout (labs/small.yaml) gets a provider section in a lab file written here; then
`up`, `check --quick`, a failover scenario that needs no power control (keepalived-stop), a
scenario that does (master-hard-kill) refused with exit 2, and `down`. Each machine's state is
snapshotted before `up` and after `down` (files under /etc, /usr/local, /opt, /var/lib, ...,
systemd's units, the packet filter, links, addresses, routes, mounts, users, kernel settings)
and the two must be equal but for a short list of things the machine changes by itself.
The containers and the network go at the end whatever happens.

Run: tox -e ssh-provider   (pytest -m ssh_provider scenarios/test_ssh_provider.py)
"""

from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness import REPO_ROOT, artifacts_root
from harness.footprint import KUBE_PROXY_SYSCTLS, KUBELET_SYSCTLS
from harness.image.recipe import IMPORT_CHANGES, node_image_tag
from harness.providers.docker import create_args_for, privileged_allowed

pytestmark = pytest.mark.ssh_provider

LAB = "sshtest"
PREFIX = f"k8s-ha-lab-{LAB}"          # containers k8s-ha-lab-sshtest-<machine>, and the network
# Neither labs/small.yaml's 10.240.0.0/24 nor labs/seed.yaml's 192.168.220.0/24: either may be up
# beside this test (their docker networks hold those subnets), and a docker network's subnet
# must be free on the host.
CIDR = "10.243.0.0/24"
USER = "labadmin"                      # the admin's own user; root cannot log in (no key, locked)
SUDO_TAG_PREFIX = "k8s-ha-lab/node-sudo"


def docker(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])}... exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return proc


def on(container: str, script: str, timeout: float = 120) -> str:
    return docker("exec", container, "bash", "-c", script, timeout=timeout).stdout


# --- the machines, as an admin would have them -----------------------------------------------------
def node_image() -> str:
    tag = node_image_tag()
    if docker("image", "inspect", tag, check=False).returncode != 0:
        subprocess.run([sys.executable, "-m", "harness", "image", "build"], cwd=REPO_ROOT, check=True)
    return tag


def sudo_image(base: str) -> str:
    """The node image plus sudo, which a server has and the image does not need: installed once
    from the image's own apt sources (the host's Debian mirror) and kept under a tag that
    carries the node image's hash."""
    tag = f"{SUDO_TAG_PREFIX}:{base.split(':', 1)[1]}"
    if docker("image", "inspect", tag, check=False).returncode == 0:
        return tag
    builder = f"{PREFIX}-sudo-build"
    docker("rm", "-f", builder, check=False)
    docker("run", "--name", builder, "--entrypoint", "/bin/sh", base, "-c",
           "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
           "sudo >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*", timeout=600)
    changes = [arg for change in IMPORT_CHANGES for arg in ("--change", change)]
    docker("commit", *changes, builder, tag)
    docker("rm", "-f", builder, check=False)
    return tag


ADMIN_SETUP = f"""set -e
useradd --create-home --shell /bin/bash {USER}
install -d -m 0700 -o {USER} -g {USER} /home/{USER}/.ssh
printf '%s\\n' "$1" > /home/{USER}/.ssh/authorized_keys
chown {USER}:{USER} /home/{USER}/.ssh/authorized_keys && chmod 0600 /home/{USER}/.ssh/authorized_keys
echo '{USER} ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/{USER} && chmod 0440 /etc/sudoers.d/{USER}
visudo -cq
"""


def key_pair(folder: Path) -> tuple[Path, str]:
    key = Ed25519PrivateKey.generate()
    private = folder / "id_ed25519"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                          serialization.NoEncryption()))
    private.chmod(0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode() + f" {USER}@{LAB}"


def write_lab(folder: Path, key: Path) -> Path:
    """labs/small.yaml on this test's network, with a provider section: every machine is reached
    on its lab IP as USER with the test's key."""
    data = yaml.safe_load((REPO_ROOT / "labs" / "small.yaml").read_text())
    base = CIDR.rsplit(".", 1)[0]
    data.update(name=LAB, vip=f"{base}.250", master_url=f"api.{LAB}.lab",
                network={"cidr": CIDR, "interface": "eth0"},
                provider={"name": "ssh", "user": USER, "key": key.name})
    for machine in data["machines"]:
        machine["ip"] = f"{base}.{machine['ip'].rsplit('.', 1)[1]}"
    data["flannel"]["etcd_prefix"] = f"/{LAB}/network"
    path = folder / f"{LAB}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def remove_everything(names: list[str]) -> None:
    for name in names:
        docker("rm", "-f", "--volumes", name, check=False)
    docker("network", "rm", PREFIX, check=False)


# --- a machine's state, to compare before and after ------------------------------------------------
def snapshot_script(sysctls: list[str]) -> str:
    return f"""
section() {{ echo "### $1"; }}
section files;    find /etc /usr/local /opt /srv /root /usr/libexec -printf '%y %m %u:%g %p\\n' 2>/dev/null | sort
section sha256;   find /etc /usr/local /opt /srv /root -type f -exec sha256sum {{}} + 2>/dev/null | sort -k2
section var;      find /var/lib /var/log /var/tmp -printf '%y %p\\n' 2>/dev/null | sort
section unit-files; systemctl list-unit-files --no-legend --no-pager | awk '{{print $1, $2}}' | sort
section units;    systemctl list-units --all --no-legend --no-pager --plain | awk '{{print $1, $2, $3, $4}}' | sort
section iptables; iptables-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'
section ip6tables; ip6tables-save 2>/dev/null | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'
section links;    ip -o link | sed 's/^[0-9]*: //' | sort
section addresses; ip -o addr | awk '{{print $2, $3, $4}}' | sort
section routes;   ip route | sort
section netns;    ip netns list | sort
section mounts;   findmnt -rn -o TARGET,FSTYPE | sort
section users;    getent passwd | sort; getent group | sort
section sysctl;   for k in {' '.join(sysctls)}; do echo "$k=$(sysctl -n $k 2>/dev/null)"; done
section hosts;    cat /etc/hosts
"""


def snapshot(container: str, sysctls: list[str]) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in on(container, snapshot_script(sysctls)).splitlines():
        if line.startswith("### "):
            current = sections.setdefault(line[4:], [])
        elif current is not None:
            current.append(line)
    return sections


def settled_snapshot(container: str, sysctls: list[str], deadline: float = 120) -> dict[str, list[str]]:
    """The machine's state once it has settled: systemd done booting, then two snapshots three
    seconds apart alike (sshd's host keys, containerd's first start, ... are all done)."""
    on(container, "until systemctl is-system-running 2>/dev/null | grep -qxE 'running|degraded'; do sleep 1; done",
       timeout=deadline)
    ends = time.monotonic() + deadline
    previous = snapshot(container, sysctls)
    while True:
        time.sleep(3)
        current = snapshot(container, sysctls)
        changed = differences(previous, current)
        if not changed:
            return current
        if time.monotonic() > ends:
            raise AssertionError(f"{container} did not settle in {deadline:g}s: {changed[:10]}")
        previous = current


# What changes on a machine by itself, without anything the harness installed. Each with why.
IGNORED = [
    (r"^var: . /var/log/journal/", "journald's files: they rotate and grow while the machine runs"),
    (r"^units: (session-\d+\.scope|user@\d+\.service|user-\d+\.slice|user-runtime-dir@\d+\.service|"
     r"run-user-\d+\.mount) ", "the SSH logins of the harness's user: systemd-logind ends them 10 s after "
                              "the last session closes"),
    (r"^mounts: /run/user/\d+ ", "the same logins' runtime directory"),
    (r"^units: network-online\.target ", "a synchronisation target: active once any unit has wanted it "
                                         "(the harness's did), inactive again only at the next boot"),
]


BUILTIN_CHAINS = {"INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"}


def without_empty_tables(lines: list[str]) -> list[str]:
    """iptables-save lines without the tables that hold nothing: only built-in chains, each
    ACCEPT, no rule. iptables-nft makes such a table on first use and has no command to drop
    it; it filters nothing, so it is the same packet filter as no table."""
    out, table = [], []
    for line in lines + ["*end"]:
        if line.startswith("*"):
            chains = [x.split()[0][1:] for x in table if x.startswith(":")]
            policies = {x.split()[1] for x in table if x.startswith(":")}
            rules = [x for x in table if x.startswith("-A")]
            if table and (rules or set(chains) - BUILTIN_CHAINS or policies - {"ACCEPT"}):
                out += table
            table = [line]
        else:
            table.append(line)
    return out


def differences(before: dict, after: dict) -> list[str]:
    diff = []
    for section in sorted(set(before) | set(after)):
        normal = without_empty_tables if section in ("iptables", "ip6tables") else list
        old = [f"{section}: {line}" for line in normal(before.get(section, []))]
        new = [f"{section}: {line}" for line in normal(after.get(section, []))]
        for line in difflib.unified_diff(old, new, lineterm="", n=0):
            if line.startswith(("---", "+++", "@@")):
                continue
            if not any(re.search(pattern, line[1:]) for pattern, _ in IGNORED):
                diff.append(line)
    return diff


# --- the run ----------------------------------------------------------------------------------------
class Run:
    """The lab's harness commands, each logged to the run's artifacts folder and timed."""

    def __init__(self, lab_file: Path, out: Path):
        self.lab_file, self.out, self.timings, self.count = lab_file, out, {}, 0

    def harness(self, label: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        self.count += 1
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.timings[label] = round(time.monotonic() - started, 1)
        (self.out / f"{self.count:02d}-{label}.log").write_text(
            f"$ python -m harness {' '.join(args)}\n{proc.stdout}\n--- stderr ---\n{proc.stderr}\nexit {proc.returncode}\n")
        return proc


def tail(proc: subprocess.CompletedProcess, lines: int = 40) -> str:
    return "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-lines:])


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory, request):
    started = time.monotonic()
    folder = tmp_path_factory.mktemp(LAB)
    out = artifacts_root() / f"ssh-provider-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    key, public = key_pair(folder)
    lab_file = write_lab(folder, key)
    data = yaml.safe_load(lab_file.read_text())
    names = {m["name"]: f"{PREFIX}-{m['name']}" for m in data["machines"]}
    run = Run(lab_file, out)
    run.names, run.data = names, data
    remove_everything(list(names.values()))          # what an interrupted earlier run left
    brought_up = False
    try:
        image = sudo_image(node_image())
        docker("network", "create", "--subnet", CIDR, PREFIX)
        create = create_args_for(privileged_allowed(image))
        for machine in data["machines"]:
            docker("run", "-d", "--name", names[machine["name"]], "--hostname", machine["name"],
                   "--network", PREFIX, "--ip", machine["ip"], *create, image)
        sysctls = sorted({*KUBELET_SYSCTLS, *KUBE_PROXY_SYSCTLS, "net.ipv4.ip_forward", "net.ipv4.ip_nonlocal_bind",
                          "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"})
        run.sysctls = sysctls

        def admin_sets_up(container: str) -> dict[str, list[str]]:
            on(container, "until systemctl is-system-running 2>/dev/null | grep -qxE 'running|degraded'; "
                          "do sleep 1; done", timeout=180)
            docker("exec", container, "bash", "-c", ADMIN_SETUP, "setup", public)
            return settled_snapshot(container, sysctls)
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            run.before = dict(zip(names, pool.map(admin_sets_up, names.values())))
        run.timings["machines"] = round(time.monotonic() - started, 1)
        brought_up = True
        yield run
    finally:
        if brought_up and not getattr(run, "downed", False):
            run.harness("down-at-teardown", "down", str(lab_file))
        remove_everything(list(names.values()))
        run.timings["total"] = round(time.monotonic() - started, 1)
        (out / "timings.json").write_text(json.dumps(run.timings, indent=2) + "\n")
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter:
            reporter.write_line(f"ssh-provider timings (s): {json.dumps(run.timings)}; logs in {out}")


def test_up_on_existing_machines(lab_run):
    proc = lab_run.harness("up", "up", str(lab_run.lab_file))
    assert proc.returncode == 0, tail(proc)
    for name in lab_run.names:   # the ssh provider made nothing: it recorded each machine's baseline
        assert re.search(rf"✓ \[{LAB} > prepare\] {name} .*baseline recorded", proc.stdout), tail(proc)


def test_the_harness_became_root_through_sudo_only(lab_run):
    """Every command ran as the admin's user through sudo: root has no key and a locked password."""
    for container in lab_run.names.values():
        sudo = on(container, f"journalctl _COMM=sudo --no-pager -o cat | grep -c '^ *{USER} : .*USER=root' || true")
        assert int(sudo.strip() or 0) > 50, f"{container}: {sudo.strip()} sudo commands by {USER}"
        assert on(container, "test -e /root/.ssh/authorized_keys && echo yes || echo no").strip() == "no"


def test_check_quick(lab_run):
    proc = lab_run.harness("check", "check", str(lab_run.lab_file), "--quick")
    assert proc.returncode == 0, tail(proc)
    assert re.search(r"(\d+) of \1 checks passed", proc.stdout), tail(proc)


def test_a_failover_scenario_without_power_control(lab_run):
    proc = lab_run.harness("keepalived-stop", "scenario", "run", "keepalived-stop", "--lab", str(lab_run.lab_file))
    assert proc.returncode == 0, tail(proc, 60)


def test_a_scenario_that_needs_power_control_is_refused(lab_run):
    proc = lab_run.harness("master-hard-kill", "scenario", "run", "master-hard-kill", "--lab", str(lab_run.lab_file),
                           timeout=120)
    assert proc.returncode == 2, tail(proc)
    assert proc.stderr.strip() == ("error: scenario master-hard-kill needs a forced power-off, which provider ssh "
                                   "does not offer (it offers: no power control)"), proc.stderr


def test_down_leaves_every_machine_as_it_was(lab_run):
    proc = lab_run.harness("down", "down", str(lab_run.lab_file))
    lab_run.downed = True
    assert proc.returncode == 0, tail(proc)
    assert "nothing of the lab remains" in proc.stdout, tail(proc)
    time.sleep(12)  # systemd-logind ends the harness's user sessions 10 s after the last one closed
    found = {}
    for name, container in lab_run.names.items():
        after = snapshot(container, lab_run.sysctls)
        (lab_run.out / f"snapshot-{name}.json").write_text(json.dumps({"before": lab_run.before[name],
                                                                      "after": after}, indent=1))
        changed = differences(lab_run.before[name], after)
        if changed:
            found[name] = changed
    assert not found, "\n".join(f"{name}:\n  " + "\n  ".join(lines[:60]) for name, lines in found.items())
