"""Guide §2: three etcd members with TLS on the peer and client ports."""

from __future__ import annotations

from harness.steps.actions import (NotYet, etcdctl, install_binaries, run, start_units, sync_files,
                                   wait_until)
from harness.steps.context import StepContext
from harness.steps.parallel import for_each

NAME = "etcd"


def run_step(ctx: StepContext) -> None:
    members = ctx.lab.etcd_members

    def install(m) -> bool:
        changed = install_binaries(ctx, NAME, m, ["etcd"]) + sync_files(ctx, NAME, m)
        # The client tools (etcdutl restores snapshots since v3.6): a new one needs no restart.
        install_binaries(ctx, NAME, m, ["etcdctl", "etcdutl"])
        run(ctx, NAME, m, "install -d -m 0700 /var/lib/etcd")
        return bool(changed)
    restart = for_each(ctx, NAME, members, install, "binaries and files")
    # A new member blocks in `systemctl start` until it has a quorum, so start all at once.
    for m in members:
        start_units(ctx, NAME, m, ["etcd"], restart=restart[m.name], no_block=True)
    def healthy(m):
        def probe():
            out = etcdctl(ctx, NAME, m, "endpoint health", check=False)
            if "is healthy" not in out.stdout + out.stderr:
                raise NotYet((out.stdout + out.stderr).strip()[-300:] or "no answer")
        wait_until(ctx, NAME, m, f"etcd on {m.name} to report healthy", probe, timeout=180,
                   interval=1, unit="etcd", command="etcdctl endpoint health")
    for_each(ctx, NAME, members, healthy, "healthy")
    first = members[0]

    def all_members():
        out = etcdctl(ctx, NAME, first, "member list -w simple").stdout
        started = [line for line in out.splitlines() if ", started," in line]
        if len(started) != len(members):
            raise NotYet(f"{len(started)} of {len(members)} members started")
    wait_until(ctx, NAME, first, "every member to be listed as started", all_members, timeout=60,
               unit="etcd", command="etcdctl member list")
