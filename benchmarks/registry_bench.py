"""Registry benchmark: the `registry` step cold and warm, then a 50 MiB image pushed with crane
from a node and pulled by digest by a pod on every node (the kubelet's own pull time, from its
Pulled event).

    python benchmarks/registry_bench.py [LAB] [--mib N]

It needs the lab up to the nodes step (the core steps are run here anyway, idempotently). To
time the step cold it first removes everything the step made: the registry's objects, the
nodes' mount units, keys, crane and image, and the storage server's SFTP user, sshd rules and
export (so the registry's images are deleted too): never point it at a lab whose registry
holds anything you need. Figures are printed and written to artifacts/bench-registry-<time>.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from benchmarks import write_figures  # noqa: E402
from checks.registry import build_and_push, pull_on_every_node, witness  # noqa: E402
from harness.labfile import load_lab  # noqa: E402
from harness.render import UNIT_DIR  # noqa: E402
from harness.render import registry as reg  # noqa: E402
from harness.steps import STEPS  # noqa: E402
from harness.steps import registry as step  # noqa: E402
from harness.steps.actions import kubectl  # noqa: E402
from harness.steps.context import build_context  # noqa: E402
from harness.steps.runner import run_one, run_steps  # noqa: E402


def remove_registry(ctx) -> None:
    """Back to before the step: nothing of the registry on the cluster, nodes or storage server."""
    kubectl(ctx, "bench", f"delete namespace {reg.NAMESPACE} --ignore-not-found --wait=true", timeout=180)
    image = ctx.lab.versions.registry.image_ref
    for m in ctx.lab.nodes:
        ctx.on(m).run(f"systemctl disable --now {reg.MOUNT_UNIT}; rm -f {UNIT_DIR}/{reg.MOUNT_UNIT}; "
                      f"systemctl daemon-reload; rm -rf {reg.NODE_CONF_DIR} {step.CRANE}; "
                      f"ctr -n k8s.io images rm {image}", check=False)
    server = reg.storage_server(ctx.lab)
    ctx.on(server).run(f"rm -f {reg.SSHD_DROPIN} {reg.AUTHORIZED_KEYS} && systemctl reload ssh; "
                       f"pkill -u {reg.SFTP_USER}; sleep 1; userdel {reg.SFTP_USER}; rm -rf {reg.EXPORT_ROOT}",
                       check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lab", nargs="?", default="labs/seed.yaml")
    parser.add_argument("--mib", type=int, default=50, help="the benchmark image's payload layer (MiB)")
    args = parser.parse_args()
    lab = load_lab(args.lab)
    if not lab.has_addon("registry"):
        raise SystemExit(f"{args.lab}: the lab has no registry add-on")
    ctx = build_context(lab)
    figures: dict = {"lab": lab.name, "payload_mib": args.mib}
    try:
        run_steps(ctx, until="nodes")
        remove_registry(ctx)
        the_step = next(s for s in STEPS if s.name == step.NAME)
        cold: dict[str, float] = {}
        run_one(ctx, the_step, cold)
        warm: dict[str, float] = {}
        run_one(ctx, the_step, warm)
        figures["cold_s"], figures["warm_s"] = cold[step.NAME], warm[step.NAME]
        machine = witness(ctx)
        image = build_and_push(ctx, machine, payload_bytes=args.mib * 2**20)
        figures["push"] = {"from": machine.name, "seconds": image["push_s"], "ref": image["ref"]}
        pulls = pull_on_every_node(ctx, image)
        figures["pull_s"] = {node: r["pulled_in_s"] for node, r in pulls.items()}
    finally:
        ctx.close()
    pulls = figures["pull_s"]
    print(f"registry step: cold {figures['cold_s']} s, warm {figures['warm_s']} s")
    print(f"push of a {args.mib} MiB image with crane from {figures['push']['from']}: {figures['push']['seconds']} s")
    print(f"pull by digest (kubelet's Pulled event): " + ", ".join(f"{n} {s} s" for n, s in sorted(pulls.items()))
          + f"; median {statistics.median(pulls.values())} s")
    write_figures("registry", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
