"""Known failures from the profile (``tempest.known_failures``): a regex on the test id or the
traceback → a bug link. A match labels a failure; it never turns it into a pass."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dsvm.errors import Problem, ProfileError
from dsvm.results.stream import TestResult

KEY = "tempest.known_failures"


@dataclass(frozen=True)
class KnownFailure:
    """One rule: ``pattern`` searched in the id (``on='id'``) or the traceback."""

    pattern: re.Pattern[str]
    bug: str
    on: str = "id"

    def matches(self, test: TestResult) -> bool:
        if self.on == "traceback":
            return bool(self.pattern.search(test.details_text()))
        return bool(self.pattern.search(test.test_id))


@dataclass(frozen=True)
class KnownFailures:
    """The profile's rules, in order; the first match wins."""

    rules: tuple[KnownFailure, ...] = ()

    def bug_for(self, test: TestResult) -> str | None:
        """The bug of the first rule matching a failed test, or None."""
        if not test.is_failure:
            return None
        for rule in self.rules:
            if rule.matches(test):
                return rule.bug
        return None

    def label(self, tests: Iterable[TestResult]) -> dict[str, str]:
        """test id → bug for every failed test a rule matches."""
        found = {}
        for test in tests:
            bug = self.bug_for(test)
            if bug:
                found[test.test_id] = bug
        return found


def from_settings(settings: Any) -> KnownFailures:
    """The profile's known failures (empty without settings); ProfileError when malformed."""
    if settings is None:
        return KnownFailures()
    return parse(list(settings.tempest.known_failures))


def parse(entries: Iterable[Mapping[str, Any]] | None, where: str = KEY) -> KnownFailures:
    """Validate profile entries ``{regex, bug, on}``; raise ProfileError listing every problem."""
    rules, problems = [], []
    for i, entry in enumerate(entries or []):
        at = f"{where}[{i}]"
        if not isinstance(entry, Mapping):
            problems.append(Problem(at, "must be a mapping {regex, bug, on}"))
            continue
        regex, bug, on = entry.get("regex"), entry.get("bug"), entry.get("on", "id")
        if not regex or not bug:
            problems.append(Problem(at, "needs both 'regex' and 'bug'"))
            continue
        if on not in ("id", "traceback"):
            problems.append(Problem(at, f"'on' is {on!r}; use 'id' or 'traceback'"))
            continue
        try:
            rules.append(KnownFailure(re.compile(str(regex)), str(bug), on))
        except re.error as exc:
            problems.append(Problem(at, f"invalid regex {regex!r}: {exc}"))
    if problems:
        raise ProfileError(f"{len(problems)} bad known_failures entr"
                           f"{'ies' if len(problems) > 1 else 'y'}", problems=problems)
    return KnownFailures(tuple(rules))
