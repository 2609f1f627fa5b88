"""`python -m harness.artifacts ...`: the artifacts CLI on its own, same as `python -m harness
artifacts ...` once that entry point registers it."""

from __future__ import annotations

import argparse
import sys

from harness.artifacts.cli import register
from harness.errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.artifacts")
    register(parser.add_subparsers(dest="command", required=True))
    # Accept both `build` and `artifacts build`, so scripts can call either entry point.
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "artifacts":
        argv.insert(0, "artifacts")
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status


if __name__ == "__main__":
    sys.exit(main())
