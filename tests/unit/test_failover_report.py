"""The HTML reports, fed synthetic scenario JSON: pages, plots, rounding, and a real look in
headless Chromium (screenshot taken, no console message, every image loaded)."""

import json
import os
import random
import re
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("matplotlib") if os.environ.get("CI") != "true" else None

from harness.failover import bounds, report  # noqa: E402
from harness.failover.runner import ScenarioResult, write_reports  # noqa: E402
from harness.failover.scenarios import SCENARIOS  # noqa: E402
from tests.unit.conftest import require_tool  # noqa: E402

SCREENSHOT_DIR = os.environ.get("K8S_HA_LAB_SCREENSHOTS")   # keep the screenshots somewhere to look at


def synthetic(name: str, run: int, measured: float, seed: int) -> ScenarioResult:
    """A plausible run: a 3 s baseline, a break, a gap on every stream, a restore."""
    rng = random.Random(seed)
    bound = {"master-poweroff": bounds.Bound(0.61, "skew (256−99)/256 × advert_int 1s"),
             "etcd-one-down": bounds.Bound(1.1, "election timeout 1s + heartbeat 0.1s"),
             "etcd-quorum-lost": bounds.Bound(16.0, "outage 15s + election 1s", bounds.LOWER)}[name]
    measure = SCENARIOS[name].measure
    duration, brk, gap = 30.0, 3.1, (3.4, 3.4 + max(measured, 0.8) * 2)
    timeline = []
    for stream, step in (("new", 0.2), ("reused", 0.2), ("write", 0.5)):
        t = rng.uniform(0, step)
        while t < duration:
            timeline.append((round(t, 3), stream, not (gap[0] <= t <= gap[1])))
            t += step + rng.uniform(0, 0.05)
    ok = sum(1 for _, _, good in timeline if good)
    facts = {measure: measured, "since_break_s": round(measured + 0.3, 2), "skew_wait_s": None,
             "vip_holder": "master02"} if name == "master-poweroff" else {measure: measured}
    probe = {"run_id": f"r{run}", "duration_s": duration, "longest_gap_new_s": round(gap[1] - gap[0], 2),
             "longest_gap_reused_s": round(gap[1] - gap[0] + 0.4, 2), "longest_gap_write_s": round(gap[1] - gap[0], 2),
             "requests": len(timeline), "failed_requests": len(timeline) - ok, "acknowledged_writes": 55,
             "lost_writes": 0}
    if name == "etcd-quorum-lost":
        probe["longest_gap_write_s"] = measured
    return ScenarioResult(name, name.replace("-", " "), bound.seconds, bound.formula, facts, probe, timeline,
                          converged=True, bound_direction=bound.direction, measure=measure,
                          events={"break": brk, "restore": 20.0, "end": duration},
                          started_at=f"2026-11-{20 + run:02d}T02:00:00Z")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("artifacts") / "artifacts"
    figures = {"master-poweroff": [0.62, 0.64, 0.613], "etcd-one-down": [0.4, 2.9, 0.35],
               "etcd-quorum-lost": [22.4, 23.0, 21.7]}
    for run in range(3):
        folder = root / f"nightly-{run}" / "scenarios"
        for seed, (name, values) in enumerate(figures.items()):
            write_reports(synthetic(name, run, values[run], seed * 10 + run), folder)
    return root


def test_human_rounding():
    assert [report.human(x) for x in (0.6133, 3.612, 4.0, 19.4, 24.75, 123.4, None)] == \
        ["0.61 s", "3.61 s", "4 s", "19.4 s", "24.8 s", "123 s", "—"]


def test_every_page_and_plot_is_written(artifacts):
    run = artifacts / "nightly-2" / "scenarios"
    for name in ("master-poweroff", "etcd-one-down", "etcd-quorum-lost"):
        page = (run / f"{name}.html").read_text()
        assert f'src="{name}-timeline.png"' in page and (run / f"{name}-timeline.png").stat().st_size > 10_000
        assert "Measured versus bound" in page and "What happens inside" in page
        assert (run / f"trend-{name}.png").exists()
    page = (run / "master-poweroff.html").read_text()
    assert "0.61 s" in page and "≤ 1.26 s" in page and "0.613" not in page   # rounded for people
    assert "<strong>What happens.</strong>" in page                          # the explanation
    index = (run / "index.html").read_text()
    assert index.count('class="pass"') == 3 and "3 of 3 scenarios passed" in index
    trend = (run / "trend.html").read_text()
    assert "3 runs" in trend


def test_a_failed_run_says_why(artifacts):
    page = (artifacts / "nightly-1" / "scenarios" / "etcd-one-down.html").read_text()
    assert 'class="fail"' in page and "OUTSIDE the upper bound" in page
    assert "2 of 3 scenarios passed" in (artifacts / "nightly-1" / "scenarios" / "index.html").read_text()


def test_marks_on_the_timeline(artifacts):
    result = next(r for r in report.load_results(artifacts / "nightly-0" / "scenarios") if r.name == "master-poweroff")
    assert result.name == "master-poweroff"
    # takeover = break + since_break_s; the takeover it governs began vrrp_takeover_s (0.62) before it
    assert report.marks(result) == pytest.approx({"break": 3.1, "takeover": 3.1 + 0.92,
                                                  "bound": 3.1 + 0.92 - 0.62 + 0.61, "restore": 20.0})
    etcd = next(r for r in report.load_results(artifacts / "nightly-0" / "scenarios") if r.name == "etcd-one-down")
    assert report.marks(etcd)["bound"] == pytest.approx(3.1 + 1.1)      # figure runs from the break
    quorum = next(r for r in report.load_results(artifacts / "nightly-0" / "scenarios") if r.name == "etcd-quorum-lost")
    assert report.marks(quorum) == pytest.approx({"break": 3.1, "bound": 3.1 + 16.0, "restore": 20.0})  # a floor


def chromium_screenshot(target: Path, shot: Path, profile: Path) -> list[str]:
    """Open `target` in headless Chromium, save a screenshot; the console messages it logged."""
    browser = require_tool("chromium", "chromium-browser")
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         "--window-size=1280,1700", f"--screenshot={shot}", "--enable-logging=stderr", "--v=0",
         f"--user-data-dir={profile}", target.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [line for line in proc.stderr.splitlines() if re.search(r":CONSOLE[:(]", line)]


@pytest.mark.parametrize("page", ["index.html", "master-poweroff.html", "trend.html"])
def test_pages_render_in_headless_chromium(artifacts, page, tmp_path):
    target = artifacts / "nightly-2" / "scenarios" / page
    shot = Path(SCREENSHOT_DIR or tmp_path) / f"report-{page.replace('.html', '')}.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    console = chromium_screenshot(target, shot, tmp_path / "profile")
    assert console == [], "\n".join(console)       # no script error, no image that failed to load
    assert shot.exists() and shot.stat().st_size > 20_000, shot
    import matplotlib.image
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1200
    assert pixels[..., :3].std() > 0.05            # not a blank page


def test_the_browser_check_sees_a_plot_that_did_not_load(artifacts, tmp_path):
    """The check has teeth: a page whose timeline plot is gone logs a console error."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(artifacts / "nightly-2" / "scenarios", run)
    (run / "etcd-one-down-timeline.png").unlink()
    console = chromium_screenshot(run / "etcd-one-down.html", tmp_path / "broken.png", tmp_path / "profile")
    assert any("image failed to load" in line and "etcd-one-down-timeline.png" in line for line in console), console


def test_report_command_rebuilds_pages(artifacts, capsys):
    from harness import cli
    folder = artifacts / "nightly-0" / "scenarios"
    (folder / "index.html").unlink()
    assert cli.main(["scenario", "report", str(folder)]) == 0
    assert (folder / "index.html").exists() and "wrote" in capsys.readouterr().out
    assert cli.main(["scenario", "report", str(artifacts / "nothing")]) == 2


def test_json_round_trip_keeps_the_verdict(artifacts):
    data = json.loads((artifacts / "nightly-1" / "scenarios" / "etcd-one-down.json").read_text())
    assert data["verdict"]["ok"] is False and data["problems"]
    assert ScenarioResult.from_json(data).verdict.allowed == data["verdict"]["allowed"]


def test_trend_counts_a_run_once_when_the_nightly_kept_a_copy(artifacts, tmp_path):
    """The nightly copies each night's JSON into artifacts/history/<run>/: a rebuild that finds
    both the run's folder and the copy plots the night once."""
    import shutil

    root = tmp_path / "artifacts"
    shutil.copytree(artifacts, root)
    night = root / "history" / "1234"
    night.mkdir(parents=True)
    for json_file in (root / "nightly-2" / "scenarios").glob("*.json"):
        shutil.copy(json_file, night / f"nightly-2-{json_file.name}")
    runs = report.history(root)
    assert {name: len(found) for name, found in runs.items()} == \
        {"etcd-one-down": 3, "etcd-quorum-lost": 3, "master-poweroff": 3}
    assert [r.started_at for r in runs["etcd-one-down"]] == [f"2026-11-{20 + n:02d}T02:00:00Z" for n in range(3)]
