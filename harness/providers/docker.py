"""What only the docker provider needs: create args, the node image, and cleaning up.

`DockerProvider` is Vagrant's docker provider behind `harness.providers.base.Provider`; the few
things Vagrant cannot do or does slowly (list the containers, kill one, remove what a failed
run left) go to docker directly, here and nowhere else.

The machines are systemd containers made from the locally built node image. How much power
they get is decided at run time: `--privileged` where the host allows it, otherwise an explicit
capability set that was measured to run systemd, sshd, keepalived and nested runc.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Callable

from harness.errors import UserError
from harness.lab import Lab
from harness.preflight import Host, last_line
from harness.providers.vagrant import MachineState, VagrantProvider

# Shared by both variants: systemd wants its own cgroup namespace and tmpfs on /run; containerd
# cannot put overlayfs snapshots on the container's own overlay root, so it gets a volume;
# SIGRTMIN+3 is what makes systemd shut down cleanly on `docker stop`; a tty gives the node a
# /dev/console, which the entrypoint links /dev/kmsg to.
COMMON_ARGS = ["--cgroupns=private", "--tmpfs", "/run", "--tmpfs", "/run/lock",
               "-v", "/var/lib/containerd", "--stop-signal=SIGRTMIN+3", "--tty"]
PRIVILEGED_ARGS = ["--privileged", *COMMON_ARGS]
# Where --privileged fails ("unable to apply caps") because the host itself lacks
# CAP_SYS_RESOURCE: everything else, with the confinements that would block systemd lifted.
# The device rule opens the container's device cgroup the way --privileged would: the kubelet
# gives privileged pods `a *:* rwm`, which a child cgroup cannot get unless its parent has it
# (a Job conformance test runs privileged pods). /dev/fuse is for the registry's sshfs storage.
CAPABILITY_ARGS = ["--cap-add=ALL", "--cap-drop=SYS_RESOURCE",
                   "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
                   "--security-opt", "systempaths=unconfined", "--device-cgroup-rule=a *:* rwm",
                   *COMMON_ARGS]
FUSE_DEVICE = "/dev/fuse"
CREATE_ARGS_FILE = "docker_create_args.json"
CREATE_ARGS_ENV = "K8S_HA_LAB_DOCKER_CREATE_ARGS"

Runner = Callable[[list[str]], subprocess.CompletedProcess]
# Functions take `run=None` and look `run_docker` up when called, so a test that replaces the
# module's run_docker replaces every docker call, never only some of them.


def run_docker(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, errors="replace")


def container_name(lab: Lab, machine: str) -> str:
    return f"k8s-ha-lab-{lab.name}-{machine}"


def network_name(lab: Lab) -> str:
    """The name Vagrant's docker provider gives the network it creates for a subnet."""
    return f"vagrant_network_{lab.network}"


# --- create args: probed, not assumed --------------------------------------------------------
def privileged_allowed(image: str, run: Runner | None = None) -> bool:
    proc = (run or run_docker)(["run", "--rm", "--privileged", "--network=none", "--entrypoint", "/bin/true", image])
    return proc.returncode == 0


def create_args_for(privileged: bool, fuse: bool | None = None) -> list[str]:
    if privileged:
        return list(PRIVILEGED_ARGS)
    fuse = Path(FUSE_DEVICE).exists() if fuse is None else fuse
    return [*CAPABILITY_ARGS, *(["--device", FUSE_DEVICE] if fuse else [])]


def choose_create_args(image: str, run: Runner | None = None) -> list[str]:
    return create_args_for(privileged_allowed(image, run))


def cached_create_args(state_dir: Path, image: str | None = None, run: Runner | None = None) -> list[str]:
    """The probe's answer (may this host run --privileged?), kept in the lab's state folder so
    each `vagrant` call is fast. Only the answer is kept, never the argument list, so a change
    to the lists reaches a lab whose state folder is older than the change."""
    path = Path(state_dir) / CREATE_ARGS_FILE
    if path.exists():
        saved = json.loads(path.read_text())
        # older state folders hold the whole list
        return create_args_for(saved["privileged"] if isinstance(saved, dict) else "--privileged" in saved)
    if image is None:
        from harness.image.recipe import node_image_tag
        image = node_image_tag()
    privileged = privileged_allowed(image, run)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    partial.write_text(json.dumps({"privileged": privileged}))
    os.replace(partial, path)  # a concurrent `vagrant` never reads half a file
    return create_args_for(privileged)


# --- what exists on the docker host ----------------------------------------------------------
def lab_containers(lab: Lab, run: Runner | None = None) -> list[str]:
    proc = (run or run_docker)(["ps", "-a", "--filter", f"name=^{container_name(lab, '')}", "--format", "{{.Names}}"])
    return [n for n in proc.stdout.split() if n]


def network_info(name: str, run: Runner | None = None) -> dict | None:
    proc = (run or run_docker)(["network", "inspect", name])
    if proc.returncode != 0:
        return None
    found = json.loads(proc.stdout or "[]")
    return found[0] if found else None


def bridge_interface(network: dict) -> str:
    """Docker names a user network's host bridge br-<first 12 characters of its id>."""
    options = network.get("Options") or {}
    return options.get("com.docker.network.bridge.name") or f"br-{network['Id'][:12]}"


def check_docker(host: Host) -> None:
    if not host.which("docker"):
        raise UserError("docker: not found on PATH; install it with `apt-get install docker.io`")
    proc = host.run(["docker", "info", "--format", "{{.ServerVersion}}"])
    if proc.returncode != 0:
        raise UserError("docker: the daemon is not reachable (`docker info`: "
                        f"{last_line(proc.stderr or proc.stdout)}); start it with "
                        "`dockerd >/var/log/dockerd.log 2>&1 &` or `systemctl start docker`")


def own_bridge(host: Host, lab: Lab) -> str | None:
    """The host bridge of this lab's own docker network, if it exists and holds only this
    lab's containers; that one may use the subnet."""
    proc = host.run(["docker", "network", "inspect", network_name(lab)])
    if proc.returncode != 0:
        return None
    net = (json.loads(proc.stdout or "[]") or [None])[0]
    if not net:
        return None
    prefix = container_name(lab, "")
    members = [c.get("Name", "") for c in (net.get("Containers") or {}).values()]
    if any(not name.startswith(prefix) for name in members):
        return None
    return bridge_interface(net)


def docker_create_args(lab: Lab, state_dir: Path) -> list[str]:
    """The harness passes its probe's answer to `vagrant` in the environment; a hand-run
    `vagrant` without it probes the host itself (once per lab, cached in the state folder)."""
    given = os.environ.get(CREATE_ARGS_ENV)
    if given:
        args = json.loads(given)
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise UserError(f"{CREATE_ARGS_ENV}: must be a JSON list of strings")
        return args
    return cached_create_args(state_dir)


class DockerProvider(VagrantProvider):
    name = "docker"

    @property
    def image(self) -> str:
        from harness.image.recipe import node_image_tag
        return node_image_tag()

    def vagrant_env(self) -> dict[str, str]:
        env = super().vagrant_env()
        env[CREATE_ARGS_ENV] = json.dumps(self.create_args())
        return env

    def create_args(self) -> list[str]:
        return cached_create_args(self.state_dir, self.image)

    def vagrantfile_settings(self) -> dict:
        """The docker section of the spec the Vagrantfile reads (harness.vagrant_spec)."""
        return {"docker": {"image": self.image, "create_args": docker_create_args(self.lab, self.state_dir),
                           "names": {m.name: container_name(self.lab, m.name) for m in self.lab.machines}}}

    # --- the Provider protocol ------------------------------------------------------------------
    def host_checks(self, host: Host) -> None:
        check_docker(host)

    def own_host_interfaces(self, host: Host) -> set[str]:
        bridge = own_bridge(host, self.lab)
        return {bridge} if bridge else set()

    def prepare(self, log=print) -> None:
        from harness.image.build import build_image
        from harness.image.recipe import node_recipe

        build_image(node_recipe(), log=log)  # instant when the recipe's tag already exists

    def provision(self, names: list[str]):
        # Vagrant's docker provider runs `docker network connect` on every start; a stopped
        # container is still attached, so that would fail. Detach first; Vagrant re-attaches
        # with the same IP from the Vagrantfile.
        net = network_name(self.lab)
        for state in self.list_machines():
            if state.name in names and not state.running and state.state != "not_created":
                run_docker(["network", "disconnect", "--force", net, container_name(self.lab, state.name)])
        return super().provision(names)

    def list_machines(self) -> list[MachineState]:
        """Straight from docker (milliseconds, where `vagrant status` takes seconds): each lab
        machine's container state, `not_created` when there is no container."""
        prefix = container_name(self.lab, "")
        proc = run_docker(["ps", "-a", "--filter", f"name=^{prefix}", "--format", "{{.Names}} {{.State}}"])
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise UserError(f"docker: cannot list lab {self.lab.name}'s containers "
                            f"({detail[-1] if detail else 'no output'})")
        found = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
        return [MachineState(m.name, found.get(container_name(self.lab, m.name), "not_created"))
                for m in self.lab.machines]

    def power_off(self, name: str, force: bool = False) -> None:
        """Forced: SIGKILL to the container's init, so every process of the machine dies at
        once with no shutdown, the container's equivalent of pulling the plug (`vagrant halt
        --force` would still send the stop signal first)."""
        if not force:
            return super().power_off(name)
        proc = run_docker(["kill", container_name(self.lab, name)])
        if proc.returncode != 0:
            raise UserError(f"docker: cannot kill machine {name} "
                            f"({last_line(proc.stderr or proc.stdout)})")

    # --- Vagrant's leftovers --------------------------------------------------------------------
    def cleanup(self) -> list[str]:
        """Containers and the lab network Vagrant left (after a failed up, or a lost state
        folder). Only this lab's names are touched."""
        removed = []
        for name in lab_containers(self.lab):
            if run_docker(["rm", "--force", "--volumes", name]).returncode == 0:
                removed.append(f"container {name}")
        net = network_info(network_name(self.lab))
        if net is not None and not net.get("Containers"):
            if run_docker(["network", "rm", net["Name"]]).returncode == 0:
                removed.append(f"network {net['Name']}")
        return removed

    def leftovers(self) -> list[str]:
        """What of this lab still exists on the host; empty after a clean down."""
        found = [f"container {n}" for n in lab_containers(self.lab)]
        net = network_info(network_name(self.lab))
        if net is not None:
            found.append(f"network {net['Name']}")
            iface = bridge_interface(net)
            if Path(f"/sys/class/net/{iface}").exists():
                found.append(f"interface {iface}")
        return found

    def inspect(self) -> dict[str, str]:
        out = {}
        names = lab_containers(self.lab)
        if names:
            out["docker-inspect.json"] = run_docker(["inspect", *names]).stdout
            for name in names:
                out[f"docker-logs-{name}.txt"] = (lambda p: p.stdout + p.stderr)(
                    run_docker(["logs", "--tail", "500", name]))
        net = network_info(network_name(self.lab))
        if net is not None:
            out["docker-network.json"] = json.dumps(net, indent=2)
        return out

    # --- figures for the benchmarks (not part of the protocol) ----------------------------------
    def memory_usage_bytes(self) -> dict[str, int]:
        """Memory each running lab container uses now, as `docker stats` counts it."""
        names = lab_containers(self.lab)
        if not names:
            return {}
        proc = run_docker(["stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", *names])
        usage = {}
        for line in proc.stdout.splitlines():
            name, used = line.split(" ", 1)
            usage[name] = parse_size(used.split("/")[0].strip())
        return usage


    def memory_rss_bytes(self) -> dict[str, int]:
        """Anonymous memory (processes' own, no page cache) of each running lab container, from
        its memory cgroup: cgroup v1's total_rss, or v2's anon."""
        usage = {}
        for name in lab_containers(self.lab):
            cid = run_docker(["inspect", "-f", "{{.Id}}", name]).stdout.strip()
            for stat, key in ((f"/sys/fs/cgroup/memory/docker/{cid}/memory.stat", "total_rss"),
                              (f"/sys/fs/cgroup/memory/system.slice/docker-{cid}.scope/memory.stat", "total_rss"),
                              (f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/memory.stat", "anon"),
                              (f"/sys/fs/cgroup/docker/{cid}/memory.stat", "anon")):
                if os.path.exists(stat):
                    values = dict(line.split() for line in Path(stat).read_text().splitlines())
                    usage[name] = int(values.get(key, 0))
                    break
        return usage


def parse_size(text: str) -> int:
    units = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
             "kB": 1000, "KB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * units[unit])
    return int(float(text))
