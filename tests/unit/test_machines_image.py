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


# --- the Debian mirror comes from the host's apt sources, never from the repo -----------------
def _apt(tmp_path, sources_list=None, **parts):
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    if sources_list is not None:
        (apt / "sources.list").write_text(sources_list)
    for name, text in parts.items():
        (apt / "sources.list.d" / name.replace("_", ".")).write_text(text)
    return apt


def test_mirror_from_a_one_line_sources_list(tmp_path):
    from harness.image.mirror import host_debian_mirror

    apt = _apt(tmp_path, "# a comment\n"
                         "deb-src http://src.example/debian bookworm main\n"
                         "deb http://security.example/debian-security bookworm-security main\n"
                         "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main contrib\n")
    assert host_debian_mirror("bookworm", apt) == "http://mirror.example/debian"


def test_mirror_from_deb822_sources_skipping_disabled_and_other_files(tmp_path):
    from harness.image.mirror import host_debian_mirror

    apt = _apt(tmp_path, None,
               a_sources="Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\n"
                         "Components: main\nEnabled: no\n",
               b_sources="Types: deb deb-src\n# a comment inside the stanza\n"
                         "URIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
                         "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
                         "Types: deb\nURIs: http://mirror.example/debian-security\n"
                         "Suites: bookworm-security\nComponents: main\n",
               c_list_disabled="deb http://ignored.example/debian bookworm main\n")
    assert host_debian_mirror("bookworm", apt) == "http://mirror.example/debian"


def test_mirror_prefers_the_recipe_suite_then_a_debian_layout(tmp_path):
    from harness.image.mirror import host_debian_mirror

    apt = _apt(tmp_path, "deb https://vendor.example/apt nodistro main\n"
                         "deb http://trixie.example/debian trixie main\n")
    assert host_debian_mirror("bookworm", apt) == "http://trixie.example/debian"
    assert host_debian_mirror("trixie", apt) == "http://trixie.example/debian"


def test_no_mirror_anywhere_is_one_line(tmp_path, monkeypatch):
    import pytest

    from harness.errors import UserError
    from harness.image.mirror import debian_mirror

    monkeypatch.delenv("K8S_HA_LAB_DEBIAN_MIRROR", raising=False)
    apt = _apt(tmp_path, "deb cdrom:[Debian 12]/ bookworm main\n")
    with pytest.raises(UserError, match=r"^Debian mirror: none found in .*; set \$K8S_HA_LAB_DEBIAN_MIRROR"):
        debian_mirror("bookworm", None, apt)
    assert debian_mirror("bookworm", "http://given.example/debian", apt) == "http://given.example/debian"
    monkeypatch.setenv("K8S_HA_LAB_DEBIAN_MIRROR", "http://env.example/debian")
    assert debian_mirror("bookworm", None, apt) == "http://env.example/debian"


def test_no_registry_host_is_written_in_the_repo():
    """The archive, the module proxy and the release downloads come from the host's apt and Go
    settings and its release mirrors (harness.artifacts.release_urls)."""
    import subprocess

    from harness import REPO_ROOT

    hosts = [r"deb\.debian\.org", r"proxy\.golang", r"dl\.k8s\.io", r"github\.com/[^ ]*/releases",
             r"storage\.googleapis", r"registry\.k8s\.io", r"gcr\.io", r"quay\.io", r"ghcr\.io",
             r"docker\.io/", r"registry-1\.docker", r"pypi\.org", r"files\.pythonhosted"]
    proc = subprocess.run(["git", "grep", "-n", "-I", "-i", "-E", *sum((["-e", h] for h in hosts), []),
                           "--", ".", ":!.git"], capture_output=True, text=True,
                          cwd=REPO_ROOT)
    assert proc.returncode == 1, proc.stdout  # 1: no match


def test_a_stopped_docker_daemon_is_one_line_and_exit_2_before_anything_is_built(
        tmp_path, monkeypatch, capsys):
    import harness.image.build as build
    from harness.cli import main

    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon at "
                    "unix:///var/run/docker.sock. Is the docker daemon running?' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setattr(build, "build_rootfs",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("a build started")))

    assert main(["image", "build"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: docker: the daemon is not reachable")
    assert "Cannot connect to the Docker daemon" in err[0]


def test_a_failed_build_command_is_a_user_error_naming_the_command():
    from harness.errors import UserError
    from harness.image.build import ImageBuildError

    exc = ImageBuildError("debootstrap", ["debootstrap", "bookworm"], "E: no such suite\n")
    assert isinstance(exc, UserError) and exc.exit_status == 2
    assert str(exc).splitlines()[0] == "image build: debootstrap failed: `debootstrap bookworm`"
