"""Break-and-fix drills with a fake lab: the state survives between commands, each command
refuses with one line and exit 2 when the lab is not in the state it needs."""

import json

import pytest

from harness import cli
from harness.errors import UserError
from harness.failover import drills
from harness.failover.scenarios import SCENARIOS, Drill, Scenario


class FakeLab:
    """One lab 'machine' part: a flag the drill breaks, the trainee (or restore) fixes."""

    def __init__(self, tmp_path):
        self.broken, self.core_failing, self.converged = False, False, 0
        self.lab = drills.Lab("fake", tmp_path, lambda: self, self.checks, self.converge)

    def checks(self, env):
        return [("etcd endpoint health", ""), ("VIP on the VRRP master only",
                                               "VIP on master02" if self.core_failing else "")]

    def converge(self, env):
        self.converged += 1


@pytest.fixture
def fake(tmp_path):
    return FakeLab(tmp_path)


@pytest.fixture
def registry():
    def breaks(lab):
        lab.broken = lab.core_failing = True

    def restore(lab):
        lab.broken = lab.core_failing = False

    drill = Drill(breaks, "Look at the VIP and at keepalived's journal.",
                  lambda lab: ["haproxy on master01 is inactive"] if lab.broken else [])
    return {"haproxy-dies": Scenario("haproxy-dies", "haproxy dies on master01", None, None, restore,
                                     measure="since_break_s", drill=drill),
            "etcd-quorum-lost": Scenario("etcd-quorum-lost", "quorum", None, None, None)}


def test_break_verify_fixed_by_the_trainee(fake, registry):
    lines = []
    assert drills.break_drill(fake.lab, "haproxy-dies", registry, lines.append) == 0
    assert fake.broken and "What to observe: Look at the VIP" in "\n".join(lines)
    state = json.loads((fake.lab.state_dir / drills.STATE_FILE).read_text())
    assert state["name"] == "haproxy-dies" and state["lab"] == "fake"

    lines.clear()
    assert drills.verify_drill(fake.lab, "haproxy-dies", registry, lines.append) == 1
    assert "✗ VIP on the VRRP master only: VIP on master02" in lines
    assert "✗ haproxy-dies: haproxy on master01 is inactive" in lines
    assert json.loads((fake.lab.state_dir / drills.STATE_FILE).read_text())["verify_attempts"] == 1

    fake.broken = fake.core_failing = False          # the trainee fixed it
    lines.clear()
    assert drills.verify_drill(fake.lab, "haproxy-dies", registry, lines.append) == 0
    assert lines[-1].startswith("Fixed")
    assert not (fake.lab.state_dir / drills.STATE_FILE).exists()
    history = [json.loads(line) for line in (fake.lab.state_dir / drills.HISTORY_FILE).read_text().splitlines()]
    assert history[-1]["outcome"] == "fixed by the trainee" and history[-1]["verify_attempts"] == 2


def test_break_then_restore(fake, registry):
    drills.break_drill(fake.lab, "haproxy-dies", registry, lambda line: None)
    assert drills.restore_drill(fake.lab, "haproxy-dies", registry, lambda line: None) == 0
    assert not fake.broken and fake.converged == 1
    assert not (fake.lab.state_dir / drills.STATE_FILE).exists()


@pytest.mark.parametrize("setup, command, name, expect", [
    (None, "verify", "haproxy-dies", "no drill is broken"),
    (None, "restore", "haproxy-dies", "no drill is broken"),
    ("haproxy-dies", "break", "haproxy-dies", "already broken"),
    ("haproxy-dies", "verify", "keepalived-stop", "unknown name"),
    (None, "break", "etcd-quorum-lost", "has no drill"),
])
def test_each_command_refuses_the_wrong_state(fake, registry, setup, command, name, expect):
    if setup:
        drills.break_drill(fake.lab, setup, registry, lambda line: None)
    with pytest.raises(UserError, match=expect) as caught:
        getattr(drills, f"{command}_drill")(fake.lab, name, registry, lambda line: None)
    assert caught.value.exit_status == 2 and "\n" not in str(caught.value)


def test_break_refuses_a_lab_that_is_already_unhealthy(fake, registry):
    fake.broken = True
    with pytest.raises(UserError, match="not healthy to start from: haproxy on master01 is inactive"):
        drills.break_drill(fake.lab, "haproxy-dies", registry, lambda line: None)
    assert not (fake.lab.state_dir / drills.STATE_FILE).exists()


def test_verify_of_another_drill_names_the_broken_one(fake, registry):
    registry["keepalived-stop"] = Scenario("keepalived-stop", "k", None, None, None, drill=registry["haproxy-dies"].drill)
    drills.break_drill(fake.lab, "haproxy-dies", registry, lambda line: None)
    with pytest.raises(UserError, match="is haproxy-dies .*not keepalived-stop"):
        drills.verify_drill(fake.lab, "keepalived-stop", registry, lambda line: None)


def test_cli_exit_2_and_one_line(monkeypatch, tmp_path, capsys, fake, registry):
    monkeypatch.setattr("harness.failover.cli._drill_lab", lambda args, opened: fake.lab)
    monkeypatch.setattr("harness.failover.scenarios.SCENARIOS", registry)
    assert cli.main(["scenario", "verify", "haproxy-dies", "--lab", "labs/small.yaml"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: scenario verify haproxy-dies: no drill is broken") and "\n" not in err
    # break refuses a lab whose machines are not up, before touching anything
    monkeypatch.setattr(cli, "require_lab_up", lambda lab: (_ for _ in ()).throw(UserError("lab small is not up")))
    assert cli.main(["scenario", "break", "haproxy-dies", "--lab", "labs/small.yaml"]) == 2
    assert not fake.broken


# What fixes a drill: a trainee must find these, so `observe` never says them.
REMEDIES = ("systemctl start", "systemctl restart", "vagrant up", "iptables -D", "iptables -F", "member add",
            "member remove", "initial-cluster-state", "--bump-revision", "--mark-compacted", "--initial-cluster-token",
            "--data-dir")


def test_real_drills_are_complete():
    drilled = [s for s in SCENARIOS.values() if s.drill]
    assert len(drilled) >= 5
    for scenario in drilled:
        assert scenario.drill.observe and callable(scenario.drill.breaks) and callable(scenario.drill.fixed)
        given_away = [remedy for remedy in REMEDIES if remedy in scenario.drill.observe]
        assert given_away == [], f"{scenario.name}: what to look at, never the answer: {given_away}"
        assert scenario.drill.restore or scenario.restore, scenario.name


def test_verify_runs_the_checks_restore_converges_on(monkeypatch, seed_lab):
    """The core checks and the lab's add-ons' quick ones, as the runner's convergence; each
    failure reported by its first line."""
    import checks

    def fails(ctx):
        raise AssertionError("kubectl top nodes: no metrics\nmore detail")
    monkeypatch.setattr(checks, "resolve",
                        lambda target: fails if target == "metrics:top_nodes" else (lambda ctx: None))
    env = type("Env", (), {"lab": seed_lab, "ctx": None})()
    results = dict(drills.core_checks_once(env))
    assert list(results) == [name for name, _ in checks.checks_for(seed_lab)]
    assert set(results) > {name for name, _ in checks.CORE_CHECKS}           # the add-ons' too
    assert results["kubectl top nodes"] == "kubectl top nodes: no metrics"
    assert all(problem == "" for name, problem in results.items() if name != "kubectl top nodes")
