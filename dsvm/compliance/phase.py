"""Compliance in the gate job and on a finished job directory: the thin apply layer.

``take_inventory(ctx, "before"|"after")`` runs each backend's inventory hook under the array
lock (before the stack phase; after Tempest, followed by the cleanup of this job's leaks);
``evaluate()`` gathers the facts (leak findings, history, log signatures and their baseline
in the results database) and grades the job; ``store_signatures()`` keeps this run's
signatures with its stored run. A failing hook or database is a warning: compliance never
changes the job's own verdict.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dsvm import fsutil, proc
from dsvm.compliance import backends as backends_mod
from dsvm.compliance import checks, inventory, signatures
from dsvm.compliance.evidence import JobDir
from dsvm.compliance.lock import ArrayLock
from dsvm.errors import DsvmError
from dsvm.phase import ResultsOutputs

STATE_DIR = "compliance"  # under .dsvm/
LOCK_TIMEOUT = 600.0
HOOK_TIMEOUT = 300.0


@dataclass(frozen=True)
class Job:
    """What compliance needs from the settings and the environment."""

    root: Path  # $WORKSPACE
    base: str
    node_root: Path
    policy: checks.Policy
    hooks: tuple[inventory.Hooks, ...]
    db_url: str
    key: Mapping[str, str]  # how the results database names this job's runs
    secrets: tuple[str, ...] = ()
    known: Any = None
    sources: tuple[tuple[str, str], ...] = ()  # the logs phase's (src, dest): the node's files

    def job_dir(self, live: bool) -> JobDir:
        """The job's evidence; ``live`` also reads the node's files (the job still runs)."""
        return JobDir(self.root, base=self.base, node_root=self.node_root, live=live,
                      sources=self.sources)


def job_of(settings: Any, env: Mapping[str, str], root: Path) -> Job:
    """The Job of ``settings``/``env`` for the job directory ``root``."""
    from dsvm.results import db, known

    raw = [b for b in settings.cinder.backends if isinstance(b, Mapping)]
    secret_opts = {str(o) for b in raw for o in b.get("secret_options") or []}
    name = env.get("JOB_NAME") or env.get("ZUUL_JOB") or ""
    hooks = tuple(inventory.hooks_of(raw))
    policy = checks.Policy(tuple(str(b.get("name")) for b in raw if b.get("name")),
                           frozenset(secret_opts), settings.compliance.reference_job,
                           bool(hooks), name)
    key = {"job_name": name} if name else {"profile": str(settings.profile)}
    return Job(root, settings.paths.base, Path(settings.node.root or "/"), policy, hooks,
               db.url_for(settings, env), key, tuple(settings.secret_values()),
               known.from_settings(settings), _sources(settings))


def _sources(settings: Any) -> tuple[tuple[str, str], ...]:
    """The logs phase's source table (src, dest): where the node's files are."""
    from dsvm.logs.phase import node_sources

    return tuple((s.src, s.dest) for s in node_sources(settings))


def _state_dir(job: Job) -> Path:
    return job.root / ".dsvm" / STATE_DIR


def _snapshot_path(job: Job, backend: str, when: str) -> Path:
    return _state_dir(job) / f"inventory-{backend}-{when}.json"


def _run_hook(argv: tuple[str, ...], desc: str, runner: proc.Runner, cwd: Path) -> str:
    """stdout of a hook; HookError naming it when it cannot run or exits non-zero."""
    try:
        result = runner.run(list(argv), desc=desc, cwd=cwd, timeout=HOOK_TIMEOUT, check=False,
                            merge_stderr=False)
    except (DsvmError, OSError) as exc:
        raise inventory.HookError(f"{desc} could not run: {exc}") from exc
    if result.timed_out:
        raise inventory.HookError(f"{desc} timed out after {HOOK_TIMEOUT:.0f} s")
    if result.exit_code != 0:
        last = result.tail[-1] if result.tail else ""
        raise inventory.HookError(f"{desc} exited {result.exit_code}" +
                                  (f": {last}" if last else ""))
    return result.stdout


def snapshot(hooks: inventory.Hooks, runner: proc.Runner, cwd: Path) -> inventory.Snapshot:
    """One inventory (never raises: a bad hook is recorded as the snapshot's error)."""
    when = inventory.now()
    try:
        text = _run_hook(hooks.inventory, hooks.shown, runner, cwd)
        return inventory.Snapshot(hooks.backend, hooks.array, when,
                                  inventory.parse(text, hooks.shown))
    except inventory.HookError as exc:
        return inventory.Snapshot(hooks.backend, hooks.array, when, error=str(exc))


def take_inventory(job: Job, when: str, runner: proc.Runner, warn: Any) -> list[dict[str, Any]]:
    """Inventory every array (``when``: before | after); after, clean this job's leaks.
    Returns the per-backend results recorded in ``.dsvm/compliance/``."""
    out = []
    for hooks in job.hooks:
        try:
            with ArrayLock(hooks.array, job.db_url, LOCK_TIMEOUT):
                snap = snapshot(hooks, runner, job.root)
                record: dict[str, Any] = {"snapshot": snap.as_json()}
                if when == "after":
                    record.update(_after(job, hooks, snap, runner))
        except DsvmError as exc:
            snap = inventory.Snapshot(hooks.backend, hooks.array, inventory.now(),
                                      error=f"array lock: {exc.message}")
            record = {"snapshot": snap.as_json()}
        if snap.error:
            warn(f"inventory of {hooks.backend} ({when} the job): {snap.error}; nothing "
                 "is cleaned")
        _write(_snapshot_path(job, hooks.backend, when), record)
        out.append(record)
    return out


def _after(job: Job, hooks: inventory.Hooks, after: inventory.Snapshot,
           runner: proc.Runner) -> dict[str, Any]:
    """Leaks of one array and their cleanup (inside the array lock)."""
    before = _load_snapshot(job, hooks.backend, "before")
    findings = _findings(job, hooks, before, after, live=True)
    names = inventory.cleanup_names(findings, before) if before else []
    cleaned: dict[str, str] = {}
    if names and hooks.cleanup and not findings.warning:
        desc = f"cinder.backends[{hooks.backend}].cleanup ({' '.join(hooks.cleanup)})"
        try:
            _run_hook((*hooks.cleanup, *names), desc, runner, job.root)
            cleaned = {n: "cleaned" for n in names}
        except inventory.HookError as exc:
            cleaned = {n: f"cleanup failed: {exc}" for n in names}
    return {"leaks": [leak.as_json() for leak in findings.leaks],
            "foreign": [o.as_json() for o in findings.foreign], "cleaned": cleaned,
            "warning": findings.warning}


def _findings(job: Job, hooks: inventory.Hooks, before: inventory.Snapshot | None,
              after: inventory.Snapshot, live: bool) -> inventory.Findings:
    if before is None:
        return inventory.Findings(hooks.backend, (), (), f"{hooks.shown}: no inventory from "
                                  "before the job (did the stack phase run?)")
    jd = job.job_dir(live)
    verdicts, _ = backends_mod.decide(jd, job.policy.declared)
    log = jd.find("tempest_log")
    return inventory.find_leaks(before, after, backends_mod.created_ids(verdicts),
                                jd.lines(log) if log else ())


def _load_snapshot(job: Job, backend: str, when: str) -> inventory.Snapshot | None:
    try:
        data = json.loads(_snapshot_path(job, backend, when).read_text(encoding="utf-8"))
        return inventory.Snapshot.from_json(data["snapshot"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def recorded_findings(job: Job) -> tuple[list[inventory.Findings], dict[str, str]]:
    """The leak findings recorded after Tempest (and what the cleanup did)."""
    out: list[inventory.Findings] = []
    cleaned: dict[str, str] = {}
    for hooks in job.hooks:
        path = _snapshot_path(job, hooks.backend, "after")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            out.append(inventory.Findings(hooks.backend, (), (), f"{hooks.shown}: no "
                                          "inventory after Tempest"))
            continue
        error = (data.get("snapshot") or {}).get("error") or data.get("warning")
        leaks = tuple(inventory.Leak(hooks.backend, str(x["name"]), x.get("size"),
                                     str(x.get("kind") or ""), x.get("volume_id"),
                                     x.get("test"), _line(x.get("evidence")))
                      for x in data.get("leaks") or [])
        foreign = tuple(inventory.ArrayObject(str(o["name"]), o.get("size"),
                                              str(o.get("kind") or ""))
                        for o in data.get("foreign") or [])
        out.append(inventory.Findings(hooks.backend, leaks, foreign, error))
        cleaned.update(data.get("cleaned") or {})
    return out, cleaned


def _line(data: Any) -> Any:
    from dsvm.compliance.evidence import Line

    if not isinstance(data, Mapping) or not data.get("where"):
        return None
    path, _, number = str(data["where"]).rpartition(":")
    return Line(path, int(number) if number.isdigit() else 0, str(data.get("text") or ""))


def _write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fsutil.write_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


# -- history and signatures in the results database -----------------------------------------
def history_facts(db_url: str, key: Mapping[str, str], now: datetime | None = None
                  ) -> tuple[checks.HistoryFacts | None, str]:
    """The job's runs in the last 14 days and its last success; (None, why) without them."""
    import sqlalchemy as sa

    from dsvm.results import db

    now = now or datetime.now(UTC)
    try:
        engine = db.connect(db_url)
        with db.transaction(engine) as conn:
            if db.revision(conn) != db.HEAD:
                return None, f"no results in {db.shown(engine)}"
            runs, meta = db.runs, db.run_metadata
            query = sa.select(runs.c.run_at, runs.c.fails, runs.c.passes)
            for k, v in key.items():
                query = query.where(sa.exists().where(meta.c.run_id == runs.c.id,
                                                      meta.c.key == k, meta.c.value == v))
            rows = conn.execute(query).all()
        engine.dispose()
    except DsvmError as exc:
        return None, f"results database: {exc.message}"
    if not rows:
        return None, f"no run of {_key(key)} in {db.shown(engine)}"
    since = (now - timedelta(days=checks.HISTORY_DAYS)).replace(tzinfo=None)
    ok = [r.run_at for r in rows if r.run_at and not r.fails and r.passes]
    recent = [r for r in rows if r.run_at and r.run_at >= since]
    last = max(ok).replace(tzinfo=UTC) if ok else None
    return checks.HistoryFacts(last, len(recent),
                               sum(1 for r in recent if not r.fails and r.passes),
                               f"{_key(key)} in {db.shown(engine)}"), ""


def _key(key: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in key.items())


def evaluate(job: Job, *, live: bool, run_uuid: str | None = None, failed: bool = False,
             warn: Any = None) -> checks.Report:
    """Grade the job: its files, the recorded inventories, history, new log signatures."""
    jd = job.job_dir(live)
    findings, cleaned = recorded_findings(job)
    facts, why = history_facts(job.db_url, job.key)
    sigs = signatures.extract(jd)
    base, new = None, []
    if failed:
        try:
            from dsvm.results import db

            engine = db.connect(job.db_url)
            base = signatures.baseline(engine, job.key, exclude_uuid=run_uuid)
            engine.dispose()
        except DsvmError as exc:
            if warn:
                warn(f"log signatures: no baseline ({exc.message})")
        if base is not None:
            new = signatures.new_since(sigs, base.digests)
    return checks.grade(jd, job.policy, findings=findings, cleaned=cleaned, history=facts,
                        history_why=why, new_signatures=new, baseline=base, known=job.known)


def store_signatures(job: Job, run_uuid: str, live: bool) -> int:
    """Store this run's signatures with its stored run; DsvmError when the DB fails."""
    from dsvm.results import db

    jd = job.job_dir(live)
    engine = db.connect(job.db_url)
    try:
        return signatures.store(engine, run_uuid, signatures.extract(jd))
    finally:
        engine.dispose()


# -- presentation ---------------------------------------------------------------------------
MARK = {checks.PASS: "PASS", checks.FAIL: "FAIL", checks.NA: "n.a."}


def lines(report: checks.Report, evidence: int = 6) -> list[str]:
    """The console/markdown lines of a report: each check, its first evidence lines."""
    out = [f"compliance: {MARK[report.status]}"]
    for c in report.checks:
        out.append(f"  {MARK[c.status]:<4} {c.id}: {c.rule}")
        out += [f"       {e}" for e in c.evidence[:evidence]]
        if len(c.evidence) > evidence:
            out.append(f"       ... {len(c.evidence) - evidence} more")
    if report.new_signatures:
        since = report.baseline.uuid if report.baseline else "?"
        out.append(f"new in the logs since the last passing run {since}:")
        new, more = _capped(report.new_signatures)
        for s in new:
            out.append(f"  {s.service}: {s.first.where}: {s.first.text.strip()[:200]}")
        out += [f"  {svc}: ... {n} more" for svc, n in more.items()]
    for w in report.warnings:
        out.append(f"  warning: {w}")
    return out


def markdown(report: checks.Report) -> str:
    """The compliance section of summary.md."""
    rows = [f"### Vendor compliance: {MARK[report.status]}", "",
            "| check | verdict | evidence |", "| --- | --- | --- |"]
    for c in report.checks:
        first = c.evidence[0] if c.evidence else ""
        rows.append(f"| {c.id} | {MARK[c.status]} | {_cell(first)}"
                    + (f" (+{len(c.evidence) - 1})" if len(c.evidence) > 1 else "") + " |")
    if report.new_signatures:
        rows += ["", "New in the logs since the last passing run"
                 + (f" ({report.baseline.uuid[:8]})" if report.baseline else "") + ":"]
        shown, more = _capped(report.new_signatures)
        rows += [f"* {s.service}: `{s.first.where}` {_cell(s.first.text.strip()[:200])}"
                 for s in shown]
        rows += [f"* {svc}: ... {n} more (summary.json)" for svc, n in more.items()]
    return "\n".join(rows) + "\n"


NEW_PER_SERVICE = 10


def _capped(sigs: Iterable[signatures.Signature]
            ) -> tuple[list[signatures.Signature], dict[str, int]]:
    """The first NEW_PER_SERVICE new signatures of each service, and how many more."""
    shown: list[signatures.Signature] = []
    more: dict[str, int] = {}
    seen: dict[str, int] = {}
    for s in sigs:
        seen[s.service] = seen.get(s.service, 0) + 1
        if seen[s.service] <= NEW_PER_SERVICE:
            shown.append(s)
        else:
            more[s.service] = more.get(s.service, 0) + 1
    return shown, more


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:240]


# -- in the gate job ------------------------------------------------------------------------
BEFORE_STEPS = ("stack", "gate_hook")  # the array is inventoried before the cloud is built
AFTER_STEPS = ("tempest", "gate_hook")  # and again once the tests are done


def applies(ctx: Any) -> bool:
    """Compliance is part of every run whose profile has Cinder backends."""
    return bool(ctx.settings.cinder.backends)


def step_hook(ctx: Any, step: str, when: str) -> None:
    """Around the job's steps: the array inventories (never fails the job)."""
    if not applies(ctx) or step not in (BEFORE_STEPS if when == "before" else AFTER_STEPS):
        return
    job = job_of(ctx.settings, ctx.env, ctx.workspace)
    if not job.hooks or (when == "after" and _snapshot_done(job, step)):
        return
    try:
        take_inventory(job, "before" if when == "before" else "after",
                       ctx.runner("compliance"), ctx.ui.warn)
    except Exception as exc:  # noqa: BLE001 - compliance never costs the job its verdict
        ctx.ui.warn(f"array inventory {when} {step} failed: {exc}")


def _snapshot_done(job: Job, step: str) -> bool:
    # gate_hook is both "before" and "after"; tempest after gate_hook would repeat it
    return step == "tempest" and all(_snapshot_path(job, h.backend, "after").exists()
                                     for h in job.hooks)


def grade_job(ctx: Any, *, failed: bool, live: bool, store: bool) -> dict[str, Any] | None:
    """Grade the running job into ``ctx.outputs["compliance"]``; with ``store`` keep its log
    signatures with the stored run. Warnings, never an exception."""
    if not applies(ctx):
        return None
    try:
        job = job_of(ctx.settings, ctx.env, ctx.workspace)
        results = ctx.earlier(ResultsOutputs)
        run_uuid = results.run_uuid if results else None
        report = evaluate(job, live=live, run_uuid=run_uuid, failed=failed, warn=ctx.ui.warn)
        if store and run_uuid:
            try:
                store_signatures(job, str(run_uuid), live)
            except DsvmError as exc:
                ctx.ui.warn(f"log signatures not stored: {exc.message}")
        data = {**report.as_json(), "lines": lines(report), "markdown": markdown(report)}
        ctx.outputs["compliance"] = data
        _write(ctx.dsvm_log_dir / "compliance.json", data)
        _rerender_html(ctx, data)
        return data
    except Exception as exc:  # noqa: BLE001 - a compliance bug must not cost the logs
        ctx.ui.warn(f"compliance could not be graded: {exc}")
        return None


def _rerender_html(ctx: Any, data: Mapping[str, Any]) -> None:
    """The HTML report again, now with its compliance section."""
    from dsvm.results import html, known, stream

    results = ctx.earlier(ResultsOutputs)
    if not results or not results.html or not Path(results.subunit).is_file():
        return
    target = results.html
    page = html.render(stream.read(results.subunit), known.from_settings(ctx.settings),
                       history_link="history.html" if results.history else None,
                       compliance=data)
    fsutil.write_atomic(Path(str(target)), page)


def comment_block(data: Mapping[str, Any], settings: Any, env: Mapping[str, str]) -> str:
    """The Gerrit comment block of a ``dsvm run`` summary (job.report()'s data)."""
    from dsvm.compliance import comment

    compliance = data.get("compliance") or {}
    failures = [comment.Failure(f["test_id"], f.get("bug"))
                for f in compliance.get("failures") or []] or [
        comment.Failure(str(t)) for t in data.get("failed_tests") or []]
    voting_env = (env.get("ZUUL_VOTING") or "").lower()
    voting = settings.report.voting and voting_env not in ("0", "false", "no")
    job = env.get("JOB_NAME") or env.get("ZUUL_JOB") or str(data.get("profile") or "dsvm")
    url = str(data.get("log_url") or env.get("BUILD_URL") or "")
    return comment.from_report({**data, "log_url": url}, failures, voting=voting, job=job)


def comment_for_job(root: str | Path, settings: Any, env: Mapping[str, str]) -> str:
    """The Gerrit comment block of a finished job directory (its summary.json); UsageError
    (exit 2) when it is not a job directory or has no summary yet."""
    from dsvm.compliance.evidence import read_text
    from dsvm.errors import UsageError

    jd = JobDir.open(root)
    path = jd.find("summary_json")
    if path is None:
        raise UsageError(f"{root} has no summary.json yet (.dsvm/summary.json)",
                         hint="'dsvm run' writes it when the job ends")
    try:
        data = json.loads(read_text(path))
    except ValueError as exc:
        raise UsageError(f"{jd.shown(path)} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or "verdict" not in data:
        raise UsageError(f"{jd.shown(path)} is not a dsvm run summary (no verdict)")
    data.setdefault("change", {})
    return comment_block(data, settings, env)
