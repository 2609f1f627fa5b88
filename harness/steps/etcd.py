"""Guide §2: three etcd members with TLS on the peer and client ports."""

from __future__ import annotations

from harness.steps.actions import (NotYet, etcdctl, install_binaries, run, start_units, sync_files,
                                   wait_until)
from harness.steps.context import StepContext

NAME = "etcd"


def run_step(ctx: StepContext) -> None:
    members = ctx.lab.etcd_members
    restart = {}
    for m in members:
        changed = install_binaries(ctx, NAME, m, ["etcd", "etcdctl"]) + sync_files(ctx, NAME, m)
        run(ctx, NAME, m, "install -d -m 0700 /var/lib/etcd")
        restart[m.name] = bool(changed)
    # A new member blocks in `systemctl start` until it has a quorum, so start all at once.
    for m in members:
        start_units(ctx, NAME, m, ["etcd"], restart=restart[m.name], no_block=True)
    for m in members:
        def healthy(m=m):
            out = etcdctl(ctx, NAME, m, "endpoint health", check=False)
            if "is healthy" not in out.stdout + out.stderr:
                raise NotYet((out.stdout + out.stderr).strip()[-300:] or "no answer")
        wait_until(ctx, NAME, m, f"etcd on {m.name} to report healthy", healthy, timeout=180,
                   unit="etcd", command="etcdctl endpoint health")
    first = members[0]

    def all_members():
        out = etcdctl(ctx, NAME, first, "member list -w simple").stdout
        started = [line for line in out.splitlines() if ", started," in line]
        if len(started) != len(members):
            raise NotYet(f"{len(started)} of {len(members)} members started")
    wait_until(ctx, NAME, first, "every member to be listed as started", all_members, timeout=60,
               unit="etcd", command="etcdctl member list")
