"""The suite's images served by the lab registry while the suite runs, for `imagePullPolicy: Always`.

Why: a pod that says `imagePullPolicy: Always` makes the kubelet ask the image's registry for its
manifest even when containerd has the image; with no registry behind the e2e prefix
(`k8s-ha-lab.local/e2e`) the pull fails and the pod never starts. The [Conformance] spec
"Projected PodCertificate ... mTLS" runs agnhost that way. With the `registry` add-on the lab
has a registry, so:

1. publish(): every e2e image is pushed to the lab registry under the same path
   (`k8s-ha-lab.local/e2e/agnhost:2.59` -> `registry.<domain>/e2e/agnhost:2.59`) with crane on
   one node, unless the registry already has that exact manifest digest (a re-run pushes nothing).
2. served(): for the length of the run, each node's containerd gets
   `certs.d/k8s-ha-lab.local/hosts.toml`: resolve and pull through the lab registry, verified by
   the lab CA, with the registry user's credentials as a header, because the e2e pods carry no
   pull secret. Removed again when the run ends, however it ends.

The cost, written down in docs/conformance.md: while the suite runs, any pod on a node can pull
from the lab registry by the e2e name without a pull secret. Distribution's htpasswd has no
read-only user to narrow it; the window is the run.
"""

from __future__ import annotations

import base64
import shlex
from contextlib import contextmanager
from pathlib import Path

from harness.artifacts.images.conformance_images import E2E_PREFIX
from harness.conformance.images import STEP, manifest_digest
from harness.errors import UserError

E2E_HOST = E2E_PREFIX.split("/", 1)[0]
WORK = "/var/tmp/k8s-ha-lab-e2e-push"


def available(lab) -> bool:
    return lab.has_addon("registry")


def registry_ref(lab, e2e_ref: str) -> str:
    """The lab registry's name for an e2e image: same path, the registry's host."""
    from harness.render.registry import image_name

    host, _, path = e2e_ref.partition("/")
    if host != E2E_HOST or not path:
        raise UserError(f"{e2e_ref}: not an image under {E2E_PREFIX}")
    return image_name(lab, path)


def hosts_toml_path() -> str:
    from harness.render.configs import CERTS_D
    return f"{CERTS_D}/{E2E_HOST}/hosts.toml"


def hosts_toml(lab, username: str, password: str) -> str:
    """containerd's config for the e2e prefix: the lab registry, its CA, a basic-auth header."""
    from harness.render.registry import hosts_toml as registry_hosts_toml

    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return registry_hosts_toml(lab, server=E2E_HOST, authorization=f"Basic {token}",
                               comment=f"for a conformance run only (removed when it ends): images "
                                       f"under {E2E_PREFIX} pull through the lab registry.")


def publish(ctx, archives: dict[str, Path], report=lambda *a: None) -> int:
    """Pushes each archive's image to the lab registry unless it is there with the same manifest
    digest; checks the digest after each push. Returns how many were pushed."""
    from harness.steps.actions import push_file, run
    from harness.steps.registry import CRANE, CRANE_ENV

    node = ctx.lab.nodes[0]
    pushed = 0
    for ref, archive in sorted(archives.items()):
        target = registry_ref(ctx.lab, ref)
        wanted = manifest_digest(archive)
        have = run(ctx, STEP, node, f"{CRANE_ENV} {CRANE} digest {shlex.quote(target)} 2>/dev/null "
                                    "|| true").stdout.strip()
        if have == wanted:
            continue
        remote = f"{WORK}/{archive.name}"
        layout = f"{WORK}/layout"
        push_file(ctx, node, archive, remote, mode=0o600)
        got = run(ctx, STEP, node,
                  f"rm -rf {layout} && mkdir -p {layout} && tar -xf {shlex.quote(remote)} -C {layout} "
                  f"&& {CRANE_ENV} {CRANE} push {layout} {shlex.quote(target)} >/dev/null "
                  f"&& {CRANE_ENV} {CRANE} digest {shlex.quote(target)}; rc=$?; rm -rf {WORK}; exit $rc",
                  timeout=600).stdout.strip()
        if got != wanted:
            raise UserError(f"[{STEP}] {node.name}: crane push {target} gave digest {got!r}, "
                            f"the archive has {wanted}")
        report(node.name, target)
        pushed += 1
    return pushed


@contextmanager
def served(ctx):
    """The e2e prefix pulled through the lab registry on every node, for the block's length."""
    from harness.render.registry import USERNAME
    from harness.steps.actions import run
    from harness.steps.registry import load_registry_secrets

    password = load_registry_secrets(ctx.state_dir).password
    path = hosts_toml_path()
    content = hosts_toml(ctx.lab, USERNAME, password)
    try:
        for machine in ctx.lab.nodes:
            ctx.on(machine).upload(path, content.encode(), 0o600)
        yield path
    finally:
        for machine in ctx.lab.nodes:
            run(ctx, STEP, machine, f"rm -rf {shlex.quote(str(Path(path).parent))}", check=False)
