"""The job's time budget: which convention applied, and how it is split between phases.

Pure: takes the job's typed ``BUILD_TIMEOUT``/``DEVSTACK_GATE_TIMEOUT`` (parsed once, by
``environ``) and the resolved ``timeout.*`` settings, returns a frozen ``Budget``. Never reads the clock, never starts or kills anything (``job.py`` turns the budget
into a deadline; ``proc`` enforces it).

The two conventions of ``spec/devstack-gate.md`` §5 are honoured: ``BUILD_TIMEOUT``
(milliseconds, set by Jenkins' build-timeout wrapper) minus ``DEVSTACK_GATE_TIMEOUT_BUFFER``
minutes, which is what devstack-gate used from 2016-02; otherwise an explicit
``DEVSTACK_GATE_TIMEOUT`` (minutes, the pre-2016 input) for the phases, with the buffer on
top; otherwise the profile's ``timeout.job_minutes``. Unlike devstack-gate, BUILD_TIMEOUT is
not floored to whole minutes, and no extra 5-minute safety margin is taken.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dsvm.errors import Problem, UsageError

if TYPE_CHECKING:
    from dsvm.profile import Settings


@dataclass(frozen=True)
class Budget:
    """The job's time budget in seconds, where it came from, and its split."""

    total_seconds: float  # the whole job, log collection included
    buffer_seconds: float  # reserved at the end for log collection and upload
    tests_seconds: float  # reserved for Tempest: stack.sh must leave this much
    logs_seconds: float  # the logs phase's own budget (also after a failure or a signal)
    source: str  # BUILD_TIMEOUT | DEVSTACK_GATE_TIMEOUT | profile
    why: str  # one line: which values made this budget

    @property
    def run_seconds(self) -> float:
        """Seconds the phases before log collection may use (the hooks' REMAINING_TIME)."""
        return self.total_seconds - self.buffer_seconds

    @property
    def stack_seconds(self) -> float:
        """Seconds, from the job's start, by which stack.sh must have finished."""
        return self.run_seconds - self.tests_seconds

    def rows(self) -> list[tuple[str, str, str]]:
        """(item, duration, meaning) rows for ``dsvm run --plan``."""
        return [
            ("job", fmt_seconds(self.total_seconds), self.why),
            ("phases", fmt_seconds(self.run_seconds),
             "workspace .. results must end by then (REMAINING_TIME for hooks)"),
            ("stack.sh", fmt_seconds(self.stack_seconds),
             f"latest end of stack.sh: {fmt_seconds(self.tests_seconds)} kept for Tempest"),
            ("buffer", fmt_seconds(self.buffer_seconds),
             "kept at the end for log collection and upload"),
            ("logs", fmt_seconds(self.logs_seconds),
             "the logs phase's own budget, even after a failure, expiry or abort"),
        ]

    def as_json(self) -> dict[str, object]:
        """Stable JSON form (seconds)."""
        return {"source": self.source, "why": self.why, "total_seconds": self.total_seconds,
                "buffer_seconds": self.buffer_seconds, "run_seconds": self.run_seconds,
                "tests_seconds": self.tests_seconds, "stack_seconds": self.stack_seconds,
                "logs_seconds": self.logs_seconds}


def fmt_seconds(seconds: float) -> str:
    """'1h 02m', '12m 05s', '42s' for humans."""
    s = int(round(seconds))
    sign, s = ("-", -s) if s < 0 else ("", s)
    if s >= 3600:
        return f"{sign}{s // 3600}h {s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{sign}{s // 60}m {s % 60:02d}s"
    return f"{sign}{s}s"


def plan(*, job_minutes: int, buffer_minutes: int, tests_minutes: int = 0,
         logs_minutes: int = 5, job_origin: str = "profile", build_ms: int | None = None,
         gate_minutes: int | None = None) -> Budget:
    """Return the job's Budget; raise UsageError when it is too small to run anything.

    ``build_ms`` is BUILD_TIMEOUT, ``gate_minutes`` DEVSTACK_GATE_TIMEOUT (None: unset);
    ``buffer_minutes`` is timeout.buffer_minutes, which DEVSTACK_GATE_TIMEOUT_BUFFER sets.
    """
    gate_min = gate_minutes
    buffer_min = buffer_minutes
    buffer_s = float(buffer_min) * 60
    if build_ms is not None:
        total = build_ms / 1000.0
        why = (f"BUILD_TIMEOUT={build_ms} ms − DEVSTACK_GATE_TIMEOUT_BUFFER={buffer_min} min"
               + (f" (DEVSTACK_GATE_TIMEOUT={gate_min} ignored, as devstack-gate did since "
                  "2016-02)" if gate_min is not None else ""))
        source = "BUILD_TIMEOUT"
    elif gate_min is not None:
        total = gate_min * 60.0 + buffer_s
        why = (f"DEVSTACK_GATE_TIMEOUT={gate_min} min for the phases "
               f"+ {buffer_min} min buffer (pre-2016 convention; no BUILD_TIMEOUT)")
        source = "DEVSTACK_GATE_TIMEOUT"
    else:
        total = job_minutes * 60.0
        why = f"timeout.job_minutes={job_minutes} ({job_origin}) − {buffer_min} min buffer"
        source = "profile"
    budget = Budget(total_seconds=total, buffer_seconds=buffer_s,
                    tests_seconds=tests_minutes * 60.0, logs_seconds=logs_minutes * 60.0,
                    source=source, why=why)
    _check(budget, buffer_min, tests_minutes, logs_minutes)
    return budget


def _check(budget: Budget, buffer_min: int, tests_minutes: int, logs_minutes: int) -> None:
    problems = []
    if min(buffer_min, tests_minutes, logs_minutes) < 0:
        problems.append(Problem("timeout", "buffer, tests and logs minutes must not be negative"))
    if budget.run_seconds <= 0:
        problems.append(Problem(
            budget.source, f"the job budget ({fmt_seconds(budget.total_seconds)}) leaves "
            f"nothing for the phases after the {fmt_seconds(budget.buffer_seconds)} buffer",
            hint="raise BUILD_TIMEOUT (ms) / timeout.job_minutes, or lower "
                 "DEVSTACK_GATE_TIMEOUT_BUFFER"))
    elif budget.stack_seconds <= 0:
        problems.append(Problem(
            "timeout.tests_minutes", f"{tests_minutes} min kept for Tempest leaves nothing "
            f"for stack.sh in {fmt_seconds(budget.run_seconds)}",
            hint="lower timeout.tests_minutes or raise the job budget"))
    if problems:
        raise UsageError(f"time budget too small to run anything: {budget.why}",
                         problems=problems)


def from_settings(settings: Settings) -> Budget:
    """``plan()`` with the ``timeout.*`` values and environment of resolved Settings."""
    t, gate = settings.timeout, settings.gate
    return plan(job_minutes=t.job_minutes, buffer_minutes=t.buffer_minutes,
                tests_minutes=t.tests_minutes, logs_minutes=t.logs_minutes,
                job_origin=settings.origin("timeout.job_minutes"),
                build_ms=gate["BUILD_TIMEOUT"], gate_minutes=gate["DEVSTACK_GATE_TIMEOUT"])
