"""How long the machines take and what they cost: run it, read the table.

    python benchmarks/machines_bench.py [--lab labs/seed.yaml] [--cold] [--idle 30] [--keep]

Measures the node image build (cold: every layer rebuilt including debootstrap, only with
--cold since it downloads ~150 MB from Debian's archive; from the debootstrap cache; fully
cached), bringing the lab's machines up from nothing, a second `up` (idempotent), the memory
the idle lab uses (from each container's memory cgroup and from `docker stats`), and `down`.
The lab is left down unless --keep.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import machines  # noqa: E402
from harness.image.build import build_image  # noqa: E402
from harness.image.recipe import node_recipe  # noqa: E402
from harness.labfile import load_lab  # noqa: E402
from harness.providers.docker import DockerProvider, container_name  # noqa: E402
from harness.state import lab_state_dir  # noqa: E402


def timed(action):
    started = time.monotonic()
    result = action()
    return time.monotonic() - started, result


def cgroup_memory_bytes(container: str) -> int:
    """The container's own memory cgroup (its cgroup namespace root), page cache included."""
    for path in ("/sys/fs/cgroup/memory/memory.usage_in_bytes", "/sys/fs/cgroup/memory.current"):
        proc = subprocess.run(["docker", "exec", container, "cat", path], capture_output=True, text=True)
        if proc.returncode == 0:
            return int(proc.stdout.strip())
    raise RuntimeError(f"{container}: no memory cgroup file readable")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", default="labs/seed.yaml")
    parser.add_argument("--cold", action="store_true", help="also time a full rebuild (debootstrap)")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds to let the lab settle")
    parser.add_argument("--keep", action="store_true", help="leave the lab up at the end")
    args = parser.parse_args()
    lab = load_lab(args.lab)
    recipe = node_recipe()
    rows: list[tuple[str, str]] = []

    if args.cold:
        seconds, result = timed(lambda: build_image(recipe, force=True))
        rows.append(("image build, cold (debootstrap+customize+import)", f"{seconds:.1f} s"))
    recipe.rootfs_tarball.unlink(missing_ok=True)
    subprocess.run(["docker", "rmi", recipe.tag], capture_output=True)
    seconds, result = timed(lambda: build_image(recipe))
    rows.append((f"image build from debootstrap cache ({'+'.join(result.steps)})", f"{seconds:.1f} s"))
    seconds, result = timed(lambda: build_image(recipe))
    rows.append(("image build, fully cached (tag exists)", f"{seconds:.2f} s"))

    machines.down(lab)
    seconds, states = timed(lambda: machines.up(lab, "docker"))
    rows.append((f"up: {len(lab.machines)} machines from nothing to systemd "
                 f"{'/'.join(sorted(set(states.values())))}", f"{seconds:.1f} s"))
    seconds, _ = timed(lambda: machines.up(lab, "docker"))
    rows.append(("up again on the running lab (idempotent)", f"{seconds:.1f} s"))

    time.sleep(args.idle)
    provider = DockerProvider(lab, lab_state_dir(lab))
    cgroup_total = sum(cgroup_memory_bytes(container_name(lab, m.name)) for m in lab.machines)
    stats_total = sum(provider.memory_usage_bytes().values())
    rows.append((f"idle lab memory, memory cgroups incl. page cache (after {args.idle:.0f} s)",
                 f"{cgroup_total / 2**20:.0f} MiB"))
    rows.append(("idle lab memory, docker stats (without page cache)", f"{stats_total / 2**20:.0f} MiB"))

    if not args.keep:
        seconds, _ = timed(lambda: machines.down(lab))
        rows.append(("down: destroy and clean up", f"{seconds:.1f} s"))

    width = max(len(name) for name, _ in rows)
    print(f"\nmachines benchmark, lab {lab.name} ({len(lab.machines)} machines), image {recipe.tag}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
