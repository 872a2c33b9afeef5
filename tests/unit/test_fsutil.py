"""fsutil: a file is replaced whole or not at all, with the mode and owner it should have."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dsvm import fsutil


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_replaces_the_file_and_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "local.conf"
    target.write_text("old\n")
    target.chmod(0o640)
    fsutil.write_atomic(target, "new ✓\n")
    assert target.read_text(encoding="utf-8") == "new ✓\n"
    assert _mode(target) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["local.conf"]  # no temporary file left


def test_a_new_file_gets_0666_minus_the_umask_or_the_mode_asked(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        fsutil.write_atomic(tmp_path / "a", b"x")
        assert _mode(tmp_path / "a") == 0o640
    finally:
        os.umask(old)
    fsutil.write_atomic(tmp_path / "b", "secret", mode=0o600)
    assert _mode(tmp_path / "b") == 0o600


def test_a_failure_inside_the_block_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("{}\n")
    with pytest.raises(RuntimeError), fsutil.atomic_open(target) as fh:
        fh.write(b"half")
        raise RuntimeError("the source shrank")
    assert target.read_text() == "{}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_the_block_sees_the_temporary_file_by_name_before_it_replaces_anything(
        tmp_path: Path) -> None:
    target = tmp_path / "sudoers"
    with fsutil.atomic_open(target, mode=0o440) as fh:
        fh.write(b"stack ALL=(root) NOPASSWD:ALL\n")
        fh.flush()
        name = Path(fh.name)
        assert name.parent == tmp_path and fsutil.is_temporary(name.name)
        assert name.read_bytes() == b"stack ALL=(root) NOPASSWD:ALL\n"
        assert _mode(name) == 0o440  # set before the first byte
        assert not target.exists()
    assert _mode(target) == 0o440 and not name.exists()


def test_temporary_names_are_recognised() -> None:
    assert fsutil.is_temporary(".index.html.dsvm-4242-0")
    assert not fsutil.is_temporary("index.html")
    assert not fsutil.is_temporary("notes.dsvm-1-0")  # not hidden: someone's file
    assert not fsutil.is_temporary(".x.dsvm-abc")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file away")
def test_root_gives_the_new_file_the_owner_of_the_file_it_is_written_for(tmp_path: Path) -> None:
    checkout = tmp_path / "devstack"
    checkout.mkdir()
    os.chown(checkout, 65534, 65534)
    fsutil.write_atomic(checkout / "local.conf", "[[local|localrc]]\n", owner_like=checkout)
    st = (checkout / "local.conf").stat()
    assert (st.st_uid, st.st_gid) == (65534, 65534)
    os.chown(checkout / "local.conf", 65533, 65533)  # an existing file keeps its own owner
    fsutil.write_atomic(checkout / "local.conf", "again\n", owner_like=checkout)
    assert (checkout / "local.conf").stat().st_uid == 65533
