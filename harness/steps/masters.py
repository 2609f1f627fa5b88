"""Guide §5: kube-apiserver on every master, then controller-manager and scheduler with
leader election. Before the VIP exists, each master is checked through its own apiserver."""

from __future__ import annotations

from harness.steps.actions import (NotYet, install_binaries, kubectl, run, start_units, sync_files,
                                   wait_until)
from harness.steps.context import StepContext
from harness.steps.parallel import for_each

NAME = "masters"
BINARIES = ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]
LEADER_UNITS = ["kube-controller-manager", "kube-scheduler"]


def wait_apiserver_ready(ctx: StepContext, step: str, machine, timeout: float = 180) -> None:
    def ready():
        out = kubectl(ctx, step, "get --raw=/readyz", machine=machine, local=True, check=False)
        if out.stdout.strip() != "ok":
            raise NotYet((out.stdout + out.stderr).strip()[-300:] or "no answer")
    wait_until(ctx, step, machine, f"kube-apiserver on {machine.name} to be ready", ready,
               timeout=timeout, unit="kube-apiserver", command="kubectl get --raw=/readyz")


def wait_lease_held(ctx: StepContext, step: str, lease: str, timeout: float = 120) -> str:
    machine = ctx.lab.masters[0]

    def held():
        out = kubectl(ctx, step, f"-n kube-system get lease {lease} -o jsonpath={{.spec.holderIdentity}}",
                      machine=machine, local=True, check=False)
        if not out.stdout.strip():
            raise NotYet(f"lease {lease} has no holder: {out.stderr.strip()[-200:]}")
        return out.stdout.strip()
    return wait_until(ctx, step, machine, f"a {lease} leader", held, timeout=timeout, unit=lease)


def run_step(ctx: StepContext) -> None:
    masters = ctx.lab.masters

    def install(m) -> bool:
        changed = install_binaries(ctx, NAME, m, BINARIES) + sync_files(ctx, NAME, m)
        run(ctx, NAME, m, "install -d -m 0700 /var/log/kubernetes")
        return bool(changed)
    restart = for_each(ctx, NAME, masters, install, "binaries and files")

    def apiserver(m) -> None:
        start_units(ctx, NAME, m, ["kube-apiserver"], restart=restart[m.name], no_block=True)
        wait_apiserver_ready(ctx, NAME, m)
    for_each(ctx, NAME, masters, apiserver, "kube-apiserver ready")
    out = kubectl(ctx, NAME, "apply -f /etc/kubernetes/addons/rbac.yaml", local=True)
    if any(not line.endswith("unchanged") for line in out.stdout.splitlines() if line.strip()):
        ctx.changed(NAME, "rbac bindings")
    for_each(ctx, NAME, masters,
             lambda m: start_units(ctx, NAME, m, LEADER_UNITS, restart=restart[m.name], reload=False))
    for lease in LEADER_UNITS:
        wait_lease_held(ctx, NAME, lease)
