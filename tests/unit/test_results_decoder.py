"""dsvm.results.decoder reports the same events as python-subunit's parser (every field), chunk
by chunk as tempest's live counts feed it and whole as ``stream.parse`` does; and a parsed Run
is the one python-subunit's events would give."""

from __future__ import annotations

import datetime as dt
import io
import random
from collections.abc import Iterable
from pathlib import Path

import pytest
import subunit
from subunit import v2

from dsvm.results import decoder, stream
from tests.fixtures.results_streams import results_streams, synthetic_stream

__all__ = ["results_streams"]  # the session fixture, used below

FIELDS = ("test_id", "test_status", "test_tags", "runnable", "file_name", "file_bytes", "eof",
          "mime_type", "route_code", "timestamp")


class Recorder:
    """A StreamResult keeping every field of every event."""

    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []

    def startTestRun(self) -> None:  # noqa: N802 - python-subunit calls it
        pass

    def stopTestRun(self) -> None:  # noqa: N802
        pass

    # python-subunit's StreamResult.status: it calls by keyword, dsvm's decoder by position
    def status(self, test_id: str | None = None, test_status: str | None = None,
               test_tags: Iterable[str] | None = None, runnable: bool = True,
               file_name: str | None = None, file_bytes: bytes | None = None,
               eof: bool = False, mime_type: str | None = None,
               route_code: str | None = None, timestamp: dt.datetime | None = None) -> None:
        self.events.append((test_id, test_status,
                            frozenset(test_tags) if test_tags is not None else None, runnable,
                            file_name, bytes(file_bytes) if file_bytes else b"", eof,
                            mime_type, route_code, timestamp))


def _stream() -> bytes:
    out = io.BytesIO()
    w = v2.StreamResultToBytes(out)
    t0 = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
    for i in range(30):
        tid = f"tempest.api.volume.test_volumes.VolumesTest.test_{i}[id-{i:04d},smoke]"
        when = t0 + dt.timedelta(seconds=i, microseconds=7 * i)
        w.status(test_id=tid, test_status="inprogress", timestamp=when,
                 route_code=str(i % 2) if i % 4 else None)
        if i % 7 == 3:
            w.status(test_id=tid, file_name="traceback", file_bytes=b"Traceback: boom \xe2\x9c\x97",
                     mime_type="text/plain;charset=utf8", eof=True, timestamp=when)
        if i % 5 == 1:  # an attachment over 64 bytes and one over 16 KB: 2- and 3-byte sizes
            w.status(test_id=tid, file_name="pythonlogging:''", file_bytes=b"x" * (70 + i * 700),
                     timestamp=when)
        w.status(test_id=tid, test_status=["success", "fail", "skip"][i % 3],
                 test_tags={f"worker-{i % 3}", "smoke"} if i % 2 else None, timestamp=when,
                 runnable=bool(i % 6))
    w.status(test_id="big" * 30, test_status="exists")  # a 90-byte id: a 2-byte length
    return out.getvalue()


def _reference(data: bytes) -> list[tuple[object, ...]]:
    rec = Recorder()
    subunit.ByteStreamToStreamResult(io.BytesIO(data), non_subunit_name="stdout").run(rec)
    return _merge(rec.events)


def _decoded(data: bytes, chunks: list[int]) -> list[tuple[object, ...]]:
    rec = Recorder()
    reader = decoder.Decoder(rec)
    pos = 0
    for size in chunks:
        reader.feed(data[pos:pos + size])
        pos += size
    reader.feed(data[pos:])
    reader.close()
    return _merge(rec.events)


def _merge(events: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    # Non-subunit text may be reported in different slices; compare it joined.
    out: list[tuple[object, ...]] = []
    i_name, i_bytes = FIELDS.index("file_name"), FIELDS.index("file_bytes")
    for ev in events:
        if out and ev[0] is None and out[-1][0] is None and ev[i_name] == out[-1][i_name]:
            prev = list(out[-1])
            prev[i_bytes] = prev[i_bytes] + ev[i_bytes]  # type: ignore[operator]
            out[-1] = tuple(prev)
        else:
            out.append(ev)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_same_events_as_python_subunit_whatever_the_chunking(seed: int) -> None:
    data = b"stestr: starting\n" + _stream() + b"trailing noise \xe2\x9c\x97\xb3 \xb3\n"
    rnd = random.Random(seed)
    chunks = [rnd.randint(1, 300) for _ in range(len(data) // 50)]
    reference = _reference(data)
    assert _decoded(data, chunks) == reference
    assert _decoded(data, []) == reference  # whole, as stream.parse feeds it
    assert any(ev[FIELDS.index("timestamp")] for ev in reference)
    assert any(ev[FIELDS.index("test_tags")] for ev in reference)
    assert any(ev[FIELDS.index("route_code")] for ev in reference)


@pytest.mark.parametrize("cut", [7, 1])
def test_torn_last_packet_is_reported_like_python_subunit(cut: int) -> None:
    data = _stream()
    first = data.index(b"\xb3", 1)  # a torn packet header: fewer than 6 bytes of it arrived
    torn = data[:-cut] if cut > 1 else data[:first + 3]
    live = _decoded(torn, [97] * 40)
    assert live == _reference(torn)
    assert live[-1][0] is not None  # the torn packet shows up, it is not silently dropped


@pytest.mark.parametrize("offset", [200, 201, 203, 250, 777])
def test_corrupt_packet_is_reported_like_python_subunit(offset: int) -> None:
    data = bytearray(_stream())
    data[offset] ^= 0xFF  # break one packet's CRC, flags or length
    assert _decoded(bytes(data), [64] * 80) == _reference(bytes(data))


class _CollectorAdapter:
    """python-subunit drives stream's collector (it calls the testtools run hooks too)."""

    def __init__(self, collector: object) -> None:
        self.status = collector.status  # type: ignore[attr-defined]

    def startTestRun(self) -> None:  # noqa: N802
        pass

    def stopTestRun(self) -> None:  # noqa: N802
        pass


def _run_via_python_subunit(data: bytes) -> tuple[object, ...]:
    collector = stream._Collector()
    subunit.ByteStreamToStreamResult(io.BytesIO(data), non_subunit_name="stdout").run(
        _CollectorAdapter(collector))
    return tuple(collector.finish()), collector.problem, b"".join(collector.stray)


@pytest.mark.parametrize("name", ["mixed", "mixed-live", "tempestish", "crash-live",
                                  "truncated", "synthetic", "synthetic-cut"])
def test_parsed_run_is_what_python_subunit_events_give(
        name: str, results_streams: dict[str, Path], tmp_path: Path) -> None:
    if name.startswith("synthetic"):
        path = synthetic_stream(tmp_path / "s.subunit", 300, fail_every=7, skip_every=5,
                                truncate_at=200_000 if name.endswith("cut") else None)
    else:
        path = results_streams[name]
    data = path.read_bytes()
    run = stream.read(path)
    assert run.tests  # every stream here holds tests
    assert (run.tests, run.problem, run.stray_output) == _run_via_python_subunit(data)
