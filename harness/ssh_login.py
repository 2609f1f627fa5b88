"""Where and as whom the harness logs in to each machine, and the lab's own key pair.

A machine the provider made is reached as root on its lab IP, port 22, with the lab's key
(generated once per lab, kept in its state folder). A machine that already exists (the ssh
provider) carries its login in the lab file (`Machine.ssh`).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness.lab import Lab, Machine, SshLogin

KEY_NAME = "id_ed25519"
_KEY_LOCK = threading.Lock()   # threads of one process (a parallel step's first logins) make it once


@dataclass(frozen=True)
class LabKey:
    private_path: Path
    public_line: str  # the authorized_keys line


def ensure_lab_key(state_dir: Path) -> LabKey:
    """The lab's SSH key pair, generated once and kept 0600 in the lab's state folder."""
    with _KEY_LOCK:
        return _ensure_lab_key(state_dir)


def _ensure_lab_key(state_dir: Path) -> LabKey:
    private = Path(state_dir) / KEY_NAME
    public = private.with_suffix(".pub")
    if not private.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
        line = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                             serialization.PublicFormat.OpenSSH).decode()
        partial = private.with_name(f"{KEY_NAME}.{os.getpid()}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        public_partial = public.with_name(f"{KEY_NAME}.pub.{os.getpid()}.partial")
        public_partial.write_text(f"{line} k8s-ha-lab-{Path(state_dir).name}\n")
        try:
            # Two processes (the harness and a `vagrant` it started) may race here; the first
            # link wins and the other uses that key, so nobody holds a key nobody else knows.
            os.link(partial, private)
            os.replace(public_partial, public)
        except FileExistsError:
            public_partial.unlink()
        finally:
            partial.unlink()
    os.chmod(private, 0o600)
    return LabKey(private, public.read_text().strip())


def login_for(machine: Machine, state_dir: Path) -> SshLogin:
    """Where and as whom the harness logs in: the lab file's `ssh:` for a machine that already
    exists, else root on the lab IP, port 22, with the lab's key."""
    if machine.ssh is not None:
        return machine.ssh
    return SshLogin(address=str(machine.ip), user="root", port=22,
                    key=ensure_lab_key(state_dir).private_path)


def write_ssh_config(lab: Lab, state_dir: Path) -> Path:
    """An ssh_config for the lab, with each machine's own login, for trainees
    (`ssh -F <state>/ssh_config master01`)."""
    blocks = []
    for m in lab.machines:
        login = login_for(m, state_dir)
        blocks.append(f"Host {m.name} {m.ip}\n  HostName {login.address}\n  Port {login.port}\n"
                      f"  User {login.user}\n  IdentityFile {login.key}\n  IdentitiesOnly yes\n"
                      f"  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
                      f"  LogLevel ERROR\n")
    path = Path(state_dir) / "ssh_config"
    path.write_text("\n".join(blocks))
    return path
