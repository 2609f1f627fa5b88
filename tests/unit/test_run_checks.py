"""checks.run_checks: the core checks run at once, the add-ons' one at a time, and the report
comes in list order either way (the fast loop, issue 14)."""

import threading
import time

import pytest

import checks


@pytest.fixture
def fake_checks(monkeypatch):
    log, running, peak = [], [0], [0]
    lock = threading.Lock()

    def make(target):
        def check(_ctx):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
                log.append(("start", target))
            time.sleep(0.2 if target.endswith("slow") else 0.05)
            with lock:
                running[0] -= 1
            if target.endswith("bad"):
                raise AssertionError(f"{target} saw something wrong")
        return check
    monkeypatch.setattr(checks, "resolve", make)
    core = ("core:a_slow", "core:b", "core:c_bad")
    monkeypatch.setattr(checks, "CONCURRENT", frozenset(core))
    selected = [("a", "core:a_slow"), ("b", "core:b"), ("c", "core:c_bad"), ("addon 1", "x:d"), ("addon 2", "x:e")]
    return selected, log, peak


def test_core_checks_overlap_and_report_in_order(fake_checks):
    selected, log, peak = fake_checks
    reported = []
    started = time.monotonic()
    checks.run_checks(None, selected, lambda name, s, error: reported.append((name, error is None)))
    assert reported == [("a", True), ("b", True), ("c", False), ("addon 1", True), ("addon 2", True)]
    assert peak[0] == 3                           # the three core checks ran at once, add-ons alone
    assert time.monotonic() - started < 0.2 + 0.05 * 2 + 0.15   # not the sum of the core checks
    assert [t for _, t in log[-2:]] == ["x:d", "x:e"]


def test_serial_runs_one_at_a_time(fake_checks):
    selected, log, peak = fake_checks
    reported = []
    checks.run_checks(None, selected, lambda name, s, error: reported.append(name), serial=True)
    assert peak[0] == 1
    assert reported == [name for name, _ in selected]
    assert [t for _, t in log] == [t for _, t in selected]


def test_a_failure_carries_what_the_check_saw(fake_checks):
    selected, _, _ = fake_checks
    errors = {}
    checks.run_checks(None, selected, lambda name, s, error: errors.setdefault(name, error))
    assert "core:c_bad saw something wrong" in str(errors["c"])


def test_other_errors_propagate_unless_caught(monkeypatch):
    def broken(_ctx):
        raise ConnectionError("master01 is down")
    monkeypatch.setattr(checks, "resolve", lambda target: broken)
    selected = [("a", "core:a")]
    with pytest.raises(ConnectionError):
        checks.run_checks(None, selected, lambda *a: None)
    got = []
    checks.run_checks(None, selected, lambda name, s, error: got.append((name, str(error))), catch=Exception)
    assert got == [("a", "master01 is down")]
