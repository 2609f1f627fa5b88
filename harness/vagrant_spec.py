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
from harness.image.recipe import NODE_PACKAGES
from harness.lab import Lab
from harness.labfile import load_lab
from harness.state import lab_state_dir


def machine_spec(lab: Lab) -> list[dict]:
    return [{"name": m.name, "hostname": m.name, "ip": str(m.ip),
             "netmask": str(lab.network.netmask), "prefixlen": lab.network.prefixlen,
             "cpus": m.cpus, "memory": m.memory_mb, "roles": list(m.roles)}
            for m in lab.machines]


def lab_spec(lab: Lab, provider: str | None = None) -> dict:
    """What every Vagrant provider reads, plus the section of the provider `vagrant` will use
    (its own `vagrantfile_settings`), when it has one."""
    from harness.providers import provider_class
    from harness.transport import ensure_lab_key

    state_dir = lab_state_dir(lab)
    key = ensure_lab_key(state_dir)
    spec = {
        "lab": lab.name,
        "network": str(lab.network),
        "interface": lab.interface,
        "machines": machine_spec(lab),
        "ssh": {"username": "root", "private_key_path": str(key.private_path),
                "public_key": key.public_line},
        "packages": list(NODE_PACKAGES),
    }
    if provider is not None:
        spec.update(provider_class(provider)(lab, state_dir).vagrantfile_settings())
    return spec


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python3 -m harness.vagrant_spec LAB_FILE", file=sys.stderr)
        return 2
    try:
        lab = load_lab(argv[0])
        # The harness says which provider it runs; a hand-run `vagrant` on a host with docker
        # gets the docker section too (Vagrant reads every provider block of the Vagrantfile).
        provider = os.environ.get("K8S_HA_LAB_PROVIDER") or ("docker" if shutil.which("docker") else None)
        spec = lab_spec(lab, provider)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    json.dump(spec, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
