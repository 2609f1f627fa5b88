"""`python -m harness image build|status`: the node image for the docker provider."""

from __future__ import annotations

import argparse

from harness.image.build import build_image, cached_files, require_daemon
from harness.image.recipe import node_recipe


def _build(args: argparse.Namespace) -> int:
    from harness.progress import phase  # one progress format for every command

    recipe = node_recipe()
    # A stopped daemon is one line and exit 2 before anything is built, not a traceback from
    # `docker import` after the debootstrap. (`up` checks it in the provider's host checks.)
    require_daemon()
    with phase(f"image > {recipe.tag}") as note:
        result = build_image(recipe, force=args.force, mirror=args.mirror, log=print)
        note("built: " + ", ".join(result.steps) if result.built else "cached")
    return 0


def _status(args: argparse.Namespace) -> int:
    recipe = node_recipe()
    print(f"tag          {recipe.tag}")
    print(f"recipe hash  {recipe.content_hash()}")
    for name, present in cached_files(recipe).items():
        where = {"image": recipe.tag, "rootfs": recipe.rootfs_tarball,
                 "debootstrap": recipe.base_tarball}[name]
        print(f"{name:<12} {'present' if present else 'missing'}  {where}")
    return 0 if cached_files(recipe)["image"] else 1


def register(subparsers) -> None:
    image = subparsers.add_parser("image", help="build or inspect the docker provider's node image")
    actions = image.add_subparsers(dest="image_action", required=True)
    build = actions.add_parser("build", help="build the node image unless its recipe hash is cached")
    build.add_argument("--force", action="store_true", help="rebuild every layer, ignoring caches")
    build.add_argument("--mirror", help="Debian mirror for debootstrap "
                                        "(default $K8S_HA_LAB_DEBIAN_MIRROR, else the host's apt sources)")
    build.set_defaults(func=_build)
    status = actions.add_parser("status", help="show the image tag and which caches exist")
    status.set_defaults(func=_status)
