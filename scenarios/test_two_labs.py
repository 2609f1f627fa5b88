"""Two labs side by side on one host: seed and small brought up at the same time, checked at
the same time, and `down` of small leaving seed working (issue 13, teardown like kubetest2).

Run: tox -e two-labs (nightly, not in the envlist). Each lab is driven by its own
`python -m harness` process, as two users on one host would, so nothing is shared but what the
host itself shares (docker, Vagrant, the artifact cache, routes). Every process's output goes to
artifacts/<run>/two-labs/. Both labs are taken down at the end unless --keep.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import REPO_ROOT
from harness.labfile import load_lab
from harness.pytest_plugin import artifacts_dir

pytestmark = pytest.mark.two_labs

LABS = {"seed": REPO_ROOT / "labs/seed.yaml", "small": REPO_ROOT / "labs/small.yaml"}
UP_TIMEOUT_S = 45 * 60      # both labs at once on a 2-core host, from nothing
CHECK_TIMEOUT_S = 15 * 60


@dataclass
class Run:
    """One `python -m harness` process: when it ran, how it ended, what it printed."""
    what: str
    started: float
    ended: float
    status: int
    output: str

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    def last_line(self) -> str:
        lines = self.output.strip().splitlines()
        return lines[-1] if lines else ""


def _at_once(folder: Path, commands: dict[str, list[str]], timeout: float) -> dict[str, Run]:
    """Start every command, then wait for all; name -> Run. Output is kept in folder/<name>.log."""
    folder.mkdir(parents=True, exist_ok=True)
    started, procs, logs = {}, {}, {}
    for name, argv in commands.items():
        logs[name] = open(folder / f"{name}.log", "w")
        started[name] = time.monotonic()
        procs[name] = subprocess.Popen([sys.executable, "-m", "harness", *argv], cwd=REPO_ROOT,
                                       stdout=logs[name], stderr=subprocess.STDOUT, text=True)
    runs = {}
    deadline = time.monotonic() + timeout
    try:
        while len(runs) < len(procs):   # each one's end noted when it ends, not when it is asked
            for name, proc in procs.items():
                if name not in runs and proc.poll() is not None:
                    runs[name] = Run(name, started[name], time.monotonic(), proc.returncode, "")
            assert time.monotonic() < deadline, f"still running after {timeout:.0f}s: " \
                f"{', '.join(n for n in procs if n not in runs)} (output in {folder})"
            time.sleep(0.5)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()   # SIGTERM: the harness tears down as after Ctrl-C
                proc.wait(60)
        for handle in logs.values():
            handle.close()
    for name, run in runs.items():
        run.output = (folder / f"{name}.log").read_text()
        print(f"{name}: exit {run.status} after {run.seconds:.0f}s: {run.last_line()}")
    return runs


def _overlap(first: Run, second: Run) -> float:
    """Seconds during which both ran."""
    return max(0.0, min(first.ended, second.ended) - max(first.started, second.started))


@pytest.fixture(scope="module")
def folder(request) -> Path:
    return artifacts_dir(request.config) / "two-labs"


@pytest.fixture(scope="module")
def both_up(request, folder):
    """seed and small, each brought up by its own `up --keep` at the same time; both taken down
    at the end (down is idempotent, so one already down costs a second)."""
    try:
        runs = _at_once(folder, {f"up-{name}": ["up", str(path), "--keep"] for name, path in LABS.items()},
                        UP_TIMEOUT_S)
        yield runs
    finally:
        if not request.config.getoption("--keep"):
            _at_once(folder, {f"down-{name}": ["down", str(path)] for name, path in LABS.items()}, 20 * 60)


def test_both_labs_come_up_at_the_same_time(both_up):
    seed, small = both_up["up-seed"], both_up["up-small"]
    assert seed.status == 0, seed.output[-3000:]
    assert small.status == 0, small.output[-3000:]
    # The shorter one ran entirely while the other was running: truly side by side.
    assert _overlap(seed, small) >= 0.9 * min(seed.seconds, small.seconds)


def test_the_labs_share_no_name_address_or_folder(both_up):
    seed, small = load_lab(LABS["seed"]), load_lab(LABS["small"])
    assert not seed.network.overlaps(small.network)
    assert seed.name != small.name   # the state folder, container and network names derive from it
    assert {m.name for m in seed.machines}.isdisjoint(m.name for m in small.machines)


def test_quick_checks_pass_on_both_at_once(both_up, folder):
    runs = _at_once(folder, {f"check-{name}": ["check", str(path), "--quick"] for name, path in LABS.items()},
                    CHECK_TIMEOUT_S)
    for run in runs.values():
        assert run.status == 0, run.output[-3000:]
        assert run.last_line().endswith("checks passed")
        passed, _, total = run.last_line().split()[:3]
        assert passed == total
    assert _overlap(runs["check-seed"], runs["check-small"]) > 0


def test_down_of_small_leaves_seed_working(both_up, folder):
    down = _at_once(folder, {"down-small-alone": ["down", str(LABS["small"])]}, 20 * 60)["down-small-alone"]
    assert down.status == 0, down.output[-3000:]
    assert "nothing of the lab remains" in down.output
    gone = _at_once(folder, {"status-small": ["status", str(LABS["small"])]}, 120)["status-small"]
    rows = [line.split() for line in gone.output.strip().splitlines()]
    assert gone.status == 1 and [row[-1] for row in rows] == ["not_created"] * len(rows), gone.output
    seed = _at_once(folder, {"status-seed": ["status", str(LABS["seed"])]}, 120)["status-seed"]
    assert seed.status == 0, seed.output
    check = _at_once(folder, {"check-seed-alone": ["check", str(LABS["seed"]), "--quick"]},
                     CHECK_TIMEOUT_S)["check-seed-alone"]
    assert check.status == 0, check.output[-3000:]
    passed, _, total = check.last_line().split()[:3]
    assert passed == total
