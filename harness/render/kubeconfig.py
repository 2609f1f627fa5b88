"""kubeconfigs with the certificates embedded, as the guide's `--embed-certs=true` makes them."""

from __future__ import annotations

import base64

import yaml


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig(server: str, user: str, ca_pem: bytes, *, cert_pem: bytes | None = None,
               key_pem: bytes | None = None, token: str | None = None) -> str:
    """One cluster, one user, one context named `default`, like `kubectl config set-*`."""
    if (cert_pem is None) == (token is None):
        raise ValueError("a kubeconfig user needs either a client certificate or a token")
    credentials = {"token": token} if token else {
        "client-certificate-data": _b64(cert_pem), "client-key-data": _b64(key_pem)}
    return yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubernetes",
                      "cluster": {"certificate-authority-data": _b64(ca_pem), "server": server}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "default", "context": {"cluster": "kubernetes", "user": user}}],
        "current-context": "default",
    }, sort_keys=False)
