"""dsvm's error hierarchy: what went wrong, with which input, how to fix it, and the exit code.

Library code raises these; only ``dsvm.cli`` turns them into exit codes and console output.
This module imports nothing heavy: the ``dsvm ini`` fast path depends on it.
"""

from __future__ import annotations

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


def closest(name: str, candidates: list[str] | tuple[str, ...] | set[str]) -> str | None:
    """Return the candidate closest to ``name`` (for 'did you mean' hints), or None."""
    import difflib

    found = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return found[0] if found else None
