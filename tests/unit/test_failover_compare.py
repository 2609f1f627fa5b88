"""`python -m harness scenario compare RUN_A RUN_B`: two runs (the seed and the tuned haproxy
profile) side by side, each stream's longest gap as a multiple of the bound."""

import dataclasses

import pytest

from harness import cli
from harness.errors import UserError
from harness.failover import cli as failover_cli
from harness.failover import bounds, compare
from harness.failover.runner import ScenarioResult
from tests.unit.test_failover_table import PROBE, scenario, write_run


def _hard_kill(profile: str, new: float, reused: float, write: float) -> ScenarioResult:
    result = scenario("master-hard-kill", bounds.Bound(3.61, "3 × advert + skew", bounds.UPPER),
                      "since_break_s", {"since_break_s": 3.0})
    probe = {**PROBE, "longest_gap_new_s": new, "longest_gap_reused_s": reused, "longest_gap_write_s": write}
    return dataclasses.replace(result, probe=probe, haproxy_profile=profile)


def test_worst_ratio_is_the_longest_stream_over_the_bound():
    assert compare.worst_ratio(_hard_kill("seed", 3.65, 6.02, 4.54)) == 1.67
    lower = scenario("etcd-quorum-lost", bounds.quorum_lost(), "longest_gap_write_s", {})
    assert compare.worst_ratio(lower) is None          # a lower bound is not a gap to shrink
    assert compare.worst_ratio(None) is None


def test_the_command_prints_both_runs_side_by_side(tmp_path, capsys):
    seed, tuned = tmp_path / "a", tmp_path / "b"
    write_run(seed / "scenarios", [_hard_kill("seed", 3.65, 6.02, 4.54)])
    write_run(tuned / "scenarios", [_hard_kill("tuned", 3.7, 4.1, 3.9)])
    assert cli.main(["scenario", "compare", str(seed), str(tuned)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| scenario | bound | seed: new / reused / write | tuned: new / reused / write |")
    row = next(line for line in out.splitlines() if line.startswith("| master-hard-kill"))
    assert "6.02 s (1.67×)" in row and "1.67× → 1.14×" in row
    assert "tuned: 1 of 1 scenarios with an upper bound have every stream within 1.2× their bound." in out


def test_a_scenario_missing_from_one_run_shows_a_dash(tmp_path, capsys):
    seed, tuned = tmp_path / "a", tmp_path / "b"
    write_run(seed / "scenarios", [_hard_kill("seed", 3.65, 6.02, 4.54)])
    write_run(tuned / "scenarios", [dataclasses.replace(
        scenario("etcd-one-down", bounds.etcd_election(), "new_leader_elected_after_s", {}), haproxy_profile="tuned")])
    assert cli.main(["scenario", "compare", str(seed), str(tuned)]) == 0
    out = capsys.readouterr().out
    assert "| master-hard-kill | 3.61 s |" in out and "| — |" in out


def test_a_folder_without_results_is_one_line_exit_2(tmp_path, capsys):
    assert cli.main(["scenario", "compare", str(tmp_path / "x"), str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: scenario table:") and "\n" not in err


def test_scenario_run_takes_several_names_and_refuses_an_unknown_one_first():
    args = cli.build_parser().parse_args(["scenario", "run", "haproxy-dies", "master-partition", "--out", "x"])
    assert args.names == ["haproxy-dies", "master-partition"] and args.out == "x"
    args = cli.build_parser().parse_args(["scenario", "run", "haproxy-dies", "no-such-thing"])
    with pytest.raises(UserError, match="^scenario: unknown name 'no-such-thing'"):
        failover_cli.cmd_run(args)             # before the lab file is read or anything is run
