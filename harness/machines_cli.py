"""`down LAB` and `status LAB`, and `up_machines` for the lead's `up LAB --only machines`."""

from __future__ import annotations

import argparse

from harness import machines
from harness.labfile import load_lab
from harness.providers import PROVIDERS


def up_machines(lab, args: argparse.Namespace) -> int:
    """Bring the lab's machines up (idempotent). `args.provider` may name one."""
    states = machines.up(lab, getattr(args, "provider", None))
    bad = {name: state for name, state in states.items() if state not in ("running", "degraded")}
    return 1 if bad else 0


def _down(args: argparse.Namespace) -> int:
    machines.down(load_lab(args.lab), args.provider)
    return 0


def _status(args: argparse.Namespace) -> int:
    lab = load_lab(args.lab)
    rows = machines.status(lab, args.provider)
    width = max(len(r.name) for r in rows)
    for row in rows:
        print(f"{row.name:<{width}}  {row.ip:<15}  {row.state}")
    return 0 if all(r.state == "running" for r in rows) else 1


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("lab", help="lab file, e.g. labs/seed.yaml")
    parser.add_argument("--provider", choices=sorted(PROVIDERS),
                        help="default: the one the lab is up with, else detected")


def register(subparsers) -> None:
    down = subparsers.add_parser("down", help="destroy the lab's machines and everything they used")
    _add_common(down)
    down.set_defaults(func=_down)
    status = subparsers.add_parser("status", help="show each machine's state")
    _add_common(status)
    status.set_defaults(func=_status)
