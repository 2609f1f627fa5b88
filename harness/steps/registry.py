"""The guide's harbor, today CNCF Distribution: a private registry inside the cluster, with TLS
from the lab CA and htpasswd, on a directory the storage server exports and every node mounts.

In order: the storage server's SFTP jail (user, chroot, sshd rules, the nodes' key); on every
node the registry image, crane, the sshfs mount unit, its key and the server's host key; then
the registry's manifest. Done when the registry answers through its name and service IP from a
node: 401 without credentials, its catalog with them (crane, verifying TLS with the lab CA).
containerd's trust (certs.d/<registry_host>/hosts.toml) is the nodes step's, with containerd's
config.
"""

from __future__ import annotations

import os
import secrets
import shlex
from dataclasses import dataclass
from pathlib import Path

from harness.errors import StepError
from harness.render import BIN_DIR, K8S_DIR, SSL_DIR, UNIT_DIR, RenderedFile
from harness.render import registry as reg
from harness.steps.actions import (NotYet, kubectl_apply, run, start_units, sync_files, wait_deployment,
                                   wait_until)
from harness.steps import facts
from harness.steps.context import StepContext
from harness.steps.nodes import import_images
from harness.steps.parallel import for_each

NAME = "registry"
MANIFEST = f"{K8S_DIR}/addons/registry.yaml"
DOCKER_CONFIG_DIR = f"{reg.NODE_CONF_DIR}/docker"
CRANE = f"{BIN_DIR}/crane"
# How to run crane on a node as the lab's registry user: its credentials, and the lab CA as the
# only trusted root (Go reads SSL_CERT_FILE).
CRANE_ENV = f"DOCKER_CONFIG={DOCKER_CONFIG_DIR} SSL_CERT_FILE={SSL_DIR}/ca.pem"
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key.pub"


@dataclass(frozen=True)
class RegistrySecrets:
    password: str          # the htpasswd user's
    http_secret: str       # Distribution's http.secret (signs upload state)
    sftp_private: bytes    # the nodes' key to the storage server (OpenSSH format)
    sftp_public: str


def load_registry_secrets(state_dir: Path) -> RegistrySecrets:
    """Generated once per lab into <state>/registry/ (0600 files in a 0700 folder), then reused."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    folder = Path(state_dir) / "registry"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    def kept(name: str, make) -> bytes:
        path = folder / name
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(make())
        return path.read_bytes()

    password = kept("password", lambda: secrets.token_urlsafe(24).encode()).decode().strip()
    http_secret = kept("http-secret", lambda: secrets.token_hex(32).encode()).decode().strip()
    private = kept("sftp-key", lambda: Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()))
    key = serialization.load_ssh_private_key(private, password=None)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return RegistrySecrets(password, http_secret, private, f"{public} k8s-ha-lab-registry-storage")


def _file(machine, path: str, content: str | bytes, mode: int = 0o644) -> RenderedFile:
    data = content.encode() if isinstance(content, str) else content
    return RenderedFile(machine.name, path, data, mode, NAME)


def server_files(ctx: StepContext, server, keys: RegistrySecrets) -> list[RenderedFile]:
    return [_file(server, reg.SSHD_DROPIN, reg.sshd_dropin()),
            _file(server, reg.AUTHORIZED_KEYS, reg.authorized_keys(ctx.lab, keys.sftp_public))]


def node_files(ctx: StepContext, m, keys: RegistrySecrets, host_key: str) -> list[RenderedFile]:
    from harness.artifacts.cache import ArtifactCache

    crane = ctx.lab.versions.crane
    crane_path = ArtifactCache().binary_path(crane.name, crane.version, "crane")
    if not crane_path.exists():
        from harness.errors import UserError
        raise UserError(f"crane {crane.version}: not in the artifact cache ({crane_path}); "
                        "run `python -m harness artifacts build --only crane`")
    return [_file(m, reg.SFTP_KEY, keys.sftp_private, 0o600),
            _file(m, reg.KNOWN_HOSTS, reg.known_hosts(ctx.lab, host_key)),
            _file(m, f"{UNIT_DIR}/{reg.MOUNT_UNIT}", reg.mount_service(ctx.lab)),
            _file(m, f"{DOCKER_CONFIG_DIR}/config.json", reg.dockerconfigjson(ctx.lab, keys.password), 0o600),
            _file(m, CRANE, crane_path.read_bytes(), 0o755)]


def manifest_file(ctx: StepContext, keys: RegistrySecrets) -> RenderedFile:
    pki = ctx.pki_dir
    content = reg.registry_yaml(ctx.lab, (pki / "registry.pem").read_bytes(),
                                (pki / "registry-key.pem").read_bytes(), keys.password, keys.http_secret)
    return _file(ctx.lab.masters[0], MANIFEST, content, 0o600)   # holds the key and the password


def _storage_server(ctx: StepContext, server, keys: RegistrySecrets) -> None:
    user = reg.SFTP_USER
    if run(ctx, NAME, server, f"id -u {user}", check=False).exit_status != 0:
        run(ctx, NAME, server, f"useradd --system --no-create-home --home-dir / --shell /usr/sbin/nologin {user}")
        ctx.changed(NAME, f"{server.name}:user {user}")
    # sshd's chroot must be root's and not writable by others; the registry writes in data/.
    root, data = reg.EXPORT_ROOT, f"{reg.EXPORT_ROOT}/{reg.DATA_DIR}"
    state = run(ctx, NAME, server, f"stat -c '%U:%G %a' {root} {data} 2>/dev/null; true").stdout.split("\n")
    if [line.strip() for line in state if line.strip()] != ["root:root 755", f"{user}:{user} 750"]:
        run(ctx, NAME, server, f"install -d -m 0755 -o root -g root {root} && "
                               f"install -d -m 0750 -o {user} -g {user} {data}")
        ctx.changed(NAME, f"{server.name}:{data}")
    changed = sync_files(ctx, NAME, server, server_files(ctx, server, keys))
    if reg.SSHD_DROPIN in changed:
        # Never leave sshd a config it would refuse at its next start: test, then reload.
        test = run(ctx, NAME, server, "/usr/sbin/sshd -t", check=False)
        if test.exit_status != 0:
            run(ctx, NAME, server, f"rm -f {reg.SSHD_DROPIN}")
            raise StepError(NAME, server.name, "sshd -t", (test.stderr or test.stdout).strip()[-600:])
        run(ctx, NAME, server, "systemctl reload ssh", unit="ssh")
        ctx.changed(NAME, f"{server.name}:reload ssh")


def _node(ctx: StepContext, m, keys: RegistrySecrets, host_key: str) -> None:
    import_images(ctx, m, ("registry",), step=NAME)
    files = node_files(ctx, m, keys, host_key)
    facts.gather_for_files(ctx, NAME, m, [f.path for f in files])   # one round trip, as for ctx.files
    changed = sync_files(ctx, NAME, m, files)
    mount_inputs = {reg.SFTP_KEY, reg.KNOWN_HOSTS, f"{UNIT_DIR}/{reg.MOUNT_UNIT}"}
    start_units(ctx, NAME, m, [reg.MOUNT_UNIT], restart=bool(mount_inputs & set(changed)))

    def mounted():
        probe = run(ctx, NAME, m, f"mountpoint -q {reg.MOUNT} && test -d {reg.HOST_PATH}", check=False)
        if probe.exit_status != 0:
            raise NotYet(f"{reg.MOUNT} is not the storage server's export yet")
    wait_until(ctx, NAME, m, f"{reg.MOUNT} mounted over sshfs", mounted, timeout=60, interval=1,
               unit=reg.MOUNT_UNIT, command=f"mountpoint {reg.MOUNT}")


def answers(ctx: StepContext, machine, step: str = NAME) -> tuple[str, str]:
    """(HTTP status of an anonymous GET /v2/, crane's catalog with the lab's credentials), both
    through the registry's name, verifying its certificate against the lab CA."""
    host = ctx.lab.registry_host
    anonymous = run(ctx, step, machine, f"curl -s -o /dev/null -w '%{{http_code}}' --cacert {SSL_DIR}/ca.pem "
                                        f"{shlex.quote(f'https://{host}/v2/')}", check=False).stdout.strip()
    catalog = run(ctx, step, machine, f"{CRANE_ENV} {CRANE} catalog {shlex.quote(host)}", check=False)
    return anonymous, catalog.stdout if catalog.exit_status == 0 else f"error: {(catalog.stderr or '').strip()[-300:]}"


def run_step(ctx: StepContext) -> None:
    if not ctx.lab.has_addon(NAME):
        return
    lab = ctx.lab
    keys = load_registry_secrets(ctx.state_dir)
    server = reg.storage_server(lab)
    _storage_server(ctx, server, keys)
    host_key = run(ctx, NAME, server, f"cat {HOST_KEY}").stdout.strip()
    for_each(ctx, NAME, lab.nodes, lambda m: _node(ctx, m, keys, host_key))
    first = lab.masters[0]
    sync_files(ctx, NAME, first, [manifest_file(ctx, keys)])
    kubectl_apply(ctx, NAME, MANIFEST)
    wait_deployment(ctx, NAME, reg.NAMESPACE, "registry")
    witness = lab.nodes[0]

    def served():
        anonymous, catalog = answers(ctx, witness)
        if anonymous != "401" or catalog.startswith("error"):
            raise NotYet(f"anonymous GET /v2/ -> {anonymous or 'no answer'}; crane catalog -> {catalog.strip()}")
    wait_until(ctx, NAME, witness, f"the registry at https://{lab.registry_host} (401 anonymous, catalog "
               "with credentials)", served, timeout=90, interval=2,
               command=f"curl https://{lab.registry_host}/v2/; crane catalog {lab.registry_host}")
