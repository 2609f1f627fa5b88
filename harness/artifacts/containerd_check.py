"""A private containerd on this host, to prove the image archives import and run with real runc.

It gets its own root, state and socket under a scratch directory and has the CRI plugin
disabled, so it never touches /run/containerd or the containerd that docker runs. Used by
`artifacts verify --runtime` and by scenarios/test_artifacts.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from harness.errors import UserError

NAMESPACE = "k8s.io"   # the namespace the kubelet's CRI uses, so imports land where it looks

CONFIG = """\
version = 2
root = "{dir}/root"
state = "{dir}/state"
# Only the plain containerd API: no kubelet talks to this instance.
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{dir}/containerd.sock"

[ttrpc]
  address = "{dir}/containerd.sock.ttrpc"
"""


def require_tools() -> None:
    missing = [t for t in ("containerd", "ctr", "runc", "containerd-shim-runc-v2", "ip")
               if not shutil.which(t)]
    if missing:
        raise UserError(f"containerd check needs {', '.join(missing)} (Debian packages "
                        f"containerd, runc, iproute2)")


class PrivateContainerd:
    def __init__(self, workdir: Path):
        self.dir = workdir
        self.socket = workdir / "containerd.sock"
        self.log = workdir / "containerd.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 30) -> None:
        config = self.dir / "config.toml"
        config.write_text(CONFIG.format(dir=self.dir))
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(["containerd", "--config", str(config)], stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise UserError(f"private containerd exited at start ({self.proc.returncode}); "
                                f"see {self.log}")
            if self.socket.exists() and self.ctr(["version"], check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise UserError(f"private containerd did not answer on {self.socket} within "
                        f"{timeout_s:.0f}s; see {self.log}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def ctr(self, args: list[str], check: bool = True, timeout: float = 120) \
            -> subprocess.CompletedProcess:
        command = ["ctr", "-a", str(self.socket), "-n", NAMESPACE, *args]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise UserError(f"`{' '.join(command)}` failed: "
                            f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
        return proc

    def import_archive(self, archive: Path) -> str:
        return self.ctr(["images", "import", str(archive)]).stdout

    def image_refs(self) -> list[str]:
        return self.ctr(["images", "ls", "-q"]).stdout.split()

    def run_detached(self, ref: str, container_id: str, netns: Path | None = None) -> None:
        args = ["run", "-d"]
        if netns:
            args += ["--with-ns", f"network:{netns}"]
        self.ctr([*args, ref, container_id])

    def task_status(self, container_id: str) -> str:
        for line in self.ctr(["task", "ls"]).stdout.splitlines()[1:]:
            parts = line.split()
            if parts and parts[0] == container_id:
                return parts[-1]
        return "MISSING"

    def stop_task(self, container_id: str, signal: str = "SIGTERM",
                  timeout_s: float = 15) -> int | None:
        """Signals the task, waits for it to stop; returns its exit status (None: unknown)."""
        self.ctr(["task", "kill", "-s", signal, container_id], check=False)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.task_status(container_id) == "RUNNING":
            time.sleep(0.2)
        graceful = self.task_status(container_id) != "RUNNING"
        if not graceful:
            # Ignored the signal: clean up anyway, and report that it did not stop by itself.
            self.ctr(["task", "kill", "-s", "SIGKILL", container_id], check=False)
            time.sleep(1)
        deleted = self.ctr(["task", "delete", container_id], check=False)
        self.ctr(["containers", "rm", container_id], check=False)
        if not graceful:
            return None
        # ctr only warns "task X exit with non-zero exit code N"; silence means status 0.
        match = re.search(r"non-zero exit code (\d+)", deleted.stderr + deleted.stdout)
        return int(match.group(1)) if match else 0


@contextmanager
def private_containerd(base: Path | None = None) -> Iterator[PrivateContainerd]:
    require_tools()
    workdir = Path(tempfile.mkdtemp(prefix="k8s-ha-lab-ctrd-", dir=base or "/tmp"))
    daemon = PrivateContainerd(workdir)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
        # Snapshots are overlay mounts owned by the daemon; after it stops they are unmounted.
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def network_namespace(name: str) -> Iterator[Path]:
    """A fresh netns with only loopback up: nginx can bind :80 without touching the host."""
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
                       check=True, capture_output=True)
        yield Path("/var/run/netns") / name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def http_get_in_netns(netns_name: str, url: str = "http://127.0.0.1/",
                      timeout_s: float = 20) -> str:
    """GETs url from inside the netns (loopback only), retrying until nginx is listening."""
    code = ("import sys,urllib.request;"
            "sys.stdout.write(urllib.request.urlopen(sys.argv[1],timeout=5).read().decode())")
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        proc = subprocess.run(["ip", "netns", "exec", netns_name, "python3", "-c", code, url],
                              capture_output=True, text=True)
        if proc.returncode == 0:
            return proc.stdout
        last = proc.stderr.strip().splitlines()[-1:] if proc.stderr else ""
        time.sleep(0.3)
    raise UserError(f"GET {url} in netns {netns_name} failed for {timeout_s:.0f}s: {last}")


def check_images_run(pause: tuple[str, Path], nginx: tuple[str, Path]) -> list[str]:
    """Imports both archives into a private containerd and runs them with runc.

    pause must stay up and exit 0 on SIGTERM; nginx must serve the welcome page. Returns one
    line per check passed; raises UserError on the first failure.
    """
    passed = []
    netns_name = f"k8s-ha-lab-art-{int(time.time())}"
    with private_containerd() as daemon:
        for ref, archive in (pause, nginx):
            daemon.import_archive(archive)
            if ref not in daemon.image_refs():
                raise UserError(f"ctr images import {archive} did not create {ref}")
            passed.append(f"imported {ref}")
        daemon.run_detached(pause[0], "art-pause")
        time.sleep(2)
        if daemon.task_status("art-pause") != "RUNNING":
            raise UserError(f"{pause[0]}: container did not stay up; see {daemon.log}")
        status = daemon.stop_task("art-pause", "SIGTERM")
        if status != 0:
            raise UserError(f"{pause[0]}: exit status {status} on SIGTERM, expected 0")
        passed.append(f"{pause[0]} stays up, exits 0 on SIGTERM")
        with network_namespace(netns_name) as netns:
            daemon.run_detached(nginx[0], "art-nginx", netns=netns)
            try:
                body = http_get_in_netns(netns_name)
            finally:
                daemon.stop_task("art-nginx", "SIGQUIT")
        if "Welcome to nginx!" not in body:
            raise UserError(f"{nginx[0]}: GET / did not return the welcome page: {body[:80]!r}")
        passed.append(f"{nginx[0]} serves 'Welcome to nginx!' on :80")
    return passed


# ---- the add-on images: coredns, metrics-server, toolbox ------------------------------------

# CoreDNS answers from its hosts plugin for lab.test and with whoami for anything else. The
# address in the answer is only data: nothing is ever sent to it.
PROBE_NAME = "probe.lab.test"
PROBE_ADDRESS = "127.0.0.42"
COREFILE = f"""\
lab.test:53 {{
    hosts {{
        {PROBE_ADDRESS} {PROBE_NAME}
    }}
    log
}}
.:53 {{
    whoami
    log
}}
"""
# The toolbox's own programs, run in the coredns container's netns with a resolv.conf pointing
# at it: BIND's dig, host and nslookup, glibc's getent (nsswitch "hosts: files dns"), busybox.
TOOLBOX_DNS_SCRIPT = f"""\
for i in $(seq 1 100); do
    dig +time=1 +tries=1 @127.0.0.1 {PROBE_NAME} >/dev/null && break; sleep 0.2
done
echo "dig: $(dig +short @127.0.0.1 {PROBE_NAME} A)"
echo "host: $(host -t A {PROBE_NAME} 127.0.0.1 | grep 'has address')"
echo "nslookup: $(nslookup {PROBE_NAME} 127.0.0.1 | grep -A1 '^Name:' | tail -n 1)"
echo "getent: $(getent hosts {PROBE_NAME})"
echo "whoami: $(dig +noall +additional @127.0.0.1 anything.example | tr '\\n' ' ')"
mkdir -p /tmp/www/cgi-bin
printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho "cgi $((6 * 7))"\\n' \\
    >/tmp/www/cgi-bin/burn
chmod 755 /tmp/www/cgi-bin/burn
httpd -p 127.0.0.1:8080 -h /tmp/www
echo "cgi: $(wget -q -O - http://127.0.0.1:8080/cgi-bin/burn)"
"""
TOOLBOX_TOOLS_SCRIPT = """\
dig -v 2>&1
busybox 2>&1 | head -n 1
getent passwd nobody
wget --help 2>&1 | head -n 1
test -x /usr/sbin/httpd && echo httpd present
"""


# The upstream manifest's flags that matter to the image: metrics-server's defaults (certs in
# ./apiserver.local.config under "/", port 443) both fail as user 65534.
METRICS_SERVER_ARGS = ("--cert-dir=/tmp", "--secure-port=10250", "--kubeconfig=/nonexistent")


def _check_metrics_server_start(ref: str, output: str) -> None:
    """Outside a cluster it must get past its certificate and listener to the missing config."""
    if "permission denied" in output or "in-cluster configuration" not in output:
        lines = [line for line in output.splitlines() if "panic" in line or "rror" in line]
        raise UserError(f"{ref}: did not start as far as the cluster config with "
                        f"{' '.join(METRICS_SERVER_ARGS)}: {' | '.join(lines[:2])[:300]!r}")


def run_once(daemon: PrivateContainerd, ref: str, container_id: str, args: list[str],
             netns: Path | None = None, mounts: tuple[str, ...] = (),
             timeout: float = 60) -> str:
    """`ctr run --rm`: the command's stdout and stderr; raises if it exits non-zero."""
    flags = ["run", "--rm"]
    if netns:
        flags += ["--with-ns", f"network:{netns}"]
    for mount in mounts:
        flags += ["--mount", mount]
    proc = daemon.ctr([*flags, ref, container_id, *args], check=False, timeout=timeout)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise UserError(f"{ref}: `{' '.join(args)}` exited {proc.returncode}: "
                        f"{output.strip()[-300:]!r}")
    return output


def _bind(src: Path, dst: str) -> str:
    return f"type=bind,src={src},dst={dst},options=rbind:ro"


def check_addon_images_run(coredns: tuple[str, Path], metrics_server: tuple[str, Path],
                           toolbox: tuple[str, Path], versions: dict[str, str]) -> list[str]:
    """Imports the three add-on archives into a private containerd and runs them with runc.

    versions: component -> pinned version ("coredns", "metrics_server"). metrics-server must
    print its version as the image's user; the toolbox runs dig, busybox and getent; CoreDNS
    serves DNS in a fresh netns, queried there by the toolbox with dig, host, nslookup and
    getent. Returns one line per check passed; raises UserError on the first failure.
    """
    passed = []
    netns_name = f"k8s-ha-lab-dns-{int(time.time())}"
    with private_containerd() as daemon:
        for ref, archive in (coredns, metrics_server, toolbox):
            daemon.import_archive(archive)
            if ref not in daemon.image_refs():
                raise UserError(f"ctr images import {archive} did not create {ref}")
            passed.append(f"imported {ref}")

        out = run_once(daemon, metrics_server[0], "art-ms-version",
                       ["/metrics-server", "--version"])
        if out.strip() != versions["metrics_server"]:
            raise UserError(f"{metrics_server[0]}: --version printed {out.strip()[:80]!r}, "
                            f"expected {versions['metrics_server']}")
        passed.append(f"{metrics_server[0]} --version: {out.strip()}")

        out = run_once(daemon, coredns[0], "art-coredns-version", ["/coredns", "-version"])
        expected = f"CoreDNS-{versions['coredns'].lstrip('v')}"
        if expected not in out:
            raise UserError(f"{coredns[0]}: -version printed {out.strip()[:80]!r}")
        passed.append(f"{coredns[0]} -version: {expected}")

        out = run_once(daemon, toolbox[0], "art-toolbox-tools", ["sh", "-c", TOOLBOX_TOOLS_SCRIPT])
        for needle in ("DiG 9.", "BusyBox v1.", "nobody:x:65534:65534", "httpd present"):
            if needle not in out:
                raise UserError(f"{toolbox[0]}: {needle!r} not in the output of the tools: "
                                f"{out.strip()[:300]!r}")
        passed.append(f"{toolbox[0]} runs {out.splitlines()[0].strip()}, busybox, getent")

        conf_dir = daemon.dir / "coredns"
        conf_dir.mkdir()
        (conf_dir / "Corefile").write_text(COREFILE)
        (conf_dir / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1\n")
        with network_namespace(netns_name) as netns:
            daemon.ctr(["run", "-d", "--with-ns", f"network:{netns}",
                        "--mount", _bind(conf_dir, "/etc/coredns"),
                        coredns[0], "art-coredns", "/coredns", "-conf", "/etc/coredns/Corefile"])
            try:
                out = run_once(daemon, toolbox[0], "art-toolbox-dns",
                               ["sh", "-c", TOOLBOX_DNS_SCRIPT], netns=netns,
                               mounts=(_bind(conf_dir / "resolv.conf", "/etc/resolv.conf"),))
            finally:
                status = daemon.stop_task("art-coredns", "SIGTERM")
            serving = daemon.ctr(["run", "--rm", "--with-ns", f"network:{netns}",
                                  metrics_server[0], "art-ms-serve", "/metrics-server",
                                  *METRICS_SERVER_ARGS], check=False, timeout=60)
        _check_metrics_server_start(metrics_server[0], serving.stdout + serving.stderr)
        passed.append(f"{metrics_server[0]} as 65534 with {' '.join(METRICS_SERVER_ARGS[:2])}: "
                      f"certificate written, port bound, stops only for want of a cluster")
        answers = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
        wanted = {"dig": PROBE_ADDRESS, "host": PROBE_ADDRESS, "nslookup": PROBE_ADDRESS,
                  "getent": PROBE_ADDRESS}
        for tool, address in wanted.items():
            if address not in answers.get(tool, ""):
                raise UserError(f"{coredns[0]}: {tool} in {toolbox[0]} did not resolve "
                                f"{PROBE_NAME} to {address}: {out.strip()[-400:]!r}")
        if answers.get("cgi", "").strip() != "cgi 42":
            raise UserError(f"{toolbox[0]}: busybox httpd did not run the CGI script, wget got "
                            f"{answers.get('cgi', '')!r}: {out.strip()[-300:]!r}")
        passed.append(f"{toolbox[0]} serves a CGI with busybox httpd, fetched with wget")
        if "127.0.0.1" not in answers.get("whoami", ""):
            raise UserError(f"{coredns[0]}: the whoami plugin gave no answer: {out[-300:]!r}")
        passed.append(f"{coredns[0]} answers {PROBE_NAME} -> {PROBE_ADDRESS} to dig, host, "
                      f"nslookup and getent in {toolbox[0]}")
        if status != 0:
            raise UserError(f"{coredns[0]}: exit status {status} on SIGTERM, expected 0")
        passed.append(f"{coredns[0]} exits 0 on SIGTERM")
    return passed
