"""The few things every step does on a machine, each idempotent: check, then act.

- put files and binaries in place only when their bytes or mode differ;
- enable and start units, restarting only what changed;
- wait for health with a deadline (tenacity), naming what was awaited;
- turn any failure into a StepError naming the step, the machine, the command and the tail of
  the unit's journal.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import posixpath
import secrets
import shlex
import shutil
import threading
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, TypeVar

import tenacity

from harness.errors import StepError
from harness.lab import Machine
from harness.render import RenderedFile
from harness.steps.context import StepContext

T = TypeVar("T")
BIN_DIR = "/usr/local/bin"


class NotYet(Exception):
    """Raised by a wait's probe: the awaited state is not there yet (the message says why)."""


def journal_tail(ctx: StepContext, machine: Machine, unit: str, lines: int = 25) -> str:
    try:
        result = ctx.on(machine).run(f"journalctl -u {shlex.quote(unit)} -n {lines} --no-pager -o cat",
                                     check=False, timeout=30)
        return result.stdout.strip()
    except Exception as exc:  # noqa: BLE001 - the journal is a courtesy; never mask the failure
        return f"(journal unavailable: {exc})"


def run(ctx: StepContext, step: str, machine: Machine, command: str, *, unit: str | None = None,
        timeout: float = 300.0, check: bool = True):
    """Run a command; on failure raise a StepError with the unit's journal tail."""
    from harness.transport import CommandFailed

    try:
        return ctx.on(machine).run(command, check=check, timeout=timeout)
    except CommandFailed as exc:
        r = exc.result
        detail = f"exit {r.exit_status}: {(r.stderr or r.stdout).strip()[-600:]}"
        raise StepError(step, machine.name, command, detail,
                        journal_tail(ctx, machine, unit) if unit else "") from None


# A binary's digest, kept beside the inode, size and mtime it was taken from: a re-run reads it
# instead of hashing 100 MB binaries on every machine again (5-6 s per master on this host).
STAMP_DIR = "/var/lib/k8s-ha-lab/stamps"
# What a stamp was taken from, as `stat -c` prints it; a stamp file holds `<sha256> <this>`.
STAMP_KEY = "%i %s %Y"


def stamp_path(path: str) -> str:
    """Where a binary's stamp lives (the shell below computes the same name with `tr / _`)."""
    return f"{STAMP_DIR}/{path.replace('/', '_')}"


def remote_state_script(paths: Iterable[str], stamped: bool = False) -> str:
    """Shell printing `<sha256> <octal mode> <path>` per existing path. Stamped: the digest comes
    from the path's stamp while the file's inode, size and mtime are those the stamp was taken
    from (every install renames a new file into place, so it has a new inode); else it is hashed
    and the stamp rewritten."""
    quoted = " ".join(shlex.quote(p) for p in paths)
    if not stamped:
        return (f"for p in {quoted}; do [ -f \"$p\" ] && "
                "echo \"$(sha256sum < \"$p\" | cut -d' ' -f1) $(stat -c %a \"$p\") $p\"; done; true")
    stamps = shlex.quote(STAMP_DIR)
    return (f"mkdir -p {stamps}; for p in {quoted}; do [ -f \"$p\" ] || continue; "
            f"s={stamps}/$(printf %s \"$p\" | tr / _); k=\"$(stat -c '{STAMP_KEY}' \"$p\")\"; "
            "d=; [ -f \"$s\" ] && [ \"$(cut -d' ' -f2- \"$s\")\" = \"$k\" ] && d=$(cut -d' ' -f1 \"$s\"); "
            "if [ -z \"$d\" ]; then d=$(sha256sum < \"$p\" | cut -d' ' -f1); echo \"$d $k\" > \"$s\"; fi; "
            "echo \"$d $(stat -c %a \"$p\") $p\"; done; true")


def _remote_state(ctx: StepContext, step: str, machine: Machine, paths: Iterable[str],
                  stamped: bool = False) -> dict[str, tuple[str, str]]:
    """path -> (sha256, octal mode) for the paths that exist on the machine: from the facts the
    runner read before the step when they cover every path, else in one round trip."""
    paths = list(paths)
    facts = ctx.facts_on(step, machine)
    known = facts.state(paths) if facts else None
    if known is not None:
        return known
    script = remote_state_script(paths, stamped)
    state = {}
    for line in filter(None, run(ctx, step, machine, script).stdout.splitlines()):
        digest, mode, path = line.split(" ", 2)
        state[path] = (digest, mode)
    return state


def sync_files(ctx: StepContext, step: str, machine: Machine,
               files: list[RenderedFile] | None = None) -> list[str]:
    """Upload the step's rendered files that differ on the machine; return the changed paths."""
    files = ctx.files_for(step, machine) if files is None else files
    if not files:
        return []
    remote = _remote_state(ctx, step, machine, [f.path for f in files])
    changed = []
    for f in files:
        want = (hashlib.sha256(f.content).hexdigest(), f"{f.mode:o}")
        if remote.get(f.path) != want:
            _forget(ctx, step, machine, f.path)
            ctx.on(machine).upload(f.path, f.content, f.mode)
            ctx.changed(step, f"{machine.name}:{f.path}")
            changed.append(f.path)
    return changed


@lru_cache(maxsize=None)
def _local_sha256(path: Path, size: int, mtime: float) -> str:
    """The digest of a cached binary, kept beside it in `<name>.sha256` with the size and mtime
    it was taken from: every run would otherwise hash some 400 MB again (about 1 s per step on
    this host). A cache that cannot be written only costs the hashing."""
    sidecar = path.with_name(path.name + ".sha256")
    key = f"{size} {mtime!r}"
    try:
        digest, _, stamped = sidecar.read_text().strip().partition(" ")
        if stamped == key and len(digest) == 64:
            return digest
    except OSError:
        pass
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    try:
        sidecar.write_text(f"{digest.hexdigest()} {key}\n")
    except OSError:
        pass
    return digest.hexdigest()


def _forget(ctx: StepContext, step: str, machine: Machine, path: str) -> None:
    facts = ctx.facts_on(step, machine)
    if facts:
        facts.forget(path)


def compressed(path: Path) -> Path | None:
    """`gzip -1` of a cached binary, kept beside it as `<name>.gz` with the binary's mtime (so a
    rebuilt binary makes a new one); None when the cache cannot be written. A Go binary shrinks to
    about a third: on 2 shared cores, SSH's encryption of the bytes costs more than gunzip on the
    machine (issue 14: the masters' 230 MB went from 12.1 s to 7.8 s, gunzip included)."""
    sidecar = path.with_name(path.name + ".gz")
    mtime = path.stat().st_mtime_ns
    with _COMPRESSING:   # three masters ask for the same binary at once: one gzip, not three
        return _fresh_sidecar(path, sidecar, mtime)


_COMPRESSING = threading.Lock()


def _fresh_sidecar(path: Path, sidecar: Path, mtime: int) -> Path | None:
    try:
        if sidecar.stat().st_mtime_ns == mtime:
            return sidecar
    except OSError:
        pass
    partial = sidecar.with_name(f"{sidecar.name}.{secrets.token_hex(4)}.partial")
    try:
        with open(path, "rb") as source, gzip.open(partial, "wb", compresslevel=1) as target:
            shutil.copyfileobj(source, target, 1 << 20)
        os.utime(partial, ns=(mtime, mtime))
        partial.replace(sidecar)
        return sidecar
    except OSError:
        partial.unlink(missing_ok=True)
        return None


def push_file(ctx: StepContext, machine: Machine, local: Path, remote: str, mode: int = 0o755,
              digest: str = "", compress: bool = False) -> None:
    """Copy a (large) local file by SFTP into the login's home folder (root's, or the user's
    of an existing machine, who may not write /usr/local/bin), then move it beside the target
    and rename it into place as root: never half-written, whoever logs in. With its `digest`,
    the file's stamp is written too, so the next run need not hash it on the machine. With
    `compress`, its gzip travels and the machine unpacks it (gzip checks its own CRC)."""
    transport = ctx.on(machine)
    partial = f"{remote}.k8s-ha-lab-partial"
    packed = compressed(local) if compress else None
    with transport.sftp() as sftp:
        staged = posixpath.join(sftp.normalize("."), f".k8s-ha-lab-upload-{secrets.token_hex(8)}")
        sftp.put(str(packed or local), staged)
    quoted = {name: shlex.quote(value) for name, value in
              (("parent", posixpath.dirname(remote)), ("staged", staged), ("partial", partial), ("remote", remote))}
    stamp = (f" && mkdir -p {STAMP_DIR} && echo \"{digest} $(stat -c '{STAMP_KEY}' {quoted['remote']})\" > "
             f"{shlex.quote(stamp_path(remote))}") if digest else ""
    place = (f"gunzip -c {quoted['staged']} > {quoted['partial']} && rm -f {quoted['staged']}" if packed
             else f"mv -f {quoted['staged']} {quoted['partial']}")
    try:
        transport.run(f"mkdir -p {quoted['parent']} && {place} && "
                      f"chown root:root {quoted['partial']} && chmod {mode:04o} {quoted['partial']} && "
                      f"mv -f {quoted['partial']} {quoted['remote']}{stamp}")
    except BaseException:
        transport.run(f"rm -f {quoted['staged']} {quoted['partial']}", check=False, timeout=30)
        raise


def install_binaries(ctx: StepContext, step: str, machine: Machine, names: list[str]) -> list[str]:
    """The pinned binaries in /usr/local/bin, uploaded only when their bytes differ; the names
    of those uploaded."""
    locals_ = {name: ctx.binary(name) for name in names}
    remote = _remote_state(ctx, step, machine, [f"{BIN_DIR}/{n}" for n in names], stamped=True)
    changed = []
    for name, local in locals_.items():
        st = local.stat()
        want = (_local_sha256(local, st.st_size, st.st_mtime), "755")
        if remote.get(f"{BIN_DIR}/{name}") != want:
            _forget(ctx, step, machine, f"{BIN_DIR}/{name}")
            push_file(ctx, machine, local, f"{BIN_DIR}/{name}", digest=want[0], compress=True)
            ctx.changed(step, f"{machine.name}:{BIN_DIR}/{name}")
            changed.append(name)
    return changed


def start_units(ctx: StepContext, step: str, machine: Machine, units: list[str], *,
                restart: bool, reload: bool = True, no_block: bool = False) -> None:
    """Enable and start units. `restart` when their config changed; otherwise `start` is a
    no-op on a running unit, which keeps a re-run from disturbing anything."""
    facts = ctx.facts_on(step, machine)
    if reload and (facts is None or facts.reload_needed(units)):
        run(ctx, step, machine, "systemctl daemon-reload")
    verb = "restart" if restart else "start"
    flags = " --no-block" if no_block else ""
    for unit in units:
        if not restart and facts and facts.running(unit):
            continue    # enabled and active when the step began: `enable && start` would do nothing
        run(ctx, step, machine, f"systemctl enable --quiet {unit} && systemctl{flags} {verb} {unit}",
            unit=unit, timeout=180)
        if restart:
            ctx.changed(step, f"{machine.name}:restart {unit}")


def wait_until(ctx: StepContext, step: str, machine: Machine, what: str, probe: Callable[[], T], *,
               timeout: float = 120.0, interval: float = 2.0, unit: str | None = None,
               command: str = "") -> T:
    """Call `probe` until it returns without NotYet, or fail at the deadline naming `what`."""
    last: list[str] = ["never checked"]

    def attempt() -> T:
        try:
            return probe()
        except NotYet as exc:
            last[0] = str(exc)
            raise

    retrying = tenacity.Retrying(stop=tenacity.stop_after_delay(timeout),
                                 wait=tenacity.wait_fixed(interval),
                                 retry=tenacity.retry_if_exception_type(NotYet), reraise=False)
    try:
        return retrying(attempt)
    except tenacity.RetryError:
        journal = journal_tail(ctx, machine, unit) if unit else ""
        raise StepError(step, machine.name, command or what,
                        f"timed out after {timeout:.0f}s waiting for {what}: {last[0]}", journal) from None


def unit_is_active(ctx: StepContext, step: str, machine: Machine, unit: str) -> None:
    state = run(ctx, step, machine, f"systemctl is-active {unit}", check=False).stdout.strip()
    if state != "active":
        raise NotYet(f"{unit} is {state}")


KUBECONFIG = "/root/.kube/config"


def kubectl(ctx: StepContext, step: str, args: str, *, machine: Machine | None = None,
            local: bool = False, check: bool = True, timeout: float = 60.0):
    """kubectl with the admin kubeconfig on a master. `local` talks to that master's own
    apiserver (before the VIP exists); otherwise it goes through MASTER_URL like a user."""
    machine = machine or ctx.lab.masters[0]
    server = f" --server=https://127.0.0.1:{ctx.lab.api_port}" if local else ""
    return run(ctx, step, machine, f"{BIN_DIR}/kubectl --kubeconfig={KUBECONFIG}{server} {args}",
               unit="kube-apiserver" if local else None, timeout=timeout, check=check)


def etcdctl(ctx: StepContext, step: str, machine: Machine, args: str, *, check: bool = True,
            endpoints: str | None = None):
    """etcdctl over mTLS with the member's own certificate, as the guide runs it."""
    endpoints = endpoints or f"https://{machine.ip}:2379"
    command = (f"{BIN_DIR}/etcdctl --endpoints={endpoints} "
               "--cacert=/etc/kubernetes/ssl/ca.pem --cert=/etc/etcd/ssl/etcd.pem "
               f"--key=/etc/etcd/ssl/etcd-key.pem {args}")
    return run(ctx, step, machine, command, unit="etcd", check=check, timeout=60)


def kubectl_apply(ctx: StepContext, step: str, manifest: str) -> bool:
    """`kubectl apply -f` a manifest already on the first master, only when the live objects
    differ from it; True when it applied. `kubectl diff` (a server-side dry run) decides: apply's
    own "configured" is not to be trusted (it says so for an unchanged PodDisruptionBudget)."""
    diff = kubectl(ctx, step, f"diff -f {shlex.quote(manifest)}", check=False)
    if diff.exit_status == 0:
        return False
    out = kubectl(ctx, step, f"apply -f {shlex.quote(manifest)}")
    changed = [line for line in out.stdout.splitlines() if line.strip() and not line.endswith("unchanged")]
    ctx.changed(step, f"applied {manifest}: {', '.join(changed) or 'no object reported a change'}")
    return True


def wait_deployment(ctx: StepContext, step: str, namespace: str, name: str, *,
                    timeout: float = 240.0) -> int:
    """Until every replica of the Deployment's current revision is updated and available;
    returns how many replicas it has."""
    import json

    def rolled_out():
        dep = json.loads(kubectl(ctx, step, f"-n {namespace} get deployment {name} -o json").stdout)
        want, status = dep["spec"].get("replicas", 1), dep.get("status", {})
        if status.get("observedGeneration", 0) < dep["metadata"]["generation"]:
            raise NotYet(f"{name}: the controller has not seen generation {dep['metadata']['generation']}")
        got = {k: status.get(k, 0) for k in ("updatedReplicas", "availableReplicas", "replicas")}
        if got["updatedReplicas"] != want or got["availableReplicas"] != want or got["replicas"] != want:
            raise NotYet(f"{name}: {got}, want {want} of each")
        return want
    return wait_until(ctx, step, ctx.lab.masters[0], f"deployment {namespace}/{name} rolled out", rolled_out,
               timeout=timeout, interval=3, command=f"kubectl -n {namespace} get deployment {name}")
