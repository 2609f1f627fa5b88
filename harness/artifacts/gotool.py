"""Runs the go command for the gomod source and turns its failures into one-line UserErrors.

Only fetching modules touches the network (the Go module proxy), so only that step is retried,
with a deadline; compiling is never retried.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path

from tenacity import retry, retry_if_exception_type, stop_after_attempt, stop_after_delay, \
    wait_exponential

from harness.errors import UserError

# Where Debian's golang-go and the upstream tarball put go, in case PATH lacks them.
GO_FALLBACKS = ("/usr/local/go/bin/go", "/usr/lib/go/bin/go")
NETWORK_MARKERS = ("dial tcp", "no such host", "connection refused", "i/o timeout",
                   "TLS handshake timeout", "proxyconnect", "network is unreachable",
                   "connection reset by peer", "502 Bad Gateway", "503 Service Unavailable",
                   "504 Gateway Timeout")
TAIL_LINES = 8


class ProxyUnreachable(UserError):
    pass


def find_go() -> str:
    found = shutil.which("go") or next((p for p in GO_FALLBACKS if os.access(p, os.X_OK)), None)
    if not found:
        raise UserError("Go toolchain missing: no `go` on PATH or in /usr/local/go/bin; "
                        "install Go 1.25 or newer (see docs/artifacts.md)")
    return found


def go_version(go: str) -> str:
    try:
        out = subprocess.run([go, "version"], capture_output=True, text=True, timeout=60)
    except OSError as exc:
        raise UserError(f"Go toolchain missing: `{go} version` failed: {exc}") from None
    return out.stdout.strip()


def tail(text: str, lines: int = TAIL_LINES) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept)


class GoRunner:
    """Runs go commands in one working directory, appending all output to a log file."""

    # Fetch retries: tries and the longest pause between them (tests make these small).
    network_attempts = 4
    network_wait_max_s = 30.0

    def __init__(self, go: str, workdir: Path, log_path: Path, env: dict[str, str],
                 children: "Children | None" = None):
        self.go = go
        self.workdir = workdir
        self.log_path = log_path
        self.env = env
        self.children = children  # background work: its go processes can be stopped together

    def run(self, args: list[str], what: str) -> str:
        """Runs `go args`; on failure raises UserError naming `what`, the command and go's tail."""
        command = shlex.join([Path(self.go).name, *args])
        started = time.monotonic()
        spawn = self.children.start if self.children else subprocess.Popen
        with spawn([self.go, *args], cwd=self.workdir, env=self.env, stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT, text=True) as proc:
            output, _ = proc.communicate()
        with open(self.log_path, "a") as log:
            log.write(f"$ {command}\n{output}\n# exit {proc.returncode} after "
                      f"{time.monotonic() - started:.1f}s\n")
        if proc.returncode == 0:
            return output
        if any(marker in output for marker in NETWORK_MARKERS):
            proxy = self.env.get("GOPROXY") or "the default GOPROXY"
            raise ProxyUnreachable(f"{what}: Go module proxy unreachable ({proxy}) during "
                                   f"`{command}`: {tail(output, 3)}")
        raise UserError(f"{what}: `{command}` failed (exit {proc.returncode}; log "
                        f"{self.log_path}): {tail(output)}")

    def run_network(self, args: list[str], what: str, deadline_s: float = 600) -> str:
        """Like run, but retried while the proxy looks unreachable, until the deadline."""
        retrying = retry(retry=retry_if_exception_type(ProxyUnreachable),
                         stop=stop_after_attempt(self.network_attempts)
                         | stop_after_delay(deadline_s),
                         wait=wait_exponential(multiplier=2, max=self.network_wait_max_s),
                         reraise=True)
        return retrying(self.run)(args, what)


class Children:
    """The go processes of work nobody waits for (harness.artifacts.prefetch): stop() ends the
    running ones and refuses new ones, so a build that fails or is interrupted leaves none."""

    def __init__(self):
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self.stopped = False

    def start(self, argv: list[str], **kwargs) -> subprocess.Popen:
        with self._lock:
            if self.stopped:
                raise UserError(f"`{shlex.join(argv)}` not started: the background work was stopped")
            proc = subprocess.Popen(argv, **kwargs)
            self._procs.add(proc)
            return proc

    def stop(self) -> None:
        with self._lock:
            self.stopped = True
            running = [proc for proc in self._procs if proc.poll() is None]
        for proc in running:
            proc.terminate()


def go_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # Static, self-contained binaries: the nodes need no libc of a matching version.
    env["CGO_ENABLED"] = "0"
    # A go.work in some parent directory must not pull the wrapper into a workspace.
    env["GOWORK"] = "off"
    env.setdefault("GOFLAGS", "")
    # The wrapper go.mod is generated; let go record the module graph it resolves.
    env["GOFLAGS"] = (env["GOFLAGS"] + " -mod=mod").strip()
    # No DWARF from the compiler: the linker drops it anyway (-ldflags -s -w), and making it is
    # about a tenth of a cold compile (registry: 170 s with it, 152 s without, two runs each,
    # 2026-11-29). The machine code is the same. A caller's own -gcflags is left alone.
    if "-gcflags" not in env["GOFLAGS"]:
        env["GOFLAGS"] += " -gcflags=all=-dwarf=false"
    env.update(extra or {})
    return env
