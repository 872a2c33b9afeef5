"""A small GNU sed, for the scripts devstack's ini functions build (``inc/ini-config``).

devstack pastes sections and options into sed scripts, so its quirks come from sed itself
(regex characters are live, ``/`` ends a command…). This interpreter runs those exact bytes:
GNU basic regular expressions translated to ``re``, addresses and ranges, the commands
devstack's scripts use, ``-n``, and ``grep -q`` on the same regexes. Pure and fast (no
process, nothing heavy imported: ``dsvm ini`` starts in milliseconds); ``ini.py`` calls it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = ["SedError", "check", "grep_q", "run_sed"]


class SedError(Exception):
    """sed rejected its script (devstack then changes nothing and still returns 0)."""


# --------------------------------------------------------------------------- GNU BRE → re

_CLASSES = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "0-9a-zA-Z", "upper": "A-Z", "lower": "a-z",
    "space": " \\t\\n\\r\\f\\v", "blank": " \\t", "punct": "!-/:-@\\[-`{-~",
    "print": " -~", "graph": "!-~", "cntrl": "\\x00-\\x1f\\x7f", "xdigit": "0-9A-Fa-f",
}


def _bracket(rx: str, i: int) -> tuple[str, int]:
    """Translate the bracket expression starting after ``[`` at ``i``; return (class, next)."""
    n = len(rx)
    negate = i < n and rx[i] == "^"
    if negate:
        i += 1
    items: list[str] = []
    first = True
    while True:
        if i >= n:
            raise SedError("unterminated address regex")
        c = rx[i]
        if c == "]" and not first:
            i += 1
            break
        first = False
        if c == "[" and i + 1 < n and rx[i + 1] in ":=.":
            kind = rx[i + 1]
            end = rx.find(kind + "]", i + 2)
            if end < 0:
                raise SedError("unterminated address regex")
            name = rx[i + 2:end]
            if kind == ":":
                if name not in _CLASSES:
                    raise SedError("Invalid character class name")
                items.append(_CLASSES[name])
            else:
                items.append(re.escape(name))
            i = end + 2
            continue
        if c == "\\" and i + 1 < n and rx[i + 1] in "nt":
            items.append("\\n" if rx[i + 1] == "n" else "\\t")
            i += 2
            continue
        if c == "-" and items and i + 1 < n and rx[i + 1] != "]":
            items.append("-")
        else:
            items.append(re.escape(c) if c in "\\[]^-" else c)
        i += 1
    body = "".join(items)
    # a negated class never crosses a line (the text may be searched as a whole)
    return ("[^\\n" + body + "]" if negate else "[" + body + "]"), i


@lru_cache(maxsize=4096)
def _bre(rx: str) -> tuple[re.Pattern[str], re.Pattern[str] | None, int]:
    """Compile a GNU basic regex: (per-line pattern, whole-text pattern or None, groups)."""
    out: list[str] = []
    n, i, groups, opened = len(rx), 0, 0, []
    closed: set[int] = set()
    can_repeat = False   # an atom precedes: '*' is an operator
    after_quant = False
    spans_lines = False
    while i < n:
        c = rx[i]
        start_ctx = not out or out[-1] in ("(", "|", "^")
        if c == "\\":
            if i + 1 >= n:
                raise SedError("Trailing backslash")
            d = rx[i + 1]
            i += 2
            if d == "(":
                groups += 1
                opened.append(groups)
                out.append("(")
                can_repeat = after_quant = False
                continue
            if d == ")":
                if not opened:
                    raise SedError("Unmatched ) or \\)")
                closed.add(opened.pop())
                out.append(")")
                can_repeat, after_quant = True, False
                continue
            if d == "|":
                out.append("|")
                can_repeat = after_quant = False
                continue
            if d == "{":
                end = rx.find("\\}", i)
                if end < 0 or not re.fullmatch(r"\d+(,\d*)?|,\d+", rx[i:end]):
                    raise SedError("Invalid content of \\{\\}")
                if not can_repeat:
                    raise SedError("Invalid preceding regular expression")
                if not after_quant:
                    out.append("{" + rx[i:end] + "}")
                i = end + 2
                after_quant = True
                continue
            if d in "+?":
                if can_repeat and not after_quant:
                    out.append(d)
                    after_quant = True
                elif not can_repeat:
                    out.append(re.escape(d))
                    can_repeat, after_quant = True, False
                continue
            if d in "123456789":
                if int(d) not in closed:
                    raise SedError("Invalid back reference")
                out.append("\\" + d)
            elif d == "n":
                out.append("\\n")
                spans_lines = True
            elif d == "t":
                out.append("\\t")
            elif d in "wWsSbB":
                out.append("\\" + d)
            elif d == "<":
                out.append(r"\b(?=\w)")
            elif d == ">":
                out.append(r"\b(?<=\w)")
            elif d == "`":
                out.append(r"\A")
                spans_lines = True
            elif d == "'":
                out.append(r"\Z")
                spans_lines = True
            else:
                out.append(re.escape(d))
            can_repeat, after_quant = True, False
            continue
        i += 1
        if c == "[":
            cls, i = _bracket(rx, i)
            out.append(cls)
            can_repeat, after_quant = True, False
        elif c == "*":
            if not can_repeat or start_ctx:
                out.append("\\*")
                can_repeat, after_quant = True, False
            elif not after_quant:
                out.append("*")
                after_quant = True
        elif c == "^":
            if start_ctx:
                out.append("^")
                can_repeat = False
            else:
                out.append("\\^")
                can_repeat, after_quant = True, False
        elif c == "$":
            if i == n or rx.startswith("\\)", i) or rx.startswith("\\|", i):
                out.append("$")
            else:
                out.append("\\$")
            can_repeat, after_quant = True, False
        elif c == ".":
            out.append(".")
            can_repeat, after_quant = True, False
        else:
            out.append(re.escape(c))
            can_repeat, after_quant = True, False
    if opened:
        raise SedError("Unmatched ( or \\(")
    py = "".join(out)
    try:
        line = re.compile(py, re.DOTALL)
        whole = None if spans_lines else re.compile(py, re.MULTILINE)
    except re.error as exc:  # pragma: no cover - translation guards above
        raise SedError(str(exc)) from exc
    return line, whole, groups


# --------------------------------------------------------------------------- sed programs

@dataclass
class _Addr:
    rx1: str
    rx2: str | None = None
    active: bool = False     # range state (GNU: per command, across lines)


@dataclass
class _Cmd:
    addr: _Addr | None
    op: str                  # '{', 'p', 'd', 'a', 'i', 'c', 'b', 's'
    block: list[_Cmd] = field(default_factory=list)
    text: str = ""           # 'a' text (with its final newline)
    rx: str = ""             # 's' regex
    repl: list[tuple[str, str | int]] = field(default_factory=list)
    glob: bool = False
    nth: int = 1
    print_: bool = False


class _Parser:
    """Parses the subset of GNU sed devstack's functions generate (and rejects the rest)."""

    def __init__(self, script: str) -> None:
        self.s, self.i = script, 0

    def _peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def _get(self) -> str:
        c = self._peek()
        self.i += 1
        return c

    def _skip_ws(self, newlines: bool = False) -> None:
        while self._peek() and (self._peek() in " \t" or (newlines and self._peek() in "\n;")):
            self.i += 1

    def match_slash(self, delim: str, regex: bool) -> str:
        out: list[str] = []
        while True:
            if self.i >= len(self.s):
                raise SedError("unterminated command")
            c = self._get()
            if c == "\n":
                raise SedError("unterminated command")
            if c == delim:
                return "".join(out)
            if c == "\\":
                if self.i >= len(self.s):
                    raise SedError("unterminated command")
                c = self._get()
                if c == "n" and regex:
                    c = "\n"
                elif c != "\n" and (c != delim or (not regex and c == "&")):
                    out.append("\\")
            out.append(c)

    def parse(self) -> list[_Cmd]:
        top: list[_Cmd] = []
        stack: list[list[_Cmd]] = [top]
        while True:
            self._skip_ws(newlines=True)
            c = self._peek()
            if not c:
                break
            if c == "#":
                while self._peek() and self._peek() != "\n":
                    self.i += 1
                continue
            addr = self._address()
            self._skip_ws()
            op = self._get()
            if op == "}":
                if addr is not None or len(stack) == 1:
                    raise SedError("unexpected `}'")
                stack.pop()
                self._end_of_cmd()
                continue
            cmd = _Cmd(addr, op)
            stack[-1].append(cmd)
            if op == "{":
                stack.append(cmd.block)
            elif op in "pd":
                self._end_of_cmd()
            elif op in "aic":
                cmd.text = self._text()
            elif op == "b":
                self._skip_ws()
                if self._peek() not in ("", "\n", ";", "}"):
                    raise SedError("can't find label for jump")
                self._end_of_cmd()
            elif op == "s":
                self._subst(cmd)
            else:
                raise SedError(f"unknown command: `{op}'")
        if len(stack) != 1:
            raise SedError("unmatched `{'")
        return top

    def _address(self) -> _Addr | None:
        rx1 = self._regex_addr()
        if rx1 is None:
            if self._peek().isdigit() or self._peek() == "$":
                raise SedError("line-number addresses are not used by devstack")
            return None
        addr = _Addr(rx1)
        if self._peek() == ",":
            self.i += 1
            self._skip_ws()
            rx2 = self._regex_addr()
            if rx2 is None:
                raise SedError("unexpected `,'")
            addr.rx2 = rx2
        return addr

    def _regex_addr(self) -> str | None:
        c = self._peek()
        if c == "/":
            self.i += 1
            rx = self.match_slash("/", True)
        elif c == "\\":
            self.i += 1
            delim = self._get()
            if not delim or delim in "\n\\":
                raise SedError("unexpected delimiter")
            rx = self.match_slash(delim, True)
        else:
            return None
        if not rx:
            raise SedError("no previous regular expression")
        _bre(rx)
        return rx

    def _end_of_cmd(self) -> None:
        self._skip_ws()
        c = self._peek()
        if c in ("", "\n", ";"):
            self.i += 1 if c else 0
        elif c not in "}#":
            raise SedError("extra characters after command")

    def _text(self) -> str:
        self._skip_ws()
        if self._peek() == "\\":
            self.i += 1
            if self._peek() == "\n":
                self.i += 1
        buf: list[str] = []
        while self.i < len(self.s):
            c = self._get()
            if c == "\n":
                break
            if c == "\\":
                if self.i >= len(self.s):
                    break
                c = self._get()
                buf.append(_text_escape(c, self))
                continue
            buf.append(c)
        return "".join(buf) + "\n"

    def _subst(self, cmd: _Cmd) -> None:
        delim = self._get()
        if not delim or delim in "\n\\":
            raise SedError("unterminated `s' command")
        cmd.rx = self.match_slash(delim, True)
        if not cmd.rx:
            raise SedError("no previous regular expression")
        groups = _bre(cmd.rx)[2]
        cmd.repl = _replacement(self.match_slash(delim, False), groups)
        while True:
            c = self._peek()
            if c == "g":
                cmd.glob = True
            elif c == "p":
                cmd.print_ = True
            elif c.isdigit() and c != "0":
                j = self.i
                while self._peek().isdigit():
                    self.i += 1
                cmd.nth = int(self.s[j:self.i])
                continue
            else:
                break
            self.i += 1
        c = self._peek()
        if c in ("", "\n", ";", "}", "#", " ", "\t"):
            self._end_of_cmd()
        else:
            raise SedError("unknown option to `s'")


_TEXT_CTRL = {"a": "\a", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _text_escape(c: str, p: _Parser) -> str:
    """One backslash escape inside a/i/c text: GNU keeps the character, drops the backslash."""
    if c in _TEXT_CTRL:
        return _TEXT_CTRL[c]
    return c


def _replacement(text: str, groups: int) -> list[tuple[str, str | int]]:
    parts: list[tuple[str, str | int]] = []
    lit: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "&":
            parts.append(("lit", "".join(lit)))
            lit = []
            parts.append(("grp", 0))
        elif c == "\\" and i + 1 < len(text):
            i += 1
            d = text[i]
            if d.isdigit():
                if int(d) > groups:
                    raise SedError(f"invalid reference \\{d} on `s' command's RHS")
                parts.append(("lit", "".join(lit)))
                lit = []
                parts.append(("grp", int(d)))
            elif d == "\n":
                lit.append("\n")
            else:
                lit.append(_TEXT_CTRL.get(d, d))
        else:
            lit.append(c)
        i += 1
    parts.append(("lit", "".join(lit)))
    return [p for p in parts if p != ("lit", "")]


def check(script: str) -> None:
    """Raise SedError when sed would reject ``script`` (it then changes nothing)."""
    _compile(script)


@lru_cache(maxsize=2048)
def _compile(script: str) -> tuple[_Cmd, ...]:
    return tuple(_Parser(script).parse())


def _lines(text: str) -> tuple[list[str], bool]:
    """Split text into lines; the flag says whether the last line ended with a newline."""
    if not text:
        return [], True
    parts = text.split("\n")
    if parts[-1] == "":
        parts.pop()
        return parts, True
    return parts, False


class _Out:
    """sed's output, adding the newline a chomped last line lacked before anything follows."""

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.missing_nl = False

    def write(self, text: str, chomped: bool = True) -> None:
        if self.missing_nl:
            self.chunks.append("\n")
        self.chunks.append(text + ("\n" if chomped else ""))
        self.missing_nl = not chomped

    def raw(self, text: str) -> None:
        """Text that carries its own newline (a/i/c text)."""
        if self.missing_nl:
            self.chunks.append("\n")
            self.missing_nl = False
        self.chunks.append(text)

    def text(self) -> str:
        return "".join(self.chunks)


@lru_cache(maxsize=4096)
def _anchored_prefix(rx: str) -> str:
    """The literal text every match of a ``^``-anchored regex starts with ('' if unknown)."""
    if not rx.startswith("^") or "\\|" in rx:
        return ""
    out: list[str] = []
    i, n = 1, len(rx)
    while i < n:
        c = rx[i]
        if c == "\\":
            if i + 1 >= n or rx[i + 1] not in ".[]*^$/\\":
                break
            ch, step = rx[i + 1], 2
        elif c in ".*[^$":
            break
        else:
            ch, step = c, 1
        nxt = rx[i + step:i + step + 2]
        if nxt[:1] == "*" or nxt in ("\\{", "\\+", "\\?"):
            break
        out.append(ch)
        i += step
    return "".join(out)


def _matching_lines(rx: str, text: str) -> list[int] | None:
    """Start offsets of the lines in which ``rx`` matches, or None if not precomputable."""
    if not text:
        return []
    line_rx, whole, _ = _bre(rx)
    prefix = _anchored_prefix(rx)
    found: list[int] = []
    if prefix:
        # candidates by a C-speed substring search, each confirmed by the real regex
        pos = 0 if text.startswith(prefix) else text.find("\n" + prefix) + 1
        while pos > 0 or (pos == 0 and text.startswith(prefix)):
            end = text.find("\n", pos)
            if line_rx.search(text[pos:] if end < 0 else text[pos:end]):
                found.append(pos)
            if end < 0:
                break
            pos = text.find("\n" + prefix, end) + 1
            if pos == 0:
                break
        return found
    if whole is None:
        return None
    last = -1
    for m in whole.finditer(text):
        off = text.rfind("\n", 0, m.start()) + 1 if m.start() else 0
        if off != last and off < len(text):
            found.append(off)
            last = off
    return found


def _range_lines(addr: _Addr, text: str) -> list[int] | None:
    """Start offsets of the lines a top-level address selects (no walk over every line)."""
    import bisect

    m1 = _matching_lines(addr.rx1, text)
    if m1 is None or addr.rx2 is None:
        return m1
    m2 = _matching_lines(addr.rx2, text)
    if m2 is None:
        return None
    selected: list[int] = []
    pos = 0
    while True:
        k = bisect.bisect_left(m1, pos)
        if k >= len(m1):
            break
        off = m1[k]
        j = bisect.bisect_right(m2, off)
        end = m2[j] if j < len(m2) else -1
        while True:   # GNU: addr2 is looked for from the line after addr1's
            selected.append(off)
            nl = text.find("\n", off)
            if off == end or nl < 0 or nl + 1 >= len(text):
                break
            off = nl + 1
        pos = off + 1
    return selected


def run_sed(script: str, text: str, quiet: bool = False) -> str:
    """Run a sed script over ``text`` as GNU sed 4.9 would; raise SedError if it is rejected."""
    prog = _compile(script)
    for cmd in _walk(prog):
        if cmd.addr:
            cmd.addr.active = False
    selected = _fast_selection(prog, text)
    out = _Out()
    if selected is None:
        lines, last_chomped = _lines(text)
        for k, line in enumerate(lines):
            _cycle(prog, line, k < len(lines) - 1 or last_chomped, out, quiet, fast=False)
        return out.text()
    pos = 0
    for off in selected:
        if not quiet and off > pos:
            out.raw(text[pos:off])
        nl = text.find("\n", off)
        _cycle(prog, text[off:] if nl < 0 else text[off:nl], nl >= 0, out, quiet, fast=True)
        pos = len(text) if nl < 0 else nl + 1
    if not quiet and pos < len(text):
        out.raw(text[pos:])
    return out.text()


def _walk(cmds: Iterable[_Cmd]) -> Iterable[_Cmd]:
    for cmd in cmds:
        yield cmd
        yield from _walk(cmd.block)


def _fast_selection(prog: Sequence[_Cmd], text: str) -> list[int] | None:
    """The lines the only top-level command selects, when that can be known up front."""
    if len(prog) != 1 or prog[0].addr is None or any(c.op == "c" for c in _walk(prog)):
        return None
    return _range_lines(prog[0].addr, text)


def _selects(addr: _Addr | None, ps: str) -> bool:
    if addr is None:
        return True
    if addr.rx2 is None:
        return _bre(addr.rx1)[0].search(ps) is not None
    if addr.active:
        if _bre(addr.rx2)[0].search(ps):
            addr.active = False
        return True
    if _bre(addr.rx1)[0].search(ps):
        addr.active = True
        return True
    return False


def _cycle(prog: Sequence[_Cmd], line: str, chomped: bool, out: _Out, quiet: bool,
           fast: bool) -> None:
    appends: list[str] = []
    try:
        ps, deleted = _execute(prog, line, chomped, out, appends, top_fast=fast)
    except _Branch as jump:
        ps, deleted = jump.ps, False
    if not deleted and not quiet:
        out.write(ps, chomped)
    for text in appends:
        out.raw(text)


def _execute(cmds: Sequence[_Cmd], ps: str, chomped: bool, out: _Out, appends: list[str],
             top_fast: bool = False) -> tuple[str, bool]:
    for cmd in cmds:
        if not top_fast and not _selects(cmd.addr, ps):
            continue
        if cmd.op == "{":
            ps, deleted = _execute(cmd.block, ps, chomped, out, appends)
            if deleted:
                return ps, True
        elif cmd.op == "p":
            out.write(ps, chomped)
        elif cmd.op == "d":
            return ps, True
        elif cmd.op == "a":
            appends.append(cmd.text)
        elif cmd.op == "i":
            out.raw(cmd.text)
        elif cmd.op == "c":
            if cmd.addr is None or cmd.addr.rx2 is None or not cmd.addr.active:
                out.raw(cmd.text)
            return ps, True
        elif cmd.op == "b":
            raise _Branch(ps)
        elif cmd.op == "s":
            ps, done = _substitute(cmd, ps)
            if done and cmd.print_:
                out.write(ps, chomped)
    return ps, False


class _Branch(Exception):
    """``b`` without a label: jump to the end of the script (autoprint still happens)."""

    def __init__(self, ps: str) -> None:
        super().__init__()
        self.ps = ps


def _substitute(cmd: _Cmd, ps: str) -> tuple[str, bool]:
    pattern = _bre(cmd.rx)[0]
    out: list[str] = []
    pos, count, done = 0, 0, False
    prev_end = -1
    for m in pattern.finditer(ps):
        if m.start() == m.end() == prev_end:
            continue   # POSIX/GNU: no empty match right after the previous match
        prev_end = m.end()
        count += 1
        if count < cmd.nth:
            continue
        out.append(ps[pos:m.start()])
        for kind, val in cmd.repl:
            out.append(val if kind == "lit" else (m.group(val) or ""))  # type: ignore[arg-type]
        pos = m.end()
        done = True
        if not cmd.glob:
            break
    if not done:
        return ps, False
    out.append(ps[pos:])
    return "".join(out), True


def grep_q(pattern: str, text: str | None) -> bool:
    """``grep -q PATTERN FILE``: True when a line matches (False for a missing file/bad regex)."""
    if text is None:
        return False
    try:
        found = _matching_lines(pattern, text)
    except SedError:
        return False
    if found is not None:
        return bool(found)
    line_rx = _bre(pattern)[0]
    return any(line_rx.search(line) for line in _lines(text)[0])
