"""Questions across stored runs: per-test history, failure rate, flaky tests, "failing since",
and the comparison of two runs.

``fetch()`` reads the database (read-only); ``analyse()`` and ``compare()`` are pure and
return frozen records; ``*_json()`` are the stable ``--json`` forms; ``render_page()`` draws
the history HTML page with a failure-rate plot (inline SVG, no network).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dsvm.errors import UsageError
from dsvm.results import db
from dsvm.results.stream import Run

JSON_VERSION = 1
BAD = frozenset({"fail", "uxsuccess", "crashed"})


@dataclass(frozen=True)
class RunInfo:
    """A stored run as history shows it."""

    id: int
    uuid: str
    run_at: datetime | None
    passes: int
    fails: int
    skips: int
    meta: dict[str, str]

    @property
    def change(self) -> str:
        c, p = self.meta.get("zuul_change"), self.meta.get("zuul_patchset")
        return f"{c},{p}" if c and p else (c or "")

    @property
    def commit(self) -> str:
        return self.meta.get("zuul_commit", "")

    @property
    def same_code_key(self) -> str | None:
        """Runs with the same key tested the same code (commit, else change,patchset)."""
        return self.commit or self.change or None


@dataclass(frozen=True)
class TestHistory:
    """One test over the runs: statuses oldest → newest (None = not run)."""

    __test__ = False

    test_id: str
    statuses: tuple[str | None, ...]
    passes: int
    fails: int
    skips: int
    failure_rate: float
    is_flaky: bool
    failing_since: RunInfo | None  # the first run of the current failing streak
    streak: int  # how many latest runs in a row it failed


@dataclass(frozen=True)
class History:
    runs: tuple[RunInfo, ...]  # oldest → newest
    tests: tuple[TestHistory, ...]


def fetch(engine: Engine, last: int = 20, test_regex: str | None = None
          ) -> tuple[list[RunInfo], dict[str, dict[int, str]]]:
    """The last ``last`` runs (oldest first) and base test id → {run id: status}."""
    try:
        pattern = re.compile(test_regex) if test_regex else None
    except re.error as exc:
        raise UsageError(f"--test: invalid regex {test_regex!r}: {exc}") from None
    r, tr, t = db.runs, db.test_runs, db.tests
    with db.transaction(engine) as conn:
        db.ensure_schema(conn, create=False)
        rows = conn.execute(sa.select(r.c.id, r.c.uuid, r.c.run_at, r.c.passes, r.c.fails,
                                      r.c.skips).order_by(r.c.run_at.desc(), r.c.id.desc())
                            .limit(max(1, last))).all()[::-1]
        ids = [row[0] for row in rows]
        meta = db.run_meta(conn, ids)
        results: dict[str, dict[int, str]] = defaultdict(dict)
        crashed = {trid for (trid,) in conn.execute(
            sa.select(db.test_run_metadata.c.test_run_id).join(
                tr, tr.c.id == db.test_run_metadata.c.test_run_id)
            .where(tr.c.run_id.in_(ids), db.test_run_metadata.c.key == db.CRASH_KEY))}
        for trid, run_id, name, status in conn.execute(
                sa.select(tr.c.id, tr.c.run_id, t.c.test_id, tr.c.status)
                .join(t, t.c.id == tr.c.test_id).where(tr.c.run_id.in_(ids))):
            if pattern is None or pattern.search(name):
                results[name][run_id] = "crashed" if trid in crashed else status
    infos = [RunInfo(i, u, at, p or 0, f or 0, s or 0, meta.get(i, {}))
             for i, u, at, p, f, s in rows]
    return infos, dict(results)


def analyse(runs: list[RunInfo], results: dict[str, dict[int, str]]) -> History:
    """Per-test history, failure rate, flaky flag and failing-since (pure)."""
    tests = []
    for name in sorted(results):
        by_run = results[name]
        statuses = tuple(by_run.get(r.id) for r in runs)
        fails = sum(1 for s in statuses if s in BAD)
        passes = sum(1 for s in statuses if s in ("success", "xfail"))
        skips = sum(1 for s in statuses if s == "skip")
        groups: dict[str, set[bool]] = defaultdict(set)
        for run, status in zip(runs, statuses, strict=True):
            if run.same_code_key and status in BAD | {"success"}:
                groups[run.same_code_key].add(status in BAD)
        flaky = any(len(v) == 2 for v in groups.values())
        streak, since = 0, None
        for run, status in zip(reversed(runs), reversed(statuses), strict=True):
            if status is None:
                continue  # not run there: neither breaks nor extends the streak
            if status not in BAD:
                break
            streak, since = streak + 1, run
        rate = fails / (fails + passes) if fails + passes else 0.0
        tests.append(TestHistory(name, statuses, passes, fails, skips, rate, flaky,
                                 since if streak and statuses[-1] in BAD else None,
                                 streak if statuses and statuses[-1] in BAD else 0))
    return History(tuple(runs), tuple(tests))


def _run_json(r: RunInfo | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {"id": r.id, "uuid": r.uuid, "run_at": r.run_at.isoformat() if r.run_at else None,
            "passes": r.passes, "fails": r.fails, "skips": r.skips, "change": r.change,
            "commit": r.commit, "meta": r.meta}


def history_json(h: History) -> dict[str, Any]:
    """The stable ``history --json`` form."""
    return {"version": JSON_VERSION, "runs": [_run_json(r) for r in h.runs],
            "tests": [{"test_id": t.test_id, "statuses": list(t.statuses),
                       "passes": t.passes, "fails": t.fails, "skips": t.skips,
                       "failure_rate": round(t.failure_rate, 4), "flaky": t.is_flaky,
                       "failing_since": _run_json(t.failing_since), "streak": t.streak}
                      for t in h.tests]}


# -- compare ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    new_failures: tuple[str, ...]
    fixed: tuple[str, ...]
    new_skips: tuple[str, ...]
    slower: tuple[tuple[str, float, float], ...]  # id, seconds in A, seconds in B
    added: int
    removed: int


def compare(a: Run, b: Run, factor: float = 2.0, min_delta: float = 1.0) -> Comparison:
    """What changed from run ``a`` to run ``b`` (by test id without attrs)."""
    ta = {t.base_id: t for t in a.tests}
    tb = {t.base_id: t for t in b.tests}
    new_fail = sorted(k for k, t in tb.items() if t.is_failure
                      and (k not in ta or not ta[k].is_failure))
    fixed = sorted(k for k, t in ta.items() if t.is_failure and k in tb
                   and tb[k].status in ("success", "xfail"))
    new_skip = sorted(k for k, t in tb.items() if t.status == "skip"
                      and (k not in ta or ta[k].status != "skip"))
    slower = sorted(((k, ta[k].duration, t.duration) for k, t in tb.items()
                     if k in ta and t.status == "success" and ta[k].status == "success"
                     and t.duration >= factor * ta[k].duration
                     and t.duration - ta[k].duration >= min_delta),
                    key=lambda x: x[1] - x[2])
    return Comparison(a.meta.get("uuid", a.source), b.meta.get("uuid", b.source),
                      tuple(new_fail), tuple(fixed), tuple(new_skip), tuple(slower),
                      len(tb.keys() - ta.keys()), len(ta.keys() - tb.keys()))


def compare_json(c: Comparison) -> dict[str, Any]:
    """The stable ``compare --json`` form."""
    return {"version": JSON_VERSION, "run_a": c.a, "run_b": c.b,
            "new_failures": list(c.new_failures), "fixed": list(c.fixed),
            "new_skips": list(c.new_skips),
            "slower": [{"test_id": k, "seconds_a": round(x, 6), "seconds_b": round(y, 6)}
                       for k, x, y in c.slower],
            "added": c.added, "removed": c.removed}


# -- the history page ------------------------------------------------------------------------
def _svg_plot(h: History, width: int = 900, height: int = 220) -> str:
    """Inline SVG: fraction of failing tests per run (oldest → newest)."""
    pts = []
    n = len(h.runs)
    for i, r in enumerate(h.runs):
        total = r.passes + r.fails
        rate = r.fails / total if total else 0.0
        x = 40 + (width - 60) * (i / max(1, n - 1))
        y = 10 + (height - 40) * (1 - rate)
        pts.append((x, y, rate, r))
    poly = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in pts)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{"#f04438" if rate else "#12b76a"}">'
        f"<title>{_esc(r.uuid)} {_esc(r.change)}: {rate:.1%} failing</title></circle>"
        for x, y, rate, r in pts)
    grid = "".join(
        f'<line x1="40" x2="{width - 20}" y1="{10 + (height - 40) * f:.1f}" '
        f'y2="{10 + (height - 40) * f:.1f}" stroke="#e4e7ec"/>'
        f'<text x="34" y="{14 + (height - 40) * f:.1f}" text-anchor="end" font-size="11" '
        f'fill="#667085">{int((1 - f) * 100)}%</text>' for f in (0, 0.25, 0.5, 0.75, 1))
    return (f'<svg id="plot" viewBox="0 0 {width} {height}" width="100%" role="img" '
            f'aria-label="failure rate per run">{grid}<polyline points="{poly}" fill="none" '
            f'stroke="#2e90fa" stroke-width="2"/>{dots}</svg>')


def _esc(text: str) -> str:
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def render_page(h: History, limit: int = 500) -> str:
    """The history HTML page: failure-rate plot, then tests by failure rate."""
    cells = {"success": "#12b76a", "fail": "#f04438", "crashed": "#b42318",
             "uxsuccess": "#f79009", "skip": "#98a2b3", "xfail": "#7a5af8", None: "#f2f4f7"}
    ranked = sorted(h.tests, key=lambda t: (-t.streak, -t.failure_rate, t.test_id))[:limit]
    rows = []
    for t in ranked:
        strip = "".join(f'<i style="background:{cells.get(s, "#f2f4f7")}" '
                        f'title="{_esc(s or "not run")}"></i>' for s in t.statuses)
        since = (f"{_esc(t.failing_since.uuid[:8])} ({_esc(t.failing_since.change or '-')}, "
                 f"{_esc(t.failing_since.commit[:10] or '-')}) ×{t.streak}"
                 if t.failing_since else "")
        rows.append(f"<tr><td class=n>{_esc(t.test_id)}</td><td>{strip}</td>"
                    f"<td class=r>{t.failure_rate:.0%}</td><td>{'flaky' if t.is_flaky else ''}"
                    f"</td><td>{since}</td></tr>")
    return (HISTORY_TEMPLATE.replace("%%PLOT%%", _svg_plot(h))
            .replace("%%RUNS%%", str(len(h.runs))).replace("%%ROWS%%", "".join(rows)))


HISTORY_TEMPLATE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>Test history</title><style>
body{margin:0;font:14px/1.45 system-ui,sans-serif;background:#f6f7f9;color:#1d2330}
header{padding:18px 28px;background:#101828;color:#fff}h1{margin:0;font-size:20px}
main{padding:20px 28px;max-width:1400px;margin:auto}section{background:#fff;border:1px solid
#e4e7ec;border-radius:10px;padding:14px 16px;margin-bottom:18px}table{border-collapse:collapse;
width:100%}td,th{padding:5px 8px;border-bottom:1px solid #e4e7ec;text-align:left}
td.n{font-family:ui-monospace,monospace;font-size:12px;word-break:break-all}td.r{text-align:right}
i{display:inline-block;width:10px;height:14px;margin-right:1px;border-radius:2px}
</style></head><body><header><h1>Test history: last %%RUNS%% runs</h1></header><main>
<section><h2>Failing tests per run</h2>%%PLOT%%</section>
<section><h2>Tests by failure rate</h2><table><thead><tr><th>Test</th><th>Runs (old → new)</th>
<th>Failure rate</th><th>Flaky</th><th>Failing since (run, change, commit)</th></tr></thead>
<tbody>%%ROWS%%</tbody></table></section></main></body></html>
"""
