"""Guide §6: haproxy in front of every master's apiserver, and the keepalived VIP on the lb
machines (MASTER/BACKUP). Done when the VIP sits on the MASTER and MASTER_URL answers."""

from __future__ import annotations

import shlex

from harness.steps.actions import NotYet, kubectl, run, start_units, sync_files, wait_until
from harness.steps.context import StepContext
from harness.steps.parallel import for_each

NAME = "api-ha"


def vip_holders(ctx: StepContext, step: str, candidates=None) -> list[str]:
    """The lb machines (or `candidates`, e.g. those still powered on) whose lab interface
    carries the VIP right now."""
    lab, holders = ctx.lab, []
    for m in lab.lbs if candidates is None else candidates:
        out = run(ctx, step, m, f"ip -4 -o addr show dev {shlex.quote(lab.interface)}", check=False, timeout=15).stdout
        if f" {lab.vip}/" in out:
            holders.append(m.name)
    return holders


def run_step(ctx: StepContext) -> None:
    lab = ctx.lab
    for_each(ctx, NAME, lab.lbs, lambda m: start_units(ctx, NAME, m, ["haproxy", "keepalived"],
                                                       restart=bool(sync_files(ctx, NAME, m))))
    master = max(lab.lbs, key=lambda m: lab.keepalived.priorities[m.name])

    def vip_on_master():
        holders = vip_holders(ctx, NAME)
        if holders != [master.name]:
            raise NotYet(f"VIP {lab.vip} is on {holders or 'no machine'}")
    wait_until(ctx, NAME, master, f"VIP {lab.vip} on {master.name} only", vip_on_master,
               timeout=60, unit="keepalived")
    def answers_from(m) -> None:
        def through_vip():
            out = kubectl(ctx, NAME, "get --raw=/readyz", machine=m, check=False)
            if out.stdout.strip() != "ok":
                raise NotYet((out.stdout + out.stderr).strip()[-300:])
        wait_until(ctx, NAME, m, f"{lab.api_url} to answer from {m.name}", through_vip,
                   timeout=60, unit="haproxy", command="kubectl get --raw=/readyz")
    for_each(ctx, NAME, lab.masters, answers_from, "MASTER_URL answers")
