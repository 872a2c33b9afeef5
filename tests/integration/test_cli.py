"""The CLI contract: every command has --help with an example; usage errors exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dsvm.cli import COMMANDS, main


def dsvm(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dsvm", *args], capture_output=True,
                          text=True, env=env, timeout=60)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help_with_an_example(command: str, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out and "dsvm" in out


def test_top_level_help_lists_every_command_and_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out
    assert "124 time budget ran out" in out


def test_unknown_command_exits_2_with_usage():
    r = dsvm("frobnicate")
    assert r.returncode == 2
    assert "usage: dsvm" in r.stderr and "invalid choice" in r.stderr


def test_unknown_option_exits_2():
    r = dsvm("profile", "list", "--frob")
    assert r.returncode == 2 and "unrecognized arguments" in r.stderr


def test_broken_profile_exits_2_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tempest:\n  concurency: 4\n")
    r = dsvm("--no-color", "profile", "show", str(bad))
    assert r.returncode == 2
    assert f"{bad}:2: unknown setting 'tempest.concurency'" in r.stderr
    assert "did you mean 'tempest.concurrency'" in r.stderr
    assert "Traceback" not in r.stderr


def test_traceback_only_with_verbose(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: nowhere\n")
    quiet = dsvm("--no-color", "profile", "show", str(bad))
    loud = dsvm("--no-color", "-v", "profile", "show", str(bad))
    assert quiet.returncode == loud.returncode == 2
    assert "Traceback" not in quiet.stderr and "Traceback" in loud.stderr


def test_profile_show_json_has_provenance():
    import json

    r = dsvm("profile", "show", "tempest-smoke", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["settings"]["tempest.selection"]["value"] == "smoke"
    assert data["settings"]["tempest.selection"]["origin"].endswith("tempest-smoke.yaml:5")
