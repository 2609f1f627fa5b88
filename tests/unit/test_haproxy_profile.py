"""The haproxy profiles (seed, tuned), the probe's client timeouts that go with them, and lab
files that extend another lab file (labs/seed-tuned.yaml)."""

from __future__ import annotations

import subprocess

import pytest

from harness import REPO_ROOT
from harness.cli import main
from harness.failover.probe import client_timeouts
from harness.labfile import load_lab
from harness.render.lb import haproxy_cfg
from tests.unit.conftest import require_tool

SEED, TUNED = REPO_ROOT / "labs/seed.yaml", REPO_ROOT / "labs/seed-tuned.yaml"


def _backend(cfg: str) -> str:
    return next(line for line in cfg.splitlines() if line.strip().startswith("default-server"))


def test_seed_tuned_is_the_seed_lab_with_only_the_profile_changed():
    seed, tuned = load_lab(SEED), load_lab(TUNED)
    assert tuned.haproxy.profile == "tuned" and seed.haproxy.profile == "seed"
    assert tuned.machines == seed.machines and tuned.vip == seed.vip and tuned.name == seed.name
    # the checks' timing is the lab file's in both profiles
    assert (tuned.haproxy.check_inter, tuned.haproxy.rise, tuned.haproxy.fall) == \
        (seed.haproxy.check_inter, seed.haproxy.rise, seed.haproxy.fall)


def test_seed_profile_renders_the_guide_defaults_only():
    cfg = haproxy_cfg(load_lab(SEED), "pw")
    assert "timeout connect 5s" in cfg
    for word in ("retries", "redispatch", "on-marked-down", "observe"):
        assert word not in cfg, word
    assert _backend(cfg).endswith("weight 100")


def test_tuned_profile_renders_each_tuning():
    cfg = haproxy_cfg(load_lab(TUNED), "pw")
    assert "timeout connect 1s" in cfg and "retries 2" in cfg and "option redispatch 1" in cfg
    assert "timeout connect 5s" not in cfg
    backend = _backend(cfg)
    assert "on-marked-down shutdown-sessions" in backend
    assert "observe layer4 error-limit 1 on-error mark-down" in backend
    assert "(haproxy profile: tuned)" in cfg.splitlines()[0]


@pytest.mark.parametrize("lab", [SEED, TUNED], ids=["seed", "tuned"])
def test_both_profiles_pass_haproxys_own_check(lab, tmp_path):
    require_tool("haproxy")
    parsed = load_lab(lab)
    path = tmp_path / "haproxy.cfg"
    # bind the VIP's port on loopback: the config check binds nothing, but it resolves addresses
    path.write_text(haproxy_cfg(parsed, "pw").replace(str(parsed.vip), "127.0.0.1"))
    done = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_probe_client_timeouts_follow_the_profile():
    assert client_timeouts(load_lab(SEED)) == (2.0, 2.0)
    assert client_timeouts(load_lab(TUNED)) == (0.5, 1.0)


def test_bad_profile_exits_2_naming_the_field(seed_data, write_lab, capsys):
    seed_data["haproxy"]["profile"] = "fast"
    assert main(["validate", str(write_lab(seed_data))]) == 2
    err = capsys.readouterr().err
    assert err == "error: haproxy.profile: must be one of seed, tuned, got 'fast'\n"


@pytest.mark.parametrize("extends,message", [
    (["seed.yaml"], "must name another lab file (.yaml), got ['seed.yaml']"),
    ("nowhere.yaml", "nowhere.yaml: no such lab file"),
    ("lab.yaml", "lab.yaml extends this file again (a loop)"),
])
def test_bad_extends_exits_2(write_lab, capsys, extends, message):
    path = write_lab({"extends": extends, "haproxy": {"profile": "tuned"}})
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {path}: extends: {message}\n", err


def test_extends_loop_through_two_files(write_lab, capsys):
    write_lab({"extends": "b.yaml"}, "a.yaml")
    b = write_lab({"extends": "a.yaml"}, "b.yaml")
    assert main(["validate", str(b)]) == 2
    assert "extends this file again (a loop)" in capsys.readouterr().err


def test_extends_merges_mappings_and_replaces_lists(write_lab, seed_data, tmp_path):
    write_lab(seed_data, "base.yaml")
    path = write_lab({"extends": "base.yaml", "addons": ["dns"], "keepalived": {"advert_int": 2}})
    lab = load_lab(path)
    assert lab.addons == ("dns",)
    assert lab.keepalived.advert_int == 2
    assert lab.keepalived.virtual_router_id == seed_data["keepalived"]["virtual_router_id"]


def test_tuned_keepalived_gives_the_vip_away_before_haproxy_stops():
    from harness.render.lb import keepalived_dropin
    seed, tuned = keepalived_dropin(load_lab(SEED)), keepalived_dropin(load_lab(TUNED))
    assert "[Unit]" not in seed and "After=" not in seed  # the package's order, as in the guide
    assert "\nAfter=haproxy.service kube-apiserver.service\n" in tuned


def test_the_keepalived_drop_in_is_on_every_lb_machine_in_both_profiles(tmp_path):
    from harness.render import UNIT_DIR
    from harness.render.lb import KEEPALIVED_DROPIN
    from harness.steps.context import build_context
    lab = load_lab(SEED)
    ctx = build_context(lab, tmp_path)
    for m in lab.machines:
        paths = {f.path for f in ctx.files_for("api-ha", m)}
        assert (f"{UNIT_DIR}/{KEEPALIVED_DROPIN}" in paths) == m.has("lb"), m.name
