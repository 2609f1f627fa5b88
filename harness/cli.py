"""`python -m harness`: one entry point, one sub-command per job.

A UserError (bad lab, missing tool, ...) is printed as one line and exits 2; a traceback appears
only with -v. Sub-commands owned by other modules register themselves through `register()`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time
from pathlib import Path

from harness.errors import UserError
from harness.lab import Lab
from harness.labfile import load_lab
from harness.steps import STEPS

# Modules that add their own sub-commands; each has `register(subparsers)`.
PLUGINS = ("harness.artifacts.cli", "harness.image.cli", "harness.machines_cli", "harness.failover.cli",
           "harness.conformance.cli")


def _lab_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("lab", type=Path, help="lab file, e.g. labs/seed.yaml")


def describe_lab(lab: Lab) -> str:
    lines = [f"lab {lab.name}: network {lab.network} on {lab.interface}, VIP {lab.vip}, "
             f"MASTER_URL {lab.master_url} -> {lab.api_address} ({lab.api_url})"]
    for m in lab.machines:
        node = f" (node {m.node_name})" if m.node_name != m.name else ""
        lines.append(f"  {m.name:<10} {str(m.ip):<16} {','.join(m.roles)}{node}")
    c = lab.cluster
    lines.append(f"  SERVICE_CIDR {c.service_cidr}  CLUSTER_CIDR {c.cluster_cidr}  "
                 f"NODE_PORT_RANGE {c.node_port_range_str}")
    lines.append(f"  kubernetes svc {c.kubernetes_service_ip}  DNS {c.dns_service_ip} ({lab.dns_domain})")
    lines.append(f"  flannel {lab.flannel.backend} /{lab.flannel.subnet_len} under {lab.flannel.etcd_prefix}")
    versions = ", ".join(f"{n} {c.version}" for n, c in lab.versions.components.items())
    lines.append(f"  versions: {versions}")
    return "\n".join(lines)


# Sub-commands that act on a running lab and get the guard first. Plugins mark theirs with
# `set_defaults(needs_running_lab=True)`; this table covers those registered before that existed.
NEEDS_RUNNING_LAB = {("scenario", "run")}


def _needs_running_lab(args) -> bool:
    if getattr(args, "needs_running_lab", False):
        return True
    return (args.command, getattr(args, f"{args.command}_command", None)) in NEEDS_RUNNING_LAB


def require_lab_up(lab_path) -> None:
    """The one guard before anything that needs the running lab: one line, exit 2, within
    seconds, naming the machine that is down (the provider's view, then SSH's port)."""
    from harness.providers import require_up
    from harness.state import lab_state_dir

    lab = load_lab(lab_path)
    require_up(lab, lab_state_dir(lab))


def cmd_validate(args) -> int:
    print(describe_lab(load_lab(args.lab)))
    print("lab is valid")
    return 0


def cmd_plan(args) -> int:
    lab = load_lab(args.lab)
    print(describe_lab(lab))
    print("steps, in the guide's order:")
    for i, step in enumerate(STEPS, 1):
        print(f"  {i:>2}. {step.name:<9} {step.summary}")
    return 0


def cmd_render(args) -> int:
    from harness import pki_store
    from harness.render.plan import build_plan, write_tree
    from harness.state import lab_state_dir, load_secrets

    lab = load_lab(args.lab)
    state = lab_state_dir(lab)
    result = pki_store.ensure_pki(lab, state / "pki", rotate=args.rotate)
    files = build_plan(lab, state / "pki", load_secrets(lab, state))
    count = write_tree(files, args.out)
    print(f"pki {result.directory}: {len(result.created)} created, {len(result.reissued)} reissued, "
          f"{len(result.kept)} kept")
    print(f"rendered {count} files for {len(lab.machines)} machines into {args.out}")
    return 0


def _run_dir(kind: str) -> Path:
    import time
    return Path("artifacts") / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_up(args) -> int:
    """Machines, then the guide's steps in order. On any failure (a step, a bug, Ctrl-C), logs
    first, then teardown unless --keep: kubetest2's and kind's "delete the cluster unless asked
    to retain it". Only a refusal before any machine was touched (preflight) leaves things be."""
    from harness import machines_cli
    from harness.steps import steps_until

    lab = load_lab(args.lab)
    steps_until(args.until)  # a bad --until is refused before anything starts
    if args.step:
        return _run_one_step(lab, args)
    run_dir = _run_dir(f"up-{lab.name}")  # two labs' `up` started in the same second: two folders
    try:
        status = machines_cli.up_machines(lab, args)
    except UserError:
        raise  # preflight said no: nothing was created, so there is nothing to tear down
    except BaseException as exc:
        return _fail_up(lab, args, run_dir, exc)
    if status or args.only == "machines" or args.until == "machines":
        return status
    try:
        _run_up_steps(lab, args, run_dir)
    except BaseException as exc:
        return _fail_up(lab, args, run_dir, exc)
    print(f"step timings: {run_dir / 'step-timings.json'}")
    return 0


def _run_up_steps(lab: Lab, args, run_dir: Path) -> None:
    from harness.steps.context import build_context
    from harness.steps.runner import run_steps

    ctx = build_context(lab)
    ctx.serial = getattr(args, "serial", False)
    try:
        run_steps(ctx, until=args.until, timings_file=run_dir / "step-timings.json")
    finally:
        ctx.close()


def _run_one_step(lab: Lab, args) -> int:
    """`up --step NAME`: only that step, on a lab that is up (re-run one step after a fix, or
    follow one step while learning). A failure leaves the lab as it is, like --keep."""
    from harness.errors import StepError
    from harness.steps import STEP_NAMES, STEPS
    from harness.steps.context import build_context
    from harness.steps.runner import run_one

    if args.step not in STEP_NAMES or args.step == "machines":
        raise UserError(f"--step: unknown step {args.step!r} (steps: {', '.join(STEP_NAMES[1:])})")
    require_lab_up(args.lab)
    ctx = build_context(lab)
    ctx.serial = args.serial
    try:
        run_one(ctx, STEPS[STEP_NAMES.index(args.step)], {})
    except StepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        ctx.close()
    return 0


def _fail_up(lab: Lab, args, run_dir: Path, exc: BaseException) -> int:
    """Logs, then teardown unless --keep; a StepError is reported here (exit 1), anything else
    is re-raised for main() to report as it always does (exit 2, 130 or a traceback).

    First every process `up` started (the provider's own, `vagrant up` and its docker calls)
    is waited for or stopped, so nothing creates a machine after teardown looked; a second
    Ctrl-C during all this only prints a notice (harness.teardown)."""
    from harness import machines, teardown
    from harness.errors import StepError

    if isinstance(exc, StepError):
        print(f"error: {exc}", file=sys.stderr)
    elif isinstance(exc, KeyboardInterrupt):  # Ctrl-C, or SIGTERM (teardown.Terminated)
        said = "terminated" if isinstance(exc, teardown.Terminated) else "interrupted"
        print(f"{said}: collecting logs" + ("" if args.keep else ", then tearing the lab down"),
              file=sys.stderr)
    else:
        print(f"up failed: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
    what = "collecting logs" + ("" if args.keep else f" and tearing lab {lab.name} down")
    with teardown.shield_interrupts(what):
        teardown.stop_children(log=lambda line: print(f" • {line}", file=sys.stderr),
                               interrupt_first=isinstance(exc, teardown.Terminated))
        try:
            logs = machines.collect_logs(lab, run_dir)
            print(f"logs collected in {logs}", file=sys.stderr)
        except Exception as log_exc:  # noqa: BLE001 - the failure that matters is `exc`
            print(f"could not collect logs: {type(log_exc).__name__}: {log_exc}", file=sys.stderr)
        if args.keep:
            print(f"--keep: lab {lab.name} left as it is", file=sys.stderr)
        else:
            try:
                machines.down(lab)
            except Exception as down_exc:  # noqa: BLE001 - say so, then report `exc` as usual
                print(f"teardown failed: {type(down_exc).__name__}: {down_exc}".splitlines()[0]
                      + f"; remove what is left with `python -m harness down {args.lab}`", file=sys.stderr)
    if isinstance(exc, StepError):
        return 1
    raise exc


def cmd_check(args) -> int:
    import checks
    from harness.progress import report
    from harness.steps.context import build_context

    ctx = build_context(load_lab(args.lab))
    selected = checks.checks_for(ctx.lab, slow=not args.quick)
    failed = []

    def line(name: str, seconds: float, error: AssertionError | None) -> None:
        first = (str(error).splitlines() or ["AssertionError"])[0] if error else ""
        report(name, seconds, ok=error is None, note=first)
        if error:
            failed.append(name)
    started = time.monotonic()
    try:
        checks.run_checks(ctx, selected, line, serial=args.serial)
    finally:
        ctx.close()
    print(f"{len(selected) - len(failed)} of {len(selected)} checks passed in {time.monotonic() - started:.1f}s")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate", help="parse and check a lab file")
    _lab_arg(p)
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("plan", help="print the lab and the ordered step plan")
    _lab_arg(p)
    p.set_defaults(func=cmd_plan)
    p = sub.add_parser("render", help="write every rendered file per machine into --out")
    _lab_arg(p)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--rotate", action="store_true", help="reissue the CA and every certificate")
    p.set_defaults(func=cmd_render)
    p = sub.add_parser("up", help="bring up the machines and run the guide's steps in order")
    _lab_arg(p)
    p.add_argument("--only", choices=["machines"], help="stop after the machines")
    p.add_argument("--until", metavar="STEP", help="stop after this step (see `plan`)")
    p.add_argument("--step", metavar="STEP", help="run only this step, on a lab that is up")
    p.add_argument("--keep", action="store_true", help="on failure, leave the lab up for inspection")
    p.add_argument("--serial", action="store_true",
                   help="within each step, one machine after another (default: all machines at once)")
    p.add_argument("--provider", help="default: the one the lab is up with, else detected")
    p.set_defaults(func=cmd_up)
    p = sub.add_parser("check", help="run the guide's checks and the add-ons' against a running lab")
    _lab_arg(p)
    p.add_argument("--quick", action="store_true",
                   help="leave out the slow add-on checks (a CoreDNS pod deleted, an HPA scaling both ways)")
    p.add_argument("--serial", action="store_true",
                   help="one check after another (default: the core checks at once, then the add-ons')")
    p.set_defaults(func=cmd_check, needs_running_lab=True)
    for name in PLUGINS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # that part of the harness is not installed in this tree
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """SIGTERM is taken like Ctrl-C (harness.teardown) and the command owns the process's SSH
    connections (harness.ssh_pool): they are closed when it ends, however it ends."""
    from harness import ssh_pool, teardown

    try:
        with teardown.sigterm_as_interrupt(), ssh_pool.owned():
            status = _main(argv)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return status
    except BrokenPipeError:
        # The reader went away (`... | head -2`): stop quietly, as a Unix filter does on SIGPIPE.
        _silence_stdout()
        return 128 + 13


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if _needs_running_lab(args):
            require_lab_up(args.lab)
        return args.func(args) or 0
    except BrokenPipeError:
        raise
    except UserError as exc:
        if args.verbose:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    except Exception as exc:  # noqa: BLE001 - operational failures: a message, not a traceback
        from harness.errors import ProviderError, StepError
        if args.verbose or not isinstance(exc, (StepError, ProviderError)):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        from harness.teardown import Terminated
        if isinstance(exc, Terminated):
            print("terminated", file=sys.stderr)
            return 128 + 15
        print("interrupted", file=sys.stderr)
        return 130
