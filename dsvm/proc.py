"""The one place that runs external commands: one engine, ``Runner.execute`` on Popen.

Every command is an argument list (never a shell string: ZUUL_* values, branch names and
profile values are untrusted), runs in its own session so a timeout or a signal can kill the
whole process group (stack.sh's grandchildren included), streams its output line by line to a
log file (and to the console at ``-v``), and comes back as a ``Result``. Failures raise
``CommandFailed`` carrying argv (secrets masked), exit code, output tail and the log path.
"""

from __future__ import annotations

import codecs
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
from dsvm.secrets import MASK, redact


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


Arg = str | Secret | os.PathLike[str]


def display_argv(argv: Sequence[Arg]) -> str:
    """Shell-quoted argv for humans and logs, with every Secret masked."""
    return " ".join(MASK if isinstance(a, Secret) else shlex.quote(os.fspath(a)) for a in argv)


def _reveal(argv: Sequence[Arg]) -> list[str]:
    return [a.reveal() if isinstance(a, Secret) else os.fspath(a) for a in argv]


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value masked (``dsvm.secrets.redact``: the one mask)."""
    return redact(text, secrets)


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


@dataclass(frozen=True)
class Call:
    """One command to execute: what, where, for how long, and where its output goes.

    ``on_bytes`` takes stdout raw (stestr's subunit v2): it is then neither decoded, logged nor
    captured. ``stream=False`` writes the command's log record in one piece when it ends (many
    short commands run in parallel, e.g. git plumbing, keep their records apart); either way
    ``echo`` and ``on_line`` see each line as it arrives.
    """

    argv: tuple[Arg, ...]
    desc: str
    cwd: str | os.PathLike[str] | None = None
    env: Mapping[str, str] | None = None
    timeout: float | None = None
    merge_stderr: bool = True
    on_line: Callable[[str], None] | None = None
    on_bytes: Callable[[bytes], None] | None = None
    stream: bool = True


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
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        attempts: int = 1,
        retry_if: Callable[[Result], bool] | None = None,
        backoff: float = 1.0,
        check: bool = True,
        hint: str | None = None,
        merge_stderr: bool = True,
        on_line: Callable[[str], None] | None = None,
        stream: bool = True,
    ) -> Result:
        """Run argv; return a Result or raise CommandFailed / BudgetExpiredError.

        The ``Call`` fields (``cwd`` … ``stream``) say how to execute it; the rest is policy.
        ``timeout`` kills the whole process group. ``attempts`` > 1 retries (with exponential
        backoff) when ``retry_if(result)`` says so. ``check=False`` returns a failed Result.
        """
        if not argv:
            raise ValueError("empty argv")
        call = Call(tuple(argv), desc, cwd=cwd, env=env, timeout=timeout,
                    merge_stderr=merge_stderr, on_line=on_line, stream=stream)
        result: Result | None = None
        for attempt in range(1, max(1, attempts) + 1):
            result = self.execute(call, attempt=attempt)
            if result.ok and not result.timed_out:
                return result
            if result.timed_out:
                break
            if attempt < attempts and (retry_if is None or retry_if(result)):
                self._log(f"# attempt {attempt} failed (exit {result.exit_code}); retrying "
                          f"in {backoff * 2 ** (attempt - 1):.1f}s")
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

    def run_bytes(self, argv: Sequence[Arg], *, desc: str, out: Callable[[bytes], None],
                  cwd: str | os.PathLike[str] | None = None,
                  env: Mapping[str, str] | None = None, timeout: float | None = None) -> Result:
        """Run argv handing its stdout, raw, to ``out`` chunk by chunk; return a Result.

        For binary streams (stestr's subunit v2); stderr is logged line by line. It never
        raises for an exit code or a timeout: a partial stream still matters, so the caller
        reads ``exit_code`` and ``timed_out``.
        """
        return self.execute(Call(tuple(argv), desc, cwd=cwd, env=env, timeout=timeout,
                                 merge_stderr=False, on_bytes=out))

    def execute(self, call: Call, *, attempt: int = 1) -> Result:
        """Run ``call`` once, in its own session; on timeout, TERM then KILL its whole group.

        The one execution engine: a plain Popen whose pipes are read in this thread (no sh,
        no pump threads: ~4 ms a command, and no polling floor under short ones). The group
        is reaped when the leader exits, so grandchildren left behind never outlive it.
        """
        import subprocess

        shown, real, run_env = self._prepare(call.argv, call.env)
        sink = _Sink(self, call, f"$ {shown}" + (f"   (cwd {os.fspath(call.cwd)})"
                                                  if call.cwd else ""))
        separate_err = call.on_bytes is not None or not call.merge_stderr
        try:
            child = subprocess.Popen(
                real, cwd=os.fspath(call.cwd) if call.cwd is not None else None, env=run_env,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE if separate_err else subprocess.STDOUT,
                start_new_session=True, bufsize=0)
        except FileNotFoundError as exc:
            raise CommandNotFound(f"command not found: {real[0]}",
                                  hint=f"install {real[0]} or put it on PATH") from exc
        start = time.monotonic()
        RUNNING.add(child.pid)  # new session: the child leads its own group
        try:
            try:
                timed_out = _pump(child, sink, call.timeout, start)
                exit_code = child.wait()
            except BaseException:  # Ctrl-C, SIGTERM's SystemExit: never leave the group
                kill_group(child.pid, grace=2.0)
                raise
        finally:
            RUNNING.discard(child.pid)
            _reap_group(child.pid)
            for pipe in (child.stdout, child.stderr):
                if pipe is not None:
                    pipe.close()
        seconds = time.monotonic() - start
        sink.close(f"# exit {exit_code} in {seconds:.2f}s")
        return Result(argv=shown, exit_code=exit_code, seconds=seconds, attempts=attempt,
                      stdout=sink.stdout(), tail=tuple(sink.tail), timed_out=timed_out)

    def _prepare(self, argv: Sequence[Arg], env: Mapping[str, str] | None
                 ) -> tuple[str, list[str], dict[str, str]]:
        """(display form with secrets masked, argv as executed, environment) of one call."""
        base = env if env is not None else (self.env if self.env is not None else os.environ)
        return display_argv(argv), _reveal(argv), dict(base)

    def note(self, text: str) -> None:
        """Write a line of the phase's own (a decision and its reason) to the log, masked."""
        self._log(self.mask(text))

    def _log(self, text: str) -> None:
        if self.log is None:
            return
        with self._log_lock:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log, "a", encoding="utf-8", errors="replace") as fh:
                fh.write(text + "\n")


class _Sink:
    """Where one command's output goes: lines split, masked, tailed, logged and echoed."""

    def __init__(self, runner: Runner, call: Call, head: str) -> None:
        self.runner = runner
        self.call = call
        self.tail: deque[str] = deque(maxlen=runner.tail_lines)
        self._out: list[str] = []  # stdout as decoded, for Result.stdout
        self._record: list[str] | None = None if call.stream else [head]
        self._partial = {"out": "", "err": ""}
        self._decoders = {name: codecs.getincrementaldecoder("utf-8")("replace")
                          for name in ("out", "err")}
        if call.stream:
            runner._log(head)

    def feed(self, name: str, data: bytes) -> None:
        """Take a chunk of stream ``name`` ("out"/"err"); ``b""`` means it ended."""
        if name == "out" and self.call.on_bytes is not None:
            if data:
                self.call.on_bytes(data)
            return
        text = self._decoders[name].decode(data, final=not data)
        if name == "out":
            self._out.append(text)
        text = self._partial[name] + text
        # split("\n"), not splitlines(): exotic separators must not make extra lines (pip).
        *lines, self._partial[name] = text.split("\n")
        if not data and self._partial[name]:
            lines.append(self._partial[name])
            self._partial[name] = ""
        for line in lines:
            self._line(line, to_on_line=name == "out")

    def note(self, text: str) -> None:
        """A ``#`` line of dsvm's own in the command's log record."""
        self._write(text)

    def close(self, text: str) -> None:
        self._write(text)
        if self._record is not None:
            self.runner._log("\n".join(self._record))  # one write: many short commands

    def stdout(self) -> str:
        return "".join(self._out)

    def _line(self, line: str, *, to_on_line: bool) -> None:
        masked = self.runner.mask(line)
        if masked.strip():
            self.tail.append(masked)
        self._write(masked)
        if self.runner.echo is not None:
            self.runner.echo(masked)
        if to_on_line and self.call.on_line is not None:
            self.call.on_line(masked)

    def _write(self, text: str) -> None:
        if self._record is not None:
            self._record.append(text)
        else:
            self.runner._log(text)


# After a timeout's kill, or once the leader has exited, how long to wait for the pipes to
# close: a process that escaped the group (its own setsid) may hold them open forever.
DRAIN_SECONDS = 10.0


def _pump(child: subprocess.Popen[bytes], sink: _Sink, timeout: float | None,
          start: float) -> bool:
    """Read the child's pipes into ``sink`` until they close; return True if it timed out.

    The leader's exit is watched too (a pidfd): a grandchild holding stdout open must not keep
    us waiting, so its group is reaped then and the pipes drained for a bounded time.
    """
    import selectors

    streams = {child.stdout: "out", child.stderr: "err"}
    deadline = start + timeout if timeout is not None else None
    timed_out = exited = reaped = False
    with selectors.PollSelector() as sel:  # no epoll fd to create: one poll(2) per wait
        for pipe, name in streams.items():
            if pipe is not None:
                sel.register(pipe, selectors.EVENT_READ, name)
        pidfd = _pidfd(child.pid)
        if pidfd is not None:
            sel.register(pidfd, selectors.EVENT_READ, None)
        try:
            while not exited or any(k.data is not None for k in sel.get_map().values()):
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    if timed_out or exited:
                        break  # drained long enough: a process outside the group holds a pipe
                    timed_out = True
                    sink.note(f"# timeout after {timeout}s: killing process group {child.pid}")
                    kill_group(child.pid)
                    deadline = time.monotonic() + DRAIN_SECONDS
                    continue
                wait = None if deadline is None else deadline - now
                if pidfd is None and not exited:
                    wait = 0.05 if wait is None else min(wait, 0.05)
                for key, _ in sel.select(wait):
                    if key.data is None:  # the leader exited
                        sel.unregister(key.fileobj)
                        exited = True
                    else:
                        data = os.read(key.fd, 65536)
                        if not data:
                            sel.unregister(key.fileobj)
                        sink.feed(key.data, data)
                if pidfd is None and not exited and child.poll() is not None:
                    exited = True
                if exited and not reaped:
                    reaped = True
                    child.wait()  # first the leader: a zombie leader makes the group look alive
                    _reap_group(child.pid)  # grandchildren left behind: they hold our pipes
                    deadline = min(deadline or float("inf"), time.monotonic() + DRAIN_SECONDS)
        finally:
            if pidfd is not None:
                os.close(pidfd)
    return timed_out


def _pidfd(pid: int) -> int | None:
    """A file descriptor readable when ``pid`` exits (Linux >= 5.3), or None."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None


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

