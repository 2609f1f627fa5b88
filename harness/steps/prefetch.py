"""The control plane's and the nodes' binaries, on their way while etcd and flannel start.

A cold bring-up spends about 10 s of the masters step copying kube-apiserver, the controller
manager and the scheduler (some 230 MB per master) and more in the nodes step, while the steps
before them mostly wait for etcd and flanneld to start. So, once `hosts` has run, one thread per
machine copies the binaries that later steps install into a staging folder on the machine
(issue 14: independent work overlaps where the guide's order allows it).

Nothing is installed early: the step that owns a binary still decides whether it changed, puts
it in place (a rename of the staged copy instead of an upload) and restarts what it feeds, in the
guide's order. A staged copy that is missing, late or failed only means the step uploads as
before. `--serial` does none of this.
"""

from __future__ import annotations

import logging
import shlex
import threading
from concurrent.futures import Future

from harness.lab import Machine
from harness.steps.context import StepContext

log = logging.getLogger(__name__)
STAGING_DIR = "/var/lib/k8s-ha-lab/staged"
TAKE_TIMEOUT_S = 300      # a step waits this long at most for a copy on its way, then uploads itself


def wanted(machine: Machine) -> list[str]:
    """The binaries later steps install on this machine, in the order they need them."""
    from harness.steps import kubectl, masters, nodes

    names = [*kubectl.BINARIES, *masters.BINARIES] if machine.has("master") else []
    return names + (list(nodes.BINARIES) if machine.has("node") else [])


def staged_path(name: str) -> str:
    return f"{STAGING_DIR}/{name}"


class Prefetch:
    """(machine, binary) -> a Future that is True once the staged copy holds the binary's
    pinned bytes, False when there was nothing to stage (it is already installed) or it failed."""

    def __init__(self, ctx: StepContext):
        self.ctx, self.futures, self.threads = ctx, {}, []
        self.stopping = threading.Event()

    def start(self) -> "Prefetch":
        for m in self.ctx.lab.machines:
            names = wanted(m)
            if not names:
                continue
            mine = {name: Future() for name in names}
            self.futures.update({(m.name, name): f for name, f in mine.items()})
            thread = threading.Thread(target=self._stage, args=(m, mine), daemon=True,
                                      name=f"prefetch-{m.name}")
            thread.start()
            self.threads.append(thread)
        return self

    def _stage(self, machine: Machine, mine: dict[str, Future]) -> None:
        from harness.steps.actions import BIN_DIR, _local_sha256, push_file, remote_state_script

        try:
            script = remote_state_script([f"{BIN_DIR}/{n}" for n in mine], stamped=True)
            have = {line.split(" ", 2)[2]: line.split(" ", 1)[0]
                    for line in self.ctx.on(machine).run(script).stdout.splitlines() if line.strip()}
        except Exception as exc:  # noqa: BLE001 - the steps upload as before
            log.info("prefetch on %s: %s", machine.name, exc)
            have = None
        for name, future in mine.items():
            if have is None or self.stopping.is_set():
                future.set_result(False)
                continue
            try:
                local = self.ctx.binary(name)
                st = local.stat()
                digest = _local_sha256(local, st.st_size, st.st_mtime)
                if have.get(f"{BIN_DIR}/{name}") == digest:
                    future.set_result(False)            # installed already: nothing to stage
                    continue
                push_file(self.ctx, machine, local, staged_path(name), digest=digest)
                future.set_result(True)
            except Exception as exc:  # noqa: BLE001 - the step uploads it itself
                log.info("prefetch of %s on %s: %s", name, machine.name, exc)
                future.set_result(False)

    def take(self, machine: Machine, name: str) -> bool:
        """Put the staged copy of `name` in place on the machine, if there is one; True if so.
        Waits for a copy still on its way: it would take as long to upload it again."""
        from harness.steps.actions import BIN_DIR, stamp_path

        future = self.futures.pop((machine.name, name), None)
        try:
            if future is None or not future.result(timeout=TAKE_TIMEOUT_S):
                return False
        except TimeoutError:
            return False
        target, staged = f"{BIN_DIR}/{name}", staged_path(name)
        q = {k: shlex.quote(v) for k, v in (("staged", staged), ("partial", f"{target}.k8s-ha-lab-partial"),
                                            ("target", target), ("from", stamp_path(staged)),
                                            ("to", stamp_path(target)))}
        result = self.ctx.on(machine).run(
            f"mv -f {q['staged']} {q['partial']} && mv -f {q['partial']} {q['target']} && "
            f"{{ mv -f {q['from']} {q['to']} 2>/dev/null; true; }}", check=False)
        return result.exit_status == 0

    def close(self) -> None:
        """Stop staging more; the copy in progress ends on its own (or with the connection,
        after Ctrl-C). What is left staged goes with `down` (the folder is the harness's)."""
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)


def after_step(ctx: StepContext, step: str) -> None:
    """Staging starts once `hosts` has run (the machines answer, the harness's folder exists)
    and ends after `nodes`, the last step that installs what it staged."""
    if step == "hosts" and ctx.prefetch is None and ctx.prefetch_wanted and not ctx.serial:
        ctx.prefetch = Prefetch(ctx).start()
    elif step == "nodes":
        stop(ctx)


def stop(ctx: StepContext) -> None:
    if ctx.prefetch is not None:
        ctx.prefetch.close()
        ctx.prefetch = None
