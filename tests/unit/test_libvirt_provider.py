"""The libvirt provider's own side: KVM or TCG, the section of the spec the Vagrantfile reads,
and libvirt's view of a lab (domains, volumes, its network) from faked `virsh` answers."""

import json
import subprocess

import pytest

from harness import REPO_ROOT, vagrant_spec
from harness.errors import UserError
from harness.labfile import load_lab
from harness.providers import get_provider, libvirt
from harness.image.box import box_recipe

VM_LAB = REPO_ROOT / "labs" / "vm.yaml"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("K8S_HA_LAB_STATE", str(tmp_path / "state"))
    monkeypatch.delenv(libvirt.DRIVER_ENV, raising=False)
    monkeypatch.delenv(libvirt.BOX_ENV, raising=False)

    def refuse(args):
        raise AssertionError(f"unfaked virsh call: virsh {' '.join(args)}")
    monkeypatch.setattr(libvirt, "run_virsh", refuse)


@pytest.fixture
def lab():
    return load_lab(VM_LAB)


@pytest.mark.parametrize("present, driver", [
    ({"/dev/kvm", "/sys/module/kvm", "/sys/module/kvm_intel"}, "kvm"),
    ({"/dev/kvm", "/sys/module/kvm", "/sys/module/kvm_amd"}, "kvm"),
    ({"/dev/kvm", "/sys/module/kvm", "/sys/module/kvm_pvm"}, "qemu"),  # this host: PVM, not hardware
    (set(), "qemu"),
])
def test_driver_is_kvm_only_with_hardware_virtualization(present, driver):
    assert libvirt.libvirt_driver(exists=lambda path: path in present) == driver


def test_driver_from_the_environment_wins_and_is_checked(monkeypatch):
    monkeypatch.setenv(libvirt.DRIVER_ENV, "kvm")
    assert libvirt.libvirt_driver(exists=lambda path: False) == "kvm"
    monkeypatch.setenv(libvirt.DRIVER_ENV, "xen")
    with pytest.raises(UserError, match=r"^K8S_HA_LAB_LIBVIRT_DRIVER: 'xen' is not a libvirt driver \(known: kvm, qemu\)$"):
        libvirt.libvirt_driver()


def test_spec_has_the_libvirt_section_for_the_local_box(capsys, monkeypatch, lab):
    monkeypatch.setenv("K8S_HA_LAB_PROVIDER", "libvirt")
    monkeypatch.setenv(libvirt.DRIVER_ENV, "qemu")
    assert vagrant_spec.main([str(VM_LAB)]) == 0
    spec = json.loads(capsys.readouterr().out)
    section, box = spec["libvirt"], box_recipe()
    assert "docker" not in spec
    assert section["driver"] == "qemu" and section["cpu_mode"] == "maximum"
    assert section["box"] == box.name
    assert (section["kernel"], section["initrd"]) == (str(box.kernel), str(box.initrd))
    key = spec["ssh"]["public_key"].split()
    assert section["cmd_line"].endswith(f"k8s_ha_lab.authorized_key={key[0]},{key[1]}")
    assert section["domain_prefix"] == "k8s-ha-lab-vm-"
    assert section["network_name"] == "k8s-ha-lab-vm"
    assert section["console_logs"] == {"vm1": "/var/log/libvirt/qemu/k8s-ha-lab-vm-vm1-console.log"}
    assert section["boot_timeout"] >= 600  # TCG


def test_a_stock_box_from_the_environment_drops_the_local_box(capsys, monkeypatch):
    monkeypatch.setenv("K8S_HA_LAB_PROVIDER", "libvirt")
    monkeypatch.setenv(libvirt.DRIVER_ENV, "kvm")
    monkeypatch.setenv(libvirt.BOX_ENV, "debian/bookworm64")
    assert vagrant_spec.main([str(VM_LAB)]) == 0
    section = json.loads(capsys.readouterr().out)["libvirt"]
    assert section["box"] is None and "kernel" not in section and section["cpu_mode"] is None


def test_vagrantfile_libvirt_branch_reads_every_field_it_needs():
    text = (REPO_ROOT / "vagrant" / "Vagrantfile").read_text()
    branch = text.split('node.vm.provider "libvirt"')[1].split('node.vm.provider "docker"')[0]
    for field in ("driver", "cpu_mode", "domain_prefix", "boot_timeout", "network_name", "box",
                  "kernel", "initrd", "cmd_line", "console_logs"):
        assert f'libvirt["{field}"]' in branch, field
    assert 'libvirt__forward_mode: "none"' in branch and "libvirt__dhcp_enabled: false" in branch
    assert 'lv.management_network_mode = "none"' in branch
    assert "192.168." not in branch and "10." not in branch  # no address is written there


class FakeVirsh:
    def __init__(self, answers):
        self.answers, self.calls = answers, []

    def __call__(self, args):
        self.calls.append(args)
        for prefix, (rc, out) in self.answers.items():
            if tuple(args[:len(prefix)]) == prefix:
                return subprocess.CompletedProcess(args, rc, out, "")
        return subprocess.CompletedProcess(args, 1, "", "error: not found")


VOL_LIST = (" Name                                   Path\n"
            "---------------------------------------------------------------\n"
            " k8s-ha-lab-vm-vm1.img                  /var/lib/libvirt/images/k8s-ha-lab-vm-vm1.img\n"
            " k8s-ha-lab-VAGRANTSLASH-node-vm-bookworm-abc_vagrant_box_image_0_box.img  /x\n"
            " k8s-ha-lab-small-ctl1.img              /y\n")


def test_view_of_a_lab_is_its_own_names_only(lab):
    virsh = FakeVirsh({("list",): (0, "k8s-ha-lab-vm-vm1\nk8s-ha-lab-small-ctl1\nother\n\n"),
                       ("vol-list",): (0, VOL_LIST),
                       ("net-list",): (0, "k8s-ha-lab-vm\nvagrant-libvirt\n"),
                       ("net-info",): (0, "Name:           k8s-ha-lab-vm\nBridge:         virbr1\n")})
    assert libvirt.lab_domains(lab, virsh) == ["k8s-ha-lab-vm-vm1"]
    assert libvirt.lab_volumes(lab, virsh) == ["k8s-ha-lab-vm-vm1.img"]  # never the box's
    assert libvirt.network_bridge(lab, virsh) == "virbr1"
    assert libvirt.leftovers(lab, virsh) == ["domain k8s-ha-lab-vm-vm1", "volume k8s-ha-lab-vm-vm1.img",
                                             "network k8s-ha-lab-vm"]


def test_remove_leftovers_touches_only_this_lab(lab):
    virsh = FakeVirsh({("list",): (0, "k8s-ha-lab-vm-vm1\nk8s-ha-lab-small-ctl1\n"),
                       ("vol-list",): (0, VOL_LIST), ("net-list",): (0, "k8s-ha-lab-vm\n"),
                       ("destroy",): (0, ""), ("undefine",): (0, ""), ("vol-delete",): (0, ""),
                       ("net-destroy",): (0, ""), ("net-undefine",): (0, "")})
    removed = libvirt.remove_leftovers(lab, virsh)
    assert removed == ["domain k8s-ha-lab-vm-vm1", "volume k8s-ha-lab-vm-vm1.img", "network k8s-ha-lab-vm"]
    touched = [" ".join(c) for c in virsh.calls if c[0] not in ("list", "vol-list", "net-list")]
    assert all("small" not in c and "VAGRANTSLASH" not in c for c in touched), touched


def test_nothing_left_is_an_empty_list(lab):
    virsh = FakeVirsh({("list",): (0, "\n"), ("vol-list",): (0, VOL_LIST.splitlines()[0] + "\n---\n"),
                       ("net-list",): (0, "vagrant-libvirt\n"), ("net-info",): (1, "")})
    assert libvirt.leftovers(lab, virsh) == []
    assert libvirt.network_bridge(lab, virsh) is None


def test_provider_uses_the_lab_bridge_and_virsh_for_leftovers(lab, tmp_path, monkeypatch):
    virsh = FakeVirsh({("net-info",): (0, "Bridge: virbr7\n"), ("list",): (0, ""),
                       ("vol-list",): (0, ""), ("net-list",): (0, "")})
    monkeypatch.setattr(libvirt, "run_virsh", virsh)
    provider = get_provider("libvirt", lab, tmp_path / "state" / "vm")
    assert provider.own_host_interfaces(host=None) == {"virbr7"}
    assert provider.leftovers() == []


class FakeHost:
    def __init__(self, tools, answers):
        self.tools, self.answers = tools, answers

    def which(self, name):
        return f"/usr/bin/{name}" if name in self.tools else None

    def run(self, argv):
        rc, out = self.answers.get(argv[0], (0, ""))
        return subprocess.CompletedProcess(argv, rc, out, "" if rc == 0 else "error: failed to connect")


ALL_TOOLS = {"virsh", "vagrant", "qemu-system-x86_64", "dnsmasq"}
PLUGIN = (0, "vagrant-libvirt (0.11.2, system)\n")


@pytest.mark.parametrize("tools, answers, message", [
    (ALL_TOOLS - {"virsh"}, {"vagrant": PLUGIN}, "^virsh: not found on PATH; install libvirt with `bin/setup-host --libvirt`$"),
    (ALL_TOOLS, {"vagrant": (0, "No plugins installed.\n")}, "^vagrant-libvirt: plugin not installed"),
    (ALL_TOOLS, {"vagrant": PLUGIN, "virsh": (1, "")}, r"^libvirtd: not reachable at qemu:///system \(`virsh version`: error: failed to connect\); start it with `bin/setup-host --libvirt`$"),
    (ALL_TOOLS - {"qemu-system-x86_64"}, {"vagrant": PLUGIN}, "^qemu-system-x86_64: not found"),
    (ALL_TOOLS - {"dnsmasq"}, {"vagrant": PLUGIN}, "^dnsmasq: not found on PATH"),
])
def test_sanity_checks_name_what_is_missing_in_one_line(tools, answers, message):
    with pytest.raises(UserError, match=message) as refused:
        libvirt.check_libvirt(FakeHost(tools, answers), "qemu")
    assert "\n" not in str(refused.value) and refused.value.exit_status == 2
    libvirt.check_libvirt(FakeHost(ALL_TOOLS, {"vagrant": PLUGIN}), "qemu")  # all there: passes
