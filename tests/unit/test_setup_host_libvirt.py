"""`bin/setup-host --libvirt` (opt-in): libvirt, qemu and vagrant-libvirt installed without
starting anything, libvirt's NAT network kept from autostarting on a fresh install, and
libvirtd started only when none answers. The default path is unchanged. The tools are faked
(they record what they were asked); the script's own functions run for real."""

import os
import subprocess

import pytest

from tests.unit.test_setup_host import SCRIPT, _tool


@pytest.fixture
def fake_host(tmp_path):
    tools = tmp_path / "bin"
    tools.mkdir()
    record = tmp_path / "record"
    _tool(tools, "dpkg-query", f'pkg=$(eval echo \\${{$#}})\n'
                               f'grep -qx "$pkg" {tmp_path}/installed 2>/dev/null && echo "install ok installed"\n'
                               'exit 0\n')
    _tool(tools, "apt-get", f'[ "$1" = update ] && exit 0\n'
                            f'for pkg in "$@"; do case "$pkg" in -*|install) continue;; esac\n'
                            f'  "$POLICY_RC" "$pkg" start; echo "install $pkg policy=$?" >> {record}\n'
                            f'  echo "$pkg" >> {tmp_path}/installed\n'
                            'done\n')
    # virsh answers once a daemon "runs" (a file the fake libvirtd makes)
    _tool(tools, "virsh", f'[ -e {tmp_path}/running ]\n')
    _tool(tools, "libvirtd", f'echo "libvirtd $*" >> {record}; touch {tmp_path}/running\n')
    _tool(tools, "virtlogd", f'echo "virtlogd $*" >> {record}\n')
    _tool(tools, "pgrep", "exit 1\n")
    _tool(tools, "sleep", "exit 0\n")
    _tool(tools, "systemctl", f'echo "systemctl $*" >> {record}\n')
    autostart = tmp_path / "autostart" / "default.xml"
    autostart.parent.mkdir()
    autostart.symlink_to(tmp_path / "default.xml")

    def run(function: str = "setup_libvirt", installed: tuple[str, ...] = (), running: bool = False):
        (tmp_path / "installed").write_text("".join(f"{p}\n" for p in installed))
        if running:
            (tmp_path / "running").touch()
        script = (f'source {SCRIPT}; POLICY_RC={tmp_path}/policy-rc.d; POLICY_SAVED={tmp_path}/saved; '
                  f'export POLICY_RC; LIBVIRT_DEFAULT_AUTOSTART={autostart}; '
                  f'set -euo pipefail; {function}')
        proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30,
                              env={**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"})
        lines = record.read_text().splitlines() if record.exists() else []
        return proc, lines

    return run, autostart


def test_fresh_install_starts_nothing_during_install_then_libvirtd_by_hand(fake_host):
    run, autostart = fake_host
    proc, record = run()
    assert proc.returncode == 0, proc.stderr
    installs = [line for line in record if line.startswith("install ")]
    assert {line.split()[1] for line in installs} >= {"libvirt-daemon-system", "qemu-system-x86",
                                                      "qemu-utils", "dnsmasq-base", "vagrant-libvirt"}
    assert all(line.endswith("policy=101") for line in installs)  # no service started by dpkg
    assert not autostart.is_symlink()  # libvirt's NAT network does not come up with the daemon
    if not os.path.isdir("/run/systemd/system"):
        assert record[-2:] == ["virtlogd --daemon", "libvirtd --daemon"]


def test_a_running_libvirtd_and_an_existing_install_are_left_alone(fake_host):
    run, autostart = fake_host
    packages = ("libvirt-daemon-system", "libvirt-clients", "qemu-system-x86", "qemu-utils",
                "dnsmasq-base", "vagrant-libvirt", "e2fsprogs")
    proc, record = run(installed=packages, running=True)
    assert proc.returncode == 0, proc.stderr
    assert record == []
    assert autostart.is_symlink()  # the host's own libvirt setup is not changed


@pytest.mark.parametrize("args, lab, vms", [("", 0, 0), ("--lab", 1, 0), ("--libvirt", 0, 1),
                                            ("--libvirt --lab", 1, 1)])
def test_flags(fake_host, args, lab, vms):
    run, _ = fake_host
    proc, _ = run(f'parse_args {args}; echo "$want_lab $want_libvirt"')
    assert proc.stdout.split() == [str(lab), str(vms)]


def test_an_unknown_flag_is_one_line_and_exit_2():
    proc = subprocess.run(["bash", "-c", f"source {SCRIPT}; parse_args --vms"], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr == "setup-host: unknown option --vms (known: --lab, --libvirt)\n"
