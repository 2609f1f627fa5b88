"""Where a lab keeps what must never be in the repo: its PKI, its secrets, its SSH key, its runs.

The folder is `$K8S_HA_LAB_STATE/<lab>` (default `~/.local/state/k8s-ha-lab/<lab>`). Secrets are
generated once per lab and reused, so a re-run renders the same files (idempotence).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.lab import Lab


def state_root() -> Path:
    env = os.environ.get("K8S_HA_LAB_STATE")
    if env:
        return Path(env)
    return Path.home() / ".local" / "state" / "k8s-ha-lab"


def lab_state_dir(lab: Lab, root: Path | None = None) -> Path:
    path = (root or state_root()) / lab.name
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


@dataclass(frozen=True)
class LabSecrets:
    bootstrap_token: str   # token.csv and the bootstrap kubeconfig
    vrrp_auth_pass: str    # keepalived PASS auth: at most 8 characters
    haproxy_stats_password: str


def _generate() -> dict:
    return {"bootstrap_token": secrets.token_hex(16),  # the guide's 16 random bytes in hex
            "vrrp_auth_pass": secrets.token_hex(4),
            "haproxy_stats_password": secrets.token_urlsafe(12)}


def load_secrets(lab: Lab, state_dir: Path) -> LabSecrets:
    """The lab's secrets, generated on first use and kept 0600 in its state folder."""
    path = Path(state_dir) / "secrets.yaml"
    stored = yaml.safe_load(path.read_text()) if path.exists() else None
    values = {**_generate(), **(stored or {})}
    if lab.cluster.bootstrap_token:  # a lab file may pin the token
        values["bootstrap_token"] = lab.cluster.bootstrap_token
    if values != stored:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump(values, handle)
    return LabSecrets(**{k: values[k] for k in LabSecrets.__dataclass_fields__})
