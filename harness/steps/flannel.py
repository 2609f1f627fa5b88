"""Guide §4: flannel's network config in etcd, then flanneld on every machine."""

from __future__ import annotations

import json
import shlex

from harness.steps.actions import (NotYet, etcdctl, install_binaries, run, start_units, sync_files,
                                   wait_until)
from harness.steps.context import StepContext
from harness.steps.parallel import for_each

NAME = "flannel"
NETWORK_FILE = "/etc/flanneld/network-config.json"


def write_network_config(ctx: StepContext) -> None:
    first = ctx.lab.etcd_members[0]
    key = f"{ctx.lab.flannel.etcd_prefix}/config"
    current = etcdctl(ctx, NAME, first, f"get {shlex.quote(key)} --print-value-only").stdout.strip()
    try:
        same = json.loads(current) == ctx.lab.flannel_network_config if current else False
    except json.JSONDecodeError:
        same = False
    if not same:
        etcdctl(ctx, NAME, first, f"put {shlex.quote(key)} \"$(cat {NETWORK_FILE})\"")
        ctx.changed(NAME, f"etcd:{key}")


def run_step(ctx: StepContext) -> None:
    first = ctx.lab.etcd_members[0]
    sync_files(ctx, NAME, first)
    write_network_config(ctx)
    for_each(ctx, NAME, ctx.lab.machines, lambda m: _flanneld(ctx, m))


def _flanneld(ctx: StepContext, m) -> None:
    changed = install_binaries(ctx, NAME, m, ["flanneld"]) + sync_files(ctx, NAME, m)
    start_units(ctx, NAME, m, ["flanneld"], restart=bool(changed))

    def leased():
        out = run(ctx, NAME, m, "cat /run/flannel/subnet.env 2>/dev/null; "
                  "ip -o link show flannel.1 2>/dev/null | head -1", check=False).stdout
        if "FLANNEL_SUBNET=" not in out or "flannel.1" not in out:
            raise NotYet("no subnet.env or no flannel.1 yet")
    wait_until(ctx, NAME, m, f"flannel's lease on {m.name}", leased, timeout=90, interval=1, unit="flanneld")
