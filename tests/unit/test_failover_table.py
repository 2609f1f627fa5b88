"""The closing table (`python -m harness scenario table [RUN]`, and the failover suite's summary):
read back from a run's scenario JSON, rounded for people, in the registry's order, with the
direction, the slack rule's allowance and the verdict; a bad folder is one line and exit 2."""

import json
import os

import pytest

from harness import cli
from harness.errors import UserError
from harness.failover import bounds, table
from harness.failover.runner import ScenarioResult, load_results

PROBE = {"run_id": "r", "duration_s": 40.0, "longest_gap_new_s": 1.2, "longest_gap_reused_s": 1.5,
         "longest_gap_write_s": 24.04, "requests": 300, "failed_requests": 40, "acknowledged_writes": 60,
         "lost_writes": 0}


def scenario(name, bound, measure, facts) -> ScenarioResult:
    return ScenarioResult(name, name, bound.seconds, bound.formula, facts, dict(PROBE), converged=True,
                          bound_direction=bound.direction, measure=measure, started_at="2026-11-28T02:00:00Z")


def write_run(folder, results) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for result in results:
        (folder / f"{result.name}.json").write_text(json.dumps(result.to_json()))


@pytest.fixture
def results():
    return [
        scenario("etcd-quorum-lost", bounds.quorum_lost(), "longest_gap_write_s", {"stopped": ["etcd01", "etcd02"]}),
        scenario("etcd-one-down", bounds.etcd_election(), "new_leader_elected_after_s",
                 {"new_leader_elected_after_s": 2.934}),
        scenario("controller-manager-leader-kill", bounds.leader_handoff(), "handoff_s",
                 {"handoff_s": 17.349, "holders_seen": ["a", "b"], "lease_transitions": [3, 4],
                  "lease_sampled_for_s": 25.1, "lease_longest_unsampled_s": 1.0, "new_pod_scheduled_s": 2.0}),
    ]


def test_the_table_has_every_scenario_in_the_registry_order(results):
    text = table.render(results)
    lines = text.splitlines()
    assert lines[0] == "| scenario | figure | bound | direction | allowed (slack rule) | measured | verdict |"
    assert lines[2] == "| etcd-one-down | `new_leader_elected_after_s` | 1.1 s | upper | ≤ 1.88 s | 2.93 s | FAIL |"
    assert lines[3] == "| etcd-quorum-lost | `longest_gap_write_s` | 16 s | lower | ≥ 11.5 s | 24 s | PASS |"
    assert lines[4] == "| controller-manager-leader-kill | `handoff_s` | 19.4 s | upper | ≤ 24.8 s | 17.3 s | PASS |"
    assert "upper: measured ≤ bound × 1.25 + 0.5 s; lower: measured ≥ bound × 0.75 − 0.5 s" in text
    assert "2 of 3 scenarios passed." in text
    # why the failed one failed, and which scenarios the run lacks
    assert "- etcd-one-down failed: new_leader_elected_after_s 2.934 s OUTSIDE the upper bound 1.1 s" in text
    assert "Not in this run: master-poweroff," in text and "etcd-quorum-lost," not in text.split("Not in")[1]


def test_a_figure_that_was_not_measured_shows_as_such(results):
    results[1].facts["new_leader_elected_after_s"] = None
    row = table.row(results[1])
    assert row[5] == "—" and row[6] == "FAIL"


def test_the_folder_is_the_run_or_its_scenarios_or_the_newest(tmp_path, results):
    root = tmp_path / "artifacts"
    write_run(root / "20261127-020000" / "scenarios", results[:1])
    write_run(root / "scenario-20261128-090912", results[1:2])            # `scenario run` writes here
    write_run(root / "20261128-020000" / "scenarios", results)
    write_run(root / "history" / "99", results[:1])                        # the nightly's copies: never a run
    (root / "bench-cluster.json").write_text("{}")
    newest = root / "20261128-020000" / "scenarios"
    for age, json_file in enumerate(sorted(root.rglob("*.json"))):
        os.utime(json_file, (1_000_000 + age, 1_000_000 + age))
    for json_file in newest.glob("*.json"):
        os.utime(json_file, (2_000_000, 2_000_000))
    assert table.scenario_folder(root / "20261127-020000") == root / "20261127-020000" / "scenarios"
    assert table.scenario_folder(root / "scenario-20261128-090912") == root / "scenario-20261128-090912"
    assert table.scenario_folder(root=root) == newest
    for json_file in (root / "history" / "99").glob("*.json"):
        os.utime(json_file, (3_000_000, 3_000_000))
    assert table.scenario_folder(root=root) == newest
    with pytest.raises(UserError, match="holds no scenario JSON") as refused:
        table.scenario_folder(root / "nothing")
    assert refused.value.exit_status == 2
    with pytest.raises(UserError, match="no run with scenario JSON"):
        table.scenario_folder(root=tmp_path / "empty")


def test_write_table_leaves_table_md_beside_the_reports(tmp_path, results):
    folder = tmp_path / "run" / "scenarios"
    assert table.write_table(folder) is None                  # nothing ran: nothing to say
    write_run(folder, results)
    text = table.write_table(folder)
    assert (folder / table.TABLE_FILE).read_text() == text and str(folder) in text
    assert len(load_results(folder)) == 3                      # the table is not taken for a result


def test_the_command_prints_it(tmp_path, results, capsys, monkeypatch):
    run = tmp_path / "artifacts" / "20261128-020000"
    write_run(run / "scenarios", results)
    assert cli.main(["scenario", "table", str(run)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| scenario | figure | bound |") and "| etcd-one-down |" in out
    assert not (run / "scenarios" / table.TABLE_FILE).exists()       # printing writes nothing
    monkeypatch.setenv("K8S_HA_LAB_ARTIFACTS", str(tmp_path / "artifacts"))
    assert cli.main(["scenario", "table"]) == 0 and "| etcd-quorum-lost |" in capsys.readouterr().out
    assert cli.main(["scenario", "table", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: scenario table:") and "\n" not in err


def test_the_suite_prints_it_under_the_test_summary(tmp_path):
    class Reporter:
        def __init__(self):
            self.lines = []

        def write_sep(self, sep, title):
            self.lines.append(f"{sep * 3} {title}")

        def write(self, text):
            self.lines.append(text)

    reporter = Reporter()
    table.TerminalSummary("| a |\n", tmp_path / "table.md").pytest_terminal_summary(reporter)
    assert reporter.lines == [f"=== failover: measured versus bound ({tmp_path / 'table.md'})", "| a |\n"]
