"""The Vagrantfile's libvirt branch, once for real: labs/vm.yaml's one machine as a VM.

Run: `tox -e libvirt` (opt-in, not in the envlist; `bin/setup-host --libvirt` first), which runs
this file and then the machines suite on the same VM:
    pytest -m "libvirt or machines" scenarios/test_libvirt_vm.py scenarios/test_machines.py \
        --lab labs/vm.yaml --provider libvirt
The machine is booted by vagrant-libvirt from the box made from the node image (its own Debian
kernel, direct kernel boot), on KVM where the host has it and TCG otherwise. Its figures (boot
time inside the VM, qemu's resident memory) are recorded as JUnit properties.
"""

from __future__ import annotations

import platform
import re
from pathlib import Path

import pytest

from harness.image.box import box_recipe
from harness.providers.libvirt import domain_prefix, libvirt_driver, network_name, run_virsh

pytestmark = pytest.mark.libvirt


def _virsh(*args: str) -> str:
    proc = run_virsh(list(args))
    assert proc.returncode == 0, f"virsh {' '.join(args)}: {proc.stderr.strip()}"
    return proc.stdout


def _seconds(text: str) -> float:
    """systemd's spans: `850ms`, `4.2s`, `1min 3.5s`."""
    total = 0.0
    for number, unit in re.findall(r"([\d.]+)(min|ms|s)", text):
        total += float(number) * {"min": 60, "s": 1, "ms": 0.001}[unit]
    return round(total, 3)


def test_machine_is_a_vm_booted_from_the_box_kernel(host, machines):
    assert host.check_output("systemd-detect-virt") in ("qemu", "kvm")  # a container says docker
    release = host.check_output("uname -r")
    assert release != platform.release()  # its own kernel, not the host's
    assert host.file(f"/boot/vmlinuz-{release}").exists  # Debian's, installed into the box
    assert "k8s_ha_lab.authorized_key=" in host.file("/proc/cmdline").content_string


def test_domain_runs_on_the_chosen_driver_with_direct_kernel_boot(machine, lab, machines):
    xml = _virsh("dumpxml", domain_prefix(lab) + machine.name)
    assert re.search(rf"<domain type='{libvirt_driver()}'", xml), xml[:200]
    box = box_recipe()
    assert f"<kernel>{box.kernel}</kernel>" in xml
    assert f"<initrd>{box.initrd}</initrd>" in xml
    assert "root=/dev/vda" in xml


def test_lab_network_is_isolated(lab, machines):
    """No forwarding and no DHCP on the lab network: nothing of the lab leaves the host."""
    xml = _virsh("net-dumpxml", network_name(lab))
    assert "<forward" not in xml and "<dhcp>" not in xml, xml
    assert f"netmask='{lab.network.netmask}'" in xml


def test_boot_time_and_memory_figures(host, machine, lab, machines, request):
    # user_properties, not the record_property fixture: same junit output, without the
    # fixture's warning under junit_family xunit2
    def record_property(name, value):
        request.node.user_properties.append((name, value))

    analyze = host.check_output("systemd-analyze time")
    assert "Startup finished" in analyze, analyze
    record_property("systemd_analyze", analyze.splitlines()[0])
    for value, part in re.findall(r"((?:\d+min )?[\d.]+m?s) \((kernel|initrd|userspace)\)", analyze):
        record_property(f"boot_{part}_s", _seconds(value))
    pid = Path(f"/run/libvirt/qemu/{domain_prefix(lab)}{machine.name}.pid").read_text().strip()
    status = Path(f"/proc/{pid}/status").read_text()
    rss_mb = int(re.search(r"VmRSS:\s+(\d+) kB", status)[1]) // 1024
    peak_mb = int(re.search(r"VmHWM:\s+(\d+) kB", status)[1]) // 1024
    record_property("qemu_rss_mb", rss_mb)
    record_property("qemu_peak_rss_mb", peak_mb)
    print(f"{machine.name}: {analyze.splitlines()[0]}; qemu RSS {rss_mb} MiB (peak {peak_mb} MiB) "
          f"of {machine.memory_mb} MiB given")
    # qemu holds at most the guest's memory plus its own overhead
    assert 0 < rss_mb < machine.memory_mb + 512
