#!/bin/bash
# Runs inside the debootstrapped root (chroot) once per image build. Turns a fresh Debian into
# a node: sshd on, containerd on, nothing that needs real hardware, haproxy/keepalived off
# until a deployment step configures them.
set -o errexit -o nounset -o pipefail
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

# Units that expect a console, real hardware or a writable kernel; inside a container they
# either fail or wait forever, and a failed unit makes `systemctl is-system-running` degraded.
masked_units=(
  getty@.service serial-getty@.service console-getty.service getty-static.service getty.target
  systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket
  systemd-udev-trigger.service systemd-udev-settle.service
  systemd-modules-load.service systemd-remount-fs.service systemd-firstboot.service
  systemd-sysusers.service systemd-binfmt.service proc-sys-fs-binfmt_misc.automount
  sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount sys-fs-fuse-connections.mount
  systemd-journald-audit.socket systemd-hwdb-update.service systemd-pstore.service
  systemd-timesyncd.service
  apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer
  dpkg-db-backup.timer
)
for unit in "${masked_units[@]}"; do
  ln -sf /dev/null "/etc/systemd/system/$unit"
done

systemctl enable ssh.service containerd.service >/dev/null
# Later steps write their configuration and start these; a default config would only fail.
systemctl disable haproxy.service keepalived.service >/dev/null 2>&1 || true

# Boot into a plain multi-user system, no graphical or rescue detours.
systemctl set-default multi-user.target >/dev/null

# Logs must survive a container restart so collect_logs can read why a unit failed.
mkdir -p /var/log/journal /etc/systemd/journald.conf.d
cat >/etc/systemd/journald.conf.d/k8s-ha-lab.conf <<'CONF'
[Journal]
Storage=persistent
SystemMaxUse=64M
CONF

# Root logs in with the lab's key only. The host key is ed25519 only, made at first boot (the
# entrypoint): no RSA key to generate while the machines boot.
mkdir -p /etc/ssh/sshd_config.d
cat >/etc/ssh/sshd_config.d/k8s-ha-lab.conf <<'CONF'
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
HostKey /etc/ssh/ssh_host_ed25519_key
CONF
passwd -l root >/dev/null

# Identities are generated per node at first boot by the entrypoint.
rm -f /etc/ssh/ssh_host_*
: >/etc/machine-id
rm -f /var/lib/dbus/machine-id

# Smaller image: package lists, docs and caches are not needed on a lab node.
apt-get clean
rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/info/* /var/cache/debconf/*-old
