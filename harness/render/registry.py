"""The private registry (the guide's harbor), as files: CNCF Distribution behind TLS from the lab
CA and htpasswd, its storage on a directory the storage server exports, mounted on every node.

Storage, the guide's NFS: the storage server (`registry.storage_server`, a master that is not a
node) exports EXPORT_ROOT over SFTP to one user, jailed by sshd in that directory
(internal-sftp, ChrootDirectory) and allowed in by one key generated per lab. Every node mounts
it with sshfs (FUSE) at MOUNT, by a systemd unit; the registry pod uses MOUNT/data by hostPath
(type Directory: on a node where the mount is missing the pod does not start, it never writes
to the node's own disk). Wherever the pod is scheduled, it sees the same blobs.

Failover: the pod tolerates an unreachable or not-ready node for TOLERATION_S only (Kubernetes'
default is 300 s), so once the node lifecycle controller taints a lost node the pod is evicted
and started on another node within seconds (harness.failover.registry_scenario derives the
bound from these numbers).
"""

from __future__ import annotations

import base64
import hashlib
import json

import yaml

from harness.lab import Lab, Machine
from harness.render import SSL_DIR

NAMESPACE = "registry"
APP = "registry"
SERVICE = "registry"
PORT = 5000                       # the registry's listener in the pod
SERVICE_PORT = 443                # what clients dial: https://<registry_host>/ with no port
USERNAME = "k8s-ha-lab"           # the one htpasswd user; its password is per lab (state folder)
PULL_SECRET = "registry-pull"     # kubernetes.io/dockerconfigjson in NAMESPACE
CREDENTIALS_SECRET = "registry-credentials"
TLS_SECRET = "registry-tls"

SFTP_USER = "k8s-ha-lab-registry"
EXPORT_ROOT = "/srv/k8s-ha-lab-registry"   # the chroot: root-owned, as sshd demands
DATA_DIR = "data"                          # inside it, owned by SFTP_USER: the registry's root
SSHD_DROPIN = "/etc/ssh/sshd_config.d/k8s-ha-lab-registry.conf"
AUTHORIZED_KEYS = "/etc/ssh/k8s-ha-lab-registry.authorized_keys"

MOUNT = "/var/lib/k8s-ha-lab/registry-storage"
HOST_PATH = f"{MOUNT}/{DATA_DIR}"
NODE_CONF_DIR = "/etc/k8s-ha-lab/registry"
SFTP_KEY = f"{NODE_CONF_DIR}/sftp-key"
KNOWN_HOSTS = f"{NODE_CONF_DIR}/known_hosts"
MOUNT_UNIT = "k8s-ha-lab-registry-storage.service"

# How long the pod stays bound to a node that stopped reporting (NoExecute taints
# node.kubernetes.io/unreachable and not-ready).
TOLERATION_S = 5
# Readiness: a TCP connect every READY_PERIOD_S (an HTTP probe would get 401: every path asks
# for credentials).
READY_PERIOD_S = 2
NONROOT = 65534


def registry_sans(lab: Lab) -> tuple[str, ...]:
    """The names the registry's certificate is good for: the name containerd and crane dial,
    its fixed service IP, and its Service's DNS names."""
    return (lab.registry_host, str(lab.registry.service_ip), f"{SERVICE}.{NAMESPACE}.svc",
            f"{SERVICE}.{NAMESPACE}.svc.{lab.dns_domain}")


def storage_server(lab: Lab) -> Machine:
    return lab.machine(lab.registry.storage_server)


def image_name(lab: Lab, repository: str) -> str:
    """A reference in the lab registry, e.g. registry.apps.virtual.local/lab/check."""
    return f"{lab.registry_host}/{repository}"


# --- the storage server ------------------------------------------------------------------------
def sshd_dropin() -> str:
    """sshd's rules for the storage user: SFTP only, jailed in the export, one key, nothing else.
    Debian's sshd_config includes sshd_config.d/*.conf first; the Match block ends at the end
    of this file, so it touches no other user."""
    return f"""# Rendered by k8s-ha-lab: the registry's storage, exported over SFTP (see docs/registry.md).
Match User {SFTP_USER}
    ChrootDirectory {EXPORT_ROOT}
    ForceCommand internal-sftp
    AuthorizedKeysFile {AUTHORIZED_KEYS}
    AuthenticationMethods publickey
    PasswordAuthentication no
    KbdInteractiveAuthentication no
    AllowTcpForwarding no
    AllowAgentForwarding no
    AllowStreamLocalForwarding no
    PermitTunnel no
    X11Forwarding no
    PermitTTY no
"""


def authorized_keys(lab: Lab, public_key: str) -> str:
    """The nodes' key, accepted from the nodes' addresses only."""
    sources = ",".join(str(m.ip) for m in lab.nodes)
    return f'from="{sources}",restrict {public_key.strip()}\n'


# --- the nodes -----------------------------------------------------------------------------------
def known_hosts(lab: Lab, host_key: str) -> str:
    """The storage server's host key, as read from it by the harness: sshfs checks it strictly."""
    kind, blob = host_key.split()[:2]
    return f"{storage_server(lab).ip} {kind} {blob}\n"


def mount_service(lab: Lab) -> str:
    """sshfs in the foreground under systemd: restarted if it dies, before the kubelet starts."""
    server = storage_server(lab)
    options = ",".join([
        "allow_other",            # the registry's container user is not the mounting root
        "reconnect", "ServerAliveInterval=5", "ServerAliveCountMax=3",
        "dir_cache=no",           # another node may have written since: never list from cache
        f"IdentityFile={SFTP_KEY}", f"UserKnownHostsFile={KNOWN_HOSTS}",
        "StrictHostKeyChecking=yes", "BatchMode=yes", "IdentitiesOnly=yes",
    ])
    return f"""[Unit]
Description=k8s-ha-lab: the registry's storage, {SFTP_USER}@{server.name}:/ over sshfs on {MOUNT}
Wants=network-online.target
After=network-online.target
Before=kubelet.service

[Service]
Type=simple
ExecStartPre=/bin/mkdir -p {MOUNT}
ExecStartPre=-/bin/fusermount3 -uz {MOUNT}
ExecStart=/usr/bin/sshfs -f -o {options} {SFTP_USER}@{server.ip}:/ {MOUNT}
ExecStopPost=-/bin/fusermount3 -uz {MOUNT}
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
"""


# --- containerd: trust the registry by the lab CA -------------------------------------------------
def hosts_toml_path(lab: Lab) -> str:
    from harness.render.configs import CERTS_D
    return f"{CERTS_D}/{lab.registry_host}/hosts.toml"


def hosts_toml(lab: Lab, server: str | None = None, authorization: str | None = None,
               comment: str = "pulls from the lab registry verify its certificate with the lab CA.") -> str:
    """containerd's per-registry config: the registry's certificate verified against the lab CA
    (no insecure-registry, no skip_verify). `server`: another registry name served by the lab
    registry (the conformance run's e2e prefix), `authorization` a header value sent with every
    request for it."""
    host = f"https://{lab.registry_host}"
    header = f'  [host."{host}".header]\n    Authorization = "{authorization}"\n' if authorization else ""
    return f"""# Rendered by k8s-ha-lab: {comment}
server = "https://{server or lab.registry_host}"

[host."{host}"]
  capabilities = ["pull", "resolve"]
  ca = "{SSL_DIR}/ca.pem"
{header}"""


# --- the registry in the cluster -----------------------------------------------------------------
def registry_config() -> str:
    """Distribution's config.yml: TLS, htpasswd, filesystem storage on the shared mount."""
    return yaml.safe_dump({
        "version": 0.1,
        "log": {"level": "info", "formatter": "text", "fields": {"service": "registry"}},
        "storage": {"filesystem": {"rootdirectory": "/var/lib/registry"},
                    # No upload purging: another replica's uploads live on the same storage.
                    "maintenance": {"uploadpurging": {"enabled": False}},
                    "delete": {"enabled": False}},
        "http": {"addr": f":{PORT}",
                 "tls": {"certificate": "/etc/registry/tls/tls.crt", "key": "/etc/registry/tls/tls.key",
                         "minimumtls": "tls1.2"},
                 "headers": {"X-Content-Type-Options": ["nosniff"]}},
        "auth": {"htpasswd": {"realm": "k8s-ha-lab registry", "path": "/auth/htpasswd"}},
        "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
    }, sort_keys=False)


def dockerconfigjson(lab: Lab, password: str) -> str:
    token = base64.b64encode(f"{USERNAME}:{password}".encode()).decode()
    return json.dumps({"auths": {lab.registry_host: {"username": USERNAME, "password": password,
                                                     "auth": token}}})


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _meta(name: str, **labels: str) -> dict:
    meta: dict = {"name": name, "namespace": NAMESPACE}
    if labels:
        meta["labels"] = dict(labels)
    return meta


def registry_yaml(lab: Lab, cert_pem: bytes, key_pem: bytes, password: str, http_secret: str) -> str:
    labels = {"app": APP}
    config = registry_config()
    docs: list[dict] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("registry-config", **labels),
         "data": {"config.yml": config}},
        {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
         "metadata": _meta(TLS_SECRET, **labels), "data": {"tls.crt": _b64(cert_pem), "tls.key": _b64(key_pem)}},
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": _meta(CREDENTIALS_SECRET, **labels),
         "data": {"username": _b64(USERNAME), "password": _b64(password), "http-secret": _b64(http_secret)}},
        {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
         "metadata": _meta(PULL_SECRET, **labels), "data": {".dockerconfigjson": _b64(dockerconfigjson(lab, password))}},
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta(SERVICE, **labels),
         "spec": {"selector": labels, "clusterIP": str(lab.registry.service_ip),
                  "ports": [{"name": "https", "port": SERVICE_PORT, "targetPort": PORT, "protocol": "TCP"}]}},
    ]
    image = lab.versions.registry.image_ref
    secret_env = lambda name, key: {"name": name, "valueFrom": {"secretKeyRef": {  # noqa: E731
        "name": CREDENTIALS_SECRET, "key": key}}}
    hardened = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]}}
    # htpasswd -B (bcrypt, the only hash Distribution accepts) run by the real tool at each
    # start; the password comes from the Secret through the kubelet's $(VAR) expansion.
    init = {"name": "htpasswd", "image": image, "imagePullPolicy": "Never",
            "command": ["/usr/bin/htpasswd", "-B", "-C", "10", "-b", "-c", "/auth/htpasswd",
                        "$(REGISTRY_USER)", "$(REGISTRY_PASSWORD)"],
            # htpasswd writes a temp file first (APR's temp dir); the root filesystem is read-only.
            "env": [secret_env("REGISTRY_USER", "username"), secret_env("REGISTRY_PASSWORD", "password"),
                    {"name": "TMPDIR", "value": "/auth"}],
            "securityContext": hardened,
            "volumeMounts": [{"name": "auth", "mountPath": "/auth"}]}
    container = {
        "name": "registry", "image": image, "imagePullPolicy": "Never",
        "command": ["/registry", "serve", "/etc/registry/config.yml"],
        "env": [secret_env("REGISTRY_HTTP_SECRET", "http-secret")],
        "ports": [{"name": "https", "containerPort": PORT, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
        "readinessProbe": {"tcpSocket": {"port": PORT}, "periodSeconds": READY_PERIOD_S, "failureThreshold": 2},
        "livenessProbe": {"tcpSocket": {"port": PORT}, "periodSeconds": 10, "failureThreshold": 3},
        "securityContext": hardened,
        "volumeMounts": [{"name": "config", "mountPath": "/etc/registry", "readOnly": True},
                         {"name": "tls", "mountPath": "/etc/registry/tls", "readOnly": True},
                         {"name": "auth", "mountPath": "/auth", "readOnly": True},
                         # The sshfs mount may be re-made under a running pod: see it again.
                         {"name": "storage", "mountPath": "/var/lib/registry",
                          "mountPropagation": "HostToContainer"}],
    }
    # A new config, certificate or password rolls the pod (each is read only at start).
    rollout = hashlib.sha256(b"\0".join([config.encode(), cert_pem, key_pem, password.encode(),
                                         http_secret.encode()])).hexdigest()
    docs.append({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta("registry", **labels),
        "spec": {
            "replicas": 1,
            # One writer at a time on the shared directory.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels, "annotations": {"k8s-ha-lab/config-sha256": rollout}},
                         "spec": {
                "priorityClassName": "system-cluster-critical",
                "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": 10,
                "securityContext": {"runAsNonRoot": True, "runAsUser": NONROOT, "runAsGroup": NONROOT},
                "tolerations": [{"key": key, "operator": "Exists", "effect": "NoExecute",
                                 "tolerationSeconds": TOLERATION_S}
                                for key in ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")],
                "initContainers": [init],
                "containers": [container],
                "volumes": [{"name": "config", "configMap": {"name": "registry-config"}},
                            {"name": "tls", "secret": {"secretName": TLS_SECRET}},
                            {"name": "auth", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                            {"name": "storage", "hostPath": {"path": HOST_PATH, "type": "Directory"}}],
            }},
        },
    })
    return yaml.safe_dump_all(docs, sort_keys=False)
