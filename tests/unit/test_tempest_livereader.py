"""tempest.LiveReader reports the same events as python-subunit's parser, chunk by chunk."""

from __future__ import annotations

import io
import random

import pytest
import subunit
from subunit import v2

from dsvm import tempest


class Recorder:
    """A StreamResult keeping (test id, status, file name, bytes) of every event."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def startTestRun(self) -> None:  # noqa: N802
        pass

    def stopTestRun(self) -> None:  # noqa: N802
        pass

    def status(self, test_id=None, test_status=None, file_name=None, file_bytes=None,
               **_: object) -> None:
        self.events.append((test_id, test_status, file_name,
                            bytes(file_bytes) if file_bytes else b""))


def _stream() -> bytes:
    out = io.BytesIO()
    w = v2.StreamResultToBytes(out)
    for i in range(30):
        tid = f"tempest.api.volume.test_volumes.VolumesTest.test_{i}[id-{i:04d},smoke]"
        w.status(test_id=tid, test_status="inprogress")
        if i % 7 == 3:
            w.status(test_id=tid, file_name="traceback", file_bytes=b"Traceback: boom \xe2\x9c\x97",
                     mime_type="text/plain;charset=utf8", eof=True)
        w.status(test_id=tid, test_status=["success", "fail", "skip"][i % 3])
    return out.getvalue()


def _reference(data: bytes) -> list[tuple]:
    rec = Recorder()
    subunit.ByteStreamToStreamResult(io.BytesIO(data), non_subunit_name="stdout").run(rec)
    return _merge(rec.events)


def _live(data: bytes, chunks: list[int]) -> list[tuple]:
    rec = Recorder()
    reader = tempest.LiveReader(rec)  # type: ignore[arg-type]
    pos = 0
    for size in chunks:
        reader.feed(data[pos:pos + size])
        pos += size
    reader.feed(data[pos:])
    reader.close()
    return _merge(rec.events)


def _merge(events: list[tuple]) -> list[tuple]:
    # Non-subunit text may be reported in different slices; compare it joined.
    out: list[tuple] = []
    for ev in events:
        if out and ev[0] is None and out[-1][0] is None and ev[2] == out[-1][2] == "stdout":
            out[-1] = (None, out[-1][1], "stdout", out[-1][3] + ev[3])
        else:
            out.append(ev)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_same_events_as_python_subunit_whatever_the_chunking(seed: int):
    data = b"stestr: starting\n" + _stream() + b"trailing noise\n"
    rnd = random.Random(seed)
    chunks = [rnd.randint(1, 300) for _ in range(len(data) // 50)]
    assert _live(data, chunks) == _reference(data)


@pytest.mark.parametrize("cut", [7, 1])
def test_torn_last_packet_is_reported_like_python_subunit(cut: int):
    data = _stream()
    first = data.index(b"\xb3", 1)  # a torn packet header: fewer than 6 bytes of it arrived
    torn = data[:-cut] if cut > 1 else data[:first + 3]
    live = _live(torn, [97] * 40)
    assert live == _reference(torn)
    assert live[-1][0] is not None  # the torn packet shows up, it is not silently dropped


def test_corrupt_packet_is_reported_like_python_subunit():
    data = bytearray(_stream())
    data[200] ^= 0xFF  # break one packet's CRC or length
    assert _live(bytes(data), [64] * 80) == _reference(bytes(data))
