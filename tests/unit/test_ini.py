"""dsvm.devstack.ini beyond the vectors: the pure text API, bash echo, the sed model, batch
edits and atomic writes (mode, owner, secrets, symlinks)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dsvm.commands.ini import parse_edits
from dsvm.devstack import ini, sed
from dsvm.errors import UsageError

CINDER = "[DEFAULT]\ndebug = True\n\n[lvmdriver-1]\nvolume_driver = lvm\n"


def test_set_option_replaces_in_place_and_adds_at_section_top() -> None:
    text = ini.set_option(CINDER, "DEFAULT", "debug", "False")
    text = ini.set_option(text, "DEFAULT", "enabled_backends", "vendor-1")
    assert text == ("[DEFAULT]\nenabled_backends = vendor-1\ndebug = False\n\n"
                    "[lvmdriver-1]\nvolume_driver = lvm\n")


def test_set_option_on_no_file_starts_with_a_blank_line() -> None:
    assert ini.set_option(None, "vendor-1", "san_ip", "192.0.2.50") == \
        "\n[vendor-1]\nsan_ip = 192.0.2.50\n"


def test_get_and_has_follow_devstack() -> None:
    assert ini.get_option("[a]\nx = 1 # c\n", "a", "x") == "1 # c"
    assert ini.get_option("[a]\nx = -n\n", "a", "x") == ""
    assert ini.has_option("[a]\nx =\n", "a", "x")
    assert not ini.has_option("[a]\n#x = 1\n", "a", "x")
    assert ini.get_multiline("[a]\nm = 1\nm = 2\n", "a", "m") == "1 2"
    assert ini.sections("[a]\n[b c]\n") == ["a", "b", "c"]


def test_delete_comment_uncomment_and_missing_file() -> None:
    assert ini.delete_option("[a]\nx = 1\ny = 2\n", "a", "x") == "[a]\ny = 2\n"
    commented = ini.comment_option("[a]\nx = 1\n", "a", "x")
    assert commented == "[a]\n#x = 1\n"
    assert ini.uncomment_option(commented, "a", "x") == "[a]\nx = 1\n"
    assert ini.delete_option(None, "a", "x") is None
    assert ini.add_literal("[a]\n", "a", "m", "v  w") == "[a]\nm = v  w\n"
    assert ini.set_multiline("[a]\nm = 0\n", "a", "m", "1", "2") == "[a]\nm = 1\nm = 2\n"


@pytest.mark.parametrize(("args", "printed"), [
    (["a", "b"], "a b\n"), (["-n", "x"], "x"), (["-e", "a\\tb"], "a\tb\n"),
    (["-E", "a\\tb"], "a\\tb\n"), (["-ne"], ""), (["--", "x"], "-- x\n"), (["-x"], "-x\n"),
    (["-e", "a\\cb"], "a"),
])
def test_echo_is_bash_builtin(args: list[str], printed: str) -> None:
    assert ini.echo(args) == printed


@pytest.mark.parametrize(("script", "text", "out"), [
    ("s/a*/X/g", "baaac", "XbXcX"),
    ("/^\\[a\\]/,/^\\[.*\\]/ d", "[a]\nx\n[b]\ny\n", "y\n"),
    ("s/\\(a\\)\\(b\\)/\\2\\1/", "ab\n", "ba\n"),
    ("s/x\\{2\\}/Y/", "xxx\n", "Yx\n"),
    ("/^a/ a\\\nadded\n", "a", "a\nadded\n"),
    ("s|[^ \\t]*#[ \\t]*\\(o[ \\t]*=.*$\\)|\\1|", "  # o = 1\n", "  o = 1\n"),
])
def test_sed_model(script: str, text: str, out: str) -> None:
    assert sed.run_sed(script, text) == out


@pytest.mark.parametrize("script", ["/a", "s/a/b/q", "/a/ x", "{ p", "s/\\(a/b/", "/a/b/c/ p"])
def test_sed_rejects_what_gnu_sed_rejects(script: str) -> None:
    with pytest.raises(sed.SedError):
        sed.run_sed(script, "a\n")


def test_session_batch_writes_each_file_once(tmp_path: Path) -> None:
    conf = tmp_path / "nova.conf"
    conf.write_text(CINDER)
    session = ini.Session()
    for k in range(50):
        session.call("iniset", [str(conf), "DEFAULT", f"opt{k}", str(k)])
    inode = conf.stat().st_ino
    assert conf.read_text() == CINDER          # nothing written before commit
    assert session.commit() == [str(conf)]
    assert conf.stat().st_ino != inode         # replaced by rename, never rewritten in place
    assert ini.iniget(conf, "DEFAULT", "opt49") == "49"
    assert [p.name for p in tmp_path.iterdir()] == ["nova.conf"]   # no temp file left


def test_write_keeps_mode(tmp_path: Path) -> None:
    conf = tmp_path / "c.conf"
    conf.write_text("[a]\n")
    conf.chmod(0o640)
    ini.iniset(conf, "a", "b", "c")
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_write_keeps_owner(tmp_path: Path) -> None:
    conf = tmp_path / "c.conf"
    conf.write_text("[a]\n")
    os.chown(conf, 65534, 65534)
    ini.iniset(conf, "a", "b", "c")
    assert (conf.stat().st_uid, conf.stat().st_gid) == (65534, 65534)


def test_secret_never_left_world_readable(tmp_path: Path) -> None:
    conf = tmp_path / "cinder.conf"
    conf.write_text("[vendor]\n")
    conf.chmod(0o644)
    ini.iniset(conf, "vendor", "san_password", "s3cret")
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640
    fresh = tmp_path / "new.conf"
    old = os.umask(0o022)
    try:
        ini.iniset(fresh, "x", "auth_token", "t0ken")
    finally:
        os.umask(old)
    assert stat.S_IMODE(fresh.stat().st_mode) & 0o007 == 0


def test_symlink_is_replaced_like_sed_i(tmp_path: Path) -> None:
    target = tmp_path / "real.conf"
    target.write_text("[a]\nx = 1\n")
    link = tmp_path / "link.conf"
    link.symlink_to(target)
    ini.iniset(link, "a", "x", "2")
    assert not link.is_symlink() and link.read_text() == "[a]\nx = 2\n"
    assert target.read_text() == "[a]\nx = 1\n"


def test_missing_file_is_not_created_by_delete(tmp_path: Path) -> None:
    session = ini.Session()
    session.call("inidelete", [str(tmp_path / "none.conf"), "a", "b"])
    session.commit()
    assert not (tmp_path / "none.conf").exists()
    assert "none.conf" in session.warnings[0]


def test_parse_edits_lines_and_yaml(tmp_path: Path) -> None:
    lines = "# vendor hook\nset DEFAULT debug True\ndel database connection\n" \
            "add-literal filter item 'two words'\niniset -sudo a b c\n"
    assert parse_edits(lines, "F", "<stdin>") == [
        ("iniset", ["F", "DEFAULT", "debug", "True"]),
        ("inidelete", ["F", "database", "connection"]),
        ("iniadd_literal", ["F", "filter", "item", "two words"]),
        ("iniset", ["-sudo", "F", "a", "b", "c"]),
    ]
    yaml_text = "- set: [DEFAULT, debug, true]\n- {del: [a, b], file: other.conf}\n"
    assert parse_edits(yaml_text, "F", "e.yaml") == [
        ("iniset", ["F", "DEFAULT", "debug", "True"]),
        ("inidelete", ["other.conf", "a", "b"]),
    ]


def test_parse_edits_names_every_bad_line() -> None:
    with pytest.raises(UsageError) as err:
        parse_edits("set a b c\nfrobnicate x\nset 'unclosed\n", "F", "hook.txt")
    assert [p.where for p in err.value.problems] == ["hook.txt:2", "hook.txt:3"]
    assert err.value.exit_code == 2
