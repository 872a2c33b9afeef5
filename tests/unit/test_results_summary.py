"""dsvm.results.summary and known failures: trimming, grouping, labelling (pure)."""

from __future__ import annotations

import datetime as dt

import pytest

from dsvm.errors import ProfileError
from dsvm.results import known, summary
from dsvm.results.stream import Attachment, Run, TestResult

T0 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)


def result(test_id: str, status: str, secs: float = 1.0, trace: str | None = None,
           reason: str | None = None) -> TestResult:
    atts = []
    if trace:
        atts.append(Attachment("traceback", "text/x-traceback", trace.encode()))
    if reason:
        atts.append(Attachment("reason", "text/plain", reason.encode()))
    return TestResult(test_id, status, T0, T0 + dt.timedelta(seconds=secs),
                      frozenset({"worker-0"}), tuple(atts))


TRACE = """Traceback (most recent call last):
  File "/opt/stack/tempest/tempest/api/volume/test_volumes.py", line 40, in test_attach
    self.servers_client.attach(server, volume)

  File "/usr/lib/python3/dist-packages/testtools/testcase.py", line 513, in assertEqual
    self.assertThat(observed, matcher, message)
  File "/usr/lib/python3.11/unittest/case.py", line 57, in testPartExecutor
    yield
tempest.lib.exceptions.TimeoutException: Request timed out
"""


def test_trim_traceback_drops_framework_frames_and_blank_lines() -> None:
    trimmed = summary.trim_traceback(TRACE)
    assert "testtools" not in trimmed and "unittest" not in trimmed
    assert "test_volumes.py" in trimmed and "self.servers_client.attach" in trimmed
    assert trimmed.splitlines()[-1].startswith("tempest.lib.exceptions.TimeoutException")
    assert "" not in trimmed.splitlines()


def test_trim_traceback_keeps_head_and_tail_of_long_ones() -> None:
    long = "Traceback (most recent call last):\n" + "".join(
        f'  File "/opt/x/mod{i}.py", line {i}, in f\n    call()\n' for i in range(50)) + "E: x"
    lines = summary.trim_traceback(long, limit=10).splitlines()
    assert len(lines) == 10 and lines[0].startswith("Traceback") and lines[-1] == "E: x"


def test_summarize_counts_slowest_skips_and_known_bugs() -> None:
    run = Run(tests=(
        result("t.A.test_pass[id-1]", "success", 5),
        result("t.A.test_slow", "success", 50),
        result("t.B.test_fail[id-2,smoke]", "fail", 2, trace=TRACE),
        result("t.B.test_skip1", "skip", 0, reason="Nova is not available"),
        result("t.B.test_skip2", "skip", 0, reason="Nova is not available"),
        result("t.B.test_skip3", "skip", 0, reason="Bug 1"),
        result("t.C.test_x", "xfail", 1),
        result("t.C.test_ux", "uxsuccess", 1),
    ))
    rules = known.parse([{"regex": "TimeoutException", "bug": "https://bugs/1", "on": "traceback"}])
    s = summary.summarize(run, rules)
    assert s.counts == {"fail": 1, "crashed": 0, "uxsuccess": 1, "skip": 3, "xfail": 1,
                        "success": 2}
    assert not s.is_ok
    assert [f.test_id for f in s.failures] == ["t.B.test_fail[id-2,smoke]", "t.C.test_ux"]
    assert s.failures[0].bug == "https://bugs/1" and s.failures[1].bug is None
    assert s.failures[0].message.startswith("tempest.lib.exceptions.TimeoutException")
    assert s.slowest[0] == ("t.A.test_slow", 50.0)
    assert s.skips[0].reason == "Nova is not available" and s.skips[0].count == 2
    text = summary.render_text(s)
    assert "[known: https://bugs/1]" in text and "FAILED: 2 failing test(s), 1 of them" in text
    j = summary.as_json(s)
    assert j["version"] == 1 and j["failures"][0]["bug"] == "https://bugs/1"


def test_known_failure_on_id_never_makes_a_pass() -> None:
    rules = known.parse([{"regex": r"test_pass", "bug": "LP#1"}])
    assert rules.bug_for(result("t.A.test_pass", "success")) is None
    assert rules.bug_for(result("t.A.test_pass", "fail")) == "LP#1"


def test_known_failures_report_every_bad_entry() -> None:
    with pytest.raises(ProfileError) as exc:
        known.parse([{"regex": "(", "bug": "b"}, {"bug": "x"}, {"regex": "a", "bug": "b",
                                                               "on": "log"}, "nope"])
    assert len(exc.value.problems) == 4
    assert "tempest.known_failures[0]" in exc.value.problems[0].where
