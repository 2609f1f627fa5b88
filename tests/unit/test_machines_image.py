"""The node image's recipe hash: a changed recipe gives a new tag, an unchanged one reuses."""

from dataclasses import replace

from harness.image.recipe import IMAGE_REPOSITORY, NODE_PACKAGES, node_recipe, read_files


def test_hash_is_stable_and_in_the_tag():
    first, second = node_recipe(), node_recipe()
    assert first.content_hash() == second.content_hash()
    assert first.tag == f"{IMAGE_REPOSITORY}:bookworm-{first.content_hash()[:12]}"


def test_package_list_changes_the_hash_and_the_debootstrap_cache():
    recipe = node_recipe()
    more = replace(recipe, packages=recipe.packages + ("strace",))
    assert more.content_hash() != recipe.content_hash()
    assert more.base_hash() != recipe.base_hash()
    assert more.base_tarball != recipe.base_tarball


def test_package_order_does_not_matter():
    recipe = node_recipe()
    shuffled = replace(recipe, packages=tuple(reversed(recipe.packages)))
    assert shuffled.content_hash() == recipe.content_hash()


def test_entrypoint_change_keeps_the_debootstrap_cache(tmp_path):
    recipe = node_recipe()
    files = read_files()
    files["entrypoint"] = files["entrypoint"] + b"\n# a comment is a change\n"
    changed = replace(recipe, files=files)
    assert changed.content_hash() != recipe.content_hash()
    assert changed.tag != recipe.tag
    assert changed.base_hash() == recipe.base_hash()
    assert changed.rootfs_tarball != recipe.rootfs_tarball


def test_build_script_and_import_changes_count():
    recipe = node_recipe()
    files = read_files()
    files["customize.sh"] = files["customize.sh"].replace(b"multi-user.target", b"graphical.target")
    assert replace(recipe, files=files).content_hash() != recipe.content_hash()
    assert replace(recipe, changes=recipe.changes + ("ENV X=1",)).content_hash() != recipe.content_hash()


def test_recipe_has_what_a_node_needs():
    for package in ("systemd", "openssh-server", "containerd", "runc", "iptables", "conntrack",
                    "haproxy", "keepalived", "socat", "containernetworking-plugins", "python3"):
        assert package in NODE_PACKAGES
    assert "etcd-client" not in NODE_PACKAGES
    recipe = node_recipe()
    assert any(c.startswith("ENTRYPOINT") and "/sbin/init" in c for c in recipe.changes)


def test_customize_disables_what_later_steps_start():
    script = read_files()["customize.sh"].decode()
    assert "systemctl disable haproxy.service keepalived.service" in script
    assert "systemctl enable ssh.service containerd.service" in script
    assert "getty" in script
