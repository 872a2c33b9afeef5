"""The gate job: phases strung together, hooks, the state file, signals, the verdict.

``plan()`` is pure: settings, environment and the state of an earlier run become a frozen
``JobPlan`` (steps, hooks, budget) that ``dsvm run --plan`` prints, with each phase's own
``plan_phase(ctx)`` (``phase_plans()``). ``run()`` executes it: each phase's
``run_phase(ctx)`` (imported below, one table) in order, devstack-gate's hooks
(exported shell functions, spec §8) and the profile's argv hooks around them, the state file
``<workspace>/.dsvm/state.json`` rewritten atomically after every step, SIGINT/SIGTERM forwarded
to the running process groups, a watchdog that kills them when the budget runs out, and log
collection with its own budget whatever happened before. Phase logic never lives here.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dsvm import budget as budget_mod
from dsvm import fsutil, logs, proc, tempest, workspace
from dsvm.compliance import phase as compliance
from dsvm.devstack import configure, stack
from dsvm.errors import (
    EXIT_INFRA,
    EXIT_INTERRUPTED,
    EXIT_MEANINGS,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_TESTS_FAILED,
    EXIT_TIMEOUT,
    DsvmError,
    Problem,
    UsageError,
    exit_line,
    failure_from,
)
from dsvm.phase import (
    PHASES,
    ConfigureOutputs,
    JobContext,
    LogsOutputs,
    PhaseResult,
    ResultsOutputs,
    StackOutputs,
    TempestOutputs,
)
from dsvm.profile import Settings
from dsvm.results import phase as results

# The phases, in PHASES order: what runs each, and what shows its plan under --plan.
RUN_PHASE: dict[str, Callable[[JobContext], PhaseResult]] = {
    "workspace": workspace.run_phase, "configure": configure.run_phase,
    "stack": stack.run_phase, "tempest": tempest.run_phase, "results": results.run_phase,
    "logs": logs.run_phase}
PLAN_PHASE: dict[str, Callable[[JobContext], dict[str, Any]]] = {
    "workspace": workspace.plan_phase, "configure": configure.plan_phase,
    "tempest": tempest.plan_phase}
HOOKS = ("pre_test", "gate", "post_test")
REPLACED_BY_GATE = ("configure", "stack", "tempest")
STATE_VERSION = 1
KILL_GRACE = 10.0


# --------------------------------------------------------------------------------------------
# Plan

@dataclass(frozen=True)
class Hook:
    """One hook command: an exported shell function from the job, or a profile argv."""

    name: str  # pre_test | gate | post_test
    kind: str  # function | argv
    argv: tuple[str, ...]
    source: str  # where it was defined

    @property
    def step(self) -> str:
        return f"{self.name}_hook"


@dataclass(frozen=True)
class Step:
    """One step of the job: a phase (by module) or a hook, and whether this run includes it."""

    name: str
    kind: str  # phase | hook
    module: str | None
    hooks: tuple[Hook, ...] = ()
    selected: bool = True
    why: str = ""


@dataclass(frozen=True)
class JobPlan:
    """The whole job as data: steps in order, the budget, warnings."""

    steps: tuple[Step, ...]
    budget: budget_mod.Budget
    first: str
    last: str
    warnings: tuple[str, ...] = ()

    def selected(self) -> list[Step]:
        return [s for s in self.steps if s.selected]


def find_hooks(env: Mapping[str, str], profile_hooks: Mapping[str, Any],
               origins: Mapping[str, str]) -> dict[str, tuple[Hook, ...]]:
    """Hooks per name: the job's exported function first, then the profile's argv lists."""
    problems: list[Problem] = []
    found: dict[str, tuple[Hook, ...]] = {}
    for name in HOOKS:
        hooks: list[Hook] = []
        fn = f"{name}_hook"
        for key in (f"BASH_FUNC_{fn}%%", f"BASH_FUNC_{fn}()"):
            if env.get(key, "").lstrip().startswith("()"):
                hooks.append(Hook(name, "function", (fn,), f"env {key} (export -f {fn})"))
                break
        value = profile_hooks.get(name) or []
        if value and all(isinstance(v, str) for v in value):
            value = [value]  # one argv given flat
        for i, argv in enumerate(value if isinstance(value, list) else [value]):
            if not (isinstance(argv, list) and argv and all(isinstance(a, str | int | float)
                                                            for a in argv)):
                problems.append(Problem(origins.get(name, f"hooks.{name}"),
                                        f"hooks.{name}[{i}] must be a non-empty list of "
                                        "strings (an argument list, not a shell line)",
                                        hint=f"e.g. hooks.{name}: [[/usr/local/bin/x, --y]]"))
                continue
            hooks.append(Hook(name, "argv", tuple(str(a) for a in argv),
                              f"{origins.get(name, 'profile')} hooks.{name}[{i}]"))
        found[name] = tuple(hooks)
    if problems:
        raise UsageError("bad hooks in the profile", problems=problems)
    return found


def plan(settings: Settings, env: Mapping[str, str], *, from_phase: str | None = None,
         to_phase: str | None = None, state: Mapping[str, Any] | None = None) -> JobPlan:
    """Return the JobPlan; raise UsageError for a bad range, hooks or budget."""
    first, last = from_phase or PHASES[0], to_phase or PHASES[-1]
    lo, hi = PHASES.index(first), PHASES.index(last)
    if lo > hi:
        raise UsageError(f"--from {first} comes after --to {last}",
                         hint="phases run in this order: " + " → ".join(PHASES))
    job_budget = budget_mod.from_settings(settings)
    origins = {h: settings.origin(f"hooks.{h}") for h in HOOKS}
    hooks = find_hooks(env, settings.section("hooks"), origins)
    in_range = {p: lo <= i <= hi for i, p in enumerate(PHASES)}
    steps: list[Step] = []
    for name in PHASES:
        if hooks["gate"] and name in REPLACED_BY_GATE:
            if name == REPLACED_BY_GATE[0]:
                steps.append(_pre_test_step(hooks, in_range))
                steps.append(Step("gate_hook", "hook", None, hooks["gate"],
                                  any(in_range[p] for p in REPLACED_BY_GATE),
                                  "replaces configure, stack and tempest"))
            steps.append(Step(name, "phase", RUN_PHASE[name].__module__, (), False,
                              "replaced by gate_hook"))
        else:
            if name == "configure":
                steps.append(_pre_test_step(hooks, in_range))
            steps.append(Step(name, "phase", RUN_PHASE[name].__module__, (), in_range[name],
                              "" if in_range[name] else "outside --from/--to"))
        if name == "tempest":
            steps.append(Step("post_test_hook", "hook", None, hooks["post_test"],
                              bool(hooks["post_test"]) and in_range["tempest"],
                              "after the tests, only if everything before passed"))
    return JobPlan(tuple(steps), job_budget, first, last,
                   tuple(_warnings(first, state or {})))


def _pre_test_step(hooks: Mapping[str, tuple[Hook, ...]], in_range: Mapping[str, bool]) -> Step:
    return Step("pre_test_hook", "hook", None, hooks["pre_test"],
                bool(hooks["pre_test"]) and in_range["configure"], "before configure")


def _warnings(first: str, state: Mapping[str, Any]) -> list[str]:
    out = []
    phases = state.get("phases", {}) if isinstance(state, Mapping) else {}
    for name in PHASES[:PHASES.index(first)]:
        if name in ("results", "logs"):
            continue
        rec = phases.get(name) or {}
        if rec.get("status") != "ok":
            out.append(f"--from {first}: {name} has not succeeded in this workspace "
                       f"(state.json: {rec.get('status', 'never ran')})")
    return out


def phase_plans(the_plan: JobPlan, ctx: JobContext) -> dict[str, Any]:
    """What each selected phase would do, from its own ``plan_phase(ctx)`` (changes nothing).

    Bad input found here (a malformed ZUUL_* value, a bad backend) fails the plan with exit 2,
    as the job would.
    """
    return {s.name: PLAN_PHASE[s.name](ctx) for s in the_plan.steps
            if s.selected and s.name in PLAN_PHASE}


# --------------------------------------------------------------------------------------------
# State file

def load_state(path: Path) -> dict[str, Any]:
    """The state of earlier runs in this workspace ({} when there is none or it is unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_state(path: Path, state: Mapping[str, Any]) -> None:
    """Write the state file via a temporary file and a rename (never half-written).

    No fsync, as stestr's file repository: after a crash the old state or the new one is
    there, which is all a re-run needs.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fsutil.write_atomic(path, json.dumps(state, indent=2, default=str) + "\n", mode=0o600)


def _now() -> str:
    return datetime.now(tz=UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------------------------
# Signals and the watchdog

class Guard:
    """SIGINT/SIGTERM → forwarded to running process groups; the budget's watchdog."""

    def __init__(self) -> None:
        self.signal_code: int | None = None
        self.expired = False
        self._old: dict[int, Any] = {}
        self._timer: threading.Timer | None = None

    def install(self) -> Guard:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._on_signal)
        return self

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self.disarm()

    def _on_signal(self, signum: int, frame: object) -> None:
        first = self.signal_code is None
        self.signal_code = EXIT_INTERRUPTED if signum == signal.SIGINT else EXIT_TERMINATED
        proc.RUNNING.signal_all(signum if first else signal.SIGKILL)
        if first:
            _later(KILL_GRACE, lambda: proc.RUNNING.signal_all(signal.SIGKILL))

    def arm(self, seconds: float | None) -> None:
        """Kill whatever runs when ``seconds`` have passed (phases that ignore time_left)."""
        self.disarm()
        if seconds is None:
            return
        self._timer = threading.Timer(max(0.0, seconds), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self.expired = True
        proc.RUNNING.signal_all(signal.SIGTERM)
        _later(KILL_GRACE, lambda: proc.RUNNING.signal_all(signal.SIGKILL))


def _later(seconds: float, fn: Any) -> None:
    timer = threading.Timer(seconds, fn)
    timer.daemon = True
    timer.start()


# --------------------------------------------------------------------------------------------
# Running

@dataclass
class Record:
    """What one step did, as recorded in the state file and the summary."""

    name: str
    status: str = "skipped"  # ok | failed | skipped | interrupted | timed out
    exit_code: int | None = None
    seconds: float = 0.0
    summary: str = ""
    log: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    started: str | None = None
    finished: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "exit_code": self.exit_code,
                "seconds": round(self.seconds, 3), "summary": self.summary, "log": self.log,
                "outputs": self.outputs, "error": self.error, "started": self.started,
                "finished": self.finished}


@dataclass
class Outcome:
    """The job's result: every step's record, the exit code and the failing step."""

    records: list[Record]
    exit_code: int
    failed: Record | None
    seconds: float

    @property
    def verdict(self) -> str:
        return {EXIT_OK: "SUCCESS", EXIT_TIMEOUT: "TIMED_OUT", EXIT_INTERRUPTED: "ABORTED",
                EXIT_TERMINATED: "ABORTED"}.get(self.exit_code, "FAILURE")


def run(the_plan: JobPlan, ctx: JobContext) -> Outcome:
    """Execute the plan; return the Outcome (never raises for a failing phase)."""
    started = time.monotonic()
    state_path = ctx.dsvm_log_dir / "state.json"
    state = load_state(state_path)
    state.update({"version": STATE_VERSION, "profile": ctx.settings.profile,
                  "started": _now(), "finished": None, "exit_code": None,
                  "plan": {"from": the_plan.first, "to": the_plan.last}})
    state.setdefault("phases", {})
    job_end = started + the_plan.budget.total_seconds
    ctx.deadline = started + the_plan.budget.run_seconds
    guard = Guard().install()
    records: list[Record] = []
    failed: Record | None = None
    try:
        for step in the_plan.steps:
            if step.name == "logs" and step.selected:
                # The logs phase publishes summary.md with the logs: write what is known.
                compliance.grade_job(ctx, failed=failed is not None, live=True, store=False)
                _write_provisional_summary(records, failed, guard, the_plan, ctx, started)
            if step.selected and failed is None and not guard.signal_code:
                compliance.step_hook(ctx, step.name, "before")
            rec = _next(step, ctx, guard, failed, records, the_plan, job_end)
            if rec.started:
                compliance.step_hook(ctx, step.name, "after")
            records.append(rec)
            if rec.status != "skipped" or step.selected:
                state["phases"][step.name] = rec.as_json()
                save_state(state_path, state)
            if rec.exit_code not in (None, EXIT_OK) and failed is None:
                failed = rec
    finally:
        guard.restore()
    code = _exit_code(failed, guard)
    # dsvm run ends with compliance, graded again on the collected logs (vendor jobs only)
    logs_ok = any(r.name == "logs" and r.status == "ok" for r in records)
    compliance.grade_job(ctx, failed=code != EXIT_OK, live=not logs_ok, store=True)
    state.update({"finished": _now(), "exit_code": code})
    save_state(state_path, state)
    return Outcome(records, code, failed, time.monotonic() - started)


def _write_provisional_summary(records: list[Record], failed: Record | None, guard: Guard,
                               the_plan: JobPlan, ctx: JobContext, started: float) -> None:
    """summary.md/.json in the dsvm log dir as the job stands before its logs are collected
    (the verdict is settled by then), so the published logs carry them; never fails the job."""
    try:
        outcome = Outcome([*records, Record("logs", summary="collecting")],
                          _exit_code(failed, guard), failed, time.monotonic() - started)
        data = report(outcome, the_plan, ctx)
        _write_atomic(ctx.dsvm_log_dir / "summary.md", markdown(data, ctx.settings, ctx.env))
        _write_atomic(ctx.dsvm_log_dir / "summary.json", json.dumps(data, indent=2) + "\n")
    except Exception as exc:  # noqa: BLE001 - a summary must never cost the logs
        ctx.ui.warn(f"could not write the summary before collecting logs: {exc}")


def _next(step: Step, ctx: JobContext, guard: Guard, failed: Record | None,
          records: list[Record], the_plan: JobPlan, job_end: float) -> Record:
    """Run one step, or say why it is skipped."""
    if not step.selected:
        return Record(step.name, summary=step.why)
    if (guard.signal_code or guard.expired) and step.name != "logs":
        return Record(step.name, summary="skipped: job interrupted" if guard.signal_code
                      else "skipped: time budget ran out")
    if failed is not None and step.name not in ("results", "logs"):
        return Record(step.name, summary=f"skipped: {failed.name} failed")
    if step.name == "results" and failed is not None \
            and not any(r.name in ("tempest", "gate_hook") and r.started for r in records):
        return Record(step.name, summary="skipped: the tests never started")
    if step.name == "logs":
        # Log collection has its own budget, even after an expiry or an abort.
        logs_budget = max(the_plan.budget.logs_seconds, job_end - time.monotonic())
        ctx.deadline = time.monotonic() + logs_budget
        guard.arm(logs_budget + KILL_GRACE)
    else:
        guard.arm(ctx.time_left())
    try:
        return _execute(step, ctx, guard)
    finally:
        guard.disarm()


def _execute(step: Step, ctx: JobContext, guard: Guard) -> Record:
    rec = Record(step.name, started=_now())
    t0 = time.monotonic()
    ctx.ui.phase_started(step.name, step.why)
    try:
        result = _run_hooks(step, ctx) if step.kind == "hook" else RUN_PHASE[step.name](ctx)
        rec.exit_code, rec.outputs, rec.summary = result.exit_code, result.outputs, \
            result.summary
        rec.status = "ok" if result.exit_code == EXIT_OK else "failed"
    except DsvmError as exc:
        rec.status, rec.exit_code, rec.summary = "failed", exc.exit_code, exc.message
        rec.outputs = dict(getattr(exc, "outputs", {}) or {})
        rec.error = {"message": exc.message, "hint": exc.hint, "details": exc.details,
                     "log": exc.log_path, "problems": [p.render() for p in exc.problems]}
        rec.log = exc.log_path
    except Exception as exc:  # a bug in a phase: recorded, and logs are still collected
        rec.status, rec.exit_code = "failed", EXIT_INFRA
        rec.summary = f"internal error: {exc!s}"
        rec.error = {"message": rec.summary, "traceback": traceback.format_exc()}
        _append(ctx.phase_log(step.name), traceback.format_exc())
    rec.seconds = time.monotonic() - t0
    rec.finished = _now()
    if guard.signal_code and rec.status != "ok":
        rec.status, rec.exit_code = "interrupted", guard.signal_code
    elif guard.expired and rec.status != "ok" and step.name != "logs":
        rec.status, rec.exit_code = "timed out", EXIT_TIMEOUT
    elif rec.exit_code == EXIT_TIMEOUT:
        rec.status = "timed out"
    rec.log = rec.log or _log_of(step.name, rec.outputs, ctx)
    ctx.outputs[step.name] = rec.outputs
    ctx.ui.phase_ended(step.name, rec.status, rec.seconds, rec.summary)
    return rec


def hook_env(ctx: JobContext) -> dict[str, str]:
    """The environment hooks get: the job's, plus BASE, WORKSPACE and REMAINING_TIME (min)."""
    env = proc.clean_env(ctx.env)
    left = ctx.time_left()
    env.update({"BASE": str(ctx.base), "WORKSPACE": str(ctx.workspace),
                "DSVM_PROFILE": str(ctx.settings.profile)})
    if left is not None:
        env["REMAINING_TIME"] = str(int(left // 60))
    return env


def _run_hooks(step: Step, ctx: JobContext) -> PhaseResult:
    """Run a step's hooks in order; the first failing one decides (rc 1 = tests failed)."""
    runner = proc.Runner(ctx.phase_log(step.name), echo=ctx.ui.info,
                         secrets=ctx.settings.secret_values())
    functions_sh = ctx.workspace / "devstack-gate" / "functions.sh"
    ran = []
    for hook in step.hooks:
        if hook.kind == "function":
            # Like devstack-gate's with_timeout: a fresh bash that sources functions.sh (if
            # present) and calls the exported function; values arrive as "$1"/"$2" only.
            argv = ["bash", "-c", 'if [ -f "$1" ]; then source "$1"; fi; '
                    'set -o xtrace -o pipefail; "$2"', "dsvm-hook", str(functions_sh),
                    hook.argv[0]]
        else:
            argv = list(hook.argv)
        result = runner.run(argv, desc=f"{step.name} ({hook.source})", cwd=ctx.workspace,
                            env=hook_env(ctx), timeout=ctx.time_left(), check=False)
        ran.append({"source": hook.source, "exit_code": result.exit_code,
                    "seconds": round(result.seconds, 3)})
        if result.timed_out:
            return PhaseResult(step.name, EXIT_TIMEOUT, {"hooks": ran},
                               f"{hook.source} ran out of time")
        if result.exit_code != 0:
            code = EXIT_TESTS_FAILED if result.exit_code == 1 and step.name != "pre_test_hook" \
                else EXIT_INFRA
            return PhaseResult(step.name, code, {"hooks": ran},
                               f"{hook.source} failed with exit {result.exit_code}")
    return PhaseResult(step.name, EXIT_OK, {"hooks": ran}, f"{len(ran)} hook(s) passed")


def _log_of(name: str, outputs: Mapping[str, Any], ctx: JobContext) -> str | None:
    if name == StackOutputs.PHASE and outputs and (log := StackOutputs.from_json(outputs).log):
        return log
    path = ctx.phase_log(name)
    return str(path) if path.exists() else None


def _append(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text)


def _exit_code(failed: Record | None, guard: Guard) -> int:
    """Signals first, then budget expiry, then the first failing step's own code."""
    if guard.signal_code:
        return guard.signal_code
    if guard.expired or (failed is not None and failed.exit_code == EXIT_TIMEOUT):
        return EXIT_TIMEOUT
    if failed is None:
        return EXIT_OK
    return failed.exit_code if failed.exit_code in EXIT_MEANINGS else EXIT_INFRA


# --------------------------------------------------------------------------------------------
# The end of the job: summary lines, summary.md, --json

def report(outcome: Outcome, the_plan: JobPlan, ctx: JobContext) -> dict[str, Any]:
    """The stable JSON summary of a finished job (also what summary.md is made from)."""
    s, out, job = ctx.settings, ctx.outputs, ctx.job
    tempest, configure = ctx.earlier(TempestOutputs), ctx.earlier(ConfigureOutputs)
    results = ctx.earlier(ResultsOutputs)
    counts = (results.counts if results else None) or (tempest.counts if tempest else None)
    backends: list[object] = list(configure.backends if configure else ()) or [
        b.get("name") for b in s.cinder.backends if isinstance(b, Mapping)]
    logs = ctx.earlier(LogsOutputs)
    log_url = (logs.url if logs else "") or _log_url(s.report.log_url, job.zuul.log_path)
    failed = outcome.failed
    return {
        "version": 1, "verdict": outcome.verdict, "exit_code": outcome.exit_code,
        "meaning": EXIT_MEANINGS.get(outcome.exit_code, ""),
        "failed_phase": failed.name if failed else None,
        "failure": _failure(failed) if failed else None,
        "seconds": round(outcome.seconds, 3),
        "change": job.change(),
        "profile": s.profile, "backends": [str(b) for b in backends if b],
        "counts": counts or {}, "log_url": log_url or None,
        "ci_name": s.report.ci_name, "recheck": s.report.recheck,
        "contact": s.report.contact, "budget": the_plan.budget.as_json(),
        "compliance": out.get("compliance"),
        "failed_tests": list((out.get("tempest") or {}).get("failures") or []),
        "phases": [{"name": r.name, "status": r.status, "exit_code": r.exit_code,
                    "seconds": round(r.seconds, 3), "log": r.log, "summary": r.summary}
                   for r in outcome.records],
    }


def _log_url(prefix: str | None, path: str | None) -> str:
    if not prefix:
        return ""
    path = path or ""
    return prefix.rstrip("/") + ("/" + path.strip("/") if path else "") + "/"


def _failure(rec: Record) -> dict[str, Any]:
    err = rec.error or {}
    # stack.sh says where and why it failed; other phases leave these empty.
    stack = StackOutputs.from_json(rec.outputs if rec.name == StackOutputs.PHASE else {})
    return {"phase": rec.name, "status": rec.status, "message": rec.summary,
            "kind": "infrastructure" if rec.exit_code == EXIT_INFRA else
            EXIT_MEANINGS.get(rec.exit_code or 0, ""),
            "hint": err.get("hint"), "problems": list(err.get("problems") or []),
            "details": dict(err.get("details") or {}),
            "first_error": stack.first_error, "devstack_phase": stack.failed_phase,
            "last_lines": list(stack.last_lines)[-10:], "log": rec.log}


def markdown(data: Mapping[str, Any], settings: Any = None,
             env: Mapping[str, str] | None = None) -> str:
    """summary.md: the Gerrit comment block (Zuul's CI-summary shape) then the details."""
    ch, fail = data["change"], data.get("failure")
    head = f"{data['ci_name'] or 'dsvm'}: {data['verdict']}"
    if fail:
        head += f" ({data['meaning']} in {fail['phase']})"
    block = compliance.comment_block(data, settings, env or {}) if settings is not None else ""
    lines = ([block] if block else []) + [f"### {head}", ""]
    if ch.get("change"):
        lines.append(f"* change {ch['change']} patchset {ch.get('patchset') or '?'}"
                     + (f" of {ch['project']}" if ch.get("project") else "")
                     + (f" ({ch['pipeline']})" if ch.get("pipeline") else ""))
    lines.append(f"* profile `{data['profile']}`; Cinder backend(s): "
                 + (", ".join(data["backends"]) or "devstack default"))
    if data["counts"]:
        lines.append("* tests: " + ", ".join(f"{v} {k}" for k, v in data["counts"].items()))
    if fail:
        lines.append(f"* {fail['phase']}: {fail['message']}")
        if fail.get("first_error"):
            lines.append(f"  first error: `{fail['first_error']}`")
    lines.append(f"* duration: {budget_mod.fmt_seconds(data['seconds'])}")
    if data["log_url"]:
        lines.append(f"* logs: {data['log_url']}")
    lines.append("")
    if data["recheck"]:
        lines.append(f"To run this job again, leave a comment: `{data['recheck']}`")
    if data["contact"]:
        lines.append(f"Questions about this CI: {data['contact']}")
    if (data.get("compliance") or {}).get("markdown"):
        lines += ["", data["compliance"]["markdown"]]
    return "\n".join(lines).rstrip() + "\n"


def write_summary(data: Mapping[str, Any], ctx: JobContext) -> Path:
    """Write summary.md in the workspace (for Jenkins) and summary.md/.json in the dsvm log
    dir; the logs phase published the copies written just before it ran."""
    text = markdown(data, ctx.settings, ctx.env)
    target = ctx.workspace / "summary.md"
    _write_atomic(target, text)
    _write_atomic(ctx.dsvm_log_dir / "summary.md", text)
    _write_atomic(ctx.dsvm_log_dir / "summary.json", json.dumps(data, indent=2) + "\n")
    return target


def _write_atomic(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fsutil.write_atomic(path, content)


def print_summary(data: Mapping[str, Any], ctx: JobContext, summary_md: Path) -> None:
    """The last lines of the job: each phase, its duration, verdict and log; then the verdict."""
    ui = ctx.ui
    rows = [(p["name"], budget_mod.fmt_seconds(p["seconds"]) if p["status"] != "skipped"
             else "-", p["status"], p["log"] or p["summary"] or "")
            for p in data["phases"]]
    ui.table("dsvm run", ["phase", "time", "verdict", "log"], rows)
    fail = data.get("failure")
    if fail:
        ui.failure(failure_from(fail), to_stderr=False)
    for line in (data.get("compliance") or {}).get("lines") or []:
        ui.info(line)
    ui.info(f"summary for the review comment: {summary_md}")
    if data["verdict"] == "SUCCESS":
        ui.info("SUCCESSFULLY FINISHED")
    ui.info(exit_line(data["exit_code"], "run"))


INPUTS = {
    "workspace": ("projects", "project_branches", "git.base", "git.cache", "git.zuul_url",
                  "paths.base"),
    "configure": ("devstack.dir", "devstack.localrc", "devstack.local_config", "cinder.backends"),
    "stack": ("devstack.user", "devstack.dir", "timeout.tests_minutes"),
    "tempest": ("tempest.selection", "tempest.regex", "tempest.concurrency", "tempest.user"),
    "results": ("results.db",),
    "logs": ("logs.compression", "logs.publish", "timeout.logs_minutes", "report.log_url"),
}


def plan_json(the_plan: JobPlan, settings: Any) -> dict[str, Any]:
    """The stable JSON form of ``dsvm run --plan``: steps with masked inputs, hooks, budget."""
    shown = settings.as_json()["settings"]  # secrets masked
    steps = []
    for step in the_plan.steps:
        steps.append({
            "name": step.name, "kind": step.kind, "module": step.module,
            "selected": step.selected, "why": step.why, "available": True,
            "hooks": [{"kind": h.kind, "argv": list(h.argv), "source": h.source}
                      for h in step.hooks],
            "inputs": {k: shown[k] for k in INPUTS.get(step.name, ()) if k in shown},
        })
    return {"version": 1, "profile": settings.profile, "from": the_plan.first,
            "to": the_plan.last, "budget": the_plan.budget.as_json(), "steps": steps,
            "warnings": list(the_plan.warnings)}
