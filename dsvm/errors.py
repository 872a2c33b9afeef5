"""dsvm's error hierarchy: what went wrong, with which input, how to fix it, and the exit code.

Library code raises these; only ``dsvm.cli`` turns them into exit codes and console output.
``Failure`` is the one rendering of a failure (a command's error, the job's failed phase) as
the last lines an operator reads. This module imports nothing heavy: the ``dsvm ini`` fast
path depends on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Exit codes of DESIGN.md's CLI contract.
EXIT_OK = 0
EXIT_TESTS_FAILED = 1
EXIT_USAGE = 2
EXIT_INFRA = 3
EXIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

EXIT_MEANINGS = {
    EXIT_OK: "success",
    EXIT_TESTS_FAILED: "tests failed",
    EXIT_USAGE: "bad usage, profile or input",
    EXIT_INFRA: "infrastructure failure",
    EXIT_TIMEOUT: "time budget ran out",
    EXIT_INTERRUPTED: "interrupted",
    EXIT_TERMINATED: "terminated",
}


@dataclass
class Problem:
    """One problem found in an input: where (file:line or variable), what, and how to fix it."""

    where: str
    message: str
    hint: str | None = None
    context: str | None = None  # the offending lines, already formatted

    def render(self) -> str:
        text = f"{self.where}: {self.message}"
        if self.context:
            text += "\n" + "\n".join("    " + line for line in self.context.splitlines())
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class DsvmError(Exception):
    """Base of every expected dsvm failure. Carries a user message, hint, log path, exit code."""

    exit_code: int = EXIT_INFRA

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        log_path: str | Path | None = None,
        details: dict[str, str] | None = None,
        problems: list[Problem] | None = None,
        exit_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.log_path = str(log_path) if log_path else None
        self.details = dict(details or {})
        self.problems = list(problems or [])
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class UsageError(DsvmError):
    """Bad command line, profile or input (exit 2)."""

    exit_code = EXIT_USAGE


class ProfileError(UsageError):
    """A profile that cannot be loaded or does not validate; lists every problem found."""


class InfraError(DsvmError):
    """The node, the network, git, stack.sh or a database failed (exit 3)."""

    exit_code = EXIT_INFRA


class BudgetExpiredError(DsvmError):
    """The job's time budget ran out (exit 124)."""

    exit_code = EXIT_TIMEOUT


@dataclass(frozen=True)
class Failure:
    """A failure as its last lines say it: which phase, what failed, the offending input, what
    to try, where the log is (DESIGN.md's "An error, as the user sees it")."""

    message: str
    phase: str | None = None
    problems: tuple[str, ...] = ()  # rendered Problems, one block each
    details: tuple[tuple[str, str], ...] = ()  # (label, value): command, result, error…
    hint: str | None = None
    log: str | None = None
    last_lines: tuple[str, ...] = ()  # the failed command's own last output lines

    @classmethod
    def of(cls, exc: DsvmError, phase: str | None = None) -> Failure:
        """The failure ``exc`` reports, in ``phase`` when given."""
        return cls(exc.message, phase, tuple(p.render() for p in exc.problems),
                   tuple((k, str(v)) for k, v in exc.details.items()), exc.hint, exc.log_path)

    def headline(self) -> str:
        return (f"{self.phase} failed: " if self.phase else "") + self.message

    def body(self) -> list[str]:
        """The lines under the headline: problems, then labelled values, then output lines."""
        lines = ["  " + line for problem in self.problems for line in problem.splitlines()]
        labelled = [*self.details, ("hint", self.hint or ""), ("log", self.log or "")]
        labelled = [(label, value) for label, value in labelled if value]
        width = max([8] + [len(label) + 1 for label, _ in labelled])
        lines += [f"  {label:<{width}}: {value}" for label, value in labelled]
        lines += [f"  | {line}" for line in self.last_lines]
        return lines


def exit_line(code: int, command: str | None = None) -> str:
    """``dsvm[ COMMAND]: exit N (meaning)``: the very last line of a run."""
    meaning = EXIT_MEANINGS.get(code, "")
    return f"dsvm{' ' + command if command else ''}: exit {code}" + (f" ({meaning})"
                                                                    if meaning else "")


def failure_from(data: Mapping[str, object]) -> Failure:
    """A ``Failure`` from its JSON form in the job's summary (``job._failure``)."""
    def text(key: str) -> str | None:
        value = data.get(key)
        return str(value) if value else None

    def strings(key: str) -> tuple[str, ...]:
        value = data.get(key)
        return tuple(str(v) for v in value) if isinstance(value, Sequence) else ()

    details = data.get("details")
    labelled: list[tuple[str, str]] = []
    if isinstance(details, Mapping) and not data.get("first_error"):
        labelled += [(str(k), str(v)) for k, v in details.items()]
    labelled += [(label.replace("_", " "), str(data[label]))
                 for label in ("devstack_phase", "first_error") if data.get(label)]
    return Failure(str(data.get("message") or ""), text("phase"), strings("problems"),
                   tuple(labelled), text("hint"), text("log"), strings("last_lines"))


def terminate_handler(signum: int, frame: object) -> None:
    """SIGTERM (a Jenkins abort) becomes an exception the job can clean up after (exit 143)."""
    raise SystemExit(EXIT_TERMINATED)


def closest(name: str, candidates: list[str] | tuple[str, ...] | set[str]) -> str | None:
    """Return the candidate closest to ``name`` (for 'did you mean' hints), or None."""
    import difflib

    found = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return found[0] if found else None
