"""Go modules downloaded ahead, while the first component compiles.

The components build one after another, and each starts with `go get`, which waits on the
module proxy with the CPU idle. A cold `.ci/run` on 2 cores (2026-11-29) spent 498 s in those
`go get`s (traefik alone 243 s, for 276 modules) beside 2521 s of compiling. So while the first
component compiles, the later ones resolve their wrapper module in a scratch directory, a few at
once: their modules land in Go's module cache, and each one's own `go get` later finds them there.

Nothing depends on it. A prefetch that fails is only written to its log
(`<component>@<version>.prefetch.log`); the component's own fetch meets the failure again and
reports it as always. When the build ends, failed or interrupted, the prefetches still running
are stopped and their scratch directories removed.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

from harness.artifacts.gotool import Children
from harness.artifacts.sources.gomod import GoModSource
from harness.versions import Component

WORKERS = 3   # downloads at once; each is bound by the proxy's latency, not the CPU


@contextlib.contextmanager
def modules_ahead(source: GoModSource, components: list[Component], scratch_root: Path,
                  workers: int = WORKERS) -> Iterator[list]:
    """Resolves each component's modules in the background for as long as the block runs.
    Yields the futures (each returns None, or raises what the prefetch met)."""
    children = Children()
    scratch_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="prefetch-", dir=scratch_root))

    def one(component: Component) -> None:
        source.resolve(component, scratch / component.name / "wrapper",
                       source.log_path(component, scratch / component.name, ".prefetch"),
                       children)

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="prefetch")
    futures = [pool.submit(one, component) for component in components]
    try:
        yield futures
    finally:
        children.stop()
        pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(scratch, ignore_errors=True)
