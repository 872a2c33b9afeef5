"""The logs phase: collect, redact, compress, index and (optionally) publish a job's logs.

``run_phase(ctx)`` is what ``dsvm run`` calls last, whatever happened before: every input
(earlier phases' outputs, the state file, the node's files) is optional. ``dsvm logs collect``
calls the same function with its options (``root``, ``dest``, ``publish``, ``log_path``).
This room wires the steps together; it holds no redaction, naming or upload logic itself.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsvm import secrets
from dsvm.logs import collect, index, objstore, publish, redact, snapshot
from dsvm.logs.sources import (
    DEFAULT_SOURCES,
    Source,
    profile_sources,
    project_sources,
)
from dsvm.logs.store import Stored, Task, gzip_engine
from dsvm.phase import (
    ConfigureOutputs,
    JobContext,
    LogsOutputs,
    PhaseResult,
    ResultsOutputs,
    TempestOutputs,
)
from dsvm.profile import Settings
from dsvm.secrets import SecretOptions

PHASE = "logs"
MB = 1 << 20
HARVEST_MAX = 4 * MB
WARN_LINES = 15


def run_phase(ctx: JobContext, *, root: str | Path | None = None,
              dest: str | Path | None = None, publish_logs: bool | None = None,
              log_path: str | None = None) -> PhaseResult:
    """Collect into ``dest`` (default ``$WORKSPACE/logs``); publish when asked or configured.

    ``publish_logs=None`` publishes when the profile's ``logs.publish`` names a host.
    Returns outputs ``{"logs_dir", "url", "manifest", "files", "redactions", "problems"}``.
    """
    settings = ctx.settings
    dest_dir = Path(dest).resolve() if dest else ctx.logs_dir
    root_dir = Path(root).resolve() if root else None
    # logs.publish is checked before anything is collected: bad config is exit 2 at once.
    conf = settings.logs.publish or {}
    targets: list[publish.Target] = []
    if publish_logs or (publish_logs is None and publish.is_configured(conf)):
        targets = _targets(ctx, conf, log_path)
    sources = node_sources(settings)
    rotated = collect.rotate(dest_dir, keep=settings.logs.keep)
    staging = ctx.dsvm_log_dir / "logs-staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True, exist_ok=True)
    pending: snapshot.Pending | None = None
    try:
        extras = job_sources(ctx, dest_dir, rotated)
        notes: list[str] = []
        extras.append(Source(str(snapshot.write_env(
            ctx.env, staging / "job-environment.txt",
            settings.devstack.secrets)), "job-environment.txt", "keep",
            why="the job's environment"))
        with ctx.ui.phase(PHASE, f"collect into {dest_dir}"):
            inventory = collect.inspect(sources, root=root_dir, base=str(ctx.base),
                                        extra=extras)
            values, refused = secret_values(settings, inventory.found)
            values |= {v for t in targets for v in t.secrets if v}
            redactor = redact.Redactor.of(values, secret_options(settings))
            budget_mb = settings.logs.size_budget_mb
            level = settings.logs.gzip_level
            engine = _engine(settings.logs.gzip_engine)
            the_plan = collect.plan(inventory, dest_dir, compression=settings.logs.compression,
                                    budget=budget_mb * MB or None, level=level, engine=engine)
            # The node snapshots (pip freeze: ~2 s) run while the files are redacted and
            # compressed, then are stored like any other source.
            late_plans: list[collect.CollectPlan] = []
            late: collect.Late | None = None
            if root_dir is None and settings.logs.snapshots:
                def start_snapshots() -> None:
                    nonlocal pending
                    pending = snapshot.start(ctx.runner(PHASE), staging / "snapshots",
                                             timeout=_snapshot_timeout(ctx))

                def snapshot_tasks() -> tuple[Task, ...]:
                    assert pending is not None
                    extra = _snapshot_sources(pending.wait(), notes)
                    late_plans.append(collect.plan(
                        collect.inspect([], root=None, base=str(ctx.base), extra=extra),
                        dest_dir, compression=the_plan.compression, level=level,
                        engine=engine, reserved=[t.rel for t in the_plan.tasks]))
                    return late_plans[-1].tasks

                late = collect.Late(start_snapshots, snapshot_tasks)
            stored = _apply(ctx, the_plan, redactor, settings.logs.jobs,
                            late)
            for extra_plan in late_plans:
                the_plan = collect.merge(the_plan, extra_plan)
            result = collect.Collection(the_plan, stored, rotated=rotated)
            index.write_indexes(dest_dir)
            data = index.manifest(result, root_dir, refused)
            manifest = index.write_manifest(dest_dir, data)
    finally:
        if pending is not None:
            pending.close()  # an error before they were collected: let them finish first
        shutil.rmtree(staging, ignore_errors=True)
    _report(ctx, result, data, notes)
    outputs = LogsOutputs(str(dest_dir), "", str(manifest), data["totals"]["files"],
                          data["totals"]["redactions"], tuple(result.problems))
    summary = (f"{data['totals']['files']} files, {data['totals']['redactions']} secrets "
               f"redacted, {len(result.problems)} problems")
    code = 0
    if targets:
        report = publish_logs_dir(ctx, targets, dest_dir)
        outputs = dataclasses.replace(outputs, url=report.url, publish=report.as_json())
        summary += "; " + report.summary
        code = report.exit_code
        if report.url:
            ctx.ui.info(f"logs: {report.url}")  # the last line: what a reader clicks
    return PhaseResult(PHASE, code, outputs.as_json(), summary)


def node_sources(settings: Settings) -> list[Source]:
    """devstack-gate's table (unless ``logs.defaults`` is false), /etc/<project>, the profile's."""
    out: list[Source] = []
    if settings.logs.defaults:
        out.extend(DEFAULT_SOURCES)
        out.extend(project_sources(settings.top.projects))
    out.extend(profile_sources(list(settings.logs.sources)))
    return out


def job_sources(ctx: JobContext, dest: Path, rotated: Path | None) -> list[Source]:
    """dsvm's phase logs and state file, local.conf, the subunit stream and results reports.

    A path inside the logs dir that was just rotated away is looked up in its new place.
    """
    def where(value: Any) -> str | None:
        if not isinstance(value, str) or not value.startswith("/"):
            return None
        path = Path(value)
        if rotated is not None and path.is_relative_to(dest):
            path = rotated / path.relative_to(dest)
        return str(path)

    out = [Source(str(ctx.dsvm_log_dir / "*.log"), "dsvm", "log", why="dsvm phase logs"),
           Source(str(ctx.dsvm_log_dir / "state.json"), "dsvm/state.json", "keep",
                  why="dsvm state file")]
    # Written by dsvm run just before this phase: the review comment goes out with the logs.
    for name, stored in (("summary.md", "summary.md"), ("summary.json", "dsvm/summary.json")):
        if (ctx.dsvm_log_dir / name).is_file():
            out.append(Source(str(ctx.dsvm_log_dir / name), stored, "keep",
                              why="the job's summary"))
    configure = ctx.earlier(ConfigureOutputs)
    if configure and (src := where(configure.local_conf)):
        out.append(Source(src, "local.conf.txt", "keep", why="configure phase"))
    results = ctx.earlier(ResultsOutputs)
    tempest = ctx.earlier(TempestOutputs)
    if src := where(results.subunit if results else None) \
            or where(tempest.subunit if tempest else None):
        out.append(Source(src, "testrepository.subunit.gz", "keep", why="tempest stream"))
    names = {"html": "testr_results.html", "junit": "junit.xml", "summary": "summary.txt"}
    for key, value in (results.reports() if results else {}).items():
        if key in names and (src := where(value)):
            out.append(Source(src, names[key], "keep", why=f"results {key}"))
        elif (src := where(value)) and Path(src).exists():
            out.append(Source(src, f"results/{Path(src).name}", "keep",
                              why=f"results {key}"))
    return out


def secret_options(settings: Settings) -> SecretOptions:
    """The secret-options table plus the names the profile declares secret (devstack's
    ``devstack.secrets`` variables, the cinder backends' ``secret_options``)."""
    names = list(settings.devstack.secrets)
    for backend in settings.cinder.backends:
        if isinstance(backend, Mapping):
            names += [str(o) for o in backend.get("secret_options") or []]
    return secrets.secret_options().with_extra(names)


def secret_values(settings: Settings,
                  found: Iterable[collect.Found]) -> tuple[set[str], list[dict[str, str]]]:
    """The profile's and environment's secrets plus every secret value the config files
    assign; and the manifest's note for each one too short or common to mask elsewhere."""
    options = secret_options(settings)
    declared = [("logs.secrets", v) for v in settings.logs.secrets if v]
    declared += [("a secret value of the profile or environment", v)
                 for v in settings.secret_values()]
    harvested: list[tuple[str, str]] = []
    for f in found:
        if f.kind != "text" or f.size > HARVEST_MAX or not redact.is_config(f.shown):
            continue
        try:
            data = Path(f.path).read_bytes()
        except OSError:
            continue
        harvested += redact.harvest(data, options, f.shown)
    refused = redact.refused(declared, where_set=False) + redact.refused(harvested)
    return {v for _, v in declared + harvested}, refused


def _snapshot_timeout(ctx: JobContext) -> float:
    left = ctx.time_left()
    return 120.0 if left is None else max(5.0, min(120.0, left / 4))


def _snapshot_sources(taken: Iterable[snapshot.Snapshot], notes: list[str]) -> list[Source]:
    out = []
    for snap in taken:
        if snap.note:
            notes.append(f"{snap.shown}: {snap.note}")
        if snap.path is not None:
            out.append(Source(str(snap.path), snap.name, "keep", why=snap.shown))
    return out


def _apply(ctx: JobContext, the_plan: collect.CollectPlan, redactor: redact.Redactor,
           jobs: int, late: collect.Late | None) -> list[Stored]:
    # the snapshots' count is not known yet: the bar counts the node's files
    with ctx.ui.progress("redact and compress logs", len(the_plan.tasks)) as prog:
        def advance(stored: Stored) -> None:
            if stored.skipped:
                prog.note(f"skipped {stored.source}: {stored.note}")
            prog.advance(item=stored.rel)
        return collect.apply(the_plan, redactor, jobs=jobs, advance=advance, late=late)


def _report(ctx: JobContext, result: collect.Collection, data: Mapping[str, Any],
            notes: list[str]) -> None:
    ui = ctx.ui
    totals = data["totals"]
    if result.rotated:
        ui.info(f"previous logs moved to {result.rotated}")
    problems = result.problems + notes
    for line in problems[:WARN_LINES]:
        ui.warn(f"not collected: {line}")
    if len(problems) > WARN_LINES:
        ui.warn(f"... {len(problems) - WARN_LINES} more in {result.plan.dest}/manifest.json")
    truncated = [f["path"] for f in data["files"] if f["truncated"]]
    if truncated:
        ui.warn(f"size budget {index.human_size(result.plan.budget or 0)} exceeded: "
                f"truncated {', '.join(truncated)}")
    ui.ok(f"logs: {totals['files']} files, {index.human_size(totals['size'])} read, "
          f"{index.human_size(totals['stored'])} stored, {totals['redactions']} secrets "
          f"redacted, {totals['missing']} sources not on this node -> {result.plan.dest}")


def _targets(ctx: JobContext, conf: Any, log_path: str | None) -> list[publish.Target]:
    from dsvm.errors import UsageError

    if not publish.is_configured(conf):
        raise UsageError("--publish needs logs.publish in the profile",
                         hint="set logs.publish: {type: rsync|swift|s3, ...} (docs/logs.md)")
    return publish.targets(conf, ctx.env, log_path)


@dataclass
class PublishReport:
    """The failover walk: each target's outcome in order; the one that holds the logs."""

    outcomes: list[objstore.Outcome] = field(default_factory=list)
    skipped: str = ""  # why nothing was tried (logs.publish.when: failure, job passed)

    @property
    def best(self) -> objstore.Outcome | None:
        done = [o for o in self.outcomes if o.state == "complete"]
        if done:
            return done[0]
        tried = sorted(self.outcomes, key=lambda o: -(len(o.sent) + len(o.present)))
        return tried[0] if tried else None

    @property
    def state(self) -> str:
        """complete | partial | failed | skipped."""
        if self.skipped:
            return "skipped"
        return self.best.state if self.best else "failed"

    @property
    def url(self) -> str:
        best = self.best
        return best.url if best is not None and best.state != "failed" else ""

    @property
    def exit_code(self) -> int:
        """0 when the logs arrived whole (or were not to be published), else 3."""
        from dsvm.errors import EXIT_INFRA

        return 0 if self.state in ("complete", "skipped") else EXIT_INFRA

    @property
    def summary(self) -> str:
        best = self.best
        if self.state == "skipped":
            return f"not published: {self.skipped}"
        if best is None or self.state == "failed":
            return "logs not published" + (f": {best.error}" if best and best.error else "")
        if self.state == "partial":
            return (f"logs partially published to {best.target}: {len(best.failed)} files did "
                    "not arrive")
        return f"published to {best.target} at {best.url}"

    def as_json(self) -> dict[str, Any]:
        return {"state": self.state, "url": self.url, "skipped": self.skipped,
                "targets": [o.as_json() for o in self.outcomes]}


def job_failed(ctx: JobContext) -> bool:
    """Whether an earlier phase of this job failed (state.json), for ``when: failure``."""
    import json

    try:
        state = json.loads((ctx.dsvm_log_dir / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    phases = state.get("phases") if isinstance(state, dict) else None
    return any(isinstance(rec, dict) and name != PHASE
               and rec.get("status") not in (None, "ok", "skipped")
               for name, rec in (phases or {}).items())


def publish_logs_dir(ctx: JobContext, targets: list[publish.Target],
                     logs_dir: Path) -> PublishReport:
    """Try each target in order until one holds every file; report the walk."""
    report = PublishReport()
    ui = ctx.ui
    wanted = [t for t in targets if t.when == "always" or job_failed(ctx)]
    if not wanted:
        report.skipped = "logs.publish.when is failure and the job did not fail"
        ui.info(f"logs {report.skipped}: not published")
        return report
    files = objstore.plan(logs_dir)
    for n, t in enumerate(wanted):
        if n:
            ui.warn(f"publishing to {wanted[n - 1].where} did not complete: trying {t.where}")
        outcome = _publish_one(ctx, t, logs_dir, files)
        report.outcomes.append(outcome)
        if outcome.state == "complete":
            ui.ok(f"published {len(files)} files to {t.where} in {outcome.seconds:.1f}s"
                  + (f" ({len(outcome.present)} already there)" if outcome.present else ""))
            for note in outcome.notes:
                ui.info(note)
            return report
        ui.warn(f"{t.where}: {outcome.error or f'{len(outcome.failed)} files did not arrive'}")
    best = report.best
    if best is not None and best.failed:
        for rel, why in best.failed[:WARN_LINES]:
            ui.warn(f"not published: {rel}: {why}")
        if len(best.failed) > WARN_LINES:
            ui.warn(f"... {len(best.failed) - WARN_LINES} more not published (state.json: "
                    "phases.logs.outputs.publish)")
    ui.warn(report.summary)
    return report


def _publish_one(ctx: JobContext, t: publish.Target, logs_dir: Path,
                 files: list[objstore.Upload]) -> objstore.Outcome:
    import time

    from dsvm.errors import DsvmError

    if t.rsync is not None:
        t0 = time.monotonic()
        outcome = objstore.Outcome(t.where)
        try:
            publish.publish(t.rsync, logs_dir, ctx.runner(PHASE), timeout=ctx.time_left())
        except DsvmError as exc:
            outcome.error = exc.message
            outcome.failed = [(f.rel, "rsync failed") for f in files]
        else:
            outcome.sent = [f.rel for f in files]
            outcome.url = t.rsync.public_url or t.rsync.remote
        outcome.seconds = time.monotonic() - t0
        return outcome
    assert t.store is not None
    store = t.store()
    left = ctx.time_left()
    with ctx.ui.progress(f"upload logs to {t.where}", len(files)) as prog:
        outcome = objstore.upload(store, files, t.prefix, jobs=t.jobs, attempts=t.attempts,
                                  deadline=None if left is None else time.monotonic() + left,
                                  advance=lambda rel: prog.advance(item=rel))
    if isinstance(store, objstore.S3Store) and outcome.state != "failed":
        outcome.notes.append(store.lifecycle_note(t.prefix))
    return outcome


def _engine(choice: str) -> str:
    """The gzip engine for ``logs.gzip_engine``; exit 2 when ``isal`` is asked and missing."""
    from dsvm.errors import UsageError

    try:
        return gzip_engine(choice)
    except ImportError as exc:
        raise UsageError("logs.gzip_engine is 'isal' but python-isal is not installed",
                         hint="pip install isal, or set logs.gzip_engine: auto") from exc
