"""The CLI's edges: a closed stdout, `up` failing in any way, and commands run on a lab that
is not up. Fakes only: no docker, no vagrant, no machine."""

import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from harness import REPO_ROOT, cli, machines, machines_cli, providers
from harness.errors import StepError, UserError
from harness.labfile import load_lab
from harness.providers import docker as docker_provider
from harness.providers.vagrant import MachineState
from tests.unit.conftest import SMALL


# --- a closed stdout ---------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["validate", "plan"])
def test_a_closed_stdout_ends_quietly(command):
    """`python -m harness validate labs/seed.yaml | head -2`: no BrokenPipeError traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line is written
    try:
        proc = subprocess.run([sys.executable, "-m", "harness", command, "labs/seed.yaml"],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    finally:
        os.close(write_end)
    assert proc.stderr == ""
    assert proc.returncode == 141  # 128 + SIGPIPE, what a Unix filter reports


def test_head_gets_its_lines_and_nothing_else_is_printed():
    proc = subprocess.run(f"{sys.executable} -m harness plan labs/seed.yaml | head -2",
                          shell=True, capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 0 and proc.stderr == ""
    assert len(proc.stdout.splitlines()) == 2 and proc.stdout.startswith("lab seed:")


# --- up: logs and teardown on any failure ---------------------------------------------------------
@pytest.fixture
def fake_up(monkeypatch, tmp_path):
    """`up` with the machines and steps replaced; records logs collected and teardowns."""
    calls = SimpleNamespace(logs=[], down=[], stopped=[], closed=0, steps_error=None, machines_error=None)

    def up_machines(lab, args):
        if calls.machines_error:
            raise calls.machines_error
        return 0

    class Ctx:
        def close(self):
            calls.closed += 1

    def run_steps(ctx, until=None, timings_file=None):
        if calls.steps_error:
            raise calls.steps_error

    monkeypatch.setattr(machines_cli, "up_machines", up_machines)
    monkeypatch.setattr("harness.steps.context.build_context", lambda lab: Ctx())
    monkeypatch.setattr("harness.steps.runner.run_steps", run_steps)
    monkeypatch.setattr(machines, "collect_logs",
                        lambda lab, run_dir: calls.logs.append(lab.name) or tmp_path / "logs")
    monkeypatch.setattr(machines, "down", lambda lab, provider_name=None: calls.down.append(lab.name))
    # the real one is tested in test_teardown.py; here it must not touch pytest's own children
    monkeypatch.setattr("harness.teardown.stop_children", lambda **kw: calls.stopped.append(True) or [])
    monkeypatch.chdir(tmp_path)  # artifacts/up-<time>/ lands here
    return calls


@pytest.mark.parametrize("error,status", [
    (RuntimeError("a bug in a step"), None),
    (KeyError("master09"), None),
    (UserError("kubelet v1.37.2: not in the artifact cache"), 2),
    (StepError("etcd", "master01", "systemctl start etcd", "exited 1"), 1),
    (KeyboardInterrupt(), 130),
], ids=["bug", "keyerror", "usererror", "steperror", "sigint"])
def test_up_collects_logs_and_tears_down_on_any_failure(fake_up, capsys, error, status):
    fake_up.steps_error = error
    if status is None:  # a bug keeps its traceback, after the teardown
        with pytest.raises(type(error)):
            cli.main(["up", str(SMALL)])
    else:
        assert cli.main(["up", str(SMALL)]) == status
    assert fake_up.logs == ["small"] and fake_up.down == ["small"] and fake_up.closed == 1
    assert fake_up.stopped == [True]  # the provider's processes were waited for before teardown
    assert "logs collected in" in capsys.readouterr().err


def test_a_failed_teardown_says_how_to_finish_it(fake_up, capsys, monkeypatch):
    def down(lab, provider_name=None):
        raise RuntimeError("still present after down: container k8s-ha-lab-small-ctl2")
    monkeypatch.setattr(machines, "down", down)
    fake_up.steps_error = StepError("etcd", "ctl1", "systemctl start etcd", "exited 1")
    assert cli.main(["up", str(SMALL)]) == 1
    err = capsys.readouterr().err
    assert ("teardown failed: RuntimeError: still present after down: container k8s-ha-lab-small-ctl2; "
            f"remove what is left with `python -m harness down {SMALL}`\n") in err


def test_up_keep_collects_logs_but_leaves_the_lab(fake_up, capsys):
    fake_up.steps_error = KeyboardInterrupt()
    assert cli.main(["up", str(SMALL), "--keep"]) == 130
    fake_up.steps_error = RuntimeError("boom")
    with pytest.raises(RuntimeError):
        cli.main(["up", str(SMALL), "--keep"])
    assert fake_up.logs == ["small", "small"] and fake_up.down == []
    assert capsys.readouterr().err.count("--keep: lab small left as it is") == 2


def test_up_tears_down_when_the_machines_fail_midway(fake_up):
    fake_up.machines_error = KeyboardInterrupt()
    assert cli.main(["up", str(SMALL)]) == 130
    assert fake_up.logs == ["small"] and fake_up.down == ["small"]


def test_a_preflight_refusal_tears_nothing_down(fake_up, capsys):
    """A UserError before any machine was touched (docker not running, subnet taken): nothing
    to clean, and a running lab of the same name must not be destroyed."""
    fake_up.machines_error = UserError("docker: the daemon is not reachable")
    assert cli.main(["up", str(SMALL)]) == 2
    assert fake_up.logs == [] and fake_up.down == []
    assert capsys.readouterr().err == "error: docker: the daemon is not reachable\n"


def test_a_clean_up_tears_nothing_down(fake_up):
    assert cli.main(["up", str(SMALL)]) == 0
    assert fake_up.logs == [] and fake_up.down == [] and fake_up.closed == 1


# --- the lab-is-up guard -------------------------------------------------------------------------
class FakeProvider:
    def __init__(self, states):
        self.states = states

    def list_machines(self):
        return [MachineState(n, s) for n, s in self.states.items()]


@pytest.fixture
def small_state(tmp_path, monkeypatch):
    monkeypatch.setenv("K8S_HA_LAB_STATE", str(tmp_path / "state"))
    lab = load_lab(SMALL)
    state = tmp_path / "state" / "small"
    state.mkdir(parents=True)
    return lab, state


def _with_provider(monkeypatch, state, states):
    providers.remember_provider(state, "docker")
    monkeypatch.setattr(providers, "get_provider", lambda name, lab, state_dir: FakeProvider(states))


def test_guard_a_lab_never_brought_up(small_state):
    lab, state = small_state
    with pytest.raises(UserError, match=r"^lab small is not up \(no provider recorded"):
        providers.require_up(lab, state)


def test_guard_names_the_machine_that_is_down(small_state, monkeypatch):
    lab, state = small_state
    _with_provider(monkeypatch, state, {"ctl1": "running", "ctl2": "exited", "ctl3": "running"})
    with pytest.raises(UserError) as err:
        providers.require_up(lab, state, ssh_answers=lambda ip: True)
    assert str(err.value).startswith("lab small: machine ctl2 is exited according to docker;")


def test_guard_every_machine_gone(small_state, monkeypatch):
    lab, state = small_state
    _with_provider(monkeypatch, state, {})
    with pytest.raises(UserError, match=r"^lab small is not up: docker reports no machine running "
                                        r"\(ctl1 not_created, ctl2 not_created, ctl3 not_created\)"):
        providers.require_up(lab, state, ssh_answers=lambda ip: True)


def test_guard_running_but_ssh_silent(small_state, monkeypatch):
    lab, state = small_state
    _with_provider(monkeypatch, state, {m.name: "running" for m in lab.machines})
    with pytest.raises(UserError, match=r"^lab small: machine ctl3 is running but 10.240.0.13:22 does not answer"):
        providers.require_up(lab, state, ssh_answers=lambda ip: ip != "10.240.0.13")
    providers.require_up(lab, state, ssh_answers=lambda ip: True)  # all up: no complaint


def test_docker_provider_reads_container_states(small_state, monkeypatch):
    lab, state = small_state
    seen = []

    def run(args):
        seen.append(args)
        return subprocess.CompletedProcess(args, 0, "k8s-ha-lab-small-ctl1 running\n"
                                                    "k8s-ha-lab-small-ctl3 exited\n", "")
    monkeypatch.setattr(docker_provider, "run_docker", run)
    states = docker_provider.DockerProvider(lab, state).list_machines()
    assert [(s.name, s.state) for s in states] == [("ctl1", "running"), ("ctl2", "not_created"),
                                                  ("ctl3", "exited")]
    assert seen[0][:4] == ["ps", "-a", "--filter", "name=^k8s-ha-lab-small-"]
    monkeypatch.setattr(docker_provider, "run_docker", lambda args: subprocess.CompletedProcess(
        args, 1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.\n"))
    with pytest.raises(UserError, match="docker: cannot list lab small's containers"):
        docker_provider.DockerProvider(lab, state).list_machines()


@pytest.mark.parametrize("argv", [["check", "labs/small.yaml"],
                                  ["scenario", "run", "master-poweroff", "--lab", "labs/small.yaml"]],
                         ids=["check", "scenario-run"])
def test_commands_on_a_lab_that_is_not_up_say_so_in_seconds(tmp_path, argv):
    """Through the real entry point: one line, exit 2, no 124 s wait for SSH."""
    env = {**os.environ, "K8S_HA_LAB_STATE": str(tmp_path)}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "harness", *argv], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=env, timeout=60)
    assert time.monotonic() - started < 15
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: lab small is not up") and proc.stderr.count("\n") == 1


def test_which_commands_need_a_running_lab():
    parser = cli.build_parser()
    assert cli._needs_running_lab(parser.parse_args(["check", "labs/small.yaml"]))
    assert cli._needs_running_lab(parser.parse_args(["scenario", "run", "x"]))
    assert not cli._needs_running_lab(parser.parse_args(["validate", "labs/small.yaml"]))
    assert not cli._needs_running_lab(parser.parse_args(["scenario", "list"]))
    assert not cli._needs_running_lab(parser.parse_args(["up", "labs/small.yaml"]))
