"""The stack phase: run devstack's stack.sh as the stack user within the job's time budget.

``inspect()`` gathers read-only facts (who we are, the user, the checkout), ``plan()`` turns
them and the settings into a frozen ``StackPlan`` (argv, environment, timeout) or raises with
the fix, and ``run_phase()`` runs it through ``proc``: output streamed to ``stack.sh.log`` with
devstack's ``YYYY-MM-DD HH:MM:SS.mmm | `` stamps, secrets (the admin password stack.sh prints)
masked, the whole process group killed when the budget runs out. ``StackLog`` parses
devstack's own markers (``echo_summary``, ``run_phase``, the component timing table, the
first error) into phase timings for the end-of-job summary. Never runs stack.sh as root.
"""

from __future__ import annotations

import os
import pwd
import re
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dsvm import console, proc, secrets
from dsvm.errors import BudgetExpiredError, InfraError, UsageError
from dsvm.phase import JobContext, PhaseResult, StackOutputs

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# sudo resets the environment (devstack-gate ran `sudo -H -u stack … ./stack.sh`), so devstack
# sees local.conf, not DEVSTACK_GATE_*; proxies are kept so a CI behind one still works.
PASSED_ENV = ("LANG", "TERM", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY",
              "HTTPS_PROXY", "NO_PROXY")
LAST_LINES = 25
PASSWORD_LINE = re.compile(r"The password: (\S.*)$")


class StackFailedError(InfraError):
    """stack.sh exited non-zero (exit 3); ``outputs`` holds timings, first error, last lines."""

    def __init__(self, message: str, outputs: dict[str, Any], **kw: Any) -> None:
        super().__init__(message, **kw)
        self.outputs = outputs


class StackTimedOutError(BudgetExpiredError):
    """stack.sh outlived the budget and its process group was killed (exit 124)."""

    def __init__(self, message: str, outputs: dict[str, Any], **kw: Any) -> None:
        super().__init__(message, **kw)
        self.outputs = outputs


# --------------------------------------------------------------------------------------------
# Parsing devstack's output

_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) \| ?(.*)$")
_XTRACE = re.compile(r"^\++ \S+:\S+:\d+\s*:\s+(.*)$")
_SUMMARY = re.compile(r"^echo_summary (.*)$")
_RUN_PHASE = re.compile(r"^run_phase (stack|unstack|clean) (\S+)")
_TIMING_ROW = re.compile(r"^\s*([A-Za-z][\w .-]*?)\s+(\d+)\s*$")
_COMPLETED = re.compile(r"stack\.sh completed in (\d+) seconds")
_DIE = re.compile(r"\[ERROR\] .*")
_ERRORISH = re.compile(r"(^|\s)(ERROR\b|Error:|E:|fatal:|FAILED\b|Traceback \(most recent)|"
                       r"\bfailed\b|No such file or directory|command not found")


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


@dataclass
class StackLog:
    """What devstack's output says: phase timings, component timing, first error, last lines."""

    phases: list[tuple[str, float]] = field(default_factory=list)  # (name, start time)
    component_timing: dict[str, int] = field(default_factory=dict)
    total_runtime: int | None = None
    completed_seconds: int | None = None
    first_error: str | None = None
    last_lines: deque[str] = field(default_factory=lambda: deque(maxlen=LAST_LINES))
    end: float | None = None
    _in_timing: bool = False

    def feed(self, received: float, line: str) -> str | None:
        """Take one output line (received at epoch ``received``); return a new phase's name."""
        stamp = _STAMP.match(line)
        when = received
        if stamp:
            when = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S.%f") \
                .replace(tzinfo=UTC).timestamp()
            line = stamp.group(2)
        self.end = when if self.end is None else max(self.end, when)
        if line.strip():
            self.last_lines.append(line)
        trace = _XTRACE.match(line)
        if trace:
            return self._marker(when, trace.group(1))
        self._table(line)
        if m := _COMPLETED.search(line):
            self.completed_seconds = int(m.group(1))
        if self.first_error is None:
            die = _DIE.search(line)
            if die or _ERRORISH.search(line):
                self.first_error = (die.group(0) if die else line).strip()
        return None

    def _marker(self, when: float, command: str) -> str | None:
        if m := _SUMMARY.match(command):
            name = _unquote(m.group(1))
            if name.startswith("stack.sh log "):
                return None
            self.phases.append((name, when))
            return name
        if m := _RUN_PHASE.match(command):
            name = f"{m.group(1)} {m.group(2)}"
            self.phases.append((name, when))
            return name
        return None

    def _table(self, line: str) -> None:
        text = line.strip()
        if text == "DevStack Component Timing":
            self._in_timing = True
            return
        if not self._in_timing or not text or set(text) <= set("=-") or text.startswith("("):
            return
        if m := _TIMING_ROW.match(text):
            name, seconds = m.group(1).strip(), int(m.group(2))
            if name == "Total runtime":
                self.total_runtime = seconds
                self._in_timing = False
            else:
                self.component_timing[name] = seconds
        else:
            self._in_timing = False

    def timings(self) -> list[dict[str, Any]]:
        """[{name, seconds}] per marker: until the next marker, the last until the end."""
        out = []
        for i, (name, start) in enumerate(self.phases):
            stop = self.phases[i + 1][1] if i + 1 < len(self.phases) else (self.end or start)
            out.append({"name": name, "seconds": round(max(0.0, stop - start), 3)})
        return out


def parse(lines: Iterable[str], received: float = 0.0) -> StackLog:
    """Parse a whole stack.sh output (for tests and for re-reading a log)."""
    log = StackLog()
    for line in lines:
        log.feed(received, line.rstrip("\n"))
    return log


# --------------------------------------------------------------------------------------------
# Facts and plan

@dataclass(frozen=True)
class StackFacts:
    """Read-only facts the plan depends on."""

    euid: int
    current_user: str
    user_exists: bool
    user_home: str
    has_stack_sh: bool
    has_local_conf: bool
    local_conf_secrets: tuple[str, ...]
    stdbuf: str | None


@dataclass(frozen=True)
class StackPlan:
    """How stack.sh will run: as whom, where, with what environment and time limit."""

    devstack_dir: Path
    user: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    timeout: float | None
    why_timeout: str
    log: Path
    secrets: tuple[str, ...]
    chown: Path | None = None  # given to the stack user first (devstack-gate's chown -R $BASE)

    def as_json(self) -> dict[str, Any]:
        return {"devstack_dir": str(self.devstack_dir), "user": self.user,
                "argv": list(self.argv), "env": dict(self.env), "timeout": self.timeout,
                "why_timeout": self.why_timeout, "log": str(self.log),
                "chown": str(self.chown) if self.chown else None}


def devstack_dir(settings: Any, base: Path) -> Path:
    """The devstack checkout: ``devstack.dir`` or ``$BASE/new/devstack``."""
    configured = settings.devstack.dir
    return Path(configured) if configured else base / "new" / "devstack"


def inspect(devstack: Path, user: str, secret_names: Iterable[str] = ()) -> StackFacts:
    """Gather the facts about this node and checkout (reads only)."""
    euid = os.geteuid()
    try:
        entry = pwd.getpwnam(user) if user else None
    except KeyError:
        entry = None
    conf = devstack / "local.conf"
    return StackFacts(
        euid=euid, current_user=pwd.getpwuid(euid).pw_name, user_exists=entry is not None,
        user_home=entry.pw_dir if entry else "", has_stack_sh=(devstack / "stack.sh").is_file(),
        has_local_conf=conf.is_file(),
        local_conf_secrets=tuple(sorted(localrc_secrets(conf, secret_names))),
        stdbuf=proc.which("stdbuf"))


def localrc_secrets(conf: Path, secret_names: Iterable[str] = ()) -> set[str]:
    """Values of secret-named ``NAME=value`` lines in local.conf (ADMIN_PASSWORD, …)."""
    try:
        text = conf.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    names = list(secret_names)
    found = set()
    for line in text.splitlines():
        m = re.match(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
        if m and secrets.is_secret_name(m.group(1), names):
            value = _unquote(m.group(2))
            if len(value) >= 3:
                found.add(value)
    return found


def plan(settings: Any, facts: StackFacts, devstack: Path, *, log: Path,
         time_left: float | None, env: Mapping[str, str], base: Path | None = None) -> StackPlan:
    """Return the StackPlan; raise UsageError/InfraError/BudgetExpiredError with the fix."""
    user = settings.devstack.user
    _check(user, facts, devstack, settings.origin("devstack.user"))
    tests_reserve = float(settings.timeout.tests_minutes) * 60
    timeout, why = None, "no job budget (unbounded)"
    if time_left is not None:
        timeout = time_left - tests_reserve
        why = "the job budget's time left" + (
            f" minus {tests_reserve / 60:g} min kept for Tempest" if tests_reserve else "")
        if timeout <= 0:
            raise BudgetExpiredError(
                f"no time left to run stack.sh ({why})",
                hint="raise BUILD_TIMEOUT / timeout.job_minutes or timeout.tests_minutes lower")
    run_env = {"PATH": SAFE_PATH, "HOME": facts.user_home, "USER": user, "LOGNAME": user,
               "SHELL": "/bin/bash"}
    if base is not None:
        run_env["BASE"] = str(base)  # profiles write LOGFILE=$BASE/new/… into localrc
    run_env.update({k: env[k] for k in PASSED_ENV if env.get(k)})
    inner = [*([facts.stdbuf, "-oL", "-eL"] if facts.stdbuf else []), str(devstack / "stack.sh")]
    argv = tuple(os.fspath(a) for a in proc.as_user(user, inner))
    found = set(settings.secret_values()) | set(facts.local_conf_secrets)
    return StackPlan(devstack_dir=devstack, user=user, argv=argv, env=tuple(run_env.items()),
                     timeout=timeout, why_timeout=why, log=log,
                     secrets=tuple(sorted(found)),
                     chown=(base or devstack) if facts.euid == 0 else None)


def _check(user: str, facts: StackFacts, devstack: Path, user_origin: str) -> None:
    _check_user(user, facts, user_origin)
    _check_checkout(facts, devstack)


def _check_user(user: str, facts: StackFacts, user_origin: str) -> None:
    if not user or user == "root":
        raise UsageError(f"devstack.user is {user or 'empty'!r} ({user_origin}): stack.sh "
                         "refuses to run as root",
                         hint="set devstack.user to an unprivileged user (devstack's 'stack'); "
                              "dsvm switches to it with runuser (as root) or sudo -u")
    if not facts.user_exists:
        raise InfraError(f"the stack user {user!r} does not exist on this node",
                         hint=f"create it as root: useradd -m -d /opt/stack -s /bin/bash {user} "
                              "(devstack's tools/create-stack-user.sh also adds sudo), or set "
                              "devstack.user")
    if facts.euid != 0 and facts.current_user != user and not proc.which("sudo"):
        raise InfraError(f"running as {facts.current_user}, cannot switch to {user}: no sudo",
                         hint=f"run dsvm as root or as {user}, or install sudo")


def _check_checkout(facts: StackFacts, devstack: Path) -> None:
    if not facts.has_stack_sh:
        raise InfraError(f"no stack.sh in {devstack}",
                         hint="is openstack/devstack among the profile's projects? run "
                              "'dsvm workspace', or point devstack.dir / --devstack-dir at a "
                              "devstack checkout")
    if not facts.has_local_conf:
        raise UsageError(f"no local.conf in {devstack}: stack.sh would ask for passwords",
                         hint="run 'dsvm configure' first")


# --------------------------------------------------------------------------------------------
# Running

def run_phase(ctx: JobContext) -> PhaseResult:
    """Run stack.sh; return its timings, or raise StackFailedError / StackTimedOutError."""
    devstack = devstack_dir(ctx.settings, ctx.base)
    user = ctx.settings.devstack.user
    facts = inspect(devstack, user, ctx.settings.devstack.secrets)
    the_plan = plan(ctx.settings, facts, devstack, log=ctx.dsvm_log_dir / "stack.sh.log",
                    time_left=ctx.time_left(), env=ctx.env, base=ctx.base)
    if ctx.plan_only:
        return PhaseResult("stack", 0, the_plan.as_json(), f"would run stack.sh as {user}")
    return execute(the_plan, ctx)


def execute(the_plan: StackPlan, ctx: JobContext) -> PhaseResult:
    """Run a StackPlan, streaming and parsing its output."""
    if the_plan.chown is not None:
        give_to(the_plan.chown, the_plan.user)
    runner = ctx.runner("stack")
    for value in the_plan.secrets:
        runner.add_secret(value)
    runner.add_pattern(PASSWORD_LINE)
    parsed = StackLog()
    the_plan.log.parent.mkdir(parents=True, exist_ok=True)
    ui = ctx.ui
    limit = f" (limit {the_plan.timeout / 60:.0f} min)" if the_plan.timeout else ""
    ui.info(f"stack.sh: running as {the_plan.user} in {the_plan.devstack_dir}{limit}; "
            f"log {the_plan.log}")
    with open(the_plan.log, "a", encoding="utf-8", errors="replace") as fh, \
            console.Heartbeat(ui, "stack.sh", lambda: _elapsed(parsed)):
        def on_line(line: str) -> None:
            now = time.time()
            fh.write(line + "\n" if _STAMP.match(line) else f"{_stamp(now)} | {line}\n")
            fh.flush()
            phase = parsed.feed(now, line)
            if phase is not None and not phase.startswith(("stack ", "unstack ", "clean ")):
                ui.info(f"stack.sh: {phase}")

        result = runner.run(list(the_plan.argv), desc="stack.sh", cwd=the_plan.devstack_dir,
                            env=dict(the_plan.env), timeout=the_plan.timeout, check=False,
                            on_line=on_line)
    outputs = _outputs(the_plan, result, parsed)
    if result.timed_out:
        raise StackTimedOutError(
            f"stack.sh ran out of time after {result.seconds:.0f}s; its process group was "
            "killed", outputs, log_path=str(the_plan.log),
            details=_details(outputs), hint=f"budget: {the_plan.why_timeout}")
    if result.exit_code != 0:
        raise StackFailedError(
            f"stack.sh failed with exit {result.exit_code}"
            + (f" in '{outputs['failed_phase']}'" if outputs.get("failed_phase") else ""),
            outputs, log_path=str(the_plan.log), details=_details(outputs),
            hint="the first error is above; devstack's own log and error.log are collected")
    return PhaseResult("stack", 0, outputs,
                       f"stack.sh succeeded in {result.seconds:.0f}s "
                       f"({len(outputs['phases'])} devstack phases)")


def give_to(path: Path, user: str) -> None:
    """chown -R ``path`` to ``user`` (devstack-gate's setup_access_for_stack_user)."""
    entry = pwd.getpwnam(user)
    ids = (entry.pw_uid, entry.pw_gid)
    for root, dirs, files in os.walk(path):
        if os.stat(root).st_uid != ids[0]:
            os.chown(root, *ids)
        for name in dirs + files:
            target = os.path.join(root, name)
            if os.lstat(target).st_uid != ids[0]:
                os.chown(target, *ids, follow_symlinks=False)


def _stamp(epoch: float) -> str:
    dt = datetime.fromtimestamp(epoch, tz=UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S.") + f"{dt.microsecond // 1000:03d}"


def _elapsed(parsed: StackLog) -> str:
    return f"last devstack phase: {parsed.phases[-1][0]}" if parsed.phases else "no phase yet"


def _outputs(the_plan: StackPlan, result: proc.Result, parsed: StackLog) -> dict[str, Any]:
    timings = parsed.timings()
    failed = result.exit_code != 0 or result.timed_out
    stackenv = read_stackenv(the_plan.devstack_dir / ".stackenv", the_plan.secrets)
    dest = stackenv.get("DEST")
    tempest_conf = Path(dest) / "tempest" / "etc" / "tempest.conf" if dest else None
    return StackOutputs(
        devstack_dir=str(the_plan.devstack_dir), user=the_plan.user, log=str(the_plan.log),
        exit_code=result.exit_code, timed_out=result.timed_out,
        seconds=round(result.seconds, 3), phases=tuple(timings),
        failed_phase=timings[-1]["name"] if failed and timings else None,
        component_timing=parsed.component_timing, total_runtime=parsed.total_runtime,
        completed_seconds=parsed.completed_seconds,
        first_error=parsed.first_error if failed else None,
        last_lines=tuple(parsed.last_lines) if failed else (), stackenv=stackenv,
        tempest_conf=str(tempest_conf) if tempest_conf and _exists(tempest_conf) else None,
    ).as_json()


def _details(outputs: dict[str, Any]) -> dict[str, str]:
    details = {}
    if outputs.get("failed_phase"):
        details["phase"] = outputs["failed_phase"]
    if outputs.get("first_error"):
        details["error"] = outputs["first_error"]
    if outputs.get("last_lines"):
        details["last"] = "\n             ".join(outputs["last_lines"][-8:])
    return details


def _exists(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def read_stackenv(path: Path, secret_values: Iterable[str] = ()) -> dict[str, str]:
    """``.stackenv``'s NAME=value lines, secrets masked (BASE_SQL_CONN holds a password)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        value = proc.redact_text(value, secret_values)
        value = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1****@", value)
        out[name.strip()] = value
    return out


def preflight(settings: Any) -> None:
    """Refuse, before a job starts, a stack user that is root or missing (exit 2 / 3)."""
    user = settings.devstack.user
    _check_user(user, inspect(Path("/nonexistent"), user), settings.origin("devstack.user"))
