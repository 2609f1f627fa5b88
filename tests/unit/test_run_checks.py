"""checks.run_checks and checks.converge: each core check in a lane of its own, each add-on's
quick checks in one lane, the lanes at once, the slow checks alone afterwards; the report comes
in list order either way (the fast loop, issue 14)."""

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


def test_an_addons_checks_run_in_order_beside_other_addons_and_slow_ones_alone(monkeypatch):
    spans, lock = {}, threading.Lock()

    def make(target):
        def check(_ctx):
            started = time.monotonic()
            time.sleep(0.1)
            with lock:
                spans[target] = (started, time.monotonic())
        return check
    monkeypatch.setattr(checks, "resolve", make)
    monkeypatch.setattr(checks, "CONCURRENT", frozenset({"core:a"}))
    monkeypatch.setattr(checks, "ADDON_LANES", {"reg:push": "registry", "reg:anon": "registry",
                                                "logs:line": "logs"})
    selected = [("a", "core:a"), ("push", "reg:push"), ("anon", "reg:anon"), ("line", "logs:line"),
                ("slow", "dns:delete_a_pod")]
    reported = []
    checks.run_checks(None, selected, lambda name, s, error: reported.append(name))
    assert reported == [name for name, _ in selected]
    assert spans["reg:push"][1] <= spans["reg:anon"][0]            # one add-on: in order
    assert spans["logs:line"][0] < spans["reg:push"][1]            # two add-ons: at once
    assert spans["core:a"][0] < spans["reg:push"][1]
    assert all(span[1] <= spans["dns:delete_a_pod"][0] for t, span in spans.items() if t != "dns:delete_a_pod")


def test_converge_retries_each_check_in_its_lane_until_it_passes(monkeypatch):
    tries = {"core:a": 2, "reg:push": 3}

    def make(target):
        def check(_ctx):
            tries[target] = tries.get(target, 1) - 1
            if tries[target] > 0:
                raise AssertionError(f"{target} not yet")
        return check
    monkeypatch.setattr(checks, "resolve", make)
    monkeypatch.setattr(checks, "CONCURRENT", frozenset({"core:a"}))
    monkeypatch.setattr(checks, "ADDON_LANES", {"reg:push": "registry"})
    monkeypatch.setattr(checks, "checks_for", lambda lab, addons=None: (("a", "core:a"), ("push", "reg:push")))
    ctx = type("Ctx", (), {"lab": None})()
    assert set(checks.converge(ctx, timeout=5, interval=0.01)) == {"a", "push"}
    assert tries == {"core:a": 0, "reg:push": 0}


def test_converge_retries_a_failed_command_but_not_a_bug(monkeypatch):
    """A check's command that fails while the lab settles (stop 21's CI: a registry push during
    the keepalived-stop converge) is retried like an assertion; a TypeError is raised at once."""
    from harness.errors import StepError
    calls = {"reg:push": 0, "core:bug": 0}

    def make(target):
        def check(_ctx):
            calls[target] += 1
            if target == "reg:push" and calls[target] < 3:
                raise StepError("check:registry", "m1", "crane append", "connection refused")
            if target == "core:bug":
                raise TypeError("a bug")
        return check
    monkeypatch.setattr(checks, "resolve", make)
    monkeypatch.setattr(checks, "CONCURRENT", frozenset({"core:bug"}))
    monkeypatch.setattr(checks, "ADDON_LANES", {"reg:push": "registry"})
    ctx = type("Ctx", (), {"lab": None})()
    monkeypatch.setattr(checks, "checks_for", lambda lab, addons=None: (("push", "reg:push"),))
    assert checks.converge(ctx, timeout=5, interval=0.01) == {"push": pytest.approx(0, abs=1)}
    assert calls["reg:push"] == 3
    monkeypatch.setattr(checks, "checks_for", lambda lab, addons=None: (("bug", "core:bug"),))
    with pytest.raises(TypeError):
        checks.converge(ctx, timeout=5, interval=0.01)
    assert calls["core:bug"] == 1


def test_checks_for_a_set_of_add_ons_keeps_the_core_and_only_theirs():
    from harness.lab import load_lab
    from harness import REPO_ROOT
    lab = load_lab(REPO_ROOT / "labs" / "seed.yaml")
    every = checks.checks_for(lab)
    assert checks.checks_for(lab, addons=None) == every
    assert checks.checks_for(lab, addons=[]) == checks.CORE_CHECKS
    dns_only = checks.checks_for(lab, addons=["dns"])
    dns_checks = {target for _, target, addon in checks.ADDON_CHECKS if addon == "dns"}
    assert dns_checks and set(dns_only) - set(checks.CORE_CHECKS) == {c for c in every if c[1] in dns_checks}
