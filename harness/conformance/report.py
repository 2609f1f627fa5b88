"""Reading the suite's output: progress from ginkgo's verbose stream, results from its JUnit.

Ginkgo v2 (`-v`) ends each spec it ran with a header line such as `• [12.345 seconds]`
(passed), `• [FAILED] [3.2 seconds]`, `• [PANICKED] ...`, `• [TIMEDOUT] ...` or
`S [SKIPPED] [0.001 seconds]`; those lines are counted while it runs. The JUnit file the e2e
framework writes into --report-dir is the result that counts.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

PASSED = re.compile(r"^\s*•\s+\[\d+(\.\d+)?\s+seconds\]")
FAILED = re.compile(r"^\s*•\s+\[(FAILED|PANICKED|TIMEDOUT|INTERRUPTED|ABORTED)\]")
SKIPPED = re.compile(r"^\s*S\s+\[SKIPPED\]")
RAN = re.compile(r"Ran (\d+) of (\d+) Specs")
SIG = re.compile(r"\[(sig-[\w-]+)\]")


@dataclass
class Progress:
    total: int = 0          # specs that will run (from a dry run), 0 when unknown
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.passed + self.failed

    def feed(self, line: str) -> bool:
        """Counts one line of output; True when it finished a spec."""
        if FAILED.match(line):
            self.failed += 1
            return True
        if PASSED.match(line):
            self.passed += 1
            return True
        if SKIPPED.match(line):
            self.skipped += 1
        return False

    def line(self, elapsed_s: float) -> str:
        total = f"/{self.total}" if self.total else ""
        minutes, seconds = divmod(int(elapsed_s), 60)
        return (f"[conformance] {self.done}{total} done, {self.passed} passed, "
                f"{self.failed} failed, elapsed {minutes}m{seconds:02d}s")


def ran_of(text: str) -> tuple[int, int] | None:
    """(specs that run, specs in the binary) from ginkgo's `Ran N of M Specs` line."""
    found = RAN.findall(text)
    return (int(found[-1][0]), int(found[-1][1])) if found else None


@dataclass
class Result:
    name: str
    status: str             # passed | failed | skipped
    message: str = ""
    seconds: float = 0.0

    @property
    def sig(self) -> str:
        match = SIG.search(self.name)
        return match.group(1) if match else "other"


def read_junit(path: Path, focus: re.Pattern | None = None) -> list[Result]:
    """Every test case of the e2e framework's JUnit, or only those whose name matches focus
    (the specs not selected at all are of no interest in a table)."""
    results = []
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name", "")
        if focus is not None and not focus.search(name):
            continue
        failure = case.find("failure")
        error = case.find("error")
        if failure is not None or error is not None:
            node = failure if failure is not None else error
            message = (node.get("message") or node.text or "").strip()
            status = "failed"
        elif case.find("skipped") is not None:
            status, message = "skipped", (case.find("skipped").get("message") or "")
        else:
            status, message = "passed", ""
        # ginkgo's JUnit also carries the suite's setup/teardown nodes; they are not tests
        if name.startswith(("[SynchronizedBeforeSuite]", "[SynchronizedAfterSuite]",
                            "[BeforeSuite]", "[AfterSuite]", "[ReportAfterSuite]",
                            "[ReportBeforeSuite]", "[DeferCleanup (Suite)]")):
            if status != "failed":
                continue
        results.append(Result(name, status, message, float(case.get("time", 0) or 0)))
    return results


def by_sig(results: list[Result]) -> "OrderedDict[str, dict[str, int]]":
    table: dict[str, dict[str, int]] = {}
    for r in results:
        row = table.setdefault(r.sig, {"passed": 0, "failed": 0, "skipped": 0})
        row[r.status] += 1
    return OrderedDict(sorted(table.items()))


def table_text(results: list[Result]) -> str:
    rows = by_sig(results)
    lines = [f"{'SIG':<22} {'passed':>7} {'failed':>7} {'skipped':>8}"]
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    for sig, row in rows.items():
        lines.append(f"{sig:<22} {row['passed']:>7} {row['failed']:>7} {row['skipped']:>8}")
        for key in totals:
            totals[key] += row[key]
    lines.append(f"{'total':<22} {totals['passed']:>7} {totals['failed']:>7} "
                 f"{totals['skipped']:>8}")
    return "\n".join(lines)


def table_markdown(results: list[Result]) -> str:
    rows = by_sig(results)
    lines = ["| SIG | passed | failed | skipped |", "| --- | ---: | ---: | ---: |"]
    for sig, row in rows.items():
        lines.append(f"| {sig} | {row['passed']} | {row['failed']} | {row['skipped']} |")
    return "\n".join(lines)


def summary_line(results: list[Result]) -> str:
    passed = sum(r.status == "passed" for r in results)
    failed = sum(r.status == "failed" for r in results)
    return f"{passed} passed, {failed} failed"
