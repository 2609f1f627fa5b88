"""harness.artifacts.prefetch with a fake go: modules resolved in the background, a failure left
to the component's own fetch, and every background go stopped when the build ends."""

from __future__ import annotations

import stat
import time
from pathlib import Path

from harness.artifacts.prefetch import modules_ahead
from harness.artifacts.sources.gomod import GoModSource
from harness.versions import Component

# components whose recipe leaves nothing out: the fake module has no packages to trim
REGISTRY = Component("registry", "v3.1.2", "gomod")
METRICS = Component("metrics_server", "v0.9.0", "gomod")


def fake_go(tmp_path: Path, on_get: str) -> str:
    """`go mod download -json` answers with a go.mod; `go get` runs `on_get` and records itself."""
    (tmp_path / "src.mod").write_text("module example.com/x\n\ngo 1.23\n")
    go = tmp_path / "go"
    go.write_text(f"""#!/bin/sh
case "$1" in
  mod) printf '{{"Path":"x","GoMod":"%s","Dir":"%s"}}' "{tmp_path}/src.mod" "{tmp_path}"; exit 0;;
  get) echo "$2" >> "{tmp_path}/gets"; {on_get};;
esac
""")
    go.chmod(go.stat().st_mode | stat.S_IEXEC)
    return str(go)


def test_each_component_is_resolved_in_the_background_and_the_scratch_removed(tmp_path):
    source = GoModSource(log_dir=tmp_path / "logs", go=fake_go(tmp_path, "exit 0"))
    with modules_ahead(source, [REGISTRY, METRICS], tmp_path / "tmp") as futures:
        for future in futures:
            assert future.result(timeout=30) is None
        scratch = list((tmp_path / "tmp").iterdir())
        assert len(scratch) == 1 and (scratch[0] / "registry" / "wrapper" / "go.mod").exists()
    gets = sorted((tmp_path / "gets").read_text().split())
    assert gets == ["github.com/distribution/distribution/v3/cmd/registry@v3.1.2", "sigs.k8s.io/metrics-server/cmd/metrics-server@v0.9.0"]
    assert "exit 0" in (tmp_path / "logs" / "registry@v3.1.2.prefetch.log").read_text()
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_failed_prefetch_is_only_logged(tmp_path):
    source = GoModSource(log_dir=tmp_path / "logs", go=fake_go(tmp_path, "echo 'no such module'; exit 1"))
    with modules_ahead(source, [REGISTRY], tmp_path / "tmp") as futures:
        assert "no such module" in str(futures[0].exception(timeout=30))
    assert "no such module" in (tmp_path / "logs" / "registry@v3.1.2.prefetch.log").read_text()


def test_a_build_that_ends_stops_the_downloads_still_running(tmp_path):
    source = GoModSource(log_dir=tmp_path / "logs", go=fake_go(tmp_path, "exec sleep 60"))
    started = time.monotonic()
    with modules_ahead(source, [REGISTRY, METRICS], tmp_path / "tmp", workers=1):
        deadline = time.monotonic() + 30
        while not (tmp_path / "gets").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert time.monotonic() - started < 20
    # the second one never started: the first was stopped and the queue cancelled
    assert (tmp_path / "gets").read_text().count("@") == 1
