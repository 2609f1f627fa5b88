"""HTML reports people look at: one page per scenario with its timeline plot, the measured-versus-
bound table and the explanation; an index of the run; a trend page across earlier runs.

Everything is read back from the scenario JSON files the runner writes, so pages can be rebuilt
at any time (`python -m harness scenario report DIR`). Plots are drawn with matplotlib (the
`reports` extra); numbers are rounded for people by `human`.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from harness.failover import bounds, rounding  # noqa: E402
from harness.failover.runner import ScenarioResult, load_results, problems, read_result  # noqa: E402

STREAMS = (("write", "writes"), ("reused", "reads, reused connection"), ("new", "reads, new connections"))
OK_COLOR, FAIL_COLOR = "#2e7d32", "#c62828"
MARKS = {"break": ("#6a1b9a", "break"), "takeover": ("#1565c0", "takeover"), "restore": ("#ef6c00", "restore"),
         "bound": ("#424242", "bound")}

CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 2em auto; max-width: 70em; color: #212121; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #bdbdbd; padding: 0.3em 0.7em; text-align: left; }
th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #2e7d32; font-weight: bold; } .fail { color: #c62828; font-weight: bold; }
img { max-width: 100%; border: 1px solid #e0e0e0; }
.explain { background: #fafafa; border-left: 4px solid #90a4ae; padding: 0.5em 1em; }
code { background: #eceff1; padding: 0 0.2em; }
nav a { margin-right: 1em; }
"""


def human(value, unit: str = " s") -> str:
    """A figure rounded for people (harness.failover.rounding), escaped for HTML."""
    return html.escape(rounding.seconds(value, unit))


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n"
            f"<body>\n{body}\n</body></html>\n")


def _img(src: str, alt: str) -> str:
    # a missing plot shows up as a console error in the browser test, not as a silent hole
    return (f'<img src="{html.escape(src)}" alt="{html.escape(alt)}" '
            f'onerror="console.error(\'image failed to load: \' + this.src)">')


def _verdict_cell(found: list[str]) -> str:
    return '<span class="pass">PASS</span>' if not found else '<span class="fail">FAIL</span>'


def _inline(text: str) -> str:
    """The explanations' little Markdown: `code` and **bold**, everything else escaped."""
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


def explanation_html(name: str) -> str:
    from harness.failover.cli import explanation
    try:
        text = explanation(name)
    except Exception:  # noqa: BLE001 - a report without its explanation is still a report
        return "<p>(no explanation in docs/scenarios.md)</p>"
    paragraphs: list[list[str]] = []
    fresh = True
    for line in text.splitlines()[1:]:          # the heading is the page's own
        if not line.strip():
            fresh = True
            continue
        if fresh or re.match(r"\*\*[^*]+\.\*\*", line):   # each **Lead.** starts a paragraph
            paragraphs.append([])
        paragraphs[-1].append(line.strip())
        fresh = False
    return "\n".join(f"<p>{_inline(' '.join(p))}</p>" for p in paragraphs)


# --- the timeline ---------------------------------------------------------------------------------
def marks(result: ScenarioResult) -> dict[str, float]:
    """When the break, the takeover, the restore and the bound happened, in seconds since the
    probe started. The takeover is the break plus the figure measured from it (`since_break_s`
    where the scenario has one, else the governed figure). The bound is drawn where the interval
    it governs began plus the bound: the takeover minus the governed figure (for a graceful VRRP
    takeover, the priority-0 advert), which is the break itself when the figure runs from it.
    A lower bound (an outage that must last at least so long) is drawn from the break; it has no
    takeover."""
    events = result.events or {}
    found = {}
    if "break" in events:
        found["break"] = events["break"]
        since = result.facts.get("since_break_s")
        took = since if isinstance(since, (int, float)) else result.measured
        measured = result.measured
        if isinstance(took, (int, float)) and result.bound_direction == bounds.UPPER:
            found["takeover"] = events["break"] + took
        begins = events["break"]
        if result.bound_direction == bounds.UPPER:
            if "takeover" in found and isinstance(measured, (int, float)) and 0 <= measured <= took:
                begins = found["takeover"] - measured
        found["bound"] = begins + result.bound_s
    if "restore" in events:
        found["restore"] = events["restore"]
    return found


def timeline_plot(result: ScenarioResult, path: Path) -> Path:
    """Probe success per stream over time (a green tick per good request, a red one per failed),
    with the break, the takeover, the restore and the bound marked."""
    fig, ax = plt.subplots(figsize=(11, 3.2), dpi=100)
    for row, (stream, label) in enumerate(STREAMS):
        for ok in (True, False):
            times = [t for t, s, good in result.timeline if s == stream and bool(good) is ok]
            ax.scatter(times, [row] * len(times), marker="|", s=260, linewidths=1.6,
                       color=OK_COLOR if ok else FAIL_COLOR, label=None)
    found = marks(result)
    if "bound" in found:
        slack = bounds.Bound(result.bound_s, "", result.bound_direction).allowed - result.bound_s
        ax.axvspan(found["bound"], found["bound"] + slack, color="#9e9e9e", alpha=0.18, label="slack")
    for key, at in found.items():
        color, label = MARKS[key]
        style = ":" if key == "bound" else "-"
        ax.axvline(at, color=color, linestyle=style, linewidth=1.6, label=f"{label} {human(at)}")
    ax.scatter([], [], marker="|", color=OK_COLOR, label="request ok")
    ax.scatter([], [], marker="|", color=FAIL_COLOR, label="request failed")
    ax.set_yticks(range(len(STREAMS)), [label for _, label in STREAMS])
    ax.set_ylim(-0.6, len(STREAMS) - 0.4)
    duration = result.probe.get("duration_s") or max((t for t, _, _ in result.timeline), default=1)
    ax.set_xlim(0, max(duration, max(found.values(), default=0)) + 0.5)
    ax.set_xlabel("seconds since the probe started")
    ax.set_title(f"{result.title}: probe requests through MASTER_URL")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# --- pages ----------------------------------------------------------------------------------------
def scenario_page(result: ScenarioResult, out_dir: Path) -> Path:
    plot = timeline_plot(result, out_dir / f"{result.name}-timeline.png")
    verdict, found, p = result.verdict, problems(result), result.probe
    sign = "≤" if result.bound_direction == bounds.UPPER else "≥"
    rows = [
        ("figure the bound governs", f"<code>{html.escape(result.measure or '—')}</code>"),
        ("measured", human(verdict.measured)),
        (f"bound ({result.bound_direction})", f"{human(result.bound_s)} <small>{html.escape(result.bound_formula)}</small>"),
        ("allowed with the slack rule", f"{sign} {human(verdict.allowed)}"),
        ("verdict", _verdict_cell(found)),
    ]
    facts = [(k, human(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and k.endswith("_s")
              else html.escape(json.dumps(v) if isinstance(v, (list, dict)) else str(v)))
             for k, v in result.facts.items()]
    probe_rows = [("longest gap, new connections", human(p.get("longest_gap_new_s"))),
                  ("longest gap, reused connection", human(p.get("longest_gap_reused_s"))),
                  ("longest gap, writes", human(p.get("longest_gap_write_s"))),
                  ("requests / failed", f"{p.get('requests', 0)} / {p.get('failed_requests', 0)}"),
                  ("writes acknowledged / lost", f"{p.get('acknowledged_writes', 0)} / {p.get('lost_writes', 0)}"),
                  ("lab converged back, core checks pass", "yes" if result.converged else "no")]
    body = [f"<nav><a href=\"index.html\">all scenarios of this run</a><a href=\"trend.html\">trend</a></nav>",
            f"<h1>{html.escape(result.title)} <small>(<code>{html.escape(result.name)}</code>)</small></h1>",
            f"<p>Verdict: {_verdict_cell(found)} &middot; started {html.escape(result.started_at or '—')}</p>",
            _img(plot.name, f"timeline of {result.name}"),
            "<h2>Measured versus bound</h2>", _table(["", ""], rows, header=False)]
    if found:
        body += ["<h2>Why it failed</h2><ul>", *(f"<li>{html.escape(line)}</li>" for line in found), "</ul>"]
    body += ["<h2>What the probe saw</h2>", _table(["", ""], probe_rows, header=False),
             "<h2>Everything the scenario measured</h2>", _table(["figure", "value"], facts),
             "<h2>What happens inside</h2>", f"<div class=\"explain\">{explanation_html(result.name)}</div>"]
    if result.error:
        body.append(f"<p class=\"fail\">Error during the scenario: <code>{html.escape(result.error)}</code></p>")
    path = out_dir / f"{result.name}.html"
    path.write_text(_page(f"{result.name}: {result.title}", "\n".join(body)))
    return path


def _table(headers: list[str], rows: list[tuple], header: bool = True) -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr>" if header else ""
    lines = []
    for row in rows:
        cells = [f"<th>{html.escape(str(row[0]))}</th>" if not header else f"<td>{row[0]}</td>"]
        cells += [f"<td class=\"num\">{cell}</td>" if str(cell)[:1].isdigit() else f"<td>{cell}</td>"
                  for cell in row[1:]]
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>{head}{''.join(lines)}</table>"


def index_page(results: list[ScenarioResult], out_dir: Path) -> Path:
    rows = []
    for r in results:
        found = problems(r)
        verdict = r.verdict
        rows.append((f"<a href=\"{html.escape(r.name)}.html\">{html.escape(r.name)}</a>",
                     html.escape(r.title), f"<code>{html.escape(r.measure)}</code>", human(verdict.measured),
                     human(r.bound_s),
                     f"{'≤' if r.bound_direction == bounds.UPPER else '≥'} {human(verdict.allowed)}",
                     _verdict_cell(found)))
    passed = sum(1 for r in results if not problems(r))
    body = ["<nav><a href=\"trend.html\">trend across runs</a></nav>",
            "<h1>HA failure scenarios of this run</h1>",
            f"<p>{passed} of {len(results)} scenarios passed. Each figure is judged against its bound with "
            f"the slack rule: upper bound × {1 + bounds.SLACK_RATIO:g} + {bounds.SLACK_S:g} s, lower bound × "
            f"{1 - bounds.SLACK_RATIO:g} − {bounds.SLACK_S:g} s (docs/scenarios.md).</p>",
            _table(["scenario", "what breaks", "figure", "measured", "bound", "allowed with slack", "verdict"], rows)]
    path = out_dir / "index.html"
    path.write_text(_page("HA failure scenarios", "\n".join(body)))
    return path


def history(root: Path) -> dict[str, list[ScenarioResult]]:
    """Every scenario JSON under `root` (earlier runs' folders), by scenario, oldest first."""
    by_name: dict[str, list[ScenarioResult]] = {}
    seen = set()
    for path in sorted(Path(root).rglob("*.json")):
        data = read_result(path)
        if data is None:
            continue
        run = (data["name"], data.get("started_at"), data["probe"].get("run_id"))
        if run in seen:          # one run found twice: its folder and the nightly's copy in history/
            continue
        seen.add(run)
        by_name.setdefault(data["name"], []).append(ScenarioResult.from_json(data))
    for runs in by_name.values():
        runs.sort(key=lambda r: r.started_at or "")
    return dict(sorted(by_name.items()))


def trend_plot(name: str, runs: list[ScenarioResult], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 2.8), dpi=100)
    xs = list(range(len(runs)))
    labels = [(r.started_at or "?")[:16].replace("T", " ") for r in runs]
    measured = [r.measured if r.measured is not None else float("nan") for r in runs]
    ax.plot(xs, [r.bound_s for r in runs], color=MARKS["bound"][0], linestyle=":", label="bound")
    ax.plot(xs, [r.verdict.allowed for r in runs], color="#9e9e9e", linestyle="--", label="bound with slack")
    ax.plot(xs, measured, color=MARKS["takeover"][0], marker="o", label=f"measured ({runs[-1].measure})")
    failed = [(x, m) for x, m, r in zip(xs, measured, runs) if problems(r)]
    if failed:
        ax.scatter(*zip(*failed), color=FAIL_COLOR, zorder=3, s=60, label="failed run")
    ax.set_xticks(xs, labels, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("seconds")
    ax.set_ylim(bottom=0)
    ax.set_title(name)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def trend_page(root: Path, out_dir: Path) -> Path:
    runs_by_name = history(root)
    body = ["<nav><a href=\"index.html\">this run</a></nav>", "<h1>Trend across runs</h1>",
            f"<p>Every scenario's measured figure against its bound, run after run, from the JSON under "
            f"<code>{html.escape(str(root))}</code>.</p>"]
    if not runs_by_name:
        body.append("<p>No earlier runs found.</p>")
    for name, runs in runs_by_name.items():
        plot = trend_plot(name, runs, out_dir / f"trend-{name}.png")
        latest = runs[-1]
        body += [f"<h2>{html.escape(name)}</h2>",
                 f"<p>{len(runs)} runs; latest {human(latest.measured)} against "
                 f"{'≤' if latest.bound_direction == bounds.UPPER else '≥'} {human(latest.bound_s)}: "
                 f"{_verdict_cell(problems(latest))}</p>",
                 _img(plot.name, f"trend of {name}")]
    path = out_dir / "trend.html"
    path.write_text(_page("HA failure scenarios: trend", "\n".join(body)))
    return path


def artifacts_root(folder: Path) -> Path:
    """Where earlier runs live: the nearest `artifacts` folder above this run, else its parent."""
    folder = Path(folder).resolve()
    for parent in (folder, *folder.parents):
        if parent.name == "artifacts":
            return parent
    return folder.parent


def write_run_pages(out_dir: Path, root: Path | None = None, only: str | None = None) -> Path:
    """Scenario pages for every JSON in the run's folder (or only the scenario `only`, which the
    runner just wrote), its index, and the trend page."""
    out_dir = Path(out_dir)
    results = load_results(out_dir)
    for result in results:
        if only is None or result.name == only:
            scenario_page(result, out_dir)
    index = index_page(results, out_dir)
    trend_page(root or artifacts_root(out_dir), out_dir)
    return index
