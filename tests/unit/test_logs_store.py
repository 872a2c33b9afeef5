"""Storing one file: the gzip engines (ISA-L's igzip and zlib) write what gzip reads back."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from dsvm.logs import store
from dsvm.logs.redact import Redactor

TEXT = b"".join(b"2026-11-25 12:00:%02d.000 DEBUG nova.api [-] request %d ok\n" % (i % 60, i)
                for i in range(20000)) + b"connection = mysql+pymysql://root:DbPw-secret@db/nova\n"


@pytest.mark.parametrize("level,expected", [(0, 0), (1, 1), (3, 1), (4, 2), (6, 2), (7, 3),
                                            (9, 3)])
def test_zlib_levels_map_onto_isal_levels(level: int, expected: int) -> None:
    assert store.isal_level(level) == expected


def test_engine_choice() -> None:
    pytest.importorskip("isal")
    assert store.gzip_engine("auto") == "isal"
    assert store.gzip_engine("isal") == "isal"
    assert store.gzip_engine("zlib") == "zlib"


@pytest.mark.parametrize("engine", ["zlib", "isal"])
@pytest.mark.parametrize("mode", ["redact", "redact-gz"])
def test_each_engine_writes_gzip_that_gzip_reads(tmp_path: Path, engine: str, mode: str) -> None:
    if engine == "isal":
        pytest.importorskip("isal")
    src = tmp_path / "in.log"
    src.write_bytes(gzip.compress(TEXT) if mode == "redact-gz" else TEXT)
    dest = tmp_path / "out.txt.gz"
    task = store.Task(str(src), str(src), str(dest), "out.txt.gz", mode, compress=True,
                      level=6, engine=engine)
    stored = store.store(task, Redactor.of(["DbPw-secret"]))
    assert not stored.skipped and stored.redactions == 1
    expected = TEXT.replace(b"DbPw-secret", b"****")
    assert gzip.decompress(dest.read_bytes()) == expected
    assert stored.stored == dest.stat().st_size < len(TEXT) // 4


def test_the_same_input_gives_the_same_bytes(tmp_path: Path) -> None:
    pytest.importorskip("isal")
    src = tmp_path / "in.log"
    src.write_bytes(TEXT)
    outs = []
    for n in range(2):
        dest = tmp_path / f"out{n}.gz"
        store.store(store.Task(str(src), str(src), str(dest), dest.name, "redact", True,
                               engine="isal"), Redactor())
        outs.append(dest.read_bytes())
    assert outs[0] == outs[1]
