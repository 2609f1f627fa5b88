"""`python -m harness.kubeadm_baseline up|check LAB`: the kubeadm baseline outside the benchmark."""

from __future__ import annotations

import argparse
import json
import sys

from harness.errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.kubeadm_baseline", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("up", "check"))
    parser.add_argument("lab", help="lab file, e.g. labs/seed.yaml")
    parser.add_argument("--skip-machines", action="store_true", help="up: the machines are up already")
    args = parser.parse_args(argv)
    from harness.labfile import load_lab
    from harness.steps.context import build_context

    try:
        lab = load_lab(args.lab)
        if args.action == "up":
            from harness import machines
            from harness.kubeadm_baseline.artifacts import ensure_all
            from harness.kubeadm_baseline.bringup import run_baseline

            art = ensure_all(lab.versions)
            if not args.skip_machines:
                machines.up(lab)
            ctx = build_context(lab)
            try:
                print(json.dumps(run_baseline(ctx, art)["rows"], indent=2))
            finally:
                ctx.close()
            return 0
        from harness.kubeadm_baseline.checks import run_all

        ctx = build_context(lab)
        try:
            results = run_all(ctx)
        finally:
            ctx.close()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = [r for r in results if r["ok"] is False]
    ran = [r for r in results if r["ok"] is not None]
    print(f"{len(ran) - len(failed)} of {len(ran)} checks passed; "
          f"{len(results) - len(ran)} do not apply to kubeadm")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
