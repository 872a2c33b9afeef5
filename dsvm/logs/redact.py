"""Secret redaction for collected logs: which bytes are secret, and replacing them, streamed.

What is secret (and nothing else):

* **by position in a config file** (``ConfigScan``): the value of an oslo.config option that
  upstream marks ``secret=True`` in that section (``dsvm.secrets.SecretOptions``, generated
  from the services' packages), devstack's ``*_PASSWORD``/``SERVICE_TOKEN`` variables in
  local.conf/localrc/openrc, and options the profile declares secret. A URL-valued secret
  (``connection``, ``transport_url``) keeps its host: only the credentials go.
* **by form, in any file**: ``scheme://user:PASSWORD@``, ``Authorization``/``X-Auth-Token``
  (``X-Subject-Token``, ``X-Service-Token``, ``X-Storage-Token``, ``X-Auth-Key``) headers,
  PEM private key bodies, ``--os-password VALUE`` flags, and ``name = value`` / ``"name":
  "value"`` where the name ends in ``password``/``secret``/``api_key`` or is a known token
  name and the table does not say it is plain (keystone's ``[auth] password`` is a list of
  plugins, ``"identity:change_password"`` a policy rule).
* **literal values** harvested from the config files and the profile (``Redactor.of``): masked
  elsewhere only as whole tokens, and only when ``secrets.refusal`` accepts them (never
  ``8192``, ``true`` or ``service``).

Works on bytes in bounded line-aligned chunks (a multi-GB log needs a few MB). Python's
``re`` is slow on alternations, so each rule is tried, anchored, only at the offsets where
``bytes.find`` (memory speed) found one of its trigger literals, on a lower-cased copy of the
chunk (``bytes.lower`` keeps offsets); rules led by no literal run on the lines holding ``@``
or ``password`` only (no rule matches across a line end). tests/unit/test_logs_redact.py
checks that this finds exactly what a whole-chunk scan of every rule finds. This room never
prints a secret and never writes anything but the stream it is handed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from dsvm import secrets
from dsvm.secrets import MASK, SecretOptions, is_shell_secret, literal_spans, merge

MARKER = MASK.encode()
CHUNK = 1 << 20  # bytes read at a time
MAX_LINE = 8 << 20  # a "line" longer than this is cut anyway (bounded memory)

# Values that say "no secret here"; redacting them only hurts readability.
_EMPTY_VALUES = {b"none", b"null", b"true", b"false", b"<none>", b"''", b'""', b"-"}
_IDENT_BYTES = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"

_SEP = rb"[\"']?[ \t]*(?:=|:(?=[ \t\"']))[ \t]*"  # "a:b" is a name (a policy rule), not a:b
_LEAD_SEP = rb"[\"']?[ \t]*[:=]"  # hyperscan's superset of _SEP (it has no lookahead)
_VALUE = rb"(?:\"([^\"\n]*)\"|'([^'\n]*)'|([^\s\"',;&}\]\)\{\[]+))"
# The end of a secret-looking name, then a separator and a value (see _assign_span for
# which names count). One pattern per leading literal: sre then skips at memory speed.
_ASSIGN_PASSWORD = re.compile(rb"passw(?:or)?d" + _SEP + _VALUE)
_ASSIGN_ADMINPASS = re.compile(rb"adminpass" + _SEP + _VALUE)  # nova's server response
_ASSIGN_SECRET = re.compile(rb"secret(?:_key|_access_key)?" + _SEP + _VALUE)
_ASSIGN_TOKEN = re.compile(rb"token" + _SEP + _VALUE)
_ASSIGN_APIKEY = re.compile(rb"api_?key" + _SEP + _VALUE)
ASSIGNS = (_ASSIGN_PASSWORD, _ASSIGN_ADMINPASS, _ASSIGN_SECRET, _ASSIGN_TOKEN, _ASSIGN_APIKEY)
_AUTH = re.compile(rb"authorization" + _SEP + rb"[\"']?"
                   + rb"(?:(?:basic|bearer|token|digest|negotiate|sharedkey|aws4?-[\w-]+)[ \t]+)?"
                   + rb"([^\s\"',]+)")
_HEADER = re.compile(rb"x-(?:auth|subject|service|storage)-token" + _SEP + rb"[\"']?"
                     + rb"([^\s\"',;}]+)")
_AUTH_KEY = re.compile(rb"x-auth-key" + _SEP + rb"[\"']?([^\s\"',;}]+)")
# --os-password VALUE, --san-password=VALUE (a command line echoed into a log).
_FLAG = re.compile(rb"--[a-z0-9_-]*password(?:[ \t]+|=)([^\s\"'-][^\s\"']*)")
# scheme://user:PASSWORD@host
_URL = re.compile(rb"://[^\s:/@'\"]*:([^\s@/'\"]+)@")
# Each rule with its triggers: lower-case literals every match of the rule starts with.
PASSW = b"passw"
ANCHORED: tuple[tuple[re.Pattern[bytes], tuple[bytes, ...]], ...] = (
    (_ASSIGN_PASSWORD, (PASSW,)),
    (_ASSIGN_ADMINPASS, (b"adminpass",)),
    (_ASSIGN_SECRET, (b"secret",)),
    (_ASSIGN_TOKEN, (b"token",)),
    (_ASSIGN_APIKEY, (b"api_key", b"apikey")),
    (_AUTH, (b"authorization",)),
    (_HEADER, (b"x-auth-token", b"x-subject-token", b"x-service-token", b"x-storage-token")),
    (_AUTH_KEY, (b"x-auth-key",)),
)
FLAG_TRIGGER = b"password"  # found among the PASSW offsets (no second scan)
URL_TRIGGER = b"@"  # _URL runs on the lines holding one: rare in logs, found by memchr
KEY_TRIGGER = b"-----begin "  # in every private-key BEGIN line (the one multi-line rule)
_KEY_BEGIN = re.compile(rb"-----begin [a-z0-9 ]*private key-----")
_KEY_END = re.compile(rb"-----end [a-z0-9 ]*private key-----")

# The hyperscan engine: one pass over the chunk for every rule's lead (the pattern up to its
# value, case-insensitive) and every literal; each rule then runs anchored, case-insensitive,
# at the starts found. ~10x the find engine; the find engine is used without hyperscan.
try:
    import hyperscan as _hs
except ImportError:  # pragma: no cover - an optional accelerator
    _hs = None  # type: ignore[assignment]
_LEAD = {
    _ASSIGN_PASSWORD: rb"passw(?:or)?d" + _LEAD_SEP,
    _ASSIGN_ADMINPASS: rb"adminpass" + _LEAD_SEP,
    _ASSIGN_SECRET: rb"secret(?:_key|_access_key)?" + _LEAD_SEP,
    _ASSIGN_TOKEN: rb"token" + _LEAD_SEP,
    _ASSIGN_APIKEY: rb"api_?key" + _LEAD_SEP,
    _AUTH: rb"authorization" + _LEAD_SEP,
    _HEADER: rb"x-(?:auth|subject|service|storage)-token" + _LEAD_SEP,
    _AUTH_KEY: rb"x-auth-key" + _LEAD_SEP,
    _FLAG: rb"--[a-z0-9_-]*password(?:[ \t]|=)",
    _URL: rb"://[^\s:/@'\"]*:[^\s@/'\"]+@",
}
_CASELESS = {rx: re.compile(rx.pattern, re.IGNORECASE) for rx in _LEAD}
ASSIGNS_ANY_CASE = frozenset(_CASELESS[rx] for rx in ASSIGNS)
_HS_CACHE: dict[tuple[bytes, ...], tuple[object, object]] = {}
ENGINE = "hyperscan" if _hs is not None else "find"


def _database(literals: tuple[bytes, ...]) -> tuple[object, object]:
    """The compiled hyperscan database (and scratch) for the rules plus these literals:
    ids 0..len(_LEAD)-1 are the rules, then one per literal, then the key trigger."""
    if literals not in _HS_CACHE:
        assert _hs is not None
        leads = list(_LEAD.values())
        exprs = leads + [re.escape(lit) for lit in literals] + [re.escape(KEY_TRIGGER)]
        caseless = _hs.HS_FLAG_CASELESS | _hs.HS_FLAG_SOM_LEFTMOST
        flags = [caseless] * len(leads) + [_hs.HS_FLAG_SOM_LEFTMOST] * len(literals) \
            + [caseless]
        db = _hs.Database(mode=_hs.HS_MODE_BLOCK)
        db.compile(expressions=exprs, ids=list(range(len(exprs))), elements=len(exprs),
                   flags=flags)
        if len(_HS_CACHE) >= 8:  # one redactor per collection: a few databases at most
            _HS_CACHE.pop(next(iter(_HS_CACHE)))
        _HS_CACHE[literals] = (db, _hs.Scratch(db))
    return _HS_CACHE[literals]


@dataclass(frozen=True)
class Redactor:
    """Literal secret values, the secret-options table, and the built-in forms."""

    literals: tuple[bytes, ...] = ()
    options: SecretOptions = field(default_factory=secrets.secret_options)
    # identifier -> secret? (a log repeats a few names millions of times)
    _names: dict[bytes, bool] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, values: Iterable[str], options: SecretOptions | None = None) -> Redactor:
        """A redactor for these literal values (those ``secrets.refusal`` refuses dropped)."""
        return cls(tuple(v.encode() for v in secrets.usable(values)),
                   options if options is not None else secrets.secret_options())

    def spans(self, chunk: bytes, assigns: bool = True,
              engine: str = "") -> list[tuple[int, int]]:
        """Byte ranges of ``chunk`` that are secret, merged and sorted. ``assigns=False``
        leaves ``name = value`` to a config file's ``ConfigScan`` (which knows sections).
        ``engine``: hyperscan (when installed) or find; both find the same spans."""
        if (engine or ENGINE) == "hyperscan" and chunk:
            return self._scanned_spans(chunk, assigns)
        found = literal_spans(chunk, self.literals)
        low = chunk.lower()
        for rx, triggers in ANCHORED:
            if not assigns and rx in ASSIGNS:
                continue
            hits = _offsets(low, triggers[0])
            for other in triggers[1:]:
                hits = sorted(hits + _offsets(low, other))
            found.extend(self._anchored_spans(rx, low, hits))
            if rx is _ASSIGN_PASSWORD:  # --os-password VALUE: any value, even "none", goes
                for start, end in _lines(low, (i for i in hits
                                               if low.startswith(FLAG_TRIGGER, i))):
                    found.extend(m.span(1) for m in _FLAG.finditer(low, start, end))
        for start, end in _lines(low, _offsets(low, URL_TRIGGER)):
            found.extend(self.value_spans(_URL, low, start, end))
        if KEY_TRIGGER in low:
            found.extend(_key_spans(low))
        return merge(found)

    def _scanned_spans(self, chunk: bytes, assigns: bool) -> list[tuple[int, int]]:
        db, scratch = _database(self.literals)
        starts: list[list[int]] = [[] for _ in range(len(_LEAD) + len(self.literals) + 1)]

        def on(id_: int, start: int, end: int, flags: int, context: object) -> None:
            starts[id_].append(start)

        db.scan(chunk, match_event_handler=on, scratch=scratch)  # type: ignore[attr-defined]
        found: list[tuple[int, int]] = []
        size = len(chunk)
        for k, lit in enumerate(self.literals):
            for i in sorted(set(starts[len(_LEAD) + k])):
                if secrets.whole_token(chunk, i, i + len(lit), size):
                    found.append((i, i + len(lit)))
        for n, rx in enumerate(_LEAD):
            if not starts[n] or (not assigns and rx in ASSIGNS):
                continue
            hits = sorted(set(starts[n]))
            if rx is _FLAG:  # any value, even "none", goes
                found.extend(m.span(1) for m in _matches(_CASELESS[rx], chunk, hits))
            else:
                found.extend(self._anchored_spans(_CASELESS[rx], chunk, hits))
        if starts[-1]:
            found.extend(_key_spans(chunk.lower()))
        return merge(found)

    def redact(self, chunk: bytes, config: ConfigScan | None = None) -> tuple[bytes, int]:
        """``chunk`` with every secret span replaced by the marker, and the count; with
        ``config`` (a config file's scanner) its secret options' values go too."""
        spans = self.spans(chunk, assigns=config is None)
        if config is not None:
            more = config.spans(chunk)
            if more:
                spans = merge(spans + more)
        if not spans:
            return chunk, 0
        return secrets.replace(chunk, spans), len(spans)

    def _anchored_spans(self, rx: re.Pattern[bytes], low: bytes,
                        hits: list[int]) -> list[tuple[int, int]]:
        """What ``value_spans(rx, low)`` finds, trying ``rx`` only at ``hits`` (sorted).

        ``finditer`` tries each offset left to right and resumes after a match; every match
        of ``rx`` starts at a trigger offset, so trying those offsets (skipping any inside
        the previous match) finds the same matches.
        """
        return [span for m in _matches(rx, low, hits)
                if (span := self._span(m, low)) is not None]

    def value_spans(self, rx: re.Pattern[bytes], low: bytes, pos: int = 0,
                    endpos: int | None = None) -> list[tuple[int, int]]:
        """The value span of each match of ``rx`` in ``low[pos:endpos]`` (over the whole
        chunk, this is the reference that the anchored search must equal)."""
        end = len(low) if endpos is None else endpos
        return [span for m in rx.finditer(low, pos, end)
                if (span := self._span(m, low)) is not None]

    def _span(self, m: re.Match[bytes], data: bytes) -> tuple[int, int] | None:
        if (m.re in ASSIGNS or m.re in ASSIGNS_ANY_CASE) and not self._secret_name(m, data):
            return None
        return _value_span(m, data)

    def _secret_name(self, m: re.Match[bytes], data: bytes) -> bool:
        """Whether the name whose end ``m`` matched holds a secret: its whole identifier
        (``keystone_authtoken.password``, ``"ADMIN_PASSWORD"``) read back from the match."""
        at = m.start()
        before = data[max(0, at - 128):at]
        start = at - (len(before) - len(before.rstrip(_IDENT_BYTES)))
        if start > 0 and data[start - 1] == 0x3A:  # ':' — "identity:change_password"
            return False
        after = data[at:at + 128]
        ident = data[start:at + len(after) - len(after.lstrip(_IDENT_BYTES))].lower()
        known = self._names.get(ident)
        if known is None:
            section, _, name = ident.decode("ascii").strip(".-").rpartition(".")
            known = self.options.holds_secret(section or None, name)
            self._names[ident] = known
        return known


def _matches(rx: re.Pattern[bytes], data: bytes, hits: list[int]) -> list[re.Match[bytes]]:
    """What ``rx.finditer(data)`` finds when each of its matches starts at one of ``hits``
    (sorted): finditer tries offsets left to right and resumes after a match, so trying
    those offsets, skipping any inside the previous match, finds the same matches."""
    out = []
    resume = 0
    match = rx.match
    for i in hits:
        if i < resume:
            continue
        m = match(data, i)
        if m is not None:
            out.append(m)
            resume = m.end()
    return out


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


def _value_span(m: re.Match[bytes], low: bytes) -> tuple[int, int] | None:
    """The first non-empty group of match ``m``, unless it says "no secret here" (None,
    true, an already masked value, a token's published hash ...)."""
    for group in range(1, (m.re.groups or 0) + 1):
        start, end = m.span(group)
        if start < 0 or start == end:
            continue
        value = low[start:end].lower()
        if value in _EMPTY_VALUES or value.startswith((b"***", b"{sha")):
            return None
        return start, end
    return None


def _key_spans(low: bytes) -> list[tuple[int, int]]:
    """The bodies of PEM private keys (an unterminated key runs to the end of the chunk)."""
    spans: list[tuple[int, int]] = []
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


def open_key_at(low: bytes) -> int:
    """Offset of a private-key BEGIN line with no END after it in ``low``, or -1."""
    last = -1
    for m in _KEY_BEGIN.finditer(low):
        last = m.start()
    if last < 0 or _KEY_END.search(low, last):
        return -1
    return low.rfind(b"\n", 0, last) + 1


# -- config files: secret options by position ----------------------------------------------

_SECTION = re.compile(rb"^[ \t]*\[([^\[\]\n]+)\][ \t]*\r?$")
_META = re.compile(rb"^[ \t]*\[\[[ \t]*([^|\]\n]+?)[ \t]*\|[ \t]*([^\]\n]+?)[ \t]*\]\]")
_LINE = re.compile(rb"^([ \t]*(?:-[ \t]+)?(?:export[ \t]+)?)([A-Za-z0-9_.\-]+)([ \t]*[=:][ \t]*)"
                   rb"(.*?)[ \t]*\r?$")
_CREDENTIAL = re.compile(rb"(?:://|,)[^\s:/@,'\"]*:([^\s@/'\"]+)@")


@dataclass
class ConfigScan:
    """Walks a config file's lines in order (across chunks), tracking the section.

    Knows ini (oslo.config, paste), devstack's local.conf (``[[local|localrc]]`` shell
    variables, ``[[post-config|$NOVA_CONF]]`` sections), shell rc files and YAML mappings
    (clouds.yaml, accounts.yaml). ``found`` collects (where, value) of every secret value.
    """

    options: SecretOptions
    name: str = ""  # the file, for ``found``
    section: str | None = None
    shell: bool = False  # inside [[local|localrc]] (or an rc file): NAME=value variables
    found: list[tuple[str, str]] = field(default_factory=list)

    def spans(self, chunk: bytes) -> list[tuple[int, int]]:
        """Byte ranges of ``chunk`` (whole lines) holding secret option values."""
        out: list[tuple[int, int]] = []
        pos = 0
        size = len(chunk)
        while pos < size:
            end = chunk.find(b"\n", pos)
            end = size if end < 0 else end
            if end > pos:
                out.extend(self._line(chunk, pos, end))
            pos = end + 1
        return out

    def _line(self, chunk: bytes, pos: int, end: int) -> list[tuple[int, int]]:
        line = chunk[pos:end]
        stripped = line.lstrip()
        if not stripped or stripped[:1] in (b"#", b";"):
            return []
        if stripped.startswith(b"[["):
            meta = _META.match(line)
            if meta:
                self.shell = meta.group(1).lower() == b"local" \
                    and meta.group(2).lower() == b"localrc"
                self.section = None
                return []
        if stripped.startswith(b"["):
            sect = _SECTION.match(line)
            if sect:
                self.section = sect.group(1).strip().decode("utf-8", "replace").lower()
                self.shell = False
                return []
        m = _LINE.match(line)
        if m is None:
            return []
        name = m.group(2).decode("ascii")
        if not self._is_secret(name, m.group(3)):
            return []
        start, stop = m.span(4)
        value = line[start:stop]
        if len(value) >= 2 and value[:1] in (b'"', b"'") and value[-1:] == value[:1]:
            start, stop, value = start + 1, stop - 1, value[1:-1]
        if not value or value.lower() in _EMPTY_VALUES or value.startswith((b"$", b"***")):
            return []
        where = f"{self.name} [{self.section or ('localrc' if self.shell else 'DEFAULT')}] " \
                f"{name}"
        if b"://" in value:
            creds = [c.span(1) for c in _CREDENTIAL.finditer(value)]
            for a, b in creds:
                self.found.append((where, value[a:b].decode("utf-8", "replace")))
            return [(pos + start + a, pos + start + b) for a, b in creds]
        self.found.append((where, value.decode("utf-8", "replace")))
        return [(pos + start, pos + stop)]

    def _is_secret(self, name: str, sep: bytes) -> bool:
        if (self.shell or name.isupper()) and b"=" in sep and "." not in name:
            if is_shell_secret(name) or name.lower() in self.options.extra:
                return True
            if name.isupper():  # a shell variable not named like a secret
                return False
        return self.options.holds_secret(self.section, name)


CONFIG_SUFFIXES = (".conf", ".ini", ".cfg", ".yaml", ".yml", "rc", "localrc", ".conf.sample",
                   "_conf.txt", "_yaml.txt", "localrc.txt", ".conf.txt")


def is_config(name: str) -> bool:
    """Whether a file (by name) is a config file whose secret options are masked in place."""
    base = name.rsplit("/", 1)[-1].lower()
    return base.endswith(CONFIG_SUFFIXES) or base in ("local.conf", "localrc", "openrc",
                                                      "stackrc", ".stackenv", "stackenv")


def harvest(text: str | bytes, options: SecretOptions | None = None,
            name: str = "") -> list[tuple[str, str]]:
    """(where, value) of every secret value a config file's text assigns."""
    scan = ConfigScan(options if options is not None else secrets.secret_options(), name)
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    scan.spans(data)
    return scan.found


# -- streaming -------------------------------------------------------------------------------

def redact_stream(read: Callable[[int], bytes], write: Callable[[bytes], object],
                  redactor: Redactor, limit: int | None = None,
                  config: ConfigScan | None = None) -> tuple[int, int]:
    """Copy ``read`` to ``write`` redacted, in line-aligned chunks; return (bytes in, count).

    ``limit`` stops after that many input bytes (a consistent prefix of a growing file).
    A private key split across chunks is held back until its END line (or MAX_LINE).
    ``config`` (a config file's scanner) keeps its section from chunk to chunk.
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
        out, n = redactor.redact(buf[:cut], config)
        count += n
        write(out)
        pending = buf[cut:]
    return total, count


def redact_file(src: BinaryIO, dst: BinaryIO, redactor: Redactor,
                limit: int | None = None, config: ConfigScan | None = None) -> tuple[int, int]:
    """Redact file object ``src`` into ``dst``; return (bytes read, replacements)."""
    return redact_stream(src.read, dst.write, redactor, limit, config)


def refused(found: Sequence[tuple[str, str]], where_set: bool = True) -> list[dict[str, str]]:
    """Manifest entries (never the value) for secrets too short or common to mask wherever
    they appear; a harvested one (``where_set``) is still masked where it is assigned."""
    out: list[dict[str, str]] = []
    for where, value in found:
        why = secrets.refusal(value)
        if not why or why in ("empty", "a variable reference or already masked"):
            continue
        entry = {"source": where, "reason": f"{why}: " + (
            "masked where it is set, not elsewhere" if where_set else "not masked")}
        if entry not in out:
            out.append(entry)
    return out
