"""budget.plan: both devstack-gate conventions, the split, and budgets too small to run.

The environment goes through profile.resolve, as in a job: environ parses the variables once,
the budget takes them typed.
"""

from __future__ import annotations

import pytest

from dsvm import budget, profile
from dsvm.errors import UsageError


def budget_of(env: dict[str, str], **timeout: int) -> budget.Budget:
    """The budget of the base profile under ``env``, with ``timeout.*`` given as options."""
    options = {f"timeout.{k}": v for k, v in timeout.items()}
    return budget.from_settings(profile.resolve("base", env={"HOME": "/nonexistent", **env},
                                                options=options))


@pytest.mark.parametrize(
    ("env", "source", "total", "run"),
    [
        # devstack-gate E3 default: 7 200 000 ms − 10 min buffer = 110 min for the phases
        ({"BUILD_TIMEOUT": "7200000"}, "BUILD_TIMEOUT", 7200, 6600),
        # milliseconds are not floored to minutes (devstack-gate did: 90 s → 1 min)
        ({"BUILD_TIMEOUT": "690000"}, "BUILD_TIMEOUT", 690, 90),
        ({"BUILD_TIMEOUT": "3600000", "DEVSTACK_GATE_TIMEOUT_BUFFER": "20"},
         "BUILD_TIMEOUT", 3600, 2400),
        # BUILD_TIMEOUT wins over an old DEVSTACK_GATE_TIMEOUT (overwritten since 2016-02)
        ({"BUILD_TIMEOUT": "3600000", "DEVSTACK_GATE_TIMEOUT": "120"},
         "BUILD_TIMEOUT", 3600, 3000),
        # E1/E2 jobs: DEVSTACK_GATE_TIMEOUT minutes is the phases' budget, buffer on top
        ({"DEVSTACK_GATE_TIMEOUT": "120"}, "DEVSTACK_GATE_TIMEOUT", 7800, 7200),
        ({"DEVSTACK_GATE_TIMEOUT": "60", "DEVSTACK_GATE_TIMEOUT_BUFFER": "0"},
         "DEVSTACK_GATE_TIMEOUT", 3600, 3600),
        # neither: the profile's job_minutes (45 here) minus the buffer
        ({}, "profile", 2700, 2100),
    ],
)
def test_conventions(env: dict[str, str], source: str, total: float, run: float) -> None:
    b = budget_of(env, job_minutes=45)
    assert (b.source, b.total_seconds, b.run_seconds) == (source, total, run)
    assert source.split("_")[0] in b.why or source == "profile" and "job_minutes=45" in b.why


def test_ignored_gate_timeout_is_said() -> None:
    b = budget_of({"BUILD_TIMEOUT": "3600000", "DEVSTACK_GATE_TIMEOUT": "120"})
    assert "DEVSTACK_GATE_TIMEOUT=120 ignored" in b.why


def test_split_reserves_tests_and_logs() -> None:
    b = budget_of({"BUILD_TIMEOUT": "7200000"}, tests_minutes=40, logs_minutes=5)
    assert b.stack_seconds == 6600 - 2400
    assert b.logs_seconds == 300
    items = [r[0] for r in b.rows()]
    assert items == ["job", "phases", "stack.sh", "buffer", "logs"]
    assert b.as_json()["stack_seconds"] == 4200


@pytest.mark.parametrize(
    ("env", "kwargs", "where"),
    [
        ({"BUILD_TIMEOUT": "300000"}, {}, "BUILD_TIMEOUT"),  # 5 min − 10 min buffer
        ({"BUILD_TIMEOUT": "600000"}, {}, "BUILD_TIMEOUT"),  # exactly the buffer
        ({}, {"job_minutes": 10}, "profile"),
        ({"BUILD_TIMEOUT": "3600000"}, {"tests_minutes": 50}, "timeout.tests_minutes"),
        ({"DEVSTACK_GATE_TIMEOUT": "0", "DEVSTACK_GATE_TIMEOUT_BUFFER": "0"}, {},
         "DEVSTACK_GATE_TIMEOUT"),
    ],
)
def test_too_small_is_bad_input(env: dict[str, str], kwargs: dict[str, int], where: str) -> None:
    with pytest.raises(UsageError) as err:
        budget_of(env, **kwargs)
    assert err.value.exit_code == 2
    assert [p.where for p in err.value.problems] == [where]
    assert err.value.problems[0].hint


def test_not_a_number_names_the_unit() -> None:
    with pytest.raises(UsageError) as err:
        budget_of({"BUILD_TIMEOUT": "2h"})
    assert err.value.exit_code == 2
    (problem,) = err.value.problems
    assert problem.where == "env BUILD_TIMEOUT" and "BUILD_TIMEOUT='2h'" in problem.message
    assert "milliseconds" in (problem.hint or "")


@pytest.mark.parametrize(("seconds", "text"), [(42, "42s"), (725, "12m 05s"),
                                               (3720, "1h 02m"), (-90, "-1m 30s")])
def test_fmt_seconds(seconds: float, text: str) -> None:
    assert budget.fmt_seconds(seconds) == text
