"""The console summary of a run: counts, failures with trimmed tracebacks, slowest, skips.

``summarize()`` is pure (Run → Summary); ``render()`` prints it on a rich console (colour in a
terminal, ASCII in Jenkins or a file); ``as_json()`` is the stable ``--json`` form. Nothing here
reads files or decides exit codes.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from dsvm.results.known import KnownFailures
from dsvm.results.stream import CRASHED, STATUS_ORDER, Run, TestResult

JSON_VERSION = 1
STATUS_LABEL = {"success": "passed", "fail": "failed", "skip": "skipped", "xfail": "expected fail",
                "uxsuccess": "unexpected success", CRASHED: "crashed (no final status)"}
# Frames of the test machinery, not of the code under test (testtools/unittest/fixtures).
_NOISE = re.compile(r'File ".*(site-packages|dist-packages|lib/python3[.0-9]*)/'
                    r"(testtools|unittest|fixtures|testscenarios|subunit|oslotest)/")
MAX_TRACE_LINES = 24


@dataclass(frozen=True)
class Failure:
    """A failed test as the summary shows it."""

    test_id: str
    status: str
    message: str  # the last meaningful line (exception and message)
    trace: str  # the traceback trimmed to the useful part
    bug: str | None = None


@dataclass(frozen=True)
class SkipGroup:
    reason: str
    count: int
    examples: tuple[str, ...]


@dataclass(frozen=True)
class Summary:
    """What an operator reads first: counts, time, failures, slowest tests, skip reasons."""

    source: str
    counts: dict[str, int]
    total: int
    wall_seconds: float
    test_seconds: float
    failures: tuple[Failure, ...]
    slowest: tuple[tuple[str, float], ...]
    skips: tuple[SkipGroup, ...]
    problem: str | None
    is_ok: bool


def trim_traceback(text: str, limit: int = MAX_TRACE_LINES) -> str:
    """Drop test-framework frames and blank lines; keep the head line and the last ``limit``."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    kept: list[str] = []
    skip_next = False
    for line in lines:
        if skip_next:
            skip_next = False
            if line.startswith("    "):
                continue
        if _NOISE.search(line):
            skip_next = True
            continue
        kept.append(line)
    if len(kept) > limit:
        head = kept[0] if kept[0].startswith("Traceback") else None
        kept = ([head] if head else []) + ["  ..."] + kept[-(limit - 2):]
    return "\n".join(kept)


def failure_message(test: TestResult) -> str:
    """One line saying why a test failed (last line of its traceback, or the status)."""
    if test.status == CRASHED:
        return "test did not finish: the worker crashed or was killed"
    if test.status == "uxsuccess":
        return "unexpected success (marked expected-failure but passed)"
    att = test.attachment("traceback")
    if att is None:
        return "failed (no traceback attached)"
    for line in reversed(att.text().splitlines()):
        line = line.strip()
        if line and not line.startswith(("File ", "Traceback")):
            return line[:300]
    return "failed"


def summarize(run: Run, known: KnownFailures | None = None, slowest: int = 10) -> Summary:
    """Build the Summary of ``run``; failures are labelled with known bugs."""
    known = known or KnownFailures()
    failures = tuple(
        Failure(t.test_id, t.status, failure_message(t),
                trim_traceback(tb.text()) if (tb := t.attachment("traceback")) else "",
                known.bug_for(t))
        for t in run.tests if t.is_failure)
    ranked = sorted((t for t in run.tests if t.status != "skip"), key=lambda t: -t.duration)
    by_reason: dict[str, list[str]] = defaultdict(list)
    for t in run.tests:
        if t.status == "skip":
            reason = t.attachment("reason")
            by_reason[reason.text().strip() if reason else "(no reason given)"].append(t.test_id)
    skips = tuple(SkipGroup(r, len(ids), tuple(ids[:3]))
                  for r, ids in sorted(by_reason.items(), key=lambda kv: -len(kv[1])))
    counts = run.counts
    return Summary(
        source=run.source, counts={s: counts.get(s, 0) for s in STATUS_ORDER},
        total=len(run.tests), wall_seconds=run.wall_seconds, test_seconds=run.test_seconds,
        failures=failures, slowest=tuple((t.test_id, t.duration) for t in ranked[:slowest]),
        skips=skips, problem=run.problem, is_ok=run.is_ok)


def as_json(summary: Summary) -> dict[str, Any]:
    """The stable ``--json`` form (documented in docs/results.md)."""
    return {
        "version": JSON_VERSION,
        "source": summary.source,
        "ok": summary.is_ok,
        "total": summary.total,
        "counts": summary.counts,
        "wall_seconds": round(summary.wall_seconds, 6),
        "test_seconds": round(summary.test_seconds, 6),
        "problem": summary.problem,
        "failures": [{"test_id": f.test_id, "status": f.status, "message": f.message,
                      "traceback": f.trace, "bug": f.bug} for f in summary.failures],
        "slowest": [{"test_id": t, "seconds": round(s, 6)} for t, s in summary.slowest],
        "skips": [{"reason": g.reason, "count": g.count, "examples": list(g.examples)}
                  for g in summary.skips],
    }


def render(summary: Summary, console: Any, plain: bool) -> None:
    """Print the summary on a rich Console (``plain``: ASCII, no colour, for Jenkins/files)."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    p = console.print
    bx = box.ASCII if plain else box.SIMPLE_HEAVY
    for f in summary.failures:
        bug = f"  [known: {f.bug}]" if f.bug else ""
        head = f"{'FAIL' if plain else '[bold red]FAIL[/]'} {escape(f.test_id)}{escape(bug)}"
        p(head)
        p(escape(f"  {f.message}"))
        if f.trace:
            p(escape("\n".join("    " + ln for ln in f.trace.splitlines())))
        p("")
    if summary.skips:
        t = Table(title="Skipped, by reason", box=bx)
        t.add_column("tests", justify="right")
        t.add_column("reason")
        for g in summary.skips[:15]:
            t.add_row(str(g.count), escape(g.reason[:160]))
        p(t)
    if summary.slowest:
        t = Table(title=f"{len(summary.slowest)} slowest tests", box=bx)
        t.add_column("seconds", justify="right")
        t.add_column("test")
        for test_id, secs in summary.slowest:
            t.add_row(f"{secs:.2f}", escape(test_id))
        p(t)
    t = Table(title=f"Totals ({escape(summary.source)})", box=bx)
    t.add_column("status")
    t.add_column("tests", justify="right")
    for status, n in summary.counts.items():
        if n or status in ("success", "fail", "skip"):
            t.add_row(STATUS_LABEL[status], str(n))
    t.add_row("total", str(summary.total))
    p(t)
    p(f"ran {summary.total} tests in {summary.wall_seconds:.1f}s "
      f"(sum of test times {summary.test_seconds:.1f}s)")
    if summary.problem:
        mark = "WARNING" if plain else "[yellow]warning[/]"
        p(f"{mark}: " + escape(f"the stream is truncated or corrupt ({summary.problem}); "
                               "the tests completed before it count"))
    known = sum(1 for f in summary.failures if f.bug)
    verdict = "PASSED" if summary.is_ok else (
        f"FAILED: {len(summary.failures)} failing test(s)"
        + (f", {known} of them known bugs" if known else ""))
    p(verdict if plain else (f"[bold green]{verdict}[/]" if summary.is_ok
                             else f"[bold red]{escape(verdict)}[/]"))


def render_text(summary: Summary, width: int = 120) -> str:
    """The plain-text summary (summary.txt, Jenkins)."""
    import io

    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, no_color=True, force_terminal=False, width=width,
                      highlight=False, soft_wrap=True, emoji=False, color_system=None)
    render(summary, console, plain=True)
    return buf.getvalue()
