"""Wall time of the conformance suite (whole, or the CI subset) and the lab's peak memory.

    python benchmarks/conformance_bench.py labs/small.yaml --suite ci --parallel 2
    python benchmarks/conformance_bench.py labs/small.yaml --suite full --parallel 3

The lab must be up (`python -m harness up LAB --keep`). Runs `python -m harness conformance`
with the focus and --parallel given, while sampling each machine's memory every 10 s: the
machine's memory cgroup (usage minus inactive file cache, as `docker stats` counts it) for
systemd containers, /proc/meminfo (MemTotal - MemAvailable) on a VM. Prints one line and
appends it as JSON to artifacts/bench-conformance-<time>.json. Figures, not asserts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MEMORY_SCRIPT = r"""
cg=/sys/fs/cgroup/memory
if [ -r $cg/memory.usage_in_bytes ] && grep -qa container= /proc/1/environ 2>/dev/null; then
  u=$(cat $cg/memory.usage_in_bytes); i=$(awk '/^total_inactive_file /{print $2}' $cg/memory.stat)
  echo $((u - ${i:-0}))
else
  awk '/^MemTotal:/{t=$2} /^MemAvailable:/{a=$2} END{print (t-a)*1024}' /proc/meminfo
fi
"""


def sample_memory(ctx) -> int:
    total = 0
    for machine in ctx.lab.machines:
        try:
            out = ctx.on(machine).run(MEMORY_SCRIPT, check=False, timeout=30).stdout.strip()
            total += int(out.splitlines()[-1])
        except (ValueError, IndexError, OSError):
            pass
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lab", type=Path)
    parser.add_argument("--suite", choices=("ci", "full"), default="ci")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--timeout", default="24h", help="ginkgo's suite timeout, e.g. 75m")
    args = parser.parse_args()

    from harness.labfile import load_lab
    from harness.steps.context import build_context

    lab = load_lab(args.lab)
    ctx = build_context(lab)
    peak = [0]
    stop = threading.Event()

    def sampler():
        while True:
            peak[0] = max(peak[0], sample_memory(ctx))
            if stop.wait(10):
                return
    thread = threading.Thread(target=sampler, daemon=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = REPO / "artifacts" / f"bench-conformance-{stamp}"
    focus = "ci" if args.suite == "ci" else r"\[Conformance\]"
    command = [sys.executable, "-m", "harness", "conformance", str(args.lab), "--focus", focus,
               "--parallel", str(args.parallel), "--timeout", args.timeout,
               "--out", str(out_dir / "conformance")]
    thread.start()
    started = time.monotonic()
    summary = "no summary"
    # the command's own progress lines go through as they come
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    for line in proc.stdout:
        print(line, end="", flush=True)
        if line.rstrip().endswith(" failed") and "passed" in line and "done" not in line:
            summary = line.strip()
    proc.wait()
    seconds = time.monotonic() - started
    stop.set()
    thread.join(timeout=60)
    ctx.close()
    result = {"lab": lab.name, "suite": args.suite, "parallel": args.parallel,
              "wall_s": round(seconds, 1), "peak_memory_mib": round(peak[0] / 2**20),
              "summary": summary, "exit": proc.returncode, "out": str(out_dir)}
    out_dir.mkdir(parents=True, exist_ok=True)
    (REPO / "artifacts" / f"bench-conformance-{stamp}.json").write_text(json.dumps(result) + "\n")
    print(f"conformance {args.suite} on {lab.name}: {seconds / 60:.1f} min with --parallel "
          f"{args.parallel}, lab peak memory {peak[0] / 2**30:.2f} GiB, {summary}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
