"""`python3 -m harness.vagrant_spec LAB_FILE`: the lab as JSON, for the Vagrantfile.

The Vagrantfile holds no address: it asks this module for the parsed lab, so Vagrant and the
harness read the same file through the same validation. A bad lab file prints one line on
stderr and exits 2, which `vagrant` then reports.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

from harness.errors import UserError
from harness.image.recipe import NODE_PACKAGES, node_image_tag
from harness.lab import Lab
from harness.labfile import load_lab
from harness.state import lab_state_dir

CREATE_ARGS_ENV = "K8S_HA_LAB_DOCKER_CREATE_ARGS"


def machine_spec(lab: Lab) -> list[dict]:
    return [{"name": m.name, "hostname": m.name, "ip": str(m.ip),
             "netmask": str(lab.network.netmask), "prefixlen": lab.network.prefixlen,
             "cpus": m.cpus, "memory": m.memory_mb, "roles": list(m.roles)}
            for m in lab.machines]


def docker_create_args(lab: Lab) -> list[str]:
    """The harness passes its preflight decision in the environment; a hand-run `vagrant`
    without it probes the host itself (once per lab, cached in the state folder)."""
    given = os.environ.get(CREATE_ARGS_ENV)
    if given:
        args = json.loads(given)
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise UserError(f"{CREATE_ARGS_ENV}: must be a JSON list of strings")
        return args
    from harness.providers.docker import cached_create_args
    return cached_create_args(lab_state_dir(lab))


def lab_spec(lab: Lab, with_docker: bool = True) -> dict:
    from harness.providers.docker import container_name
    from harness.transport import ensure_lab_key

    key = ensure_lab_key(lab_state_dir(lab))
    spec = {
        "lab": lab.name,
        "network": str(lab.network),
        "interface": lab.interface,
        "machines": machine_spec(lab),
        "ssh": {"username": "root", "private_key_path": str(key.private_path),
                "public_key": key.public_line},
        "packages": list(NODE_PACKAGES),
    }
    if with_docker:
        spec["docker"] = {"image": node_image_tag(), "create_args": docker_create_args(lab),
                          "names": {m.name: container_name(lab, m.name) for m in lab.machines}}
    return spec


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python3 -m harness.vagrant_spec LAB_FILE", file=sys.stderr)
        return 2
    try:
        lab = load_lab(argv[0])
        provider = os.environ.get("K8S_HA_LAB_PROVIDER")
        with_docker = provider == "docker" or (provider is None and shutil.which("docker") is not None)
        spec = lab_spec(lab, with_docker=with_docker)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    json.dump(spec, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
