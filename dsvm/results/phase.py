"""The results phase of the gate job: the Tempest stream → summary, HTML, JUnit, database.

``run_phase(ctx)`` is what ``dsvm run`` calls after Tempest. It reads the stream from
``ctx.outputs["tempest"]["subunit"]``, writes into ``<workspace>/.dsvm/results/`` and stores
the run with its Zuul/Jenkins metadata. A database that cannot be reached is a warning here,
not a failed job: the verdict is the tests'. Exit code 1 when tests failed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from dsvm import fsutil
from dsvm.errors import DsvmError, UsageError
from dsvm.results import html, junit, known, stream, summary

if TYPE_CHECKING:
    from dsvm.phase import JobContext, PhaseResult

# Where the JUnit XML lands, relative to $WORKSPACE: Jenkins' JUnit publisher reads this path
# (scripts/jjb/jobs.yaml); tests check the two agree.
JUNIT_RELPATH = ".dsvm/results/junit.xml"

# Run metadata: key stored in run_metadata → environment variables tried in order.
META_ENV = {
    "zuul_change": ("ZUUL_CHANGE",),
    "zuul_patchset": ("ZUUL_PATCHSET",),
    "zuul_pipeline": ("ZUUL_PIPELINE",),
    "zuul_project": ("ZUUL_PROJECT",),
    "zuul_branch": ("ZUUL_BRANCH",),
    "zuul_commit": ("ZUUL_COMMIT", "ZUUL_NEWREV"),
    "zuul_uuid": ("ZUUL_UUID",),
    "job_name": ("JOB_NAME", "ZUUL_JOB"),
    "build_number": ("BUILD_NUMBER",),
    "build_url": ("BUILD_URL",),
    "node": ("NODE_NAME",),
}


def run_metadata(env: Mapping[str, str], profile: str | None,
                 extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Run metadata from the Zuul/Jenkins environment, the profile and ``extra`` (pure)."""
    meta: dict[str, str] = {}
    for key, names in META_ENV.items():
        for name in names:
            if env.get(name):
                meta[key] = env[name]
                break
    meta.setdefault("node", env.get("HOSTNAME") or os.uname().nodename)  # gethostname(2)
    if profile:
        meta["profile"] = profile
    meta.update({k: v for k, v in (extra or {}).items() if v})
    return meta


def write(path: Path, text: str | bytes) -> Path:
    """Write via a temporary file and a rename, so readers never see half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fsutil.write_atomic(path, text)
    return path


def run_phase(ctx: JobContext) -> PhaseResult:
    """Produce every results artefact for the Tempest stream; exit code 1 if tests failed."""
    from dsvm.phase import PhaseResult, ResultsOutputs, TempestOutputs

    tempest = ctx.earlier(TempestOutputs)
    src = tempest.subunit if tempest else ""
    if not src:
        raise UsageError("no subunit stream from the tempest phase",
                         hint="run 'dsvm tempest' first, or 'dsvm results summary FILE'")
    out_dir = ctx.dsvm_log_dir / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    copy = out_dir / "testrepository.subunit"
    if Path(src).resolve() != copy.resolve():
        shutil.copyfile(src, copy)
    run = stream.read(copy)
    rules = known.from_settings(ctx.settings)
    summ = summary.summarize(run, rules)
    summary_txt = str(write(out_dir / "summary.txt", summary.render_text(summ)))
    junit_xml = str(write(ctx.workspace / JUNIT_RELPATH, junit.render(run, rules)))
    stored = _store(ctx, run, out_dir)
    link = "history.html" if "history" in stored else None
    report = str(write(out_dir / "report.html", html.render(run, rules, history_link=link)))
    summary.render(summ, ctx.ui.out, ctx.ui.plain)
    counts = {k: v for k, v in summ.counts.items() if v}
    outputs = ResultsOutputs(str(copy), summary_txt, junit_xml, report, counts, run.is_ok,
                             **stored)
    line = (f"{summ.total} tests: " + ", ".join(f"{v} {summary.STATUS_LABEL[k]}"
                                                 for k, v in counts.items()))
    return PhaseResult("results", 0 if run.is_ok else 1, outputs.as_json(), line)


def _store(ctx: JobContext, run: stream.Run, out_dir: Path) -> dict[str, str]:
    from dsvm.results import db, history

    url = db.url_for(ctx.settings, ctx.env)
    meta = run_metadata(ctx.env, getattr(ctx.settings, "profile", None), ctx.job.metadata())
    artifacts = ctx.settings.report.log_url or ctx.env.get("LOG_URL") or None
    try:
        engine = db.connect(url)
        stored = db.store(engine, run, meta=meta, artifacts=artifacts)
        runs, results = history.fetch(engine, last=20)
        page = history.render_page(history.analyse(runs, results))
        write(out_dir / "history.html", page)
        engine.dispose()
    except DsvmError as exc:
        ctx.ui.warn(f"results not stored: {exc.message}" + (f" ({exc.hint})" if exc.hint
                                                           else ""))
        return {"db_error": exc.message}
    ctx.ui.info(f"stored run {stored.uuid} ({stored.results} results) in "
                f"{db.shown(engine)}")
    return {"run_uuid": stored.uuid, "db": db.shown(engine),
            "history": str(out_dir / "history.html")}
