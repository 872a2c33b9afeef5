"""Every recorded devstack ini result (spec/vectors/ini.jsonl), replayed exactly as its README says:
through the Python API and through ``dsvm ini`` (in process, stdout and exit status compared)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dsvm import cli
from dsvm.devstack import ini
from tests.fixtures.devstack_vectors import ACTION, load, read_or_none, write_bytes

CASES = load("ini.jsonl")


def _replay_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "work"          # the empty working directory the README asks for
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path / "f.conf"


def _args(call: dict, path: Path) -> list[str]:
    return [a.replace("{FILE}", str(path)) for a in call["args"]]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_api_matches_devstack(case: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _replay_dir(tmp_path, monkeypatch)
    write_bytes(path, case["input"])
    stdout, rcs = "", []
    for call in case["calls"]:
        session = ini.Session()
        result = session.call(call["fn"], _args(call, path))
        session.commit()
        stdout += result.stdout
        rcs.append(result.rc)
    assert read_or_none(path) == case["output"]
    assert stdout == case["stdout"]
    assert rcs[-1] == case["rc"]
    if "rcs" in case:
        assert rcs == case["rcs"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_cli_matches_devstack(case: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capfd: pytest.CaptureFixture[str]) -> None:
    path = _replay_dir(tmp_path, monkeypatch)
    write_bytes(path, case["input"])
    stdout, rc = "", 0
    for call in case["calls"]:
        rc = cli.main(["ini", ACTION[call["fn"]], *_args(call, path)])
        stdout += capfd.readouterr().out
    assert read_or_none(path) == case["output"]
    assert stdout == case["stdout"]
    assert rc == case["rc"]


def test_batch_session_gives_the_same_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """All calls of a multi-call case in one Session (one write) give the recorded file."""
    multi = [c for c in CASES if len(c["calls"]) > 1]
    assert multi
    for case in multi:
        path = tmp_path / (case["name"].replace("/", "_") + ".conf")
        write_bytes(path, case["input"])
        session = ini.Session()
        for call in case["calls"]:
            session.call(call["fn"], _args(call, path))
        session.commit()
        assert read_or_none(path) == case["output"], case["name"]


def test_missing_parent_directory_warns_with_the_path(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "x.conf"
    session = ini.Session()
    assert session.call("iniset", [str(target), "a", "b", "c"]).rc == 0
    session.commit()
    assert not target.exists() and not target.parent.exists()
    assert str(target) in session.warnings[0]
    assert os.listdir(tmp_path) == []
