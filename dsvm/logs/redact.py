"""Secret redaction for collected logs: which bytes are secret, and replacing them, streamed.

Works on bytes (a log is not always UTF-8 and nothing but the secrets may change) in bounded
chunks cut at line ends, so a multi-GB log needs a few MB of memory. Python's ``re`` is slow
on case-insensitive alternations (~5 MB/s), so the patterns run on a lower-cased copy of the
chunk (``bytes.lower`` keeps offsets). Even literal-led patterns scan at only ~300 MB/s each
in ``sre``, and there are ten, so each rule's triggers (the literals its matches start with:
``passw``, ``token`` ...) are found with ``bytes.find`` and the rule is tried, anchored,
only there; the two rules not led by a trigger run on the lines holding ``password`` or
``@`` alone (no rule can match across a line end). Both find exactly what a whole-chunk ``finditer``
finds: tests/unit/test_logs_redact.py checks them against that reference on the fake node.
This room never prints a secret and never writes anything but the stream it is handed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO

from dsvm.secrets import MASK, is_secret_name

MARKER = MASK.encode()
CHUNK = 1 << 20  # bytes read at a time
MAX_LINE = 8 << 20  # a "line" longer than this is cut anyway (bounded memory)
MIN_LITERAL = 4  # shorter literal values would redact ordinary words everywhere

# Values that say "no secret here"; redacting them only hurts readability.
_EMPTY_VALUES = {b"none", b"null", b"true", b"false", b"<none>", b"''", b'""', b"-"}

_SEP = rb"[\"']?[ \t]*[:=][ \t]*"
_VALUE = rb"(?:\"([^\"\n]*)\"|'([^'\n]*)'|([^\s\"',;&}\]\)]+))"
# name = value, name: value, "name": "value" (the name ends with one of these words).
# One pattern per literal prefix: sre then skips from prefix to prefix at memory speed.
_ASSIGN_WORDS = (rb"passw(?:or)?d", rb"secret(?:_key|_access_key)?", rb"token",
                 rb"api_?key", rb"private_key", rb"credentials?")
_ASSIGN = [re.compile(w + _SEP + _VALUE) for w in _ASSIGN_WORDS]
_AUTH = re.compile(rb"authorization" + _SEP + rb"[\"']?"
                   + rb"(?:(?:basic|bearer|token|digest|negotiate|sharedkey|aws4?-[\w-]+)[ \t]+)?"
                   + rb"([^\s\"',]+)")
# --os-password VALUE, --san-password VALUE (a command line echoed into a log).
_FLAG = re.compile(rb"--[a-z0-9_-]*password[ \t]+([^\s\"'-][^\s\"']*)")
# scheme://user:PASSWORD@host
_URL = re.compile(rb"://[^\s:/@'\"]*:([^\s@/'\"]+)@")
# Each rule with its triggers: lower-case literals every match of the rule starts with, so
# the rule is tried (anchored) only where ``bytes.find`` found one. _FLAG ("--os-password")
# and _URL ("://user:pw@") run on the lines holding "password" or "@" instead, which is
# exact because none of these patterns can match a newline (values stop at \s or \n).
PASSW = b"passw"
ANCHORED: tuple[tuple[re.Pattern[bytes], tuple[bytes, ...]], ...] = (
    (_ASSIGN[0], (PASSW,)),
    (_ASSIGN[1], (b"secret",)),
    (_ASSIGN[2], (b"token",)),
    (_ASSIGN[3], (b"api_key", b"apikey")),
    (_ASSIGN[4], (b"private_key",)),
    (_ASSIGN[5], (b"credential",)),
    (_AUTH, (b"authorization",)),
)
FLAG_TRIGGER = b"password"  # found among the PASSW offsets (no second scan)
URL_TRIGGER = b"@"  # _URL runs on the lines holding one: rare in logs, found by memchr
KEY_TRIGGER = b"-----begin "  # in every private-key BEGIN line (the one multi-line rule)
_KEY_BEGIN = re.compile(rb"-----begin [a-z0-9 ]*private key-----")
_KEY_END = re.compile(rb"-----end [a-z0-9 ]*private key-----")


@dataclass(frozen=True)
class Redactor:
    """Literal secret values plus the built-in patterns; ``redact`` returns (bytes, count)."""

    literals: tuple[bytes, ...] = ()

    @classmethod
    def of(cls, values: Iterable[str]) -> Redactor:
        """A redactor for these literal values (too-short and multi-line ones dropped)."""
        keep = set()
        for value in values:
            for part in str(value).splitlines():
                part = part.strip()
                if len(part) >= MIN_LITERAL and part != MASK:
                    keep.add(part.encode())
        return cls(tuple(sorted(keep, key=lambda v: (-len(v), v))))

    def spans(self, chunk: bytes) -> list[tuple[int, int]]:
        """Byte ranges of ``chunk`` that are secret, merged and sorted."""
        found: list[tuple[int, int]] = []
        for lit in self.literals:
            i = chunk.find(lit)
            while i >= 0:
                found.append((i, i + len(lit)))
                i = chunk.find(lit, i + len(lit))
        low = chunk.lower()
        for rx, triggers in ANCHORED:
            hits = _offsets(low, triggers[0])
            for other in triggers[1:]:
                hits = sorted(hits + _offsets(low, other))
            found.extend(_anchored_spans(rx, low, hits))
            if rx is _ASSIGN[0]:  # --os-password VALUE: any value, even "none", is replaced
                for start, end in _lines(low, (i for i in hits
                                               if low.startswith(FLAG_TRIGGER, i))):
                    found.extend(m.span(1) for m in _FLAG.finditer(low, start, end))
        for start, end in _lines(low, _offsets(low, URL_TRIGGER)):
            found.extend(_value_spans(_URL, low, start, end))
        if KEY_TRIGGER in low:
            found.extend(_key_spans(low))
        return _merge(found)

    def redact(self, chunk: bytes) -> tuple[bytes, int]:
        """Return ``chunk`` with every secret span replaced by the marker, and the count."""
        spans = self.spans(chunk)
        if not spans:
            return chunk, 0
        out = bytearray()
        pos = 0
        for start, end in spans:
            out += chunk[pos:start]
            out += MARKER
            pos = end
        out += chunk[pos:]
        return bytes(out), len(spans)


def _offsets(low: bytes, needle: bytes) -> list[int]:
    """Every offset of ``needle`` in ``low`` (``bytes.find``: a fast scan, no regex)."""
    out = []
    i = low.find(needle)
    while i >= 0:
        out.append(i)
        i = low.find(needle, i + 1)
    return out


def _lines(low: bytes, offsets: Iterable[int]) -> list[tuple[int, int]]:
    """(start, end) of each line of ``low`` holding one of ``offsets`` (sorted), newline
    included, each line once."""
    lines: list[tuple[int, int]] = []
    for i in offsets:
        if lines and i < lines[-1][1]:
            continue
        end = low.find(b"\n", i) + 1 or len(low)
        lines.append((low.rfind(b"\n", 0, i) + 1, end))
    return lines


def _anchored_spans(rx: re.Pattern[bytes], low: bytes,
                    hits: list[int]) -> list[tuple[int, int]]:
    """What ``_value_spans(rx, low)`` finds, trying ``rx`` only at ``hits`` (sorted).

    ``finditer`` tries each offset left to right and resumes after a match; every match of
    ``rx`` starts at a trigger offset, so trying those offsets (skipping any inside the
    previous match) finds the same matches.
    """
    spans = []
    resume = 0
    match = rx.match
    for i in hits:
        if i < resume:
            continue
        m = match(low, i)
        if m is not None:
            span = _value_span(m, low)
            if span is not None:
                spans.append(span)
            resume = m.end()
    return spans


def _value_spans(rx: re.Pattern[bytes], low: bytes, pos: int = 0,
                 endpos: int | None = None) -> list[tuple[int, int]]:
    """The value span of each match of ``rx`` in ``low[pos:endpos]`` (over the whole chunk,
    this is the reference that ``_anchored_spans`` must equal)."""
    end = len(low) if endpos is None else endpos
    return [span for m in rx.finditer(low, pos, end)
            if (span := _value_span(m, low)) is not None]


def _value_span(m: re.Match[bytes], low: bytes) -> tuple[int, int] | None:
    """The first non-empty group of match ``m``, unless it says "no secret here" (None,
    true, an already masked value ...)."""
    for group in range(1, (m.re.groups or 0) + 1):
        start, end = m.span(group)
        if start < 0 or start == end:
            continue
        value = low[start:end]
        if value in _EMPTY_VALUES or value.startswith(b"***"):
            return None
        return start, end
    return None


def _key_spans(low: bytes) -> list[tuple[int, int]]:
    """The bodies of PEM private keys (an unterminated key runs to the end of the chunk)."""
    spans = []
    pos = 0
    while True:
        begin = _KEY_BEGIN.search(low, pos)
        if begin is None:
            return spans
        end = _KEY_END.search(low, begin.end())
        stop = end.start() if end else len(low)
        if stop > begin.end():
            spans.append((begin.end(), stop))
        if end is None:
            return spans
        pos = end.end()


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def open_key_at(low: bytes) -> int:
    """Offset of a private-key BEGIN line with no END after it in ``low``, or -1."""
    last = -1
    for m in _KEY_BEGIN.finditer(low):
        last = m.start()
    if last < 0 or _KEY_END.search(low, last):
        return -1
    return low.rfind(b"\n", 0, last) + 1


def redact_stream(read: Callable[[int], bytes], write: Callable[[bytes], object],
                  redactor: Redactor, limit: int | None = None) -> tuple[int, int]:
    """Copy ``read`` to ``write`` redacted, in line-aligned chunks; return (bytes in, count).

    ``limit`` stops after that many input bytes (a consistent prefix of a growing file).
    A private key split across chunks is held back until its END line (or MAX_LINE).
    """
    pending = b""
    total = 0
    count = 0
    eof = False
    while not eof:
        want = CHUNK if limit is None else min(CHUNK, limit - total)
        block = read(want) if want > 0 else b""
        total += len(block)
        eof = not block
        buf = pending + block
        if eof:
            cut = len(buf)
        else:
            cut = buf.rfind(b"\n") + 1
            key = open_key_at(buf[:cut].lower()) if b"-----" in buf else -1
            if key >= 0:
                cut = key
            if cut == 0:
                if len(buf) < MAX_LINE:
                    pending = buf
                    continue
                cut = len(buf)
        out, n = redactor.redact(buf[:cut])
        count += n
        write(out)
        pending = buf[cut:]
    return total, count


def redact_file(src: BinaryIO, dst: BinaryIO, redactor: Redactor,
                limit: int | None = None) -> tuple[int, int]:
    """Redact file object ``src`` into ``dst``; return (bytes read, replacements)."""
    return redact_stream(src.read, dst.write, redactor, limit)


# -- harvesting secret values from configuration files -----------------------------------

_ASSIGN_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z0-9_.\-]+)\s*[=:]\s*(.*?)\s*$")
_URL_PASSWORD = re.compile(r"://[^\s:/@'\"]*:([^\s@/'\"]+)@")


def harvest(text: str, extra_names: Iterable[str] = ()) -> set[str]:
    """Secret values assigned in local.conf/localrc/ini/yaml text (and URL passwords)."""
    extra = list(extra_names)
    found: set[str] = set()
    for line in text.splitlines():
        if line.lstrip().startswith(("#", ";")):
            continue
        m = _ASSIGN_LINE.match(line)
        if m and is_secret_name(m.group(1), extra):
            value = m.group(2).strip().strip("\"'")
            if value and value.lower() not in ("none", "null", "true", "false") \
                    and not value.startswith(("$", "***")):
                found.add(value)
        found.update(u for u in _URL_PASSWORD.findall(line) if not u.startswith("$"))
    return found
