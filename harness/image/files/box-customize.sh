#!/bin/bash
# Runs inside a copy of the node image's root filesystem (chroot) once per box build, after the
# kernel is installed. Turns the container node into a VM node: it boots its own kernel, so the
# units that were masked only because a container has no hardware come back, and what the
# docker entrypoint does per container (host keys, the lab's key) becomes a unit.
set -o errexit -o nounset -o pipefail
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

# Masked in customize.sh for containers; a VM needs them: udev loads the drivers of the virtual
# NICs and makes /dev/input for the ACPI power button (a clean `vagrant halt`), the kernel
# filesystems are there to mount, and / is remounted as /etc/fstab says. Still masked: the
# gettys and systemd-firstboot (they would wait on the console), timesyncd and the apt/e2scrub/
# fstrim timers (no traffic leaves the lab).
unmasked_units=(
  systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket
  systemd-udev-trigger.service systemd-udev-settle.service
  systemd-modules-load.service systemd-remount-fs.service
  sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount sys-fs-fuse-connections.mount
)
for unit in "${unmasked_units[@]}"; do
  rm -f "/etc/systemd/system/$unit"
done

# The disk is /dev/vda, a whole-disk ext4 made by mkfs.ext4 -d (no partition, no bootloader:
# vagrant-libvirt boots the kernel directly).
cat >/etc/fstab <<'FSTAB'
/dev/vda  /  ext4  errors=remount-ro  0  1
FSTAB

# Networking by systemd-networkd: the first NIC is vagrant-libvirt's management network (DHCP,
# where Vagrant finds the machine); Vagrant writes the lab NIC's static address itself
# (50-vagrant-eth1.network). net.ifnames=0 on the kernel command line keeps the names eth0, eth1.
mkdir -p /etc/systemd/network
cat >/etc/systemd/network/10-k8s-ha-lab-management.network <<'NET'
[Match]
Name=eth0

[Network]
DHCP=ipv4
NET
systemctl enable systemd-networkd.service >/dev/null
# Nothing waits for "online"; a boot must not hang two minutes on a NIC Vagrant configures later.
systemctl disable systemd-networkd-wait-online.service >/dev/null 2>&1 || true

systemctl enable k8s-ha-lab-vm-init.service >/dev/null

# A kernel and an initramfs live in the cache next to the box; the copies in /boot are not read.
apt-get clean
rm -rf /var/lib/apt/lists/*
