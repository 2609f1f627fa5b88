"""`conformance LAB`: Kubernetes' [Conformance] suite against a running lab;
`conformance-artifacts build`: only e2e.test, ginkgo and the suite's images, no lab.

register(subparsers) adds both to the harness CLI.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from harness.conformance import runner


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "conformance", help="run Kubernetes' [Conformance] e2e suite against a running lab",
        description="Builds (if missing) e2e.test, ginkgo and the suite's images, imports the "
                    "images into every node's containerd, then runs ginkgo + e2e.test from the "
                    "host through MASTER_URL on the VIP. Output: artifacts/<run>/conformance/.")
    p.add_argument("lab", type=Path, help="lab file, e.g. labs/small.yaml")
    p.add_argument("--focus", default=runner.CONFORMANCE_FOCUS,
                   help=r"ginkgo focus regex (default: \[Conformance\]); 'ci' = the CI subset")
    p.add_argument("--skip", default=None, help="extra skip regex (skips.yaml always applies)")
    p.add_argument("--parallel", type=int, default=1, metavar="N", help="ginkgo processes")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default artifacts/conformance-<time>/conformance)")
    p.add_argument("--timeout", default="24h", help="ginkgo suite timeout (default 24h)")
    p.set_defaults(func=cmd_conformance, needs_running_lab=True)

    a = subparsers.add_parser(
        "conformance-artifacts", help="build e2e.test, ginkgo and the conformance images",
        description="Only what is missing from the artifact cache; no lab needed.")
    a.add_argument("action", choices=("build",))
    a.add_argument("--force", action="store_true", help="rebuild even if cached")
    a.set_defaults(func=cmd_artifacts)


def cmd_artifacts(args) -> int:
    from harness import conformance
    from harness.versions import load_versions

    started = time.monotonic()
    built = conformance.artifacts(load_versions(), force=args.force)
    print(f"conformance artifacts: e2e.test, ginkgo, {len(built.archives)} images "
          f"({time.monotonic() - started:.1f}s)")
    return 0


def cmd_conformance(args) -> int:
    from harness import conformance
    from harness.labfile import load_lab
    from harness.steps.context import build_context

    lab = load_lab(args.lab)
    focus = runner.CI_FOCUS if args.focus == "ci" else args.focus
    out = args.out or Path("artifacts") / f"conformance-{time.strftime('%Y%m%d-%H%M%S')}" / "conformance"
    built = conformance.artifacts(lab.versions)
    ctx = build_context(lab)
    try:
        conformance.prepare(ctx, built)
        outcome = conformance.run(ctx, built, out, runner.RunConfig(
            focus=focus, skip=args.skip, parallel=args.parallel, timeout=args.timeout))
    finally:
        ctx.close()
    return 0 if outcome.failed == 0 and outcome.passed > 0 else 1
