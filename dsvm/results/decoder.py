"""The one subunit v2 decoder: bytes in, python-subunit's ``StreamResult.status`` events out.

Both readers of a stream use it: ``stream.parse`` on a whole file and ``tempest``'s live
counts, fed chunk by chunk from the thread that copies stestr's stdout. It reads the framing of
spec/results.md §1.1 (signature, flags, length, fields, CRC32) and reports what
``subunit.ByteStreamToStreamResult(source, non_subunit_name="stdout")`` reports, field for
field (tests/unit/test_results_decoder.py holds it to that): bytes between packets are
``stdout`` file content, a torn or corrupt packet is a failed ``subunit.parser`` test with the
same message. Importing it costs no more than the standard library's ``datetime``; python-subunit
and testtools are not imported (their import alone was most of a ``dsvm results`` command).
This room never reads files and never keeps results: a sink does.
"""

from __future__ import annotations

import codecs
import threading
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Protocol

SIGNATURE = 0xB3
NON_SUBUNIT = "stdout"  # the file name non-subunit bytes are reported under
PARSER_ID = "subunit.parser"  # python-subunit's synthetic test for a packet that does not parse
STATUS = (None, "exists", "inprogress", "success", "uxsuccess", "skip", "fail", "xfail")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Flags (spec/results.md §1.1).
_TEST_ID, _ROUTE_CODE, _TIMESTAMP, _RUNNABLE = 0x0800, 0x0400, 0x0200, 0x0100
_TAGS, _MIME_TYPE, _EOF, _FILE_CONTENT = 0x0080, 0x0020, 0x0010, 0x0040


class Sink(Protocol):
    """What receives the events: python-subunit's ``StreamResult.status`` signature."""

    def status(self, test_id: str | None = None, test_status: str | None = None,
               test_tags: Iterable[str] | None = None, runnable: bool = True,
               file_name: str | None = None, file_bytes: bytes | None = None,
               eof: bool = False, mime_type: str | None = None,
               route_code: str | None = None, timestamp: datetime | None = None) -> None: ...


class _BadPacket(Exception):
    """A packet that does not parse (the message is python-subunit's)."""


class Decoder:
    """Incremental subunit v2 decoder: ``feed`` bytes as they arrive, ``close`` at the end."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self._buf = bytearray()
        # python-subunit's rule: a signature byte inside a UTF-8 character of non-subunit
        # text is text (its strict decoder, fed byte by byte, decides).
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._mid = False
        self._lock = threading.Lock()  # close() may race a pump thread that outlived stestr
        self._raw_time, self._time = b"", _EPOCH  # the last timestamp decoded

    def feed(self, chunk: bytes) -> None:
        """Report every whole packet (and any non-subunit bytes) in what has arrived."""
        with self._lock:
            buf = self._buf
            if buf:
                buf += chunk
                done = self._scan(buf)
                del buf[:done]
            else:  # nothing pending (a whole file, or chunks ending on a packet): no copy
                done = self._scan(chunk)
                buf += chunk[done:]

    def close(self) -> None:
        """End of stream: a packet cut short is reported as python-subunit does."""
        with self._lock:
            if self._buf:  # feed() leaves only a packet still arriving
                self._packet(bytes(self._buf), 0, final=True)
                self._buf.clear()

    def _scan(self, buf: bytes | bytearray) -> int:
        """Report what ``buf`` holds; return how many bytes were used."""
        pos, end = 0, len(buf)
        while pos < end:
            if buf[pos] == SIGNATURE and not self._mid:
                done = self._packet(buf, pos, final=False)
                if done < 0:
                    break  # a packet still arriving
                pos = done
                continue
            nxt = buf.find(b"\xb3", pos + 1)  # non-subunit bytes up to the next signature
            nxt = end if nxt < 0 else nxt
            self._text(bytes(buf[pos:nxt]))
            pos = nxt
        return pos

    def _text(self, text: bytes) -> None:
        if text.isascii() and not self._utf8.getstate()[0]:
            self._mid = False  # the common case: stestr's own messages
        else:
            for i in range(len(text)):
                try:
                    self._mid = not self._utf8.decode(text[i:i + 1])
                except UnicodeDecodeError:
                    self._mid = False
        self.sink.status(file_name=NON_SUBUNIT, file_bytes=text)

    def _packet(self, buf: bytes | bytearray, pos: int, final: bool) -> int:
        """Report the packet at ``pos``; return where the next one starts, or -1 when it has
        not all arrived yet (``final``: it never will, so it is reported as torn)."""
        avail = len(buf) - pos
        if avail < 6:  # signature, 2 bytes of flags, 1-3 bytes of length: read as 6
            if final:
                self._bad(bytes(buf[pos:pos + 1]), f"Short read - got {avail - 1} bytes, "
                                                   "wanted 5 bytes")
            return -1
        first = buf[pos + 3]
        width = (first >> 6) + 1
        length = first & 0x3F
        for b in buf[pos + 4:pos + 3 + width]:
            length = (length << 8) | b
        if width > 3 or length < 8:  # python-subunit gives up on the 6 bytes it read
            self._bad(bytes(buf[pos:pos + 6]),
                      "3 byte maximum given but 4 byte value found." if width > 3 else
                      f"packet length {length} is shorter than its framing")
            return pos + 6
        if avail < length:
            if final:  # python-subunit shows the 6 bytes it read before the short read
                self._bad(bytes(buf[pos:pos + 6]),
                          f"Short read - got {avail - 6} bytes, wanted {length - 6} bytes")
            return -1
        packet = bytes(buf[pos:pos + length])  # a copy: a live buffer is resized after
        crc = int.from_bytes(packet[-4:], "big")
        calc = zlib.crc32(memoryview(packet)[:-4])
        try:
            if crc != calc:
                raise _BadPacket(f"Bad checksum - calculated (0x{calc:x}), stored (0x{crc:x})")
            self._fields(packet, 3 + width, (packet[1] << 8) | packet[2])
        except _BadPacket as exc:
            self._bad(packet, str(exc))
        return pos + length

    def _fields(self, packet: bytes, pos: int, flags: int) -> None:
        end = len(packet) - 4  # the CRC is not part of the body
        timestamp = None
        if flags & _TIMESTAMP:  # 32-bit seconds, varint nanoseconds
            nanos, used = _varint(packet, pos + 4, end)
            raw = packet[pos:pos + 4 + used]
            pos += 4 + used
            if raw == self._raw_time:  # a test's files and its final status share one time
                timestamp = self._time
            else:
                # python-subunit's arithmetic (microseconds as a float, rounded by timedelta)
                timestamp = _EPOCH + timedelta(seconds=int.from_bytes(raw[:4], "big"),
                                               microseconds=nanos / 1000)
                self._raw_time, self._time = raw, timestamp
        test_id = None
        if flags & _TEST_ID:
            test_id, pos = _utf8(packet, pos, end)
        tags = None
        if flags & _TAGS:
            count, used = _varint(packet, pos, end)
            pos += used
            tags = set()
            for _ in range(count):
                tag, pos = _utf8(packet, pos, end)
                tags.add(tag)
        mime_type = None
        if flags & _MIME_TYPE:
            mime_type, pos = _utf8(packet, pos, end)
        file_name = file_bytes = None
        if flags & _FILE_CONTENT:
            file_name, pos = _utf8(packet, pos, end)
            size, used = _varint(packet, pos, end)
            pos += used
            if pos + size > end:
                raise _BadPacket(f"File content extends past end of packet: claimed {size} "
                                 f"bytes, {max(0, end - pos)} available")
            file_bytes = packet[pos:pos + size]
            pos += size
        route_code = None
        if flags & _ROUTE_CODE:
            route_code, pos = _utf8(packet, pos, end)
        # positional, in the order of Sink.status (python-subunit's): the hot call of a parse
        self.sink.status(test_id, STATUS[flags & 0x0007], tags, bool(flags & _RUNNABLE),
                         file_name, file_bytes, bool(flags & _EOF), mime_type, route_code,
                         timestamp)

    def _bad(self, packet: bytes, why: str) -> None:
        """Report a packet that does not parse, as python-subunit does."""
        self.sink.status(test_id=PARSER_ID, eof=True, file_name="Packet data",
                         file_bytes=packet, mime_type="application/octet-stream")
        self.sink.status(test_id=PARSER_ID, test_status="fail", eof=True,
                         file_name="Parser Error", file_bytes=why.encode("utf-8"),
                         mime_type="text/plain;charset=utf8")


def decode(data: bytes, sink: Sink) -> None:
    """Report every event of a whole stream held in ``data``."""
    decoder = Decoder(sink)
    decoder.feed(data)
    decoder.close()


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """(value, bytes used) of the subunit v2 varint at ``pos``: the top two bits of the
    first byte give its size (1-4 bytes)."""
    if pos >= end:
        raise _BadPacket(f"varint at offset {pos} extends past end of packet")
    value = data[pos]
    if value < 0x40:
        return value, 1
    width = (value >> 6) + 1
    if pos + width > end:
        raise _BadPacket(f"varint at offset {pos} extends past end of packet")
    return int.from_bytes(data[pos:pos + width], "big") & ~(0xC0 << 8 * (width - 1)), width


def _utf8(data: bytes, pos: int, end: int) -> tuple[str, int]:
    if pos < end and data[pos] < 0x40:  # a length under 64: one byte
        size, pos = data[pos], pos + 1
    else:
        size, used = _varint(data, pos, end)
        pos += used
    stop = pos + size
    if stop > end:
        raise _BadPacket(f"UTF8 string at offset {pos - 2} extends past end of packet: "
                         f"claimed {size} bytes, {max(0, end - pos)} available")
    raw = data[pos:stop]
    if b"\0" in raw:
        raise _BadPacket(f"UTF8 string at offset {pos - 2} contains NUL byte")
    try:
        return raw.decode("utf-8"), stop
    except UnicodeDecodeError:
        raise _BadPacket(f"UTF8 string at offset {pos - 2} is not UTF8") from None
