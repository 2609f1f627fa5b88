"""Guide §0: env.sh, MASTER_URL in /etc/hosts on every machine, and the kernel settings."""

from __future__ import annotations

import shlex

from harness.render.env import merge_hosts
from harness.steps.actions import run, sync_files
from harness.steps.parallel import for_each
from harness.steps.context import StepContext

NAME = "hosts"
SYSCTL_FILE = "/etc/sysctl.d/90-k8s-ha-lab.conf"


HOSTS_STAGING = "/var/lib/k8s-ha-lab/hosts.new"


def _write_in_place(ctx: StepContext, machine, path: str, data: str) -> None:
    # docker bind-mounts /etc/hosts into a container: renaming over it fails, truncating works.
    # Staged through the transport's upload and copied by a shell, so a login that is not root
    # (sudo) writes it as root too.
    ctx.on(machine).upload(HOSTS_STAGING, data.encode(), 0o644)
    run(ctx, NAME, machine, f"cat {HOSTS_STAGING} > {shlex.quote(path)} && rm -f {HOSTS_STAGING}")


def run_step(ctx: StepContext) -> None:
    for_each(ctx, NAME, ctx.lab.machines, lambda m: _prepare(ctx, m))


def _prepare(ctx: StepContext, machine) -> None:
    sync_files(ctx, NAME, machine)
    current = ctx.on(machine).read("/etc/hosts").decode()
    block = ctx.file(machine, "/etc/k8s-ha-lab/hosts").content.decode()
    merged = merge_hosts(current, block)
    if merged != current:
        _write_in_place(ctx, machine, "/etc/hosts", merged)
        ctx.changed(NAME, f"{machine.name}:/etc/hosts")
    # br_netfilter must be loaded for bridge-nf-call-iptables; in a container the host
    # has to have loaded it (bin/setup-host does), so a failed modprobe is not fatal here.
    run(ctx, NAME, machine, f"modprobe br_netfilter 2>/dev/null; sysctl -q -p {SYSCTL_FILE}")
