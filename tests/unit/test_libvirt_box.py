"""The libvirt box made from the node image: named by a hash of what shapes it, booted with the
lab's key on the kernel command line, built without loop devices or mounts. The build's
commands are faked (recorded); the scripts that go into the box are checked by shellcheck."""

import json
import shutil
import subprocess
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from harness.image import box as box_module
from harness.image.box import BOX_NAME_PREFIX, box_recipe, build_box, cmd_line, key_parameter, metadata
from harness.image.recipe import FILES_DIR

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMVc/oAbxWxSoO1NAlIx6FDHhSVmTApKa44LcOPM+d7r k8s-ha-lab-vm"


def test_name_carries_the_hash_of_node_and_box_recipes():
    recipe = box_recipe()
    assert recipe.name == f"{BOX_NAME_PREFIX}-bookworm-{recipe.content_hash()[:12]}"
    assert box_recipe().content_hash() == recipe.content_hash()
    files = dict(recipe.files)
    files["vm-init"] += b"\n# a change\n"
    assert replace(recipe, files=files).name != recipe.name
    node_files = dict(recipe.node.files)
    node_files["entrypoint"] += b"\n# a change to the node image\n"
    assert replace(recipe, node=replace(recipe.node, files=node_files)).name != recipe.name
    assert replace(recipe, kernel_packages=("linux-image-cloud-amd64",)).name != recipe.name


def test_kernel_command_line_boots_the_disk_and_carries_the_key_without_spaces():
    line = cmd_line(KEY)
    words = line.split()
    assert words[:2] == ["root=/dev/vda", "rw"]
    assert "net.ifnames=0" in words and "console=ttyS0" in words
    assert words[-1] == ("k8s_ha_lab.authorized_key=ssh-ed25519,"
                         "AAAAC3NzaC1lZDI1NTE5AAAAIMVc/oAbxWxSoO1NAlIx6FDHhSVmTApKa44LcOPM+d7r")
    assert "k8s-ha-lab-vm" not in line  # the comment stays out


@pytest.mark.parametrize("bad", ["", "AAAA", "rm -rf / x"])
def test_a_key_that_is_not_an_openssh_key_is_refused(bad):
    with pytest.raises(ValueError):
        key_parameter(bad)


def test_vm_init_installs_the_key_from_the_command_line(tmp_path):
    """files/vm-init, run for real against a fake /proc/cmdline and root's home."""
    script = (FILES_DIR / "vm-init").read_text()
    script = (script.replace("/proc/cmdline", str(tmp_path / "cmdline"))
              .replace("/root/.ssh", str(tmp_path / "ssh"))
              .replace("ssh-keygen ", "true "))
    (tmp_path / "cmdline").write_text(f"root=/dev/vda rw {key_parameter(KEY)} quiet\n")
    runner = tmp_path / "vm-init"
    runner.write_text(script)
    for _ in range(2):  # every boot; the key is added once
        subprocess.run(["bash", str(runner)], check=True, timeout=30)
    keys = (tmp_path / "ssh" / "authorized_keys").read_text().splitlines()
    assert keys == [" ".join(KEY.split()[:2])]
    assert (tmp_path / "ssh" / "authorized_keys").stat().st_mode & 0o777 == 0o600


def test_box_scripts_pass_shellcheck():
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck: not found (bin/setup-host installs it)")
    proc = subprocess.run(["shellcheck", str(FILES_DIR / "vm-init"), str(FILES_DIR / "box-customize.sh")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_box_customize_keeps_console_and_network_waits_masked():
    script = (FILES_DIR / "box-customize.sh").read_text()
    unmasked = script.split("unmasked_units=(")[1].split(")")[0]
    assert "systemd-udevd.service" in unmasked
    for unit in ("getty", "systemd-firstboot", "timesyncd", "apt-daily"):
        assert unit not in unmasked
    assert "systemctl enable systemd-networkd.service" in script
    assert "systemctl disable systemd-networkd-wait-online.service" in script
    assert "Name=eth0" in script and "DHCP=ipv4" in script
    unit = (FILES_DIR / "k8s-ha-lab-vm-init.service").read_text()
    assert "Before=ssh.service" in unit


def test_metadata_is_vagrant_libvirts_format():
    assert metadata(box_recipe()) == {"provider": "libvirt", "format": "qcow2", "virtual_size": 10}


@pytest.fixture
def fake_build(tmp_path, monkeypatch):
    """Every command the build runs is recorded; the ones that make files make small ones."""
    monkeypatch.setattr(box_module, "BOX_CACHE", tmp_path / "box")
    monkeypatch.setattr(box_module, "REQUIRED_TOOLS", ())
    monkeypatch.setattr(box_module, "debian_mirror", lambda suite, given=None: "http://mirror.invalid/debian")
    monkeypatch.setattr(box_module, "build_rootfs", lambda recipe, mirror=None, log=None: [])
    calls = []

    def run(what, command, log_file=None, **kwargs):
        calls.append(command)
        if command[0] == "tar" and "-xpf" in command:
            root = Path(command[command.index("-C") + 1])
            (root / "etc/apt").mkdir(parents=True)
            (root / "tmp").mkdir()
            (root / "etc/resolv.conf").write_text("nameserver 192.0.2.1\n")
        elif command[0] == "chroot" and "install" in command[-1]:
            root = Path(command[1])
            (root / "boot").mkdir()
            (root / "boot/vmlinuz-6.1.0-test-amd64").write_bytes(b"kernel")
            (root / "boot/initrd.img-6.1.0-test-amd64").write_bytes(b"initrd")
        elif command[0] == "mkfs.ext4":
            Path(command[-2]).write_bytes(b"ext4")
        elif command[0] == "qemu-img":
            Path(command[-1]).write_bytes(b"qcow2")
        elif command[0] == "tar":
            subprocess.run(command, check=True)
        return ""

    monkeypatch.setattr(box_module, "_run", run)
    return calls


def test_build_makes_box_kernel_and_initrd_without_loop_devices_or_mounts(fake_build):
    recipe = box_recipe()
    result = build_box(recipe)
    assert result.built and result.steps == ("kernel", "customize", "disk", "box")
    assert recipe.kernel.read_bytes() == b"kernel" and recipe.initrd.read_bytes() == b"initrd"
    with tarfile.open(recipe.box_file) as box:
        assert sorted(box.getnames()) == ["box.img", "metadata.json"]
        assert json.load(box.extractfile("metadata.json"))["format"] == "qcow2"
    programs = [command[0] for command in fake_build]
    assert "mount" not in programs and "losetup" not in programs
    mkfs = next(c for c in fake_build if c[0] == "mkfs.ext4")
    assert "-d" in mkfs and mkfs[-1] == "10G"
    install = next(c for c in fake_build if c[0] == "chroot" and "install" in c[-1])
    assert "linux-image-amd64" in install[-1] and "initramfs-tools" in install[-1]
    assert recipe.box_file.stat().st_mode & 0o777 == 0o644  # qemu reads kernel and initrd
    # cached: a second build does nothing
    calls = len(fake_build)
    assert not build_box(recipe).built
    assert len(fake_build) == calls


def test_build_takes_the_mirror_from_the_host_and_restores_resolv_conf(fake_build, monkeypatch):
    seen = {}

    def check_sources(what, root, command):
        seen.setdefault("sources", (root / "etc/apt/sources.list").read_text())
        seen.setdefault("resolv", (root / "etc/resolv.conf").read_text())
        if "install" in command:
            (root / "boot").mkdir(exist_ok=True)
            (root / "boot/vmlinuz-6.1.0-test-amd64").write_bytes(b"kernel")
            (root / "boot/initrd.img-6.1.0-test-amd64").write_bytes(b"initrd")
        if "box-customize" in command:
            seen["resolv_after"] = (root / "etc/resolv.conf").read_text()
        return ""

    monkeypatch.setattr(box_module, "_chroot", check_sources)
    build_box(box_recipe())
    assert seen["sources"] == "deb http://mirror.invalid/debian bookworm main\n"
    assert seen["resolv"] == Path("/etc/resolv.conf").read_text()
    assert seen["resolv_after"] == "nameserver 192.0.2.1\n"


def test_a_missing_tool_is_one_line_naming_the_setup(fake_build, monkeypatch):
    from harness.errors import UserError

    monkeypatch.setattr(box_module, "REQUIRED_TOOLS", ("qemu-img-that-is-not-there",))
    with pytest.raises(UserError, match="^qemu-img-that-is-not-there: not found on PATH; .*--libvirt"):
        build_box(box_recipe())
    assert fake_build == []


def test_stale_box_folders_are_pruned(fake_build):
    old = box_module.BOX_CACHE / "bookworm-000000000000"
    old.mkdir(parents=True)
    build_box(box_recipe())
    assert not old.exists()
    assert box_recipe().folder.exists()
