"""Console output on rich: colour and live progress in a terminal, plain lines in a Jenkins log.

Plain mode (no TTY, ``JENKINS_URL``/``BUILD_ID`` set, ``--no-color`` or ``NO_COLOR``) prints
ASCII-friendly text with no control characters, one line per event; phases are marked with
their elapsed time. This module never decides *what* to do, only how it is shown.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any, cast

from dsvm.errors import DsvmError, Failure, exit_line

# At least one line this often while a long step runs, however quiet the step (a clone,
# stack.sh, tempest, log compression): Jenkins users read a silent log as a hang (pip's
# NonInteractiveSpinner, but on a clock rather than on the step's own events).
HEARTBEAT_SECONDS = 60.0

if TYPE_CHECKING:
    from rich.console import Console

# What rich's Text drops from what it prints (bell, backspace, vertical tab, form feed, CR):
# the plain renderer drops the same, so a Jenkins log line stays one line.
_CONTROL = {c: None for c in (7, 8, 11, 12, 13)}


def is_plain_environment(env: Mapping[str, str], stream: IO[str], no_color: bool = False) -> bool:
    """Return True when output must be plain text (Jenkins, pipes, NO_COLOR, --no-color)."""
    if no_color or "NO_COLOR" in env:
        return True
    if env.get("JENKINS_URL") or env.get("BUILD_ID"):
        return True
    isatty = getattr(stream, "isatty", None)
    return not (isatty and isatty())


class _Std:
    """sys.stdout/sys.stderr looked up at every write (they are swapped by tests and hooks)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _target(self) -> IO[str]:
        return cast(IO[str], getattr(sys, self.name))

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        isatty = getattr(self._target(), "isatty", None)
        return bool(isatty and isatty())

    def fileno(self) -> int:
        return self._target().fileno()


@dataclass
class Ui:
    """The one console of a dsvm process; ``plain`` selects the Jenkins renderer."""

    plain: bool
    verbose: bool = False
    stream: IO[str] = field(default_factory=lambda: cast(IO[str], _Std("stdout")))
    err_stream: IO[str] = field(default_factory=lambda: cast(IO[str], _Std("stderr")))
    heartbeat_seconds: float = HEARTBEAT_SECONDS  # tests shorten it

    def __post_init__(self) -> None:
        self._phases: list[str] = []  # the phases marked open, innermost last
        self._lock = threading.Lock()

    # rich is imported when a terminal (or a caller) needs its Console: a plain log is
    # written here directly (rich's import is ~0.1 s of every plain command's start-up).
    @cached_property
    def out(self) -> Console:
        return self._console(self.stream)

    @cached_property
    def err(self) -> Console:
        return self._console(self.err_stream)

    def _console(self, stream: IO[str]) -> Console:
        from rich.console import Console

        common: dict[str, Any] = {"highlight": False, "soft_wrap": True}
        if self.plain:
            common.update(no_color=True, force_terminal=False, force_interactive=False,
                          emoji=False, color_system=None, width=self.width)
        return Console(file=stream, **common)

    @property
    def width(self) -> int:
        """The width tables are fitted to (a plain log: $COLUMNS, at least 100)."""
        return max(_env_width(), 100) if self.plain else self.out.width

    def _print(self, to_err: bool, text: str) -> None:
        """One event: literal text (a plain log), or rich markup (a terminal)."""
        if not self.plain:
            (self.err if to_err else self.out).print(text)
            return
        text = text.translate(_CONTROL)
        if "\t" in text:  # as rich shows them: to the next multiple of 8 cells
            text = "\n".join(_expand_tabs(line) for line in text.split("\n"))
        stream = self.err_stream if to_err else self.stream
        stream.write(text + "\n")
        stream.flush()

    # -- plain events -----------------------------------------------------------------------
    def info(self, text: str) -> None:
        """Print one informational line."""
        with self._lock:
            self._print(False, text if self.plain else escape(text))

    def detail(self, text: str) -> None:
        """Print a line only at -v."""
        if self.verbose:
            self.info(text)

    def warn(self, text: str) -> None:
        """Print a warning line on stderr."""
        with self._lock:
            self._print(True, "WARNING: " + text if self.plain
                        else "[yellow]warning:[/] " + escape(text))

    def ok(self, text: str) -> None:
        """Print a success line."""
        self.info(("OK " if self.plain else "✓ ") + text)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Print a table (rich table in a terminal, ASCII box in Jenkins)."""
        if self.plain:  # rich's layout engine costs ~3 ms a row; a log needs none of it
            text = ascii_table(title, columns, rows, self.width)
            with self._lock:
                self._print(False, text)
            return
        from rich import box
        from rich.table import Table  # here: only a terminal needs it (~10 ms to import)

        table = Table(title=title, box=box.SIMPLE_HEAVY,
                      show_lines=False)
        for col in columns:
            table.add_column(col)
        for row in rows:
            table.add_row(*[escape("" if c is None else str(c)) for c in row])
        with self._lock:
            self.out.print(table)

    # -- phases ---------------------------------------------------------------------------
    def phase_started(self, name: str, what: str = "") -> None:
        """``==> [HH:MM:SS] phase NAME started[: WHAT]``: the one phase marker format."""
        self._phases.append(name)
        self.info(f"==> [{time.strftime('%H:%M:%S')}] phase {name} started"
                  + (f": {what}" if what else ""))

    def phase_ended(self, name: str, verdict: str, seconds: float, summary: str = "") -> None:
        """``<== [HH:MM:SS] phase NAME VERDICT after Ns[: SUMMARY]``."""
        if self._phases and self._phases[-1] == name:
            self._phases.pop()
        self.info(f"<== [{time.strftime('%H:%M:%S')}] phase {name} {verdict} "
                  f"after {seconds:.1f}s" + (f": {summary}" if summary else ""))

    @contextmanager
    def phase(self, name: str, what: str = "") -> Iterator[None]:
        """Mark a phase's start and end (with elapsed seconds and verdict).

        Inside the same phase already marked (``dsvm run`` marks each of its phases), only
        ``what`` is printed: one marker per phase.
        """
        if self._phases and self._phases[-1] == name:
            if what:
                self.info(what)
            yield
            return
        start = time.monotonic()
        self.phase_started(name, what)
        verdict = "failed"
        try:
            yield
            verdict = "ok"
        finally:
            self.phase_ended(name, verdict, time.monotonic() - start)

    @contextmanager
    def progress(self, description: str, total: int | None,
                 status: Callable[[], str] | None = None) -> Iterator[Progress]:
        """Progress for a long loop: a live bar in a terminal, a heartbeat a minute in Jenkins."""
        prog = Progress(self, description, total, status)
        try:
            yield prog
        finally:
            prog.close()

    # -- errors -----------------------------------------------------------------------------
    def failure(self, failure: Failure, *, to_stderr: bool = True) -> None:
        """Print ``failure`` as the last lines an operator reads (``ERROR:``/``✗`` first)."""
        quote = _literal if self.plain else escape
        mark = "ERROR:" if self.plain else "[bold red]✗[/]"
        lines = [f"{mark} {quote(failure.headline())}"]
        lines += [quote(line) for line in failure.body()]
        with self._lock:
            for line in lines:
                self._print(to_stderr, line)

    def error(self, exc: DsvmError, phase: str | None = None, traceback: str | None = None) -> None:
        """Render a DsvmError, then (at -v) the traceback and the exit line, on stderr."""
        quote = _literal if self.plain else escape
        self.failure(Failure.of(exc, phase))
        with self._lock:
            if traceback and self.verbose:
                self._print(True, quote(traceback.rstrip()))
            self._print(True, quote(exit_line(exc.exit_code)))


def escape(text: str) -> str:
    """``text`` as rich markup that shows it literally."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def _literal(text: str) -> str:
    return text


def _expand_tabs(line: str) -> str:
    from rich.cells import cell_len

    out = ""
    *parts, last = line.split("\t")
    for part in parts:
        out += part
        out += " " * (8 - cell_len(out) % 8)
    return out + last


def duration(seconds: float) -> str:
    """``seconds`` for humans: ``42s``, ``3m05s``, ``1h02m``."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Heartbeat:
    """A clock that prints ``... WHAT: still running after T[, STATUS]`` every interval.

    Driven by a timer thread, not by the step's output, so a step silent for ten minutes still
    gets its ten lines. ``status`` (called at each beat) says how far the step has got.
    """

    def __init__(self, ui: Ui, what: str, status: Callable[[], str] | None = None) -> None:
        self.ui = ui
        self.what = what
        self.status = status
        self.start = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat {what}",
                                        daemon=True)

    def __enter__(self) -> Heartbeat:
        self.start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop beating (idempotent); returns once no beat is being printed."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _beat(self) -> None:
        beat = self.start
        while True:
            beat += self.ui.heartbeat_seconds  # on the clock: a slow print does not drift it
            if self._stop.wait(max(0.0, beat - time.monotonic())):
                return
            status = self.status() if self.status is not None else ""
            self.ui.info(f"... {self.what}: still running after "
                         f"{duration(time.monotonic() - self.start)}"
                         + (f", {status}" if status else ""))


class Progress:
    """A progress handle: ``advance()`` per item, ``note()`` for an event worth a line.

    A live bar in a terminal; in a plain log a start line, a heartbeat a minute with the count
    (or ``status()``), and a finish line.
    """

    def __init__(self, ui: Ui, description: str, total: int | None,
                 status: Callable[[], str] | None = None) -> None:
        self.ui = ui
        self.description = description
        self.total = total
        self.done = 0
        self.status = status or self._count
        self._start = time.monotonic()
        self._bar: Any = None
        self._beat: Heartbeat | None = None
        self._lock = threading.Lock()
        if not ui.plain:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(),
                                     console=ui.out, transient=False)
            self._bar.start()
            self._task = self._bar.add_task(description, total=total)
        else:
            ui.info(f"... {description}: started" + (f" ({total} items)" if total else ""))
            self._beat = Heartbeat(ui, description, self.status).__enter__()

    def advance(self, n: int = 1, item: str | None = None) -> None:
        """Count ``n`` more items done."""
        with self._lock:
            self.done += n
            if self._bar is not None:
                self._bar.update(self._task, advance=n,
                                 description=f"{self.description} {item or ''}".rstrip())

    def note(self, text: str) -> None:
        """Print one line now, in both modes (e.g. a failure as it happens)."""
        if self._bar is not None:
            self._bar.console.print(escape(text))  # a terminal: rich markup
        else:
            self.ui.info(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        elif self._beat is not None:
            self._beat.stop()
            self._beat = None
            elapsed = time.monotonic() - self._start
            self.ui.info(f"... {self.description}: finished, {self.status()} in {elapsed:.1f}s")

    def _count(self) -> str:
        return f"{self.done}/{self.total}" if self.total else f"{self.done}"


def ascii_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                width: int) -> str:
    """``rows`` under ``columns`` in an ASCII box at most ``width`` cells wide: the widest
    columns give way first, and a cut cell ends with an ellipsis. Control characters in a
    cell (a newline in an error message) print as spaces, so a row stays one line."""
    from rich.cells import cell_len, set_cell_size

    def clean(value: Any) -> str:
        text = "" if value is None else str(value)
        return text if text.isprintable() else "".join(
            c if c.isprintable() else " " for c in text)

    def fit(text: str, size: int) -> str:
        if cell_len(text) <= size:
            return set_cell_size(text, size)  # pads
        return set_cell_size(text, size - 1) + "…"

    head = [clean(c) for c in columns]
    body = [([clean(c) for c in row] + [""] * len(head))[:len(head)] for row in rows]
    widths = [max([cell_len(h)] + [cell_len(r[i]) for r in body]) for i, h in enumerate(head)]
    while sum(widths) + 3 * len(widths) + 1 > width and max(widths) > 3:
        widths[widths.index(max(widths))] -= 1
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    lines = [set_cell_size(title, len(rule)).rstrip().center(len(rule)).rstrip(), rule,
             "| " + " | ".join(fit(h, w) for h, w in zip(head, widths, strict=True)) + " |",
             "|" + "+".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(fit(c, w) for c, w in zip(r, widths, strict=True)) + " |" for r in body]
    lines.append(rule)
    return "\n".join(lines)


def _env_width() -> int:
    try:
        return int(os.environ.get("COLUMNS", "120"))
    except ValueError:
        return 120


_UI: Ui | None = None


def get_ui() -> Ui:
    """Return the process's console (created plain/terminal from the environment on first use)."""
    global _UI
    if _UI is None:
        _UI = Ui(plain=is_plain_environment(os.environ, sys.stdout))
    return _UI


def json_mode() -> Ui:
    """Send the process's console to stderr, so stdout carries a command's ``--json`` alone;
    return that console (for ``ctx.ui``)."""
    ui = get_ui()
    return set_ui(Ui(plain=ui.plain, verbose=ui.verbose, stream=ui.err_stream,
                     err_stream=ui.err_stream, heartbeat_seconds=ui.heartbeat_seconds))


def set_ui(ui: Ui) -> Ui:
    """Install ``ui`` as the process's console (cli.py does this from the options)."""
    global _UI
    _UI = ui
    return ui
