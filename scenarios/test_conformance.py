"""Kubernetes' own [Conformance] suite on the deployed lab.

`test_conformance_ci_subset` (marker `conformance`, selected by `tox -e full-cluster`): the
Networking Granular Checks and the DNS [Conformance] tests, on the lab the same session has
brought up, before anything of the failover suites stops a machine. `test_conformance_full_suite`
(marker `conformance_full`, `tox -e conformance`, nightly): every [Conformance] test but the
few in harness/conformance/skips.yaml, with $K8S_HA_LAB_CONFORMANCE_PARALLEL ginkgo processes
(default 3). Output: artifacts/<run-id>/conformance[-full]/ (JUnit, e2e.log, summary.txt).
"""

from __future__ import annotations

import os

import pytest

from harness import conformance
from harness.conformance.runner import CI_FOCUS, CONFORMANCE_FOCUS, RunConfig


def _run(ctx, out_dir, focus: str, parallel: int):
    built = conformance.artifacts(ctx.lab.versions)
    conformance.prepare(ctx, built)
    outcome = conformance.run(ctx, built, out_dir, RunConfig(focus=focus, parallel=parallel))
    failed = [r.name for r in outcome.results if r.status == "failed"]
    assert outcome.passed > 0 and not failed, (
        f"{outcome.passed} passed, {len(failed)} failed: {failed} (see {out_dir})")
    return outcome


@pytest.mark.conformance
def test_conformance_ci_subset(deployed, pytestconfig):
    outcome = _run(deployed, pytestconfig.k8s_ha_lab_run_dir / "conformance", CI_FOCUS, 2)
    # nothing of the CI subset may be left out: every selected spec ran
    skipped = [r.name for r in outcome.results if r.status == "skipped"]
    assert not skipped, f"CI subset specs skipped: {skipped}"


@pytest.mark.conformance_full
def test_conformance_full_suite(deployed, pytestconfig):
    parallel = int(os.environ.get("K8S_HA_LAB_CONFORMANCE_PARALLEL", "3"))
    _run(deployed, pytestconfig.k8s_ha_lab_run_dir / "conformance-full", CONFORMANCE_FOCUS,
         parallel)
