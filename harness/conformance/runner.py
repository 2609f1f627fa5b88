"""Runs ginkgo + e2e.test from the host against a lab, through MASTER_URL on the VIP.

The host cannot resolve MASTER_URL, so the kubeconfig names the VIP as the server and
MASTER_URL as `tls-server-name` (the apiserver's certificate carries MASTER_URL); the client
is the lab's admin. Output lands in `artifacts/<run>/conformance/`: the kubeconfig, the repo
list, `e2e.log` (all of ginkgo's output), `junit_01.xml` (the e2e framework's report) and
`summary.txt` (the per-SIG table and the `N passed, M failed` line).
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harness import REPO_ROOT
from harness.conformance import report
from harness.errors import UserError

CONFORMANCE_FOCUS = r"\[Conformance\]"
# What CI runs on every submission: the pod-to-pod datapath checks and the DNS tests.
CI_FOCUS = (r"\[sig-network\] Networking Granular Checks.*\[Conformance\]|"
            r"\[sig-network\] DNS .*\[Conformance\]")
SKIPS_FILE = Path(__file__).with_name("skips.yaml")


@dataclass(frozen=True)
class Skip:
    name: str
    reason: str


def load_skips(path: Path = SKIPS_FILE) -> list[Skip]:
    data = yaml.safe_load(path.read_text()) or []
    skips = []
    for entry in data:
        if not entry.get("name") or not entry.get("reason"):
            raise UserError(f"{path}: every entry needs a name and a reason: {entry}")
        skips.append(Skip(entry["name"], " ".join(entry["reason"].split())))
    return skips


def skip_regex(skips: list[Skip], extra: str | None = None) -> str:
    parts = [re.escape(s.name) for s in skips]
    if extra:
        parts.append(extra)
    return "|".join(parts)


def kubeconfig(lab, pki_dir: Path) -> dict:
    """Admin credentials, server = the VIP, TLS name = MASTER_URL."""
    def b64(name: str) -> str:
        return base64.b64encode((pki_dir / name).read_bytes()).decode()

    port = lab.vip_port if lab.lbs else lab.api_port
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": lab.name,
        "clusters": [{"name": lab.name, "cluster": {
            "server": f"https://{lab.api_address}:{port}",
            "tls-server-name": lab.master_url,
            "certificate-authority-data": b64("ca.pem")}}],
        "users": [{"name": "admin", "user": {
            "client-certificate-data": b64("admin.pem"),
            "client-key-data": b64("admin-key.pem")}}],
        "contexts": [{"name": lab.name, "context": {"cluster": lab.name, "user": "admin"}}],
    }


@dataclass
class RunConfig:
    focus: str = CONFORMANCE_FOCUS
    skip: str | None = None
    parallel: int = 1
    timeout: str = "24h"
    extra_ginkgo: list[str] = field(default_factory=list)


def ginkgo_command(ginkgo: Path, e2e_test: Path, kubeconfig_path: Path, out_dir: Path,
                   kubectl: Path, lab, cfg: RunConfig, skip: str, dry_run: bool = False) -> list[str]:
    # a dry run is serial only (ginkgo refuses --dry-run with several processes)
    procs = 1 if dry_run else max(1, cfg.parallel)
    args = [str(ginkgo), f"--procs={procs}", f"--focus={cfg.focus}",
            "--no-color", "-v", f"--timeout={cfg.timeout}", "--poll-progress-after=300s"]
    if skip:
        args.append(f"--skip={skip}")
    if dry_run:
        args.append("--dry-run")
    args += cfg.extra_ginkgo
    args += [str(e2e_test), "--",
             f"--kubeconfig={kubeconfig_path}", "--provider=skeleton",
             f"--kubectl-path={kubectl}", f"--report-dir={out_dir}",
             f"--dns-domain={lab.dns_domain}", "--disable-log-dump=true",
             "--dump-logs-on-failure=false", f"--num-nodes={len(lab.nodes)}"]
    return args


def prepare_dir(lab, pki_dir: Path, out_dir: Path, repo_list_text: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    kc = out_dir / "kubeconfig"
    kc.write_text(yaml.safe_dump(kubeconfig(lab, pki_dir), sort_keys=False))
    kc.chmod(0o600)
    repo_list = out_dir / "repo-list.yaml"
    repo_list.write_text(repo_list_text)
    return kc, repo_list


def _env(kubeconfig_path: Path, repo_list: Path, kubectl: Path) -> dict:
    env = dict(os.environ)
    env["KUBECONFIG"] = str(kubeconfig_path)
    env["KUBE_TEST_REPO_LIST"] = str(repo_list)
    env["PATH"] = f"{kubectl.parent}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def count_specs(command: list[str], env: dict) -> int:
    """How many specs the focus and skip select (a ginkgo dry run: seconds, no cluster)."""
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    counted = report.ran_of(proc.stdout + proc.stderr)
    if not counted:
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-4:])
        raise UserError(f"ginkgo --dry-run said no `Ran N of M Specs`: {tail}")
    return counted[0]


def run_suite(command: list[str], env: dict, log_path: Path, progress: report.Progress,
              print_every_s: float = 30.0, out=sys.stdout) -> int:
    """Runs ginkgo with all output into log_path; a progress line on every finished spec that
    failed and at least every print_every_s."""
    started = time.monotonic()
    last = [started]
    lock = threading.Lock()

    def tick(force: bool = False) -> None:
        with lock:
            now = time.monotonic()
            if force or now - last[0] >= print_every_s:
                last[0] = now
                print(progress.line(now - started), file=out, flush=True)

    with open(log_path, "w") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env, bufsize=1, cwd=REPO_ROOT)
        stop = threading.Event()

        def heartbeat():
            while not stop.wait(5):
                tick()
        beat = threading.Thread(target=heartbeat, daemon=True)
        beat.start()
        try:
            for line in proc.stdout:
                log.write(line)
                before = progress.failed
                if progress.feed(line):
                    tick(force=progress.failed > before)
            status = proc.wait()
        except BaseException:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
        finally:
            stop.set()
        tick(force=True)
    return status
