"""Typed phase outputs: their as_json() is the state file's shape, and from_json() reads it back."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsvm import phase
from dsvm.phase import (
    ConfigureOutputs,
    LogsOutputs,
    RerunOutputs,
    ResultsOutputs,
    StackOutputs,
    TempestOutputs,
)
from tests.fixtures.tempest_builders import make_settings

SELECTION = {"name": "full", "why": "default", "concurrency": 2, "test_timeout": 0,
             "notes": [], "passes": [], "exclude": []}
COUNTS = {"selected": 3, "passed": 2, "failed": 1, "skipped": 0, "xfail": 0, "uxsuccess": 0,
          "crashed": 0}

# The exact shapes the state file had when the phases wrote dicts (keys in their order).
SHAPES = [
    (TempestOutputs, {"subunit": "/ws/.dsvm/tempest/testrepository.subunit", "counts": COUNTS,
                      "selection": SELECTION, "failures": ["t.a"]}),
    (TempestOutputs, {"subunit": "/s", "counts": COUNTS, "selection": SELECTION,
                      "failures": ["t.a"], "flaky": ["t.a"], "still_failing": [],
                      "rerun_subunit": "/r", "rerun_counts": {"passed": 1}}),
    (ConfigureOutputs, {"local_conf": "/opt/stack/new/devstack/local.conf",
                        "backends": ["lvmdriver-1"]}),
    (ResultsOutputs, {"subunit": "/s", "summary": "/sum", "junit": "/j", "run_uuid": "u-1",
                      "db": "sqlite:///x.db", "history": "/h", "html": "/r.html",
                      "counts": {"success": 2}, "ok": True}),
    (ResultsOutputs, {"subunit": "/s", "summary": "/sum", "junit": "/j",
                      "db_error": "cannot connect", "html": "/r.html", "counts": {}, "ok": False}),
    (StackOutputs, {"devstack_dir": "/opt/stack/new/devstack", "user": "stack",
                    "log": "/ws/.dsvm/stack.sh.log", "exit_code": 1, "timed_out": False,
                    "seconds": 12.5, "phases": [{"name": "install nova", "seconds": 3.0}],
                    "failed_phase": "install nova", "component_timing": {"pip_install": 3},
                    "total_runtime": 12, "completed_seconds": None, "first_error": "boom",
                    "last_lines": ["a", "b"], "stackenv": {"DEST": "/opt/stack/new"},
                    "tempest_conf": None}),
    (LogsOutputs, {"logs_dir": "/ws/logs", "url": "", "manifest": "/ws/logs/manifest.json",
                   "files": 42, "redactions": 3, "problems": []}),
    (LogsOutputs, {"logs_dir": "/ws/logs", "url": "https://logs.example.org/45/1/",
                   "manifest": "/ws/logs/manifest.json", "files": 42, "redactions": 0,
                   "problems": ["x: unreadable"], "publish": {"url": "https://logs"}}),
]


@pytest.mark.parametrize(("kind", "data"), SHAPES)
def test_round_trip_keeps_the_recorded_shape(kind: type[phase.Outputs], data: dict) -> None:
    typed = kind.from_json(data)
    assert typed.as_json() == data
    assert list(typed.as_json()) == list(data)  # key order too: state.json diffs stay quiet


def test_rerun_outputs_shape_of_dsvm_tempest_rerun_failed() -> None:
    rerun = RerunOutputs("/r", {"passed": 1}, ("t.a",), ())
    assert rerun.as_json() == {"subunit": "/r", "counts": {"passed": 1}, "flaky": ["t.a"],
                               "still_failing": []}


def test_later_phases_read_earlier_outputs_typed(tmp_path: Path) -> None:
    ctx = phase.context(make_settings(tmp_path), {}, workspace=tmp_path)
    assert ctx.earlier(TempestOutputs) is None  # nothing ran, no state file
    ctx.outputs["tempest"] = SHAPES[0][1]
    tempest = ctx.earlier(TempestOutputs)
    assert tempest is not None and tempest.subunit.endswith("testrepository.subunit")
    assert tempest.counts["failed"] == 1 and tempest.rerun is None
    assert ctx.earlier(ResultsOutputs) is None
