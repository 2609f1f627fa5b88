"""Progress lines and the lifecycle's bookkeeping, with a fake provider: no vagrant, no docker."""

import io
import subprocess
import sys
import time

import pytest

from harness import REPO_ROOT, machines
from harness.labfile import load_lab
from harness.providers.vagrant import MachineState
from tests.unit.conftest import SMALL


def test_phase_prints_a_check_line_with_duration_and_note():
    out = io.StringIO()  # not a TTY: plain lines, no carriage returns or escapes
    with machines.phase("[seed > ready] master01", out=out) as note:
        note("running")
    line = out.getvalue()
    assert line.startswith(" ✓ [seed > ready] master01 (") and line.endswith("s) — running\n")
    assert "\r" not in line and "\033" not in line


def test_phase_prints_a_cross_and_reraises():
    out = io.StringIO()
    with pytest.raises(RuntimeError):
        with machines.phase("[seed > destroy] docker", out=out):
            raise RuntimeError("still present after down: network x\nmore detail")
    assert out.getvalue().startswith(" ✗ [seed > destroy] docker (")
    assert out.getvalue().endswith("): still present after down: network x\n")


class FakeProvider:
    name = "docker"

    def __init__(self, states, lines=()):
        self.states, self.lines = states, list(lines)
        self.started, self.before = [], []

    def provision(self, names):
        self.started.append(list(names))
        yield from self.lines


def test_a_line_per_machine_as_vagrant_reports_it_ready(capsys):
    lab = load_lab(SMALL)
    provider = FakeProvider({}, [
        "Bringing machine 'ctl1' up with 'docker' provider...",
        "==> ctl2: Creating and configuring docker networks...",
        "==> ctl2: Machine booted and ready!",
        "    ctl1: SSH address: 127.0.0.1:2200",
        "==> ctl1: Machine booted and ready!",
    ])
    machines._start(lab, provider, ["ctl1", "ctl2", "ctl3"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("] ")[1].split(" (")[0] for line in lines] == ["ctl2", "ctl1", "ctl3"]
    assert all(line.startswith(" ✓ [small > create] ") for line in lines)


def test_up_on_a_running_lab_starts_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("K8S_HA_LAB_STATE", str(tmp_path))
    lab = load_lab(SMALL)
    provider = FakeProvider({})
    provider.list_machines = lambda: [MachineState(m.name, "running") for m in lab.machines]
    provider.prepare = lambda log: None
    provider.sanity_checks = provider.before.append
    provider.own_host_interfaces = lambda host: set()
    monkeypatch.setattr(machines, "resolve_provider", lambda *a: provider)
    monkeypatch.setattr(machines.preflight, "check_memory", lambda host, lab, mb: None)
    monkeypatch.setattr(machines.preflight, "check_subnet", lambda host, lab, own: None)
    monkeypatch.setattr(machines, "wait_ready", lambda lab, state_dir: {m.name: "running" for m in lab.machines})
    assert machines.up(lab) == {"ctl1": "running", "ctl2": "running", "ctl3": "running"}
    assert provider.started == [] and len(provider.before) == 1  # checked the host, started nothing
    assert "3/3 running" in capsys.readouterr().out


def test_lab_lock_is_reentrant_and_makes_another_process_wait(tmp_path):
    script = ("import sys, time; from pathlib import Path; from harness import machines\n"
              "with machines.lab_lock(Path(sys.argv[1])):\n"
              "    print(time.monotonic(), flush=True)\n")
    with machines.lab_lock(tmp_path, out=io.StringIO()):
        with machines.lab_lock(tmp_path):  # nesting in one process does not deadlock
            pass
        other = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)],
                                 stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)
        time.sleep(1.0)
        released = time.monotonic()
    out, _ = other.communicate(timeout=30)
    assert "waiting for another k8s-ha-lab process" in out
    assert float(out.split()[-1]) >= released
