"""``dsvm ini`` and ``dsvm localconf`` as real processes: exit statuses, stdout, stdin batches,
stderr warnings, --help, and the lean import path hook scripts depend on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PY = sys.executable


def dsvm(*args: str, cwd: Path, stdin: str | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "dsvm", *args], cwd=cwd, input=stdin, text=True,
                          capture_output=True, env={**os.environ, **(env or {})}, timeout=60)


def test_hook_script_calls(tmp_path: Path) -> None:
    conf = tmp_path / "cinder.conf"
    conf.write_text("[DEFAULT]\ndebug = True\n")
    assert dsvm("ini", "set", "-sudo", str(conf), "DEFAULT", "debug", "False", cwd=tmp_path).returncode == 0
    got = dsvm("ini", "get", str(conf), "DEFAULT", "debug", cwd=tmp_path)
    assert (got.returncode, got.stdout) == (0, "False\n")
    assert dsvm("ini", "has", str(conf), "DEFAULT", "nope", cwd=tmp_path).returncode == 1
    assert dsvm("ini", "has", str(conf), "DEFAULT", "debug", cwd=tmp_path).returncode == 0
    assert conf.read_text() == "[DEFAULT]\ndebug = False\n"


def test_values_that_look_like_options_are_values(tmp_path: Path) -> None:
    conf = tmp_path / "x.conf"
    assert dsvm("ini", "set", str(conf), "a", "h", "--help", cwd=tmp_path).returncode == 0
    assert dsvm("ini", "set", str(conf), "a", "n", "-n", cwd=tmp_path).returncode == 0
    assert conf.read_text() == "\n[a]\nn = \nh = --help\n"


def test_missing_directory_warns_once_and_exits_0(tmp_path: Path) -> None:
    result = dsvm("ini", "set", str(tmp_path / "no/x.conf"), "a", "b", "c", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and str(tmp_path / "no/x.conf") in result.stderr


def test_apply_from_stdin_in_one_process(tmp_path: Path) -> None:
    conf = tmp_path / "nova.conf"
    conf.write_text("[DEFAULT]\nold = 1\n")
    edits = "set DEFAULT debug True\ndel DEFAULT old\nadd filter item one two\nget DEFAULT debug\n"
    result = dsvm("ini", "apply", str(conf), cwd=tmp_path, stdin=edits)
    assert (result.returncode, result.stdout) == (0, "True\n")
    assert conf.read_text() == "[DEFAULT]\ndebug = True\n\n[filter]\nitem = one\nitem = two\n"


def test_apply_yaml_file_and_bad_edits_change_nothing(tmp_path: Path) -> None:
    conf = tmp_path / "c.conf"
    conf.write_text("[a]\n")
    good = tmp_path / "edits.yaml"
    good.write_text("- set: [a, san_password, s3cret]\n- set: [a, san_ip, 192.0.2.5]\n")
    assert dsvm("ini", "apply", str(conf), str(good), cwd=tmp_path).returncode == 0
    assert conf.read_text() == "[a]\nsan_ip = 192.0.2.5\nsan_password = s3cret\n"
    assert conf.stat().st_mode & 0o007 == 0
    bad = tmp_path / "bad.txt"
    bad.write_text("set a x 1\nexplode a b\n")
    result = dsvm("ini", "apply", str(conf), str(bad), cwd=tmp_path)
    assert result.returncode == 2 and f"{bad}:2" in result.stderr
    assert "x = 1" not in conf.read_text()


def test_help_and_unknown_action(tmp_path: Path) -> None:
    helped = dsvm("ini", "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "iniset" in helped.stdout and "example" in helped.stdout
    unknown = dsvm("ini", "frob", "x", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown ini action" in unknown.stderr


def test_lean_import_path(tmp_path: Path) -> None:
    conf = tmp_path / "x.conf"
    conf.write_text("[a]\nb = 1\n")
    result = subprocess.run([PY, "-X", "importtime", "-m", "dsvm", "ini", "get", str(conf),
                             "a", "b"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.stdout == "1\n"
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    heavy = {m for m in imported if m.split(".")[0] in
             {"rich", "sh", "yaml", "stestr", "sqlalchemy", "subunit", "dsvm.console"}}
    assert heavy == set()
    assert "dsvm.commands.workspace" not in imported   # no other command's parser is built


def test_localconf_extract_and_merge(tmp_path: Path) -> None:
    top = tmp_path / "devstack"
    top.mkdir()
    local_conf = top / "local.conf"
    local_conf.write_text("[[local|localrc]]\nADMIN_PASSWORD=secret\n"
                          "[[post-config|$CINDER_CONF]]\n[vendor-1]\nsan_ip = $HOST_IP\n")
    env = {"CINDER_CONF": str(tmp_path / "etc/cinder/cinder.conf"), "HOST_IP": "192.0.2.9"}
    assert dsvm("localconf", "extract-localrc", str(local_conf), cwd=tmp_path).returncode == 0
    auto = top / ".localrc.auto"
    assert auto.read_text() == "# Generated file, do not edit\nADMIN_PASSWORD=secret\n"
    assert auto.stat().st_mode & 0o007 == 0
    merged = dsvm("localconf", "merge", str(local_conf), "post-config", cwd=tmp_path, env=env)
    assert merged.returncode == 0, merged.stderr
    assert (tmp_path / "etc/cinder/cinder.conf").read_text() == \
        "\n[vendor-1]\nsan_ip = 192.0.2.9\n"


@pytest.mark.parametrize("value", ["$(touch pwned)", "`touch pwned`"])
def test_localconf_refuses_command_substitution(tmp_path: Path, value: str) -> None:
    local_conf = tmp_path / "local.conf"
    local_conf.write_text(f"[[post-config|$NOVA_CONF]]\n[DEFAULT]\nx = {value}\n")
    env = {"NOVA_CONF": str(tmp_path / "nova.conf")}
    result = dsvm("localconf", "merge", str(local_conf), "post-config", cwd=tmp_path, env=env)
    assert result.returncode == 2 and "refuses" in result.stderr
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "nova.conf").exists()


def test_a_bad_batch_is_said_once_with_the_count_and_the_first_line_numbers(tmp_path: Path
                                                                           ) -> None:
    conf = tmp_path / "c.conf"
    conf.write_text("[a]\n")
    bad = tmp_path / "edits.txt"  # 300 edits in the wrong format (crudini's, say)
    bad.write_text("set a x 1\n" + "".join(f"--set c.conf a o{n} v\n" for n in range(300)))
    result = dsvm("ini", "apply", str(conf), str(bad), cwd=tmp_path)
    assert result.returncode == 2 and conf.read_text() == "[a]\n"
    lines = result.stderr.splitlines()
    assert len(lines) < 8, result.stderr
    assert "300 bad edit(s)" in lines[0]
    assert sum("unknown action '--set'" in line for line in lines) == 1
    assert f"{bad}: lines 2, 3, 4, 5, 6 and 295 more: unknown action '--set' (300 edits)" \
        in result.stderr


def test_a_batch_with_different_problems_names_each(tmp_path: Path) -> None:
    conf = tmp_path / "c.conf"
    conf.write_text("[a]\n")
    bad = tmp_path / "edits.yaml"
    bad.write_text("- set: [a, x, 1]\n- explode: [a, b]\n- 42\n- 43\n")
    result = dsvm("ini", "apply", str(conf), str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{bad}: edit 2: unknown action 'explode'" in result.stderr
    assert f"{bad}: edits 3, 4: an edit is a mapping such as {{set: [S, O, V]}} (2 edits)" \
        in result.stderr
