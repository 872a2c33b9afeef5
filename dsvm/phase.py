"""The contract between the gate job and its phases: a JobContext in, a PhaseResult out.

Every phase module (``workspace``, ``devstack.configure``, ``devstack.stack``, ``tempest``,
``results``, ``logs``) exposes ``run_phase(ctx: JobContext) -> PhaseResult`` and raises a
``DsvmError`` when it fails. ``job.py`` strings them together; each ``dsvm <phase>`` command
builds the same context from its options (``context()``) and calls the same function, so an
operator re-running one phase by hand on a held node runs the production code path.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from dsvm import proc
from dsvm.console import Ui, get_ui
from dsvm.profile import Settings

if TYPE_CHECKING:
    from dsvm.jobfacts import Job

PHASES = ("workspace", "configure", "stack", "tempest", "results", "logs")


@dataclass
class JobContext:
    """What a phase may read: settings, environment, paths, the time budget, earlier outputs."""

    settings: Settings
    env: dict[str, str]
    workspace: Path  # $WORKSPACE
    deadline: float | None = None  # time.monotonic() value when the job budget runs out
    ui: Ui = field(default_factory=get_ui)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # phase -> its outputs
    plan_only: bool = False
    zuul_vars: str | None = None  # --zuul-vars FILE (Zuul v3); else $DSVM_ZUUL_VARS
    src_root: str | None = None  # --src-root DIR: where Zuul v3 pushed the projects (~)
    resolved_job: Job | None = field(default=None, repr=False)  # filled by .job, once

    @property
    def job(self) -> Job:
        """The job's facts (Zuul parameters, prepared trees), resolved on first use, once."""
        if self.resolved_job is None:
            from dsvm import jobfacts

            self.resolved_job = jobfacts.resolve(self.settings, self.env,
                                                 zuul_vars=self.zuul_vars,
                                                 src_root=self.src_root)
        return self.resolved_job

    @property
    def base(self) -> Path:
        """$BASE (projects live in $BASE/new)."""
        return Path(self.settings.paths.base)

    @property
    def logs_dir(self) -> Path:
        """$WORKSPACE/logs: what is published."""
        return self.workspace / "logs"

    @property
    def dsvm_log_dir(self) -> Path:
        """Where phase logs and the state file live while the job runs."""
        return self.workspace / ".dsvm"

    def phase_log(self, phase: str) -> Path:
        """The log file of one phase."""
        return self.dsvm_log_dir / f"{phase}.log"

    def runner(self, phase: str) -> proc.Runner:
        """A command runner logging to the phase's log, echoing at -v, masking secrets."""
        echo = self.ui.info if self.ui.verbose else None
        return proc.Runner(self.phase_log(phase), echo=echo,
                           secrets=self.settings.secret_values())

    def earlier(self, kind: type[OutputsT]) -> OutputsT | None:
        """The typed outputs an earlier phase recorded (this run, or the state file), or None."""
        data = self.outputs.get(kind.PHASE)
        return kind.from_json(data) if data else None

    def time_left(self) -> float | None:
        """Seconds left of the job budget, or None when there is no budget."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())


@dataclass
class PhaseResult:
    """What a phase did: exit code (DESIGN.md's), outputs recorded in the state file, a line."""

    phase: str
    exit_code: int = 0
    outputs: dict[str, Any] = field(default_factory=dict)
    summary: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


# --------------------------------------------------------------------------------------------
# Typed outputs: what a phase leaves for the later ones. Each is recorded in the state file
# (and shown by --json) as its as_json(), and read back with from_json(); later phases reach
# them through JobContext.earlier(), never by string keys.

OutputsT = TypeVar("OutputsT", bound="Outputs")


class Outputs:
    """Base of a phase's typed outputs: ``PHASE`` names the phase that writes them."""

    PHASE = ""

    def as_json(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_json(cls: type[OutputsT], data: Mapping[str, Any]) -> OutputsT:
        raise NotImplementedError


@dataclass(frozen=True)
class TempestOutputs(Outputs):
    """The tempest phase's stream, counts, selection and failures (and the re-run's)."""

    PHASE = "tempest"

    subunit: str
    counts: Mapping[str, int]
    selection: Mapping[str, Any]
    failures: tuple[str, ...] = ()
    rerun: RerunOutputs | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"subunit": self.subunit, "counts": dict(self.counts),
                               "selection": dict(self.selection),
                               "failures": list(self.failures)}
        if self.rerun is not None:
            out.update({"flaky": list(self.rerun.flaky),
                        "still_failing": list(self.rerun.still_failing),
                        "rerun_subunit": self.rerun.subunit,
                        "rerun_counts": dict(self.rerun.counts)})
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TempestOutputs:
        rerun = None
        if "rerun_subunit" in data:
            rerun = RerunOutputs(str(data["rerun_subunit"]), dict(data.get("rerun_counts") or {}),
                                 tuple(data.get("flaky") or ()),
                                 tuple(data.get("still_failing") or ()))
        return cls(str(data.get("subunit") or ""), dict(data.get("counts") or {}),
                   dict(data.get("selection") or {}), tuple(data.get("failures") or ()), rerun)


@dataclass(frozen=True)
class RerunOutputs:
    """A serial re-run of the failures: its stream, counts, and which failures were flaky."""

    subunit: str
    counts: Mapping[str, int]
    flaky: tuple[str, ...] = ()
    still_failing: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"subunit": self.subunit, "counts": dict(self.counts),
                "flaky": list(self.flaky), "still_failing": list(self.still_failing)}


@dataclass(frozen=True)
class ConfigureOutputs(Outputs):
    """The configure phase's local.conf path and the Cinder backends it enables."""

    PHASE = "configure"

    local_conf: str
    backends: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"local_conf": self.local_conf, "backends": list(self.backends)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConfigureOutputs:
        return cls(str(data.get("local_conf") or ""), tuple(data.get("backends") or ()))


@dataclass(frozen=True)
class ResultsOutputs(Outputs):
    """The results phase's reports (paths), counts and verdict, and where the run was stored."""

    PHASE = "results"

    subunit: str
    summary: str
    junit: str
    html: str
    counts: Mapping[str, int]
    ok: bool
    run_uuid: str | None = None  # stored in the results DB ``db`` (shown form) ...
    db: str | None = None
    history: str | None = None
    db_error: str | None = None  # ... or why it was not

    def reports(self) -> dict[str, str]:
        """The report files by kind, in the order the phase wrote them."""
        out = {"summary": self.summary, "junit": self.junit}
        if self.history:
            out["history"] = self.history
        out["html"] = self.html
        return out

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"subunit": self.subunit, "summary": self.summary,
                               "junit": self.junit}
        if self.db_error is not None:
            out["db_error"] = self.db_error
        elif self.run_uuid is not None:
            out.update({"run_uuid": self.run_uuid, "db": self.db, "history": self.history})
        out.update({"html": self.html, "counts": dict(self.counts), "ok": self.ok})
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ResultsOutputs:
        def text(key: str) -> str | None:
            return None if data.get(key) is None else str(data[key])

        return cls(str(data.get("subunit") or ""), str(data.get("summary") or ""),
                   str(data.get("junit") or ""), str(data.get("html") or ""),
                   dict(data.get("counts") or {}), bool(data.get("ok")), text("run_uuid"),
                   text("db"), text("history"), text("db_error"))


@dataclass(frozen=True)
class StackOutputs(Outputs):
    """What stack.sh did: its log, devstack's phase timings and, when it failed, where and why.

    Also what a StackFailedError/StackTimedOutError carries (``.outputs``, as_json()).
    """

    PHASE = "stack"

    devstack_dir: str
    user: str
    log: str
    exit_code: int
    timed_out: bool
    seconds: float
    phases: tuple[Mapping[str, Any], ...] = ()
    failed_phase: str | None = None
    component_timing: Any = None
    total_runtime: Any = None
    completed_seconds: Any = None
    first_error: str | None = None
    last_lines: tuple[str, ...] = ()
    stackenv: Mapping[str, str] = field(default_factory=dict)
    tempest_conf: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"devstack_dir": self.devstack_dir, "user": self.user, "log": self.log,
                "exit_code": self.exit_code, "timed_out": self.timed_out,
                "seconds": self.seconds, "phases": [dict(p) for p in self.phases],
                "failed_phase": self.failed_phase, "component_timing": self.component_timing,
                "total_runtime": self.total_runtime, "completed_seconds": self.completed_seconds,
                "first_error": self.first_error, "last_lines": list(self.last_lines),
                "stackenv": dict(self.stackenv), "tempest_conf": self.tempest_conf}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StackOutputs:
        return cls(str(data.get("devstack_dir") or ""), str(data.get("user") or ""),
                   str(data.get("log") or ""), int(data.get("exit_code") or 0),
                   bool(data.get("timed_out")), float(data.get("seconds") or 0),
                   tuple(data.get("phases") or ()), data.get("failed_phase"),
                   data.get("component_timing"), data.get("total_runtime"),
                   data.get("completed_seconds"), data.get("first_error"),
                   tuple(data.get("last_lines") or ()), dict(data.get("stackenv") or {}),
                   data.get("tempest_conf"))


@dataclass(frozen=True)
class LogsOutputs(Outputs):
    """The logs phase's directory, manifest, counts and, once published, where they are."""

    PHASE = "logs"

    logs_dir: str
    url: str
    manifest: str
    files: int
    redactions: int
    problems: tuple[Any, ...] = ()
    publish: Mapping[str, Any] | None = None  # the upload's report, when there was one

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"logs_dir": self.logs_dir, "url": self.url,
                               "manifest": self.manifest, "files": self.files,
                               "redactions": self.redactions, "problems": list(self.problems)}
        if self.publish is not None:
            out["publish"] = dict(self.publish)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LogsOutputs:
        publish = data.get("publish")
        return cls(str(data.get("logs_dir") or ""), str(data.get("url") or ""),
                   str(data.get("manifest") or ""), int(data.get("files") or 0),
                   int(data.get("redactions") or 0), tuple(data.get("problems") or ()),
                   dict(publish) if isinstance(publish, Mapping) else None)


def context(settings: Settings, env: Mapping[str, str] | None = None, *,
            workspace: str | os.PathLike[str] | None = None, plan_only: bool = False,
            budget_seconds: float | None = None, zuul_vars: str | None = None,
            src_root: str | None = None) -> JobContext:
    """Build a JobContext for running one phase by hand (the dsvm <phase> commands)."""
    env = dict(os.environ if env is None else env)
    ws = Path(workspace or settings.paths.workspace or env.get("WORKSPACE") or os.getcwd())
    deadline = time.monotonic() + budget_seconds if budget_seconds else None
    ctx = JobContext(settings=settings, env=env, workspace=ws.resolve(), deadline=deadline,
                     plan_only=plan_only, zuul_vars=zuul_vars, src_root=src_root)
    ctx.outputs = load_outputs(ctx)
    return ctx


def load_outputs(ctx: JobContext) -> dict[str, dict[str, Any]]:
    """Outputs of earlier phases recorded in the state file (empty when there is none)."""
    import json

    state = ctx.dsvm_log_dir / "state.json"
    try:
        data = json.loads(state.read_text())
    except (OSError, ValueError):
        return {}
    phases = data.get("phases", {}) if isinstance(data, dict) else {}
    return {name: dict(p.get("outputs", {})) for name, p in phases.items() if isinstance(p, dict)}
