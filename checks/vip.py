"""The keepalived VIP: on exactly one lb machine, the VRRP MASTER while it is alive."""

from __future__ import annotations

from harness.steps.actions import kubectl
from harness.steps.api_ha import vip_holders
from harness.steps.context import StepContext


def vrrp_master(ctx: StepContext):
    lab = ctx.lab
    return max(lab.lbs, key=lambda m: lab.keepalived.priorities[m.name])


def vip_only_on(ctx: StepContext, machine_name: str, candidates=None) -> list[str]:
    """The VIP is on `machine_name` and on no other lb machine (of `candidates`, when some are
    powered off and cannot be asked)."""
    __tracebackhide__ = True
    holders = vip_holders(ctx, "check:vip", candidates)
    assert holders == [machine_name], f"VIP {ctx.lab.vip} is on {holders or 'no machine'}, want {machine_name} only"
    return holders


def api_answers_through_master_url(ctx: StepContext, machine) -> str:
    __tracebackhide__ = True
    out = kubectl(ctx, "check:vip", "get nodes -o name", machine=machine, check=False)
    assert out.exit_status == 0 and "node/" in out.stdout, \
        f"kubectl get nodes through {ctx.lab.api_url} from {machine.name} failed: {out.stderr.strip()}"
    return out.stdout


def vip_on_vrrp_master(ctx: StepContext) -> list[str]:
    """With every lb machine up, the VIP sits on the highest-priority one only."""
    __tracebackhide__ = True
    return vip_only_on(ctx, vrrp_master(ctx).name)
