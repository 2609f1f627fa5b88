"""The kubeadm baseline's phases, on machines the harness's provider brought up.

Each phase takes the harness's StepContext (the lab, its rendered files, one SSH connection per
machine) and reuses the harness's own pieces where the two clusters share them: the `hosts`
step (MASTER_URL on the VIP in /etc/hosts, sysctls), the `api-ha` files (haproxy and keepalived
in front of the masters, as kubeadm's HA guide does), containerd's config, the CNI conflist
renderer and the `workload` step. What differs is kubeadm's: certificates, kubeconfigs, static
pods, stacked etcd, bootstrap tokens and the uploaded certificates.

Order (kubeadm's HA guide): prepare every machine (binaries, kubelet unit, containerd, images),
LB/VIP, `kubeadm init` on the first master, `kubeadm join --control-plane` on the others one at
a time (each adds an etcd member), `kubeadm join` on the workers at once, then flannel, then the
workload.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from dataclasses import dataclass

from harness.kubeadm_baseline import config, flannel, units
from harness.kubeadm_baseline.artifacts import BaselineArtifacts
from harness.kubeadm_baseline.config import JoinSecrets
from harness.render import BIN_DIR, CNI_CONF_DIR, FLANNEL_SUBNET_FILE, RenderedFile
from harness.render.configs import containerd_config, mk_cni_conf
from harness.steps import api_ha, hosts, workload
from harness.steps.actions import (NotYet, kubectl, push_file, run, start_units, sync_files,
                                   wait_until)
from harness.steps.context import StepContext
from harness.steps.parallel import for_each

STEP = "kubeadm"
IMAGE_DIR = "/var/lib/k8s-ha-lab/images"
ADMIN_CONF = "/etc/kubernetes/admin.conf"
KUBECONFIG = "/root/.kube/config"
SECRET = 0o600


@dataclass
class KubeadmRun:
    """One baseline bring-up: the harness's context, the artifacts, this run's join secrets and
    the CA hash the joins pin (known once `kubeadm init` made the CA)."""
    ctx: StepContext
    art: BaselineArtifacts
    join: JoinSecrets
    ca_hash: str = ""


def _file(machine, path: str, content: str, mode: int = 0o644) -> RenderedFile:
    return RenderedFile(machine.name, path, content.encode(), mode, STEP)


def install_binary(ctx: StepContext, machine, local, name: str) -> bool:
    """A cached binary into BIN_DIR, uploaded only when its bytes differ."""
    want = hashlib.sha256(local.read_bytes()).hexdigest()
    have = run(ctx, STEP, machine, f"sha256sum {BIN_DIR}/{name} 2>/dev/null | cut -d' ' -f1",
               check=False).stdout.strip()
    if have == want:
        return False
    push_file(ctx, machine, local, f"{BIN_DIR}/{name}")
    ctx.changed(STEP, f"{machine.name}:{BIN_DIR}/{name}")
    return True


def import_images(ctx: StepContext, machine, images) -> int:
    """The OCI archives into containerd's k8s.io namespace, skipping those already there."""
    present = set(run(ctx, STEP, machine, "ctr -n k8s.io images ls -q", unit="containerd").stdout.split())
    imported = 0
    for ref, archive in images:
        if ref in present:
            continue
        remote = f"{IMAGE_DIR}/{archive.name}"
        push_file(ctx, machine, archive, remote, mode=0o644)
        run(ctx, STEP, machine, f"ctr -n k8s.io images import {shlex.quote(remote)} && rm -f {shlex.quote(remote)}",
            unit="containerd", timeout=300)
        imported += 1
    return imported


# --- host preparation: what kubeadm's users do before kubeadm (packages, runtime, images) ---
def prepare(kr: KubeadmRun) -> None:
    hosts.run_step(kr.ctx)
    for_each(kr.ctx, STEP, kr.ctx.lab.machines, lambda m: _prepare_machine(kr.ctx, kr.art, m), "prepare")


def _prepare_machine(ctx: StepContext, art: BaselineArtifacts, m) -> None:
    lab = ctx.lab
    # every kubeadm machine runs pods (static pods on masters, kube-proxy and flannel everywhere)
    run(ctx, STEP, m, "modprobe br_netfilter 2>/dev/null; sysctl -qw net.ipv4.ip_forward=1 "
        "net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1")
    install_binary(ctx, m, art.kubeadm, "kubeadm")
    for name in ("kubelet", "kubectl"):
        install_binary(ctx, m, ctx.binary(name), name)
    if m.has("master"):
        install_binary(ctx, m, ctx.binary("etcdctl"), "etcdctl")  # for the etcd checks
    files = [_file(m, "/etc/containerd/config.toml", containerd_config(lab)),
             _file(m, units.KUBELET_UNIT, units.kubelet_service()),
             _file(m, units.KUBEADM_DROPIN, units.kubeadm_dropin()),
             _file(m, f"{BIN_DIR}/mk-cni-conf", mk_cni_conf(lab), 0o755)]
    changed = sync_files(ctx, STEP, m, files)
    start_units(ctx, STEP, m, ["containerd"], restart="/etc/containerd/config.toml" in changed)
    run(ctx, STEP, m, "systemctl enable --quiet kubelet")
    import_images(ctx, m, art.for_masters() if m.has("master") else art.for_workers())


def alias_images(kr: KubeadmRun) -> dict[str, str]:
    """Images kubeadm asks for under a tag the harness does not build (the pause tag kubeadm
    pins for its preflight) are tagged from ours; returns wanted -> ours."""
    ctx = kr.ctx
    first = ctx.lab.masters[0]
    _upload_init_config(kr)
    wanted = run(ctx, STEP, first, f"kubeadm config images list --config {config.INIT_CONFIG}").stdout.split()
    ours = {ref.rsplit(":", 1)[0]: ref for ref in config.image_refs(ctx.lab).values()}
    aliases = {w: ours[w.rsplit(":", 1)[0]] for w in wanted
               if w not in config.image_refs(ctx.lab).values() and w.rsplit(":", 1)[0] in ours}
    unknown = [w for w in wanted if w not in aliases and w not in config.image_refs(ctx.lab).values()]
    if unknown:
        from harness.errors import StepError
        raise StepError(STEP, first.name, "kubeadm config images list", f"no image built for {unknown}")
    if aliases:
        script = "; ".join(f"ctr -n k8s.io images ls -q | grep -qx {shlex.quote(w)} || "
                           f"ctr -n k8s.io images tag {shlex.quote(o)} {shlex.quote(w)} >/dev/null"
                           for w, o in aliases.items())
        for_each(ctx, STEP, ctx.lab.machines, lambda m: run(ctx, STEP, m, script), "image aliases")
    return aliases


# --- the VIP: the harness's haproxy and keepalived, up before kubeadm init -------------------
def load_balancer(ctx: StepContext) -> None:
    lab = ctx.lab
    for_each(ctx, api_ha.NAME, lab.lbs, lambda m: start_units(
        ctx, api_ha.NAME, m, ["haproxy", "keepalived"], restart=bool(sync_files(ctx, api_ha.NAME, m))))
    master = max(lab.lbs, key=lambda m: lab.keepalived.priorities[m.name])

    def vip_on_master():
        holders = api_ha.vip_holders(ctx, STEP)
        if holders != [master.name]:
            raise NotYet(f"VIP {lab.vip} is on {holders or 'no machine'}")
    wait_until(ctx, STEP, master, f"VIP {lab.vip} on {master.name} only", vip_on_master,
               timeout=60, unit="keepalived")


# --- kubeadm init and join -------------------------------------------------------------------
PHASE_LINE = re.compile(r"^(\d+\.\d+) \[([a-z-]+)\]")


def _timestamped(command: str) -> str:
    """The command's output, each line prefixed with the epoch time it was printed."""
    script = (f"{command} 2>&1 | "
              "while IFS= read -r line; do printf '%s %s\\n' \"$(date +%s.%N)\" \"$line\"; done")
    return f"bash -o pipefail -c {shlex.quote(script)}"


def phase_seconds(output: str, started: float, ended: float) -> dict[str, float]:
    """kubeadm's own phases from its `[phase]` line prefixes: each lasts from its first line to
    the next phase's first line (the first from `started`, the last until `ended`)."""
    firsts: list[tuple[str, float]] = []
    for line in output.splitlines():
        match = PHASE_LINE.match(line)
        if match and match.group(2) not in {name for name, _ in firsts}:
            firsts.append((match.group(2), float(match.group(1))))
    seconds: dict[str, float] = {}
    for index, (name, at) in enumerate(firsts):
        begin = started if index == 0 else at
        end = firsts[index + 1][1] if index + 1 < len(firsts) else ended
        seconds[name] = round(end - begin, 2)
    return seconds


def _run_kubeadm(ctx: StepContext, m, args: str) -> dict[str, float]:
    started = float(run(ctx, STEP, m, "date +%s.%N").stdout)
    out = run(ctx, STEP, m, _timestamped(f"kubeadm {args}"), unit="kubelet", timeout=600)
    ended = float(run(ctx, STEP, m, "date +%s.%N").stdout)
    # kept in the lab's state folder (the join command kubeadm prints holds the token): 0600
    log = ctx.state_dir / "kubeadm" / f"{m.name}-{args.split()[0]}.log"
    log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    log.touch(mode=0o600)
    log.write_text(out.stdout)
    return phase_seconds(out.stdout, started, ended)


def _upload_init_config(kr: KubeadmRun) -> None:
    first = kr.ctx.lab.masters[0]
    kr.ctx.on(first).upload(config.INIT_CONFIG, config.init_config(kr.ctx.lab, kr.join).encode(), SECRET)


def _admin_kubeconfig(ctx: StepContext, m) -> None:
    run(ctx, STEP, m, f"mkdir -p /root/.kube && install -m 0600 {ADMIN_CONF} {KUBECONFIG}")


def init_first_master(kr: KubeadmRun) -> dict[str, float]:
    ctx, first = kr.ctx, kr.ctx.lab.masters[0]
    _upload_init_config(kr)
    seconds = _run_kubeadm(ctx, first, f"init --config {config.INIT_CONFIG} --upload-certs")
    _admin_kubeconfig(ctx, first)
    kr.ca_hash = config.ca_cert_hash(ctx.on(first).read(f"{config.PKI_DIR}/ca.crt"))
    return seconds


def join(kr: KubeadmRun, m) -> dict[str, float]:
    ctx = kr.ctx
    text = config.join_config(ctx.lab, m, kr.join, kr.ca_hash)
    ctx.on(m).upload(config.JOIN_CONFIG, text.encode(), SECRET)
    seconds = _run_kubeadm(ctx, m, f"join --config {config.JOIN_CONFIG}")
    if m.has("master"):
        _admin_kubeconfig(ctx, m)
    return seconds


def join_masters(kr: KubeadmRun) -> dict[str, dict[str, float]]:
    """One at a time, as kubeadm's HA guide says: each join adds a stacked etcd member."""
    return {m.name: join(kr, m) for m in kr.ctx.lab.masters[1:]}


def join_workers(kr: KubeadmRun) -> dict[str, dict[str, float]]:
    workers = [m for m in kr.ctx.lab.machines if not m.has("master")]
    return for_each(kr.ctx, STEP, workers, lambda m: join(kr, m), "join")


# --- CNI: flannel as a DaemonSet, then the bridge conflist from its subnet -------------------
def cni(ctx: StepContext) -> None:
    lab, first = ctx.lab, ctx.lab.masters[0]
    ctx.on(first).upload(flannel.MANIFEST, flannel.manifest(lab).encode(), 0o644)
    kubectl(ctx, STEP, f"apply -f {flannel.MANIFEST}")
    for_each(ctx, STEP, lab.machines, lambda m: _cni_conf(ctx, m), "flannel")
    wait_until(ctx, STEP, first, f"all {len(lab.machines)} nodes Ready", lambda: _all_ready(ctx),
               timeout=180, interval=2, command="kubectl get nodes")


def _cni_conf(ctx: StepContext, m) -> None:
    def leased():
        if run(ctx, STEP, m, f"test -s {FLANNEL_SUBNET_FILE}", check=False).exit_status != 0:
            raise NotYet(f"flanneld has not written {FLANNEL_SUBNET_FILE}")
    wait_until(ctx, STEP, m, f"flannel's subnet on {m.name}", leased, timeout=180, interval=1)
    run(ctx, STEP, m, f"{BIN_DIR}/mk-cni-conf {FLANNEL_SUBNET_FILE} {CNI_CONF_DIR}/10-flannel.conflist")


def _all_ready(ctx: StepContext) -> None:
    listing = json.loads(kubectl(ctx, STEP, "get nodes -o json").stdout)
    ready = {n["metadata"]["name"]: {c["type"]: c["status"] for c in n["status"]["conditions"]}.get("Ready")
             for n in listing["items"]}
    want = {m.node_name for m in ctx.lab.machines}
    if set(ready) != want or not all(v == "True" for v in ready.values()):
        raise NotYet(f"nodes {ready}, want {sorted(want)} Ready")


def run_workload(ctx: StepContext) -> None:
    workload.run_step(ctx)
