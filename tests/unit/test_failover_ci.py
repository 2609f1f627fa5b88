"""The nightly workflow is linted offline: actionlint (with shellcheck on every `run:` script)
and shellcheck on the set-up script that builds actionlint. In CI the tools must be there
(bin/setup-host installs shellcheck and runs .ci/lint-tools.sh): a missing one fails, never skips."""

import subprocess
from pathlib import Path

import pytest
import yaml
from tests.unit.conftest import require_tool  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]   # the checkout: .github is not installed

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))


def tool(name: str) -> str:
    return require_tool(name, why="bin/setup-host installs it; .ci/lint-tools.sh for actionlint")


def test_there_is_a_nightly_workflow():
    assert REPO_ROOT / ".github" / "workflows" / "nightly.yml" in WORKFLOWS
    flow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "nightly.yml").read_text())
    triggers = flow[True] if True in flow else flow["on"]          # YAML 1.1 reads `on` as true
    assert "schedule" in triggers and "workflow_dispatch" in triggers
    steps = [step.get("run", "") + step.get("uses", "") for step in flow["jobs"]["failover"]["steps"]]
    text = "\n".join(steps)
    assert "bin/setup-host --lab" in text and "tox -e failover" in text and "tox -e conformance" in text
    assert "actions/upload-artifact" in text
    order = [step.get("run", "") + step.get("uses", "") for step in flow["jobs"]["failover"]["steps"]]
    at = lambda needle: next(i for i, step in enumerate(order) if needle in step)   # noqa: E731
    assert at("bin/setup-host --lab") < at("tox -e failover") < at("scenario table") < at("actions/upload-artifact")
    upload = next(step for step in flow["jobs"]["failover"]["steps"] if "upload-artifact" in step.get("uses", ""))
    assert "artifacts/" in upload["with"]["path"] and "cancelled()" in upload["if"]   # uploaded when tests fail too


def test_actionlint_with_shellcheck():
    actionlint, shellcheck = tool("actionlint"), tool("shellcheck")
    version = subprocess.run([actionlint, "-version"], capture_output=True, text=True).stdout.splitlines()[0]
    assert version == "v1.7.12", version
    proc = subprocess.run([actionlint, f"-shellcheck={shellcheck}", "-no-color", *map(str, WORKFLOWS)],
                          capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shellcheck_on_the_lint_setup():
    proc = subprocess.run([tool("shellcheck"), str(REPO_ROOT / ".ci" / "lint-tools.sh")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The lint has teeth: an unknown event and a shell bug are both reported."""
    actionlint, shellcheck = tool("actionlint"), tool("shellcheck")
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text("on:\n  nightly_please: {}\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo $UNQUOTED_${{ github.sha }}\n        shell: bash\n      - run: cd $dir\n")
    proc = subprocess.run([actionlint, f"-shellcheck={shellcheck}", "-no-color", str(bad)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode != 0
    assert "nightly_please" in proc.stdout and "shellcheck" in proc.stdout
