"""Parse a subunit v2 stream once into an in-memory ``Run`` (tests, statuses, times, attachments).

This room only reads bytes and builds frozen records; it never writes files, never prints and
never touches a database. Decoding is ``decoder``'s (the one subunit v2 decoder, which reports
what python-subunit's parser reports); what this module adds is the reading of a real
stestr/Tempest stream described in ``spec/results.md``:
``exists`` packets ignored, route codes optional, a test with ``inprogress`` but no final status
kept as ``crashed`` (never dropped), a truncated or corrupt tail reported instead of raised, and a
file that is not subunit at all refused with exit 2.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, overload

from dsvm.errors import UsageError
from dsvm.results.decoder import PARSER_ID, decode

# Final statuses of subunit v2 plus dsvm's own "crashed" (inprogress without a final status).
FINAL = ("success", "fail", "skip", "xfail", "uxsuccess")
CRASHED = "crashed"
FAILED = frozenset({"fail", "uxsuccess", CRASHED})  # what makes a run fail (stestr's verdict)
STATUS_ORDER = ("fail", CRASHED, "uxsuccess", "skip", "xfail", "success")

IGNORED_IDS = frozenset({"process-returncode"})  # subunit2sql drops it too
_WORKER = re.compile(r"^worker-(\d+)$")
_CLASS_LEVEL = re.compile(r"^(setUpClass|tearDownClass|setUpModule|tearDownModule) \((.+)\)$")


@dataclass(frozen=True, slots=True)
class Attachment:
    """One named detail of a test (traceback, reason, stdout, pythonlogging:'', ...)."""

    name: str
    mime: str
    data: bytes

    def text(self) -> str:
        """The content decoded as UTF-8 (undecodable bytes replaced)."""
        return self.data.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class TestResult:
    """One test's outcome: full id (with ``[attrs]``), status, times, tags, attachments."""

    __test__ = False  # not a pytest class

    test_id: str
    status: str
    start: datetime | None = None
    stop: datetime | None = None
    tags: frozenset[str] = frozenset()
    attachments: tuple[Attachment, ...] = ()

    @property
    def duration(self) -> float:
        """Seconds between inprogress and the final status (0 when a timestamp is missing)."""
        if self.start is None or self.stop is None:
            return 0.0
        return max(0.0, (self.stop - self.start).total_seconds())

    @property
    def base_id(self) -> str:
        """The id without the ``[attrs]`` part (subunit2sql's ``tests.test_id``)."""
        return split_attrs(self.test_id)[0]

    @property
    def attrs(self) -> str:
        """The text inside the brackets (``id-…,smoke``), or ''."""
        return split_attrs(self.test_id)[1]

    @property
    def worker(self) -> int | None:
        """stestr's worker index from the ``worker-N`` tag."""
        for tag in self.tags:
            m = _WORKER.match(tag)
            if m:
                return int(m.group(1))
        return None

    @property
    def is_failure(self) -> bool:
        return self.status in FAILED

    def attachment(self, name: str) -> Attachment | None:
        """The attachment called ``name``, or None."""
        for att in self.attachments:
            if att.name == name:
                return att
        return None

    def details_text(self) -> str:
        """The traceback (or skip reason), else every text attachment, for people to read."""
        for name in ("traceback", "reason"):
            att = self.attachment(name)
            if att is not None:
                return att.text()
        return "\n".join(f"{a.name}:\n{a.text()}" for a in self.attachments
                         if a.mime.startswith("text") or not a.mime)


@dataclass(frozen=True)
class Run:
    """A whole stream: tests in order of completion, plus what was wrong with the stream."""

    tests: tuple[TestResult, ...]
    source: str = "-"
    problem: str | None = None  # truncated/corrupt stream: what python-subunit said
    stray_output: bytes = b""  # non-subunit bytes between packets (stestr calls them stdout)
    meta: dict[str, str] = field(default_factory=dict)  # from a DB: run metadata

    @property
    def counts(self) -> Counter[str]:
        """Number of tests per status (statuses from FINAL plus 'crashed')."""
        return Counter(t.status for t in self.tests)

    @property
    def failures(self) -> list[TestResult]:
        """Tests that make the run fail: fail, uxsuccess, crashed."""
        return [t for t in self.tests if t.is_failure]

    @property
    def is_ok(self) -> bool:
        """True when no test failed (stestr's exit 0)."""
        return not any(t.is_failure for t in self.tests)

    @property
    def started(self) -> datetime | None:
        starts = [t.start for t in self.tests if t.start]
        return min(starts) if starts else None

    @property
    def stopped(self) -> datetime | None:
        stops = [t.stop for t in self.tests if t.stop]
        return max(stops) if stops else None

    @property
    def wall_seconds(self) -> float:
        """From the first start to the last stop."""
        if self.started is None or self.stopped is None:
            return 0.0
        return (self.stopped - self.started).total_seconds()

    @property
    def test_seconds(self) -> float:
        """Sum of the test durations (subunit2sql's ``runs.run_time``)."""
        return sum(t.duration for t in self.tests)


def split_attrs(test_id: str) -> tuple[str, str]:
    """Split ``pkg.Class.test[a,b]`` into (``pkg.Class.test``, ``a,b``)."""
    if test_id.endswith("]"):
        pos = test_id.find("[")
        if pos > 0:
            return test_id[:pos], test_id[pos + 1:-1]
    return test_id, ""


def split_class(test_id: str) -> tuple[str, str]:
    """Return (classname, name) as Jenkins groups them; attrs stay in the name.

    ``setUpClass (pkg.mod.Class)`` gives (``pkg.mod.Class``, ``setUpClass``); an id without
    a dot gives ('(root)', id), never an empty classname.
    """
    m = _CLASS_LEVEL.match(test_id)
    if m:
        return m.group(2), m.group(1)
    base, attrs = split_attrs(test_id)
    dot = base.rfind(".")
    if dot <= 0:
        return "(root)", test_id
    return base[:dot], base[dot + 1:] + (f"[{attrs}]" if attrs else "")


class _Open:
    """What is known of a test still in progress."""

    __slots__ = ("files", "start", "tags")

    def __init__(self) -> None:
        self.start: datetime | None = None
        self.tags: set[str] = set()
        self.files: dict[str, tuple[list[str], list[bytes]]] = {}  # name → ([mime], chunks)


class _Collector:
    """The decoder's sink: keeps per-test state until a final status freezes it."""

    def __init__(self) -> None:
        self.open: dict[str, _Open] = {}
        self.done: list[TestResult] = []
        self.stray: list[bytes] = []
        self.problem: str | None = None
        self.packets = 0

    def status(self, test_id: str | None = None, test_status: str | None = None,
               test_tags: Iterable[str] | None = None, runnable: bool = True,
               file_name: str | None = None, file_bytes: bytes | None = None,
               eof: bool = False, mime_type: str | None = None,
               route_code: str | None = None, timestamp: datetime | None = None) -> None:
        if test_id is None:
            if file_bytes:
                self.stray.append(bytes(file_bytes))
            return
        if test_id == PARSER_ID:
            if file_name == "Parser Error" and file_bytes:
                self.problem = self.problem or bytes(file_bytes).decode("utf-8", "replace")
            return
        self.packets += 1
        if test_status == "exists" or test_id in IGNORED_IDS:
            return
        state = self.open.get(test_id)
        if state is None:
            state = self.open[test_id] = _Open()
        if test_tags:
            state.tags.update(test_tags)
        if file_name is not None:
            entry = state.files.get(file_name)
            if entry is None:
                entry = state.files[file_name] = ([mime_type or ""], [])
            elif mime_type:
                entry[0][0] = mime_type
            if file_bytes:
                entry[1].append(bytes(file_bytes))
        if test_status == "inprogress":
            state.start = state.start or timestamp
        elif test_status in FINAL:
            del self.open[test_id]
            self.done.append(_freeze(test_id, test_status, state, timestamp))

    def finish(self) -> list[TestResult]:
        """Completed tests, then every test still in progress as 'crashed'."""
        crashed = [_freeze(tid, CRASHED, st, st.start) for tid, st in self.open.items()
                   if st.start is not None or st.files]
        return self.done + crashed


def _freeze(test_id: str, status: str, state: _Open, stop: datetime | None) -> TestResult:
    atts = tuple(Attachment(name, mime[0], b"".join(chunks))
                 for name, (mime, chunks) in state.files.items())
    start = state.start
    if start is None and status in ("skip", "fail", "success", "xfail", "uxsuccess"):
        start = stop  # class-level results and stored streams: start = end (0 s)
    return TestResult(test_id, status, start, stop, frozenset(state.tags), atts)


def parse(stream: IO[bytes], source: str = "-") -> Run:
    """Parse a subunit v2 byte stream; raise UsageError when it is empty or not subunit."""
    return parse_bytes(stream.read(), source)


def parse_bytes(data: bytes, source: str = "-") -> Run:
    """Parse a whole subunit v2 stream held in memory (see ``parse``)."""
    collector = _Collector()
    decode(data, collector)
    tests = collector.finish()
    stray = b"".join(collector.stray)
    if not tests and not collector.packets:
        if not stray and collector.problem is None:
            raise UsageError(f"{source}: the stream is empty (no subunit packets)",
                             hint="was the test run interrupted before any test started?")
        raise UsageError(f"{source}: not a subunit v2 stream",
                         details={"starts with": repr(stray[:60])},
                         hint="give the output of 'stestr last --subunit' or a "
                              "testrepository.subunit file (v1 streams: subunit-1to2)")
    return Run(tests=tuple(tests), source=source, problem=collector.problem, stray_output=stray)


def read(path: str | Path) -> Run:
    """Parse the stream at ``path`` (``-`` = stdin); raise UsageError when unreadable."""
    if str(path) == "-":
        return parse_bytes(sys.stdin.buffer.read(), "<stdin>")
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file", hint="give a subunit stream path or -") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory") from None
    except PermissionError:
        raise UsageError(f"{path}: permission denied") from None
    return parse_bytes(data, str(path))


@overload
def utc_naive(value: datetime) -> datetime: ...
@overload
def utc_naive(value: None) -> None: ...
def utc_naive(value: datetime | None) -> datetime | None:
    """A timestamp as naive UTC (how subunit2sql stores it)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value
