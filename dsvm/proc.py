"""The one place that runs external commands, built on ``sh``.

Every command is an argument list (never a shell string: ZUUL_* values, branch names and
profile values are untrusted), runs in its own session so a timeout or a signal can kill the
whole process group (stack.sh's grandchildren included), streams its output line by line to a
log file (and to the console at ``-v``), and comes back as a ``Result``. Failures raise
``CommandFailed`` carrying argv (secrets masked), exit code, output tail and the log path.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import subprocess

from dsvm.errors import EXIT_TIMEOUT, BudgetExpiredError, InfraError, UsageError

MASK = "****"


class Secret(str):
    """A string that shows as ``****`` in every display form and is revealed only at exec."""

    def __new__(cls, value: str) -> Secret:
        obj = super().__new__(cls, value)
        return obj

    def __repr__(self) -> str:
        return "Secret('****')"

    @property
    def display(self) -> str:
        return MASK

    def reveal(self) -> str:
        return str.__str__(self)


Arg = str | Secret | os.PathLike


def display_argv(argv: Sequence[Arg]) -> str:
    """Shell-quoted argv for humans and logs, with every Secret masked."""
    return " ".join(MASK if isinstance(a, Secret) else shlex.quote(os.fspath(a)) for a in argv)


def _reveal(argv: Sequence[Arg]) -> list[str]:
    return [a.reveal() if isinstance(a, Secret) else os.fspath(a) for a in argv]


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """Replace every non-empty secret value in ``text`` with the mask."""
    for value in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def clean_env(env: Mapping[str, str] | None = None, *, drop_git: bool = True) -> dict[str, str]:
    """Return a copy of ``env`` without inherited ``GIT_*`` variables (pre-commit's no_git_env).

    Jenkins and hook scripts leak ``GIT_DIR``/``GIT_WORK_TREE`` into the environment; a git
    command run in another repo would then act on the wrong one. Only file/http(s)/ssh/git
    protocols are allowed, so no remote helper (``ext::``) can run from an untrusted URL.
    """
    base = dict(os.environ if env is None else env)
    if drop_git:
        for key in list(base):
            if key.startswith("GIT_") and key not in {"GIT_SSH", "GIT_SSH_COMMAND",
                                                      "GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM",
                                                      "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL",
                                                      "GIT_COMMITTER_NAME",
                                                      "GIT_COMMITTER_EMAIL", "GIT_TERMINAL_PROMPT"}:
                del base[key]
        base["GIT_ALLOW_PROTOCOL"] = "file:git:http:https:ssh"
        base.setdefault("GIT_TERMINAL_PROMPT", "0")
    return base


@dataclass(frozen=True)
class Result:
    """What a finished command did."""

    argv: str  # display form, secrets masked
    exit_code: int
    seconds: float
    attempts: int
    stdout: str  # full captured stdout (stderr too when merged)
    tail: tuple[str, ...]  # last lines of output, for error messages
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class CommandFailed(InfraError):
    """A command exited non-zero (after its retries) or timed out."""

    def __init__(self, desc: str, result: Result, log_path: str | None = None,
                 hint: str | None = None) -> None:
        last = result.tail[-1] if result.tail else ""
        why = "timed out" if result.timed_out else f"exit {result.exit_code}"
        attempts = f" after {result.attempts} attempts" if result.attempts > 1 else ""
        super().__init__(
            f"{desc} failed",
            hint=hint,
            log_path=log_path,
            details={
                "command": result.argv,
                "result": f"{why}{attempts}" + (f' (last: "{last.strip()}")' if last else ""),
            },
        )
        self.result = result


class CommandNotFound(UsageError):
    """The program is not installed."""


@dataclass
class Running:
    """The process groups currently running, so a signal handler can stop them all."""

    pgids: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, pgid: int) -> None:
        with self.lock:
            self.pgids.add(pgid)

    def discard(self, pgid: int) -> None:
        with self.lock:
            self.pgids.discard(pgid)

    def signal_all(self, sig: int) -> None:
        with self.lock:
            groups = list(self.pgids)
        for pgid in groups:
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                pass


RUNNING = Running()


def kill_group(pgid: int, grace: float = 5.0) -> None:
    """TERM the process group, wait up to ``grace`` seconds, then KILL what is left."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return
        time.sleep(0.05)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def as_user(user: str | None, argv: Sequence[Arg], env_keep: Iterable[str] = ()) -> list[Arg]:
    """Wrap argv so it runs as ``user`` (``runuser`` as root, ``sudo -u`` otherwise).

    Returns argv unchanged when ``user`` is None or is the current user.
    """
    import pwd

    if not user:
        return list(argv)
    current = pwd.getpwuid(os.geteuid()).pw_name
    if user == current:
        return list(argv)
    keep = sorted(set(env_keep))
    if os.geteuid() == 0:
        # runuser keeps the environment with -m... but also HOME; use env to set names.
        return ["runuser", "-u", user, "--", "env", *[f"{k}={os.environ.get(k, '')}"
                                                         for k in keep], *argv]
    prefix: list[Arg] = ["sudo", "-n", "-H", "-u", user]
    if keep:
        prefix.append("--preserve-env=" + ",".join(keep))
    return [*prefix, "--", *argv]


class Runner:
    """Runs commands for one phase; everything they print goes to ``log`` (appended)."""

    def __init__(self, log: Path | None = None, *, echo: Callable[[str], None] | None = None,
                 secrets: Iterable[str] = (), env: Mapping[str, str] | None = None,
                 tail_lines: int = 40) -> None:
        self.log = Path(log) if log else None
        self.echo = echo
        self.secrets = [s for s in secrets if s]
        self.env = dict(env) if env is not None else None
        self.tail_lines = tail_lines
        self.patterns: list[re.Pattern[str]] = []
        self._log_lock = threading.Lock()

    def add_secret(self, value: str) -> None:
        """Mask ``value`` in every line this runner logs or echoes from now on."""
        if value:
            self.secrets.append(value)

    def add_pattern(self, pattern: re.Pattern[str]) -> None:
        """Mask what ``pattern``'s first group (or whole match) covers in every line from now.

        For secrets known only by where they appear, e.g. stack.sh's ``The password: …``.
        """
        self.patterns.append(pattern)

    def mask(self, line: str) -> str:
        """``line`` with every known secret value and secret pattern masked."""
        if self.secrets:
            line = redact_text(line, self.secrets)
        for pattern in self.patterns:
            line = pattern.sub(_mask_match, line)
        return line

    def run(
        self,
        argv: Sequence[Arg],
        *,
        desc: str,
        cwd: str | os.PathLike | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        attempts: int = 1,
        retry_if: Callable[[Result], bool] | None = None,
        backoff: float = 1.0,
        check: bool = True,
        ok_codes: Iterable[int] = (0,),
        input: str | None = None,
        merge_stderr: bool = True,
        on_line: Callable[[str], None] | None = None,
        hint: str | None = None,
        before_retry: Callable[[Result], None] | None = None,
        stream: bool = True,
    ) -> Result:
        """Run argv; return a Result or raise CommandFailed / BudgetExpiredError.

        ``timeout`` kills the whole process group. ``attempts`` > 1 retries (with exponential
        backoff) when ``retry_if(result)`` says so. ``before_retry`` runs between attempts
        (e.g. ``git gc`` as gerrit-git-prep did). ``stream=False`` is for many short commands
        (git plumbing): output is logged/echoed when the command ends rather than line by
        line, through a plain Popen that costs ~4 ms instead of sh's ~15 ms per command.
        """
        if not argv:
            raise ValueError("empty argv")
        ok = set(ok_codes)
        result: Result | None = None
        for attempt in range(1, max(1, attempts) + 1):
            run_once = self._run_once if stream else self._run_captured
            result = run_once(argv, cwd=cwd, env=env, timeout=timeout, input=input,
                              merge_stderr=merge_stderr, attempt=attempt, on_line=on_line)
            if result.exit_code in ok and not result.timed_out:
                return result
            if result.timed_out:
                break
            if attempt < attempts and (retry_if is None or retry_if(result)):
                self._log(f"# attempt {attempt} failed (exit {result.exit_code}); retrying "
                          f"in {backoff * 2 ** (attempt - 1):.1f}s")
                if before_retry is not None:
                    before_retry(result)
                time.sleep(backoff * 2 ** (attempt - 1))
                continue
            break
        assert result is not None
        if check:
            if result.timed_out:
                raise BudgetExpiredError(
                    f"{desc} ran out of time after {result.seconds:.0f}s",
                    details={"command": result.argv},
                    log_path=str(self.log) if self.log else None,
                    exit_code=EXIT_TIMEOUT,
                )
            raise CommandFailed(desc, result, str(self.log) if self.log else None, hint=hint)
        return result

    def _run_once(self, argv: Sequence[Arg], *, cwd: str | os.PathLike | None,
                  env: Mapping[str, str] | None, timeout: float | None, input: str | None,
                  merge_stderr: bool, attempt: int,
                  on_line: Callable[[str], None] | None) -> Result:
        shown, real, run_env = self._prepare(argv, env)
        tail: deque[str] = deque(maxlen=self.tail_lines)
        captured: list[str] = []
        self._log(f"$ {shown}" + (f"   (cwd {os.fspath(cwd)})" if cwd else ""))

        def on_out(line: str) -> None:
            line = line.rstrip("\n")
            captured.append(line)
            masked = self.mask(line)
            tail.append(masked)
            self._log(masked)
            if self.echo is not None:
                self.echo(masked)
            if on_line is not None:
                on_line(masked)

        err_lines: list[str] = []

        def on_err(line: str) -> None:
            line = line.rstrip("\n")
            err_lines.append(line)
            masked = self.mask(line)
            tail.append(masked)
            self._log(masked)
            if self.echo is not None:
                self.echo(masked)

        import sh  # here, not at module level: it costs ~0.3 s of startup (asyncio)

        try:
            cmd = sh.Command(real[0])
        except sh.CommandNotFound as exc:
            raise CommandNotFound(f"command not found: {real[0]}",
                                  hint=f"install {real[0]} or put it on PATH") from exc
        kwargs: dict[str, object] = {
            "_bg": True, "_new_session": True, "_out": on_out,
            "_err": None if merge_stderr else on_err, "_err_to_out": merge_stderr,
            "_env": run_env, "_ok_code": list(range(-128, 256)), "_decode_errors": "replace",
            "_bg_exc": False, "_no_out": False,
        }
        if cwd is not None:
            kwargs["_cwd"] = os.fspath(cwd)
        if input is not None:
            kwargs["_in"] = input
        else:
            kwargs["_in"] = os.devnull
            kwargs["_in_bufsize"] = 0
        if kwargs["_err"] is None:
            del kwargs["_err"]
        start = time.monotonic()
        timed_out = False
        try:
            proc = cmd(*real[1:], **kwargs)
        except sh.CommandNotFound as exc:
            raise CommandNotFound(f"command not found: {real[0]}",
                                  hint=f"install {real[0]} or put it on PATH") from exc
        pgid = proc.pid  # new session: the child leads its own group
        RUNNING.add(pgid)
        try:
            try:
                proc.wait(timeout=timeout)
                if timeout is not None:
                    # sh's wait(timeout) only polls the exit status; without this join the
                    # output threads may not have delivered the last lines yet (lost stdout).
                    proc.process.wait()
            except sh.TimeoutException:
                timed_out = True
                self._log(f"# timeout after {timeout}s: killing process group {pgid}")
                kill_group(pgid)
                try:
                    proc.wait(timeout=10)
                except sh.TimeoutException:
                    pass
            except KeyboardInterrupt:
                kill_group(pgid, grace=2.0)
                raise
            exit_code = proc.exit_code if proc.exit_code is not None else -1
        finally:
            RUNNING.discard(pgid)
            # The leader is gone but grandchildren may linger in its group: never leave them.
            _reap_group(pgid)
        seconds = time.monotonic() - start
        self._log(f"# exit {exit_code} in {seconds:.2f}s")
        return Result(argv=shown, exit_code=exit_code, seconds=seconds, attempts=attempt,
                      stdout="\n".join(captured) + ("\n" if captured else ""),
                      tail=tuple(tail), timed_out=timed_out)

    def _run_captured(self, argv: Sequence[Arg], *, cwd: str | os.PathLike | None,
                      env: Mapping[str, str] | None, timeout: float | None, input: str | None,
                      merge_stderr: bool, attempt: int,
                      on_line: Callable[[str], None] | None) -> Result:
        """Run once without sh: own session, output captured whole, group killed on timeout."""
        import subprocess

        shown, real, run_env = self._prepare(argv, env)
        start = time.monotonic()
        timed_out = False
        try:
            child = subprocess.Popen(
                real, cwd=os.fspath(cwd) if cwd is not None else None, env=run_env,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                start_new_session=True, text=True, errors="replace")
        except FileNotFoundError as exc:
            raise CommandNotFound(f"command not found: {real[0]}",
                                  hint=f"install {real[0]} or put it on PATH") from exc
        RUNNING.add(child.pid)
        try:
            try:
                out, err = child.communicate(input, timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _term_then_kill(child)
                out, err = child.communicate()
            except KeyboardInterrupt:
                kill_group(child.pid, grace=2.0)
                raise
        finally:
            RUNNING.discard(child.pid)
            _reap_group(child.pid)
        seconds = time.monotonic() - start
        # split("\n"), not splitlines(): exotic separators must not make extra lines (pip).
        lines = [ln for ln in (out or "").split("\n") if ln] + \
            [ln for ln in (err or "").split("\n") if ln]
        masked = [redact_text(ln, self.secrets) if self.secrets else ln for ln in lines]
        record = [f"$ {shown}" + (f"   (cwd {os.fspath(cwd)})" if cwd else ""), *masked]
        if timed_out:
            record.append(f"# timeout after {timeout}s: killed process group {child.pid}")
        record.append(f"# exit {child.returncode} in {seconds:.2f}s")
        self._log("\n".join(record))  # one write: these commands are many and short
        for line in masked:
            if self.echo is not None:
                self.echo(line)
            if on_line is not None:
                on_line(line)
        return Result(argv=shown, exit_code=child.returncode, seconds=seconds, attempts=attempt,
                      stdout=out or "", tail=tuple(masked[-self.tail_lines:]),
                      timed_out=timed_out)

    def run_bytes(self, argv: Sequence[Arg], *, desc: str, out: Callable[[bytes], None],
                  cwd: str | os.PathLike | None = None, env: Mapping[str, str] | None = None,
                  timeout: float | None = None) -> Result:
        """Run argv handing its stdout, raw, to ``out`` chunk by chunk; return a Result.

        For binary streams (stestr's subunit v2): stdout is neither decoded, logged nor
        captured; stderr is logged line by line as ``run`` does. It never raises for an exit
        code or a timeout (the group is TERMed then KILLed): a partial stream still matters,
        so the caller reads ``exit_code`` and ``timed_out``.
        """
        import subprocess

        shown, real, run_env = self._prepare(argv, env)
        tail: deque[str] = deque(maxlen=self.tail_lines)
        self._log(f"$ {shown}" + (f"   (cwd {os.fspath(cwd)})" if cwd else "") + f"   # {desc}")
        try:
            child = subprocess.Popen(real, cwd=os.fspath(cwd) if cwd is not None else None,
                                     env=run_env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True, bufsize=0)
        except FileNotFoundError as exc:
            raise CommandNotFound(f"command not found: {real[0]}",
                                  hint=f"install {real[0]} or put it on PATH") from exc
        assert child.stdout is not None and child.stderr is not None
        stdout, stderr = child.stdout, child.stderr

        def pump_out() -> None:
            while chunk := stdout.read(65536):
                out(chunk)

        def pump_err() -> None:
            for raw in stderr:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                masked = self.mask(line)
                tail.append(masked)
                self._log(masked)
                if self.echo is not None:
                    self.echo(masked)

        pumps = [threading.Thread(target=f, daemon=True) for f in (pump_out, pump_err)]
        for pump in pumps:
            pump.start()
        start = time.monotonic()
        timed_out = False
        RUNNING.add(child.pid)
        try:
            try:
                child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                self._log(f"# timeout after {timeout}s: killing process group {child.pid}")
                _term_then_kill(child)
                child.wait()
            except KeyboardInterrupt:
                kill_group(child.pid, grace=2.0)
                raise
        finally:
            RUNNING.discard(child.pid)
            _reap_group(child.pid)
            for pump in pumps:
                pump.join(timeout=10)
            stdout.close()
            stderr.close()
        seconds = time.monotonic() - start
        self._log(f"# exit {child.returncode} in {seconds:.2f}s")
        return Result(argv=shown, exit_code=child.returncode, seconds=seconds, attempts=1,
                      stdout="", tail=tuple(tail), timed_out=timed_out)

    def _prepare(self, argv: Sequence[Arg], env: Mapping[str, str] | None
                 ) -> tuple[str, list[str], dict[str, str]]:
        """(display form with secrets masked, argv as executed, environment) of one call."""
        base = env if env is not None else (self.env if self.env is not None else os.environ)
        return display_argv(argv), _reveal(argv), dict(base)

    def _log(self, line: str) -> None:
        if self.log is None:
            return
        with self._log_lock:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log, "a", encoding="utf-8", errors="replace") as fh:
                fh.write(line + "\n")


def _term_then_kill(child: subprocess.Popen, grace: float = 5.0) -> None:
    """TERM the child's group, reap the child (so it is no zombie), KILL the group if slow."""
    import subprocess

    try:
        os.killpg(child.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        child.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _mask_match(m: re.Match[str]) -> str:
    if not m.re.groups:
        return "****"
    start, end = m.span(1)
    if start < 0:
        return m.group(0)
    return m.group(0)[:start - m.start()] + "****" + m.group(0)[end - m.start():]


def group_alive(pgid: int) -> bool:
    """True while a process of group ``pgid`` is still running (zombies do not count).

    ``killpg(pgid, 0)`` also succeeds for zombies, and an orphaned grandchild's zombie stays
    forever where PID 1 does not reap (some containers): git's local transport leaves such an
    ``sh`` behind on every failed fetch, and waiting for it cost 2 s per command.
    """
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


def _reap_group(pgid: int) -> None:
    if not group_alive(pgid):
        return
    kill_group(pgid, grace=2.0)


def which(name: str) -> str | None:
    """Return the path of program ``name`` on PATH, or None."""
    import shutil

    return shutil.which(name)

