"""What the harness leaves on a machine: every file, directory, unit, user, kernel setting,
packet-filter chain and interface that the steps (or the daemons they start) create or change.

A fixed inventory, derived from the same constants the renderers and steps use, so `down` on
machines the harness did not create (the ssh provider) can remove exactly this and put back what
was there before. `tests/unit/test_footprint.py` fails when a step starts installing something
that is not listed here: it compares every rendered file, every unit a step starts, every binary
and every absolute path the steps and units name against this inventory.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from harness.lab import Lab
from harness.render import BIN_DIR, CNI_CONF_DIR, ETCD_SSL_DIR, FLANNEL_DIR, K8S_DIR, UNIT_DIR
from harness.render import lb, logs, registry
from harness.render.configs import CERTS_D
from harness.render.env import HOSTS_BEGIN, HOSTS_END, sysctl_conf

# Binaries in /usr/local/bin: the pinned binaries the steps install from the artifact cache
# (harness.steps.context.BINARY_COMPONENT, vlagent of the logs add-on among them), crane
# (registry) and the rendered mk-cni-conf script.
CLUSTER_BINARIES = ("etcd", "etcdctl", "etcdutl", "flanneld", "kube-apiserver", "kube-controller-manager",
                    "kube-scheduler", "kubelet", "kube-proxy", "kubectl", "vlagent")
BINARIES = (*CLUSTER_BINARIES, "crane", "mk-cni-conf")

# Units whose files the harness writes to /etc/systemd/system.
OWN_UNITS = ("etcd.service", "flanneld.service", "kube-apiserver.service", "kube-controller-manager.service",
             "kube-scheduler.service", "mk-cni-conf.service", "kubelet.service", "kube-proxy.service",
             registry.MOUNT_UNIT, logs.AUDIT_UNIT)
# Units of the machine's own packages that steps configure, enable and (re)start; `down` puts
# their enablement and running state back as they were.
PACKAGED_UNITS = ("containerd.service", "haproxy.service", "keepalived.service")
# sshd only gets a drop-in and a reload (the registry's SFTP jail); it is never stopped.
RELOADED_UNITS = ("ssh.service",)

CNI_CONFLIST = f"{CNI_CONF_DIR}/10-flannel.conflist"   # written by mk-cni-conf.service
SSHD_DROPIN = registry.SSHD_DROPIN
CONTAINERD_DROPIN = f"{UNIT_DIR}/containerd.service.d/10-k8s-ha-lab.conf"
KEEPALIVED_DROPIN = f"{UNIT_DIR}/{lb.KEEPALIVED_DROPIN}"
UNIT_DROPINS = (CONTAINERD_DROPIN, KEEPALIVED_DROPIN)      # the harness's own, on packaged units
SYSCTL_FILE = "/etc/sysctl.d/90-k8s-ha-lab.conf"

# What a package's own unit leaves once the harness has started it: Debian's haproxy.service
# bind-mounts /dev/log into its chroot, which makes this empty file. Removed when it is new.
PACKAGED_UNIT_TRACES = ("/var/lib/haproxy/dev/log",)

# Exact paths: removed by `down`, or put back as they were when they existed before.
FILES = (
    *(f"{BIN_DIR}/{name}" for name in BINARIES),
    *(f"{UNIT_DIR}/{unit}" for unit in OWN_UNITS),
    *UNIT_DROPINS, SYSCTL_FILE, CNI_CONFLIST,
    "/etc/containerd/config.toml",                # the package's, replaced by the nodes step
    "/etc/haproxy/haproxy.cfg",                   # the package's, replaced by api-ha
    "/etc/keepalived/keepalived.conf", lb.CHECK_HAPROXY, lb.CHECK_LAB_NETWORK,
    registry.SSHD_DROPIN, registry.AUTHORIZED_KEYS,
)

# Directories that are wholly the harness's (or of what it runs). None may exist before the
# first `up` on a machine: the ssh provider refuses one that has any, so `down` never removes
# somebody else's data.
TREES = (
    K8S_DIR, posixpath.dirname(ETCD_SSL_DIR), FLANNEL_DIR, "/etc/k8s-ha-lab", CERTS_D, "/root/.kube",
    "/var/lib/etcd",                   # etcd's data dir
    "/var/lib/etcd-snapshots",         # the etcd-snapshot-restore scenario's snapshot
    "/var/lib/kubelet", "/var/lib/kube-proxy",
    "/var/lib/cni",                    # host-local IPAM's leases (the bridge CNI plugin)
    "/var/lib/vlagent", logs.DATA_DIR,  # the log collectors' and the log store's hostPath dirs
    "/var/log/kubernetes",             # the apiservers' audit log
    "/var/log/pods", "/var/log/containers",  # the kubelet's pod logs
    registry.EXPORT_ROOT,              # the registry's storage (the storage server's SFTP chroot)
    "/run/flannel",                    # flanneld's subnet.env
    "/opt/containerd",                 # containerd's opt plugin: its default path under the lab's config
    "/usr/libexec/kubernetes",         # the kubelet makes its flexvolume plugin dir at start
    "/var/tmp/k8s-ha-lab-e2e-push",    # the conformance run's image pushes
    "/var/lib/k8s-ha-lab",             # imported image archives, the registry mount, the baseline
)
# Names only the harness uses: a check's or scenario's scratch files that a crash left behind.
SCRATCH_GLOBS = ("/root/.k8s-ha-lab-*",)
USERS = (registry.SFTP_USER,)
# Whose contents useradd/userdel rewrite (and back up as FILE-): put back byte for byte.
ACCOUNT_FILES = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow",
                 "/etc/passwd-", "/etc/group-", "/etc/shadow-", "/etc/gshadow-")

# Kernel settings: the lab's sysctl file, and what the kubelet and kube-proxy set at start.
KUBELET_SYSCTLS = ("vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops",
                   "kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes")
KUBE_PROXY_SYSCTLS = ("net.ipv4.conf.all.route_localnet", "net.netfilter.nf_conntrack_tcp_timeout_established",
                      "net.netfilter.nf_conntrack_tcp_timeout_close_wait")

# Packet filter: chains of kube-proxy and the kubelet (KUBE-), flannel (FLANNEL-) and the CNI
# plugins (CNI-), rules that jump to them, and rules that carry the harness's own comment.
CHAIN_PREFIXES = ("KUBE-", "FLANNEL", "CNI-")
RULE_COMMENT = "k8s-ha-lab"
# Interfaces: flannel's VXLAN device and the CNI bridge (its veths go with the pods' netns).
INTERFACES = ("flannel.1", "cni0")
NETNS_PREFIX = "cni-"
# Mounts made under these while pods run; unmounted before their trees go.
MOUNT_PREFIXES = ("/var/lib/kubelet/", "/var/lib/k8s-ha-lab/", "/run/netns/" + NETNS_PREFIX,
                  "/run/containerd/io.containerd.grpc.v1.cri/", "/run/containerd/io.containerd.runtime.v2.task/k8s.io/",
                  "/var/lib/containerd/io.containerd.grpc.v1.cri/")
CONTAINERD_NAMESPACE = "k8s.io"
# What the CRI plugin keeps per pod and container, inside containerd's own directories.
CRI_STATE_DIRS = ("/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes",
                  "/var/lib/containerd/io.containerd.grpc.v1.cri/containers",
                  "/run/containerd/io.containerd.grpc.v1.cri/sandboxes",
                  "/run/containerd/io.containerd.grpc.v1.cri/containers")
# containerd's own folders: the plugins make sub-folders lazily for the lab's images and pods
# (content blobs, the k8s.io task folder, ...); `down` removes the ones that are new and empty
# once the lab's namespace is gone, and the overlayfs snapshotter's database when the lab's
# snapshots were its first.
CONTAINERD_ROOTS = ("/var/lib/containerd", "/run/containerd")
CONTAINERD_DEPTH = 4
CONTAINERD_LAZY_FILES = ("/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/metadata.db",)
HOSTS_MARKERS = (HOSTS_BEGIN, HOSTS_END)


def cri_dirs() -> list[str]:
    """The CRI state folders and the CRI plugin's own folder above them, deepest first: emptied
    by `down`, and removed when they did not exist before (the plugin makes them lazily)."""
    return [*CRI_STATE_DIRS, *sorted({posixpath.dirname(d) for d in CRI_STATE_DIRS})]


def ancestors(path: str) -> list[str]:
    """/a/b/c -> [/a/b, /a], deepest first (never /)."""
    out, parent = [], posixpath.dirname(path)
    while parent not in ("/", ""):
        out.append(parent)
        parent = posixpath.dirname(parent)
    return out


def parent_dirs() -> list[str]:
    """Every directory above a file or tree of the footprint, deepest first: `down` removes the
    ones that did not exist before (and are empty by then)."""
    found: set[str] = set()
    for path in (*FILES, *TREES):
        found.update(ancestors(path))
    return sorted(found - set(TREES), key=lambda p: (-p.count("/"), p))


def sysctl_keys(lab: Lab) -> list[str]:
    """Every kernel setting the lab's machines get, in a stable order."""
    keys: list[str] = []
    for machine in lab.machines:
        for line in sysctl_conf(lab, machine).splitlines():
            key = line.split("=", 1)[0].strip()
            if "=" in line and not line.lstrip().startswith("#") and key not in keys:
                keys.append(key)
    return keys + [k for k in (*KUBELET_SYSCTLS, *KUBE_PROXY_SYSCTLS) if k not in keys]


def units() -> tuple[str, ...]:
    return (*OWN_UNITS, *PACKAGED_UNITS)


def covered(path: str) -> bool:
    """Whether `down` removes or restores this path: a file of the footprint, or inside a tree."""
    path = posixpath.normpath(path)
    return path in FILES or path in TREES or any(path.startswith(tree + "/") for tree in TREES)


@dataclass(frozen=True)
class LabTraces:
    """The lab-specific part: where the VIP sits and which rules name the service range."""
    interface: str
    vip: str
    service_cidr: str

    @classmethod
    def of(cls, lab: Lab) -> "LabTraces":
        return cls(lab.interface, str(lab.vip), str(lab.cluster.service_cidr))
