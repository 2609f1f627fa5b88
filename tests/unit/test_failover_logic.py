"""The failover machinery's own logic: bounds from the lab, gap arithmetic, reports, docs."""

import pytest

from harness.failover import bounds
from harness.failover.cli import explanation
from harness.failover.probe import ProbeResult, Sample
from harness.failover.runner import ScenarioResult, markdown
from harness.failover.scenarios import SCENARIOS


def test_vrrp_bounds_from_the_seed_settings(seed_lab):
    assert bounds.vrrp_master_down(seed_lab).seconds == pytest.approx(3.61, abs=0.01)
    assert bounds.vrrp_priority_zero(seed_lab).seconds == pytest.approx(0.61, abs=0.01)
    assert "3 × advert_int 1s" in bounds.vrrp_master_down(seed_lab).formula
    assert bounds.haproxy_backend_down(seed_lab).seconds == 4.0
    assert bounds.leader_handoff().seconds == 19.4   # 15 + 2 × (1 + 1.2)


def test_bounds_follow_the_lab(seed_data, write_lab):
    from harness.lab import load_lab
    seed_data["keepalived"]["advert_int"] = 2
    seed_data["haproxy"]["check_inter"] = "500ms"
    lab = load_lab(write_lab(seed_data))
    assert bounds.vrrp_master_down(lab).seconds == pytest.approx(6 + 157 / 128, abs=0.01)
    assert bounds.haproxy_backend_down(lab).seconds == 1.0


def test_longest_gap_counts_the_edges_and_failures():
    samples = [Sample(0.5, "new", True), Sample(1.0, "new", False), Sample(4.5, "new", True),
               Sample(5.0, "write", True)]
    result = ProbeResult("r", 6.0, samples)
    assert result.longest_gap("new") == 4.0
    assert result.longest_gap("write") == 5.0
    assert result.failed() == 1 and result.failed("write") == 0
    result.acknowledged, result.missing = [1, 2, 3], [2]
    assert result.summary()["lost_writes"] == 1


def test_markdown_report_puts_bound_next_to_measurement():
    probe = ProbeResult("r", 3.0, [Sample(0.2, "new", True), Sample(1.5, "new", False)]).summary()
    result = ScenarioResult("master-poweroff", "master01 powered off", 0.61, "skew", {"vrrp_takeover_s": 0.8},
                            probe, [(0.2, "new", True), (1.5, "new", False)], converged=True)
    text = markdown(result)
    assert "bound: **0.61 s**" in text and "vrrp_takeover_s: **0.8**" in text
    assert "    new    .x  " in text


def test_every_scenario_is_explained_in_the_docs():
    for name in SCENARIOS:
        text = explanation(name)
        assert text.startswith(f"## `{name}`") and "What happens" in text
