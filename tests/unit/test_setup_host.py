"""bin/setup-host never stops a process of the host: haproxy and keepalived are installed with
their start suppressed by policy-rc.d, and whatever policy the host had is put back. The apt
tools are faked (they record what they were asked and what policy-rc.d answered at that
moment); the script's own functions run for real."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from harness import REPO_ROOT

SCRIPT = REPO_ROOT / "bin" / "setup-host"


def _tool(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


@pytest.fixture
def fake_apt(tmp_path):
    tools = tmp_path / "bin"
    tools.mkdir()
    record = tmp_path / "record"
    # dpkg-query: a package is installed once its name is in `installed`
    _tool(tools, "dpkg-query", f'pkg=$(eval echo \\${{$#}})\n'
                               f'grep -qx "$pkg" {tmp_path}/installed 2>/dev/null && echo "install ok installed"\n'
                               'exit 0\n')
    # apt-get install: asks policy-rc.d what dpkg's maintainer scripts would ask, then "installs"
    _tool(tools, "apt-get", f'[ "$1" = update ] && exit 0\n'
                            f'for pkg in "$@"; do case "$pkg" in -*|install) continue;; esac\n'
                            f'  if [ -x "$POLICY_RC" ]; then "$POLICY_RC" "$pkg" start; answer=$?; else answer=none; fi\n'
                            f'  echo "install $pkg policy=$answer" >> {record}\n'
                            f'  echo "$pkg" >> {tmp_path}/installed\n'
                            'done\n')
    _tool(tools, "systemctl", f'echo "systemctl $*" >> {record}\n')
    policy = tmp_path / "policy-rc.d"

    def run(*packages: str) -> list[str]:
        script = (f'source {SCRIPT}; POLICY_RC={policy}; POLICY_SAVED={policy}.saved; export POLICY_RC; '
                  f'set -euo pipefail; apt_install_no_start {" ".join(packages)}')
        proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                              env={**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"}, timeout=30)
        assert proc.returncode == 0, proc.stderr
        return record.read_text().splitlines() if record.exists() else []

    return run, policy


def test_services_are_installed_without_starting(fake_apt):
    run, policy = fake_apt
    record = run("haproxy", "keepalived")
    assert record[:2] == ["install haproxy policy=101", "install keepalived policy=101"]
    assert all(line.startswith("systemctl disable") for line in record[2:])
    assert not policy.exists()  # the host had none; none is left


@pytest.mark.parametrize("host_policy, package", [
    ("#!/bin/sh\n# the host's own policy\nexit 0\n", "haproxy"),
    # a host policy that already says no is left alone too
    ("#!/bin/sh\n# site policy: never start anything\nexit 101\n", "keepalived"),
])
def test_the_hosts_own_policy_is_put_back_unchanged(fake_apt, host_policy, package):
    run, policy = fake_apt
    policy.write_text(host_policy)
    policy.chmod(0o755)
    before = policy.read_bytes()
    assert run(package)[0] == f"install {package} policy=101"
    assert policy.read_bytes() == before and os.access(policy, os.X_OK)
    assert not Path(f"{policy}.saved").exists()


def test_installed_packages_are_not_touched(fake_apt):
    run, policy = fake_apt
    first = run("haproxy")
    assert run("haproxy") == first  # nothing installed, nothing disabled the second time
    assert not policy.exists()


def test_setup_host_and_its_scripts_stop_nothing():
    """No kill, pkill, killall or stopping/restarting a service in what setup-host runs."""
    stopping = re.compile(r"\b(p?kill|killall)\b|systemctl\s+(stop|kill|restart|try-restart)|"
                          r"service\s+\S+\s+(stop|restart)|invoke-rc\.d\s+\S+\s+(stop|restart)")
    for path in [SCRIPT, *sorted((REPO_ROOT / ".ci").glob("*.sh"))]:
        code = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
        assert not stopping.search(code), f"{path.relative_to(REPO_ROOT)}: {stopping.search(code)[0]}"
