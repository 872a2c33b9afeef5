"""``profile show``, ``run --plan`` and the Tempest phase agree, under each devstack-gate variable.

The two bugs of issue 14 lived in the gaps between them: ``run --plan`` computed its own
concurrency (half the CPUs above 3) while the run used every CPU, and ``profile show`` printed
the profile's ``tempest.selection`` while DEVSTACK_GATE_TEMPEST_FULL made the run use ``full``.
Each case below sets one variable in the environment of all three: the real CLI in-process
for ``profile show --json`` and ``run --plan --json``, and the real phase on a real stestr
suite for what is actually selected and run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from dsvm import cli, phase, profile, tempest
from tests.fixtures.tempest_builders import copy_suite, write_profile

CPUS = os.cpu_count() or 1  # on 4 CPUs or more the old --plan said half of them

# (variable, value, selection, origin of tempest.selection, concurrency, serial passes)
CASES: list[tuple[str, str, str, str, int, bool]] = [
    ("", "", "smoke", "profile", CPUS, False),
    ("DEVSTACK_GATE_TEMPEST_REGEX", "test_volume_list", "regex",
     "env DEVSTACK_GATE_TEMPEST_REGEX", CPUS, False),
    ("DEVSTACK_GATE_TEMPEST_ALL_PLUGINS", "1", "all", "env DEVSTACK_GATE_TEMPEST_ALL_PLUGINS",
     CPUS, False),
    ("DEVSTACK_GATE_TEMPEST_ALL", "1", "all", "env DEVSTACK_GATE_TEMPEST_ALL", CPUS, False),
    ("DEVSTACK_GATE_TEMPEST_DISABLE_TENANT_ISOLATION", "1", "full-serial",
     "env DEVSTACK_GATE_TEMPEST_DISABLE_TENANT_ISOLATION", CPUS, True),
    ("DEVSTACK_GATE_TEMPEST_FULL", "1", "full", "env DEVSTACK_GATE_TEMPEST_FULL", CPUS, False),
    ("DEVSTACK_GATE_SMOKE_SERIAL", "1", "smoke-serial", "env DEVSTACK_GATE_SMOKE_SERIAL",
     CPUS, True),
    ("DEVSTACK_GATE_TEMPEST_SCENARIOS", "1", "scenario", "env DEVSTACK_GATE_TEMPEST_SCENARIOS",
     CPUS, True),
    ("DEVSTACK_GATE_TEMPEST_NOTESTS", "1", "none", "env DEVSTACK_GATE_TEMPEST_NOTESTS",
     CPUS, False),
    # Above 3 CPUs devstack-gate's own default was half of them; 5 is neither.
    ("TEMPEST_CONCURRENCY", "5", "smoke", "profile", 5, False),
]


@pytest.fixture
def job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A profile like cinder-lvm's (its own selection) on the fixture suite; a clean env."""
    for key in list(os.environ):
        if key.startswith(("DEVSTACK_GATE", "TEMPEST_", "ZUUL_", "DSVM_", "BUILD_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NO_COLOR", "1")
    suite = copy_suite(tmp_path / "tempest")
    stestr = tempest.which_stestr() or ""  # the suite imports its `tempest` with dsvm's venv
    return write_profile(tmp_path, {
        "description": "agreement", "paths": {"base": str(tmp_path / "base")},
        "tempest": {"selection": "smoke", "dir": str(suite), "user": "", "stestr": stestr,
                    "exclude": [{"regex": "test_volume_delete_hangs",
                                 "reason": "hangs on purpose ('all' would wait for it)"}]}})


def _cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert cli.main(list(argv)) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(("var", "value", "name", "origin", "workers", "serial"), CASES,
                         ids=[c[0] or "profile" for c in CASES])
def test_profile_show_plan_and_run_agree(job: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str], var: str,
                                         value: str, name: str, origin: str, workers: int,
                                         serial: bool) -> None:
    if var:
        monkeypatch.setenv(var, value)
    shown = _cli_json(capsys, "--profile", str(job), "profile", "show", "--json")["settings"]
    assert shown["tempest.selection"]["value"] == name
    assert shown["tempest.selection"]["origin"].startswith(str(job) if origin == "profile"
                                                           else origin)

    ws = tmp_path / "ws"
    planned = _cli_json(capsys, "--profile", str(job), "run", "--plan", "--json", "--from",
                        "tempest", "--to", "tempest", "--workspace", str(ws))
    plan = planned["phases"]["tempest"]
    assert (plan["name"], plan["concurrency"]) == (name, workers)

    settings = profile.resolve(str(job), dict(os.environ))
    ctx = phase.context(settings, dict(os.environ), workspace=ws)
    result = tempest.run_phase(ctx)
    if name == "none":
        assert result.summary.startswith("skipped: selection 'none' (DEVSTACK_GATE_TEMPEST_NOTES")
        assert plan["passes"] == []
        return
    selected = {k: v for k, v in plan.items() if k != "environment"}  # the checkout's facts
    assert result.outputs["selection"] == selected  # what ran is what --plan printed
    assert result.outputs["counts"]["selected"] > 0
    argv_lines = [ln for ln in (ws / ".dsvm/tempest.log").read_text().splitlines()
                  if "stestr" in ln and " run " in ln]
    assert len(argv_lines) == len(plan["passes"])
    assert plan["passes"][0]["serial"] is serial
    for line, p in zip(argv_lines, plan["passes"], strict=True):
        assert ("--serial" if p["serial"] else f"--concurrency {workers}") in line
