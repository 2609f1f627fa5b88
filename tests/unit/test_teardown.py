"""Ctrl-C during `up`: nothing is left behind and the next `up` works. The process handling is
real (child processes, SIGINT, flock); the provider is tests/unit/fake_provider.py, whose
machines are files, so no docker, vagrant or machine is involved."""

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness import REPO_ROOT, teardown
from harness.lab import SshLogin
from harness.labfile import load_lab
from harness.steps.context import StepContext
from harness.steps.parallel import for_each
from harness.transport import Cancelled, Transport
from tests.unit.conftest import SMALL


@pytest.fixture(autouse=True)
def _sigint_as_at_a_terminal():
    """A shell's background job (`cmd &` without job control, as CI may start us) inherits SIGINT
    ignored, and Python then installs no KeyboardInterrupt handler. These tests are about what a
    Ctrl-C at a terminal does, so they run with Python's own SIGINT handler, and so do the
    children they start (_at_a_terminal)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def _at_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # the child's Python then installs its own handler


# --- the process tree -----------------------------------------------------------------------------
def _proc(tmp_path, table):
    for pid, (ppid, name, state) in table.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(f"{pid} ({name}) {state} {ppid} 1 1 0 -1 4194560\n")
    (tmp_path / "self").mkdir()
    return teardown.read_processes(tmp_path)


def test_descendants_are_read_from_proc_including_odd_names(tmp_path):
    processes = _proc(tmp_path, {100: (1, "python", "S"), 200: (100, "ruby (vagrant)", "S"),
                                 300: (200, "docker", "R"), 301: (200, "done", "Z"), 400: (1, "other", "S")})
    assert processes[200].name == "ruby (vagrant)" and processes[301].zombie
    tree = teardown.descendants(100, processes)
    assert [p.pid for p in tree] == [200, 300, 301]


class FakeTable:
    """A process table that changes with a fake clock: pid -> the time it ends (None: never)."""

    def __init__(self, me, ends, parents):
        self.me, self.ends, self.parents, self.now, self.killed = me, ends, parents, 0.0, []

    def processes(self):
        return {pid: teardown.Process(pid, self.parents[pid], f"p{pid}", False)
                for pid, end in self.ends.items() if end is None or end > self.now} | \
               {self.me: teardown.Process(self.me, 1, "me", False)}

    def kill(self, pid, sig):
        self.killed.append((pid, sig.name))
        if sig == signal.SIGKILL or pid != 30:  # pid 30 ignores SIGTERM
            self.ends[pid] = self.now

    def sleep(self, seconds):
        self.now += seconds


def test_children_that_finish_within_the_grace_get_no_signal(monkeypatch):
    table = FakeTable(os.getpid(), {10: 3.0, 11: 5.0}, {10: os.getpid(), 11: 10})
    lines = []
    signalled = teardown.stop_children(grace=30, log=lines.append, list_processes=table.processes,
                                       kill=table.kill, sleep=table.sleep, clock=lambda: table.now)
    assert signalled == [] and table.killed == [] and 5.0 <= table.now < 6
    assert lines == [f"waiting up to 30s for p10 (pid 10), p11 (pid 11) to finish"]


def test_stubborn_children_get_sigterm_then_sigkill_and_orphans_are_still_waited_for():
    me = os.getpid()
    # 20 ends by itself at t=1, leaving its child 21 an orphan that a fresh look from this
    # process would no longer find; 21 ends on SIGTERM, 30 ignores SIGTERM.
    table = FakeTable(me, {20: 1.0, 21: None, 30: None}, {20: me, 21: 20, 30: me})
    signalled = teardown.stop_children(grace=2, term_wait=4, log=lambda line: None,
                                       list_processes=table.processes, kill=table.kill,
                                       sleep=table.sleep, clock=lambda: table.now)
    assert signalled == ["p21 (pid 21) SIGTERM", "p30 (pid 30) SIGTERM", "p30 (pid 30) SIGKILL"]
    assert not table.processes().keys() - {me}


def test_after_a_sigterm_the_children_first_get_the_sigint_a_terminal_would_have_sent():
    me = os.getpid()
    table = FakeTable(me, {10: None, 30: None}, {10: me, 30: me})  # 10 stops on SIGINT, 30 only on SIGKILL
    lines = []
    signalled = teardown.stop_children(grace=2, term_wait=4, log=lines.append, list_processes=table.processes,
                                       kill=table.kill, sleep=table.sleep, clock=lambda: table.now,
                                       interrupt_first=True)
    assert signalled == ["p10 (pid 10) SIGINT", "p30 (pid 30) SIGINT", "p30 (pid 30) SIGTERM", "p30 (pid 30) SIGKILL"]
    assert lines[0] == "sent SIGINT to p10 (pid 10), p30 (pid 30), as Ctrl-C would have"


def test_sigterm_raises_terminated_a_keyboard_interrupt_only_inside_the_block():
    with teardown.sigterm_as_interrupt():
        with pytest.raises(teardown.Terminated) as caught:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    assert isinstance(caught.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_real_children_are_stopped():
    ignores_term = subprocess.Popen([sys.executable, "-c", "import signal, time; "
                                     "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
    plain = subprocess.Popen(["sleep", "60"])
    time.sleep(0.3)  # let the first one install its handler
    started = time.monotonic()
    signalled = teardown.stop_children(grace=0.5, term_wait=1, log=lambda line: None)
    assert time.monotonic() - started < 10
    assert plain.wait(5) == -signal.SIGTERM and ignores_term.wait(5) == -signal.SIGKILL
    assert any(s.endswith("SIGKILL") for s in signalled)
    assert teardown.stop_children(grace=0.5, log=lambda line: None) == []  # nothing left


def test_the_first_interrupt_during_teardown_is_only_a_notice(capsys):
    with teardown.shield_interrupts("tearing lab small down", out=sys.stdout) as received:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        assert received == [signal.SIGINT]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert "interrupted again: tearing lab small down goes on" in capsys.readouterr().out


# --- a parallel step stops at once ---------------------------------------------------------------
class BlockingChannel:
    """A command that runs until its connection closes (or 20 s pass)."""

    def __init__(self):
        self.closed, self.started = False, time.monotonic()
        self._read, self._write = os.pipe()  # never readable: select() just waits

    def fileno(self):
        return self._read

    def exec_command(self, command):
        pass

    def recv_ready(self):
        return False

    recv_stderr_ready = recv_ready

    def exit_status_ready(self):
        return self.closed or self.eof_received

    @property
    def eof_received(self):
        return time.monotonic() - self.started > 20

    def recv_exit_status(self):
        return -1 if self.closed else 0

    def close(self):
        self.closed = True  # the pipe stays open: another thread may be in select() on it

    def __del__(self):
        os.close(self._read)
        os.close(self._write)


class Client:
    def __init__(self):
        self.channels = []

    def get_transport(self):
        return self

    def is_active(self):
        return True

    def open_session(self):
        self.channels.append(BlockingChannel())
        return self.channels[-1]

    def close(self):
        for channel in self.channels:
            channel.close()


def test_ctrl_c_in_a_parallel_step_cuts_every_machines_command_off(tmp_path):
    lab = load_lab(SMALL)
    clients = {m.name: Client() for m in lab.machines}
    transports = {m.name: Transport(m.name, SshLogin(str(m.ip), "root", 22, tmp_path / "k"),
                                    connect=lambda login, timeout, n=m.name: clients[n])
                  for m in lab.machines}
    ctx = StepContext(lab, tmp_path, None, [], transports=transports, verbose_machines=False)
    outcome = {}

    def work(machine):
        try:
            ctx.on(machine).run("etcd --wait-forever")
        except Cancelled as exc:
            outcome[machine.name] = str(exc)
            raise
        return "finished"

    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        for_each(ctx, "etcd", lab.machines, work)
    assert time.monotonic() - started < 5  # not the 20 s the commands would have taken
    assert sorted(outcome) == ["ctl1", "ctl2", "ctl3"]
    assert all("cut off: the run was interrupted" in text for text in outcome.values())
    with pytest.raises(Cancelled):
        ctx.on("ctl1").run("true")  # no reconnect after an interrupt


# --- the whole `up`, interrupted for real ---------------------------------------------------------
DRIVER = """
import functools, sys
from harness import cli, machines, providers, teardown
providers.PROVIDERS["fake"] = "tests.unit.fake_provider:FakeProvider"
machines.preflight.check_memory = lambda host, lab, running_mb=0: None
machines.preflight.check_subnet = lambda host, lab, own=(): None
machines.lab_transports = lambda lab, state_dir, connect_deadline=120: {}
machines.wait_ready = lambda lab, state_dir: {m.name: "running" for m in lab.machines}
teardown.stop_children = functools.partial(teardown.stop_children, grace=1, term_wait=3)
sys.exit(cli.main(sys.argv[1:]))
"""


def _harness(tmp_path, *argv, env=None, wait=True):
    environment = {**os.environ, "K8S_HA_LAB_STATE": str(tmp_path / "state"), "PYTHONPATH": str(REPO_ROOT),
                   **(env or {})}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, *argv], cwd=tmp_path, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_at_a_terminal)
    if wait:
        out, err = proc.communicate(timeout=60)
        return proc.returncode, out, err
    return proc


def _wait_for(path: Path, proc, seconds=30):
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _wait_until(condition, proc, seconds=30):
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)


def _ignores_sigint(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    return False


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _lock_is_free(state: Path) -> bool:
    with open(state / "lifecycle.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


SIGNALS = {signal.SIGINT: (130, "interrupted"), signal.SIGTERM: (143, "terminated")}


@pytest.mark.parametrize("signum,twice", [(signal.SIGINT, False), (signal.SIGINT, True),
                                          (signal.SIGTERM, False), (signal.SIGTERM, True)],
                         ids=["sigint", "sigint-again-during-teardown", "sigterm", "sigterm-again-during-teardown"])
def test_a_signal_during_up_leaves_nothing_and_the_next_up_works(tmp_path, signum, twice):
    """Ctrl-C (SIGINT) and SIGTERM (a cancelled CI job, `kill`) take the same teardown path;
    only the exit status tells them apart (130, 143)."""
    status, said = SIGNALS[signum]
    state = tmp_path / "state" / "small"
    fake = state / "fake-provider"
    up = ["up", str(SMALL), "--only", "machines", "--provider", "fake"]
    proc = _harness(tmp_path, *up, env={"FAKE_PROVISION": "hang", "FAKE_DELETE_SLOW": "1.5" if twice else "0"},
                    wait=False)
    _wait_for(fake / "provisioning", proc)
    assert sorted(p.name for p in (fake / "machines").iterdir()) == ["ctl1", "ctl2", "ctl3"]
    child = int((fake / "child.pid").read_text())
    _wait_until(lambda: _ignores_sigint(child), proc)  # busy like a `vagrant up` that got Ctrl-C
    try:
        proc.send_signal(signum)
        if twice:
            _wait_for(fake / "deleting", proc)
            proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)  # the child holds the pipes until it is stopped
    finally:
        for pid in (proc.pid, child):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode == status, err
    assert f"{said}: collecting logs, then tearing the lab down" in err
    assert "SIGTERM" in err and not _alive(child)  # the busy provider process was stopped first
    # A terminal's Ctrl-C reaches the child too; a SIGTERM does not, so the harness passes it on.
    assert (f"(pid {child}), as Ctrl-C would have" in err) == (signum == signal.SIGTERM)
    assert (f"{said} again: collecting logs and tearing lab small down goes on" in err) == twice
    assert not list((fake / "machines").iterdir()) and not (fake / "network").exists()
    assert "destroy] fake" in out and "nothing of the lab remains" in out
    assert not (state / "provider").exists() and _lock_is_free(state)
    assert list((tmp_path / "artifacts").glob("up-small-*/machines/fake-provider.txt"))  # the lab's own folder

    status, out, err = _harness(tmp_path, *up)  # the next up works
    assert status == 0, err
    assert sorted(p.read_text() for p in (fake / "machines").iterdir()) == ["running"] * 3
    assert _harness(tmp_path, "down", str(SMALL))[0] == 0
    assert not list((fake / "machines").iterdir())
