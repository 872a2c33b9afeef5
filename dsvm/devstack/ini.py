"""devstack's ini functions (``inc/ini-config``) in pure Python, byte for byte, quirks included.

This room holds ``iniset``, ``iniget``, ``inidelete``, ``iniadd``, ``iniadd_literal``,
``iniset_multiline``, ``iniget_multiline``, ``ini_has_option``, ``inicomment``,
``iniuncomment``, ``iniget_sections``, ``localrc_set`` and ``localconf_set``. devstack builds
sed scripts by pasting the section and option into them, so the quirks (regex characters are
live, ``/`` breaks a command, ``[a]x=1[a]`` hides the second ``x``…) come from sed itself. To
reproduce them rather than imitate them, each function here builds the *same* sed script
devstack builds and runs it through a small GNU-sed interpreter (``_Sed``); ``echo`` and word
splitting are the bash builtins' rules (globs stay literal: devstack.md §1.4). It never runs a
command, never imports anything heavy (``dsvm ini`` must start fast) and prints nothing.

Python API (what ``dsvm configure``/``cinder`` call):

- pure, on text (``None`` = no file): ``set_option(text, section, option, value) -> str``,
  ``get_option(text, section, option) -> str`` (iniget's stdout without the newline),
  ``delete_option``, ``has_option``, ``add_literal``, ``set_multiline``, ``comment_option``,
  ``uncomment_option``, ``sections``;
- on files, atomically: ``iniset(path, section, option, value)`` and friends, or many edits
  in one pass with ``Session`` (``session.call("iniset", [path, s, o, v])`` then
  ``session.commit()``): one read and one atomic write per file, whatever the number of edits;
- ``FUNCTIONS`` maps devstack's function names to their implementation; every call returns
  ``Call(stdout, rc)`` exactly as the bash function would, with devstack's own warnings (a
  sed/tee failure devstack would only show on stderr) in ``Session.warnings``.

Writes are a temporary file in the same directory renamed over the target: the file's mode
and owner are kept (as ``sed -i`` keeps them), and a file that ends up holding a secret value
(``*password*``, ``*secret*``, ``*token*``…) is never left readable by "other".
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from dsvm import fsutil

__all__ = [
    "Call", "FUNCTIONS", "Session", "SedError", "echo", "split_words",
    "set_option", "get_option", "delete_option", "has_option", "add_literal",
    "set_multiline", "get_multiline", "comment_option", "uncomment_option", "sections",
    "iniset", "iniget", "inidelete", "ini_has_option", "iniadd", "iniadd_literal",
    "iniset_multiline", "iniget_multiline", "inicomment", "iniuncomment", "iniget_sections",
]

IFS = " \t\n"


class SedError(Exception):
    """sed rejected its script (devstack then changes nothing and still returns 0)."""


@dataclass(frozen=True)
class Call:
    """What one devstack function call printed on stdout and its exit status."""

    stdout: str = ""
    rc: int = 0


# --------------------------------------------------------------------------- bash builtins

def split_words(text: str) -> list[str]:
    """Bash field splitting with the default IFS (globs are kept literal, on purpose)."""
    return [w for w in re.split(r"[ \t\n]+", text) if w]


_split_ifs = split_words


_ECHO_OPT = re.compile(r"-[neE]+\Z")
_ECHO_ESC = re.compile(r"\\(0[0-7]{0,3}|x[0-9A-Fa-f]{1,2}|u[0-9A-Fa-f]{1,4}|U[0-9A-Fa-f]{1,8}|.)",
                       re.DOTALL)
_SIMPLE_ESC = {"a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "n": "\n",
               "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def echo(args: Sequence[str]) -> str:
    """Bash's builtin ``echo`` (options -n/-e/-E, xpg_echo off): returns what it prints."""
    newline, escapes, i = True, False, 0
    while i < len(args) and _ECHO_OPT.match(args[i]):
        for ch in args[i][1:]:
            if ch == "n":
                newline = False
            else:
                escapes = ch == "e"
        i += 1
    text = " ".join(args[i:])
    if escapes:
        text, stopped = _echo_escapes(text)
        if stopped:
            return text
    return text + "\n" if newline else text


def _echo_escapes(text: str) -> tuple[str, bool]:
    out: list[str] = []
    pos = 0
    for m in _ECHO_ESC.finditer(text):
        out.append(text[pos:m.start()])
        pos = m.end()
        esc = m.group(1)
        if esc == "c":
            return "".join(out), True
        if esc in _SIMPLE_ESC:
            out.append(_SIMPLE_ESC[esc])
        elif esc[0] == "0":
            out.append(chr(int(esc[1:] or "0", 8) & 0xFF))
        elif esc[0] == "x" and len(esc) > 1:
            out.append(chr(int(esc[1:], 16)))
        elif esc[0] in "uU" and len(esc) > 1:
            out.append(chr(int(esc[1:], 16)))
        else:
            out.append("\\" + esc)
    out.append(text[pos:])
    return "".join(out), False


def _subst(text: str) -> str:
    """``$(...)``: the output with trailing newlines removed."""
    return text.rstrip("\n")


def _echo_unquoted(value: str) -> str:
    """``$(echo $value)``: split, echo options, trailing newlines stripped."""
    return _subst(echo(_split_ifs(value)))


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


# --------------------------------------------------------------------------- files

_SECRET_LINE = re.compile(r"^([^\s=#;][^=]*?)[ \t]*=[ \t]*\S", re.MULTILINE)


def holds_secret(text: str) -> bool:
    """True when an ``option = value`` line has a secret-looking name and a value."""
    from dsvm.secrets import is_secret_name

    return any(is_secret_name(m.group(1)) for m in _SECRET_LINE.finditer(text))


@dataclass
class _File:
    path: str
    text: str | None          # current content (None: no such file)
    original: str | None
    readable: bool = True     # False: a directory, unreadable, or a name sed takes for an option


class Session:
    """A batch of devstack ini calls on files: read once, edited in memory, written atomically.

    ``call(fn, args)`` behaves like the bash function with the same name and arguments; ``commit``
    writes every changed file (temp file + rename). ``warnings`` holds one line per failure
    devstack would only have shown on stderr (missing file, missing directory, sed error).
    """

    def __init__(self, cwd: str | None = None) -> None:
        self.cwd = cwd
        self.files: dict[str, _File] = {}
        self.warnings: list[str] = []

    # -- the shell's view of files
    def _file(self, path: str) -> _File:
        entry = self.files.get(path)
        if entry is None:
            entry = self._load(path)
            self.files[path] = entry
        return entry

    def _real(self, path: str) -> str:
        return os.path.join(self.cwd, path) if self.cwd and not os.path.isabs(path) else path

    def _load(self, path: str) -> _File:
        if not path or (path.startswith("-") and path != "-"):
            return _File(path, None, None, readable=False)
        try:
            with open(self._real(path), "rb") as fh:
                text = fh.read().decode("utf-8", "surrogateescape")
        except FileNotFoundError:
            return _File(path, None, None)
        except (IsADirectoryError, PermissionError, NotADirectoryError):
            return _File(path, None, None, readable=False)
        return _File(path, text, text)

    def read(self, path: str) -> str | None:
        """Current content of ``path`` in this session (None when it does not exist)."""
        return self._file(path).text

    def sed(self, script: str, path: str, *, quiet: bool = False, inplace: bool = False) -> tuple[str, int]:
        """``sed [-n] [-i] -e SCRIPT FILE``: (stdout, status); a rejected script changes nothing."""
        entry = self._file(path)
        try:
            if not entry.readable:
                raise SedError(f"can't read {path}")
            _compile(script)
        except SedError as exc:
            self.warnings.append(f"{path}: sed would fail here ({exc}); nothing changed")
            return "", 1
        if entry.text is None:
            self.warnings.append(f"{path}: no such file; nothing changed")
            return "", 2
        result = run_sed(script, entry.text, quiet=quiet)
        if inplace:
            entry.text = result
            return "", 0
        return result, 0

    def tee_append(self, path: str, data: str) -> int:
        """``echo … | tee --append FILE``: creates the file, but never its directory."""
        entry = self._file(path)
        real = self._real(path)
        parent = os.path.dirname(real) or "."
        if not entry.readable and entry.text is None and path:
            self.warnings.append(f"{path}: cannot append (not a regular file)")
            return 1
        if entry.text is None and (not path or not os.path.isdir(parent)):
            self.warnings.append(f"{path or repr(path)}: directory {parent} does not exist; "
                                 "nothing written (devstack fails silently here)")
            return 1
        entry.text = (entry.text or "") + data
        return 0

    def grep_q(self, pattern: str, path: str) -> bool:
        return grep_q(pattern, self._file(path).text)

    # -- calls
    def call(self, fn: str, args: Sequence[str]) -> Call:
        """Run devstack function ``fn`` with ``args`` (``-sudo`` first is accepted and ignored)."""
        try:
            impl = FUNCTIONS[fn]
        except KeyError:
            raise ValueError(f"unknown devstack ini function {fn!r}") from None
        return impl(self, list(args))

    def commit(self) -> list[str]:
        """Write every changed file atomically; return the paths written."""
        written = []
        for entry in self.files.values():
            if entry.text is not None and entry.text != entry.original:
                write_atomic(self._real(entry.path), entry.text, existed=entry.original is not None)
                entry.original = entry.text
                written.append(entry.path)
        return written


def write_atomic(path: str, text: str, *, existed: bool = True) -> None:
    """Write ``text`` to ``path`` atomically (``fsutil``), keeping its mode and owner.

    A new file gets tee's mode (0666 minus umask); a file holding a secret value never keeps
    permissions for "other".
    """
    mode = fsutil.default_mode(path) if existed else fsutil.new_file_mode()
    if mode & 0o007 and holds_secret(text):
        mode &= ~0o007
    fsutil.write_atomic(path, text, mode=mode, errors="surrogateescape")


# --------------------------------------------------------------------------- the functions
# Each mirrors its bash original in inc/ini-config line by line; the sed scripts are the same
# bytes devstack hands to sed (devstack.md §1).

def _args(args: list[str], n: int) -> list[str]:
    return (args + [""] * n)[:n]


def _unsudo(args: list[str]) -> tuple[bool, list[str]]:
    if args and args[0] == "-sudo":
        return True, args[1:]
    return False, args


def _range(section: str) -> str:
    return f"/^\\[{section}\\]/,/^\\[.*\\]/"


def _append_script(section: str, option: str, value: str) -> str:
    return f"/^\\[{section}\\]/ a\\\n{option} = {value}\n"


def _iniset(sh: Session, args: list[str]) -> Call:
    _, args = _unsudo(args)
    path, section, option, value = _args(args, 4)
    value = _echo_unquoted(value).replace("\\", "\\\\").replace("&", "\\&")
    if not section or not option:
        return Call()
    if not sh.grep_q(f"^\\[{section}\\]", path):
        sh.tee_append(path, echo(["-e", f"\\n[{section}]"]))
    if not _ini_has_option(sh, [path, section, option]).rc == 0:
        sh.sed(_append_script(section, option, value), path, inplace=True)
    elif any(c in IFS for c in section):
        # ${section} is unquoted in devstack's replace command: the script is cut in two
        sh.warnings.append(f"{path}: section {section!r} contains blanks: devstack cannot "
                           "replace an option there; nothing changed")
    else:
        script = (f"{_range(section)} s\x01^\\({option}[ \\t]*=[ \\t]*\\).*$\x01"
                  f"\\1{value}\x01")
        sh.sed(script, path, inplace=True)
    return Call()


def _iniget(sh: Session, args: list[str]) -> Call:
    path, section, option = _args(args, 3)
    out, _ = sh.sed(f"{_range(section)} {{ /^{option}[ \\t]*=/ p; }}", path, quiet=True)
    line = _subst(out)
    if "=" in line:
        line = line.split("=", 1)[1]
    return Call(echo(_split_ifs(line)))


def _iniget_multiline(sh: Session, args: list[str]) -> Call:
    path, section, option = _args(args, 3)
    out, _ = sh.sed(f"{_range(section)} {{ s/^{option}[ \\t]*=[ \\t]*//gp; }}", path, quiet=True)
    return Call(echo(_split_ifs(_subst(out))))


def _ini_has_option(sh: Session, args: list[str]) -> Call:
    _, args = _unsudo(args)
    path, section, option = _args(args, 3)
    out, _ = sh.sed(f"{_range(section)} {{ /^{option}[ \\t]*=/ p; }}", path, quiet=True)
    return Call("", 0 if _subst(out) else 1)


def _iniadd_literal(sh: Session, args: list[str]) -> Call:
    _, args = _unsudo(args)
    path, section, option, value = _args(args, 4)
    if section and option:
        sh.sed(_append_script(section, option, value), path, inplace=True)
    return Call()


def _inidelete(sh: Session, args: list[str]) -> Call:
    _, args = _unsudo(args)
    path, section, option = _args(args, 3)
    if section and option:
        sh.sed(f"{_range(section)} {{ /^{option}[ \\t]*=/ d; }}", path, inplace=True)
    return Call()


def _inicomment(sh: Session, args: list[str]) -> Call:
    _, args = _unsudo(args)
    path, section, option = _args(args, 3)
    sh.sed(f"{_range(section)} s|^\\({option}[ \\t]*=.*$\\)|#\\1|", path, inplace=True)
    return Call()


def _iniuncomment(sh: Session, args: list[str]) -> Call:
    _, args = _unsudo(args)
    path, section, option = _args(args, 3)
    sh.sed(f"{_range(section)} s|[^ \\t]*#[ \\t]*\\({option}[ \\t]*=.*$\\)|\\1|", path,
           inplace=True)
    return Call()


def _iniget_sections(sh: Session, args: list[str]) -> Call:
    (path,) = _args(args, 1)
    out, _ = sh.sed("s/^\\[\\(.*\\)\\]/\\1/p", path, quiet=True)
    return Call(echo(_split_ifs(_subst(out))))


def _shift3(args: list[str]) -> list[str]:
    """bash ``shift 3``: fails (and shifts nothing) when fewer than three arguments remain."""
    return args[3:] if len(args) >= 3 else args


def _iniset_multiline(sh: Session, args: list[str]) -> Call:
    _, args = _unsudo(args)
    path, section, option = _args(args, 3)
    words = [w for a in _shift3(args) for w in _split_ifs(a)]
    if not sh.grep_q(f"^\\[{section}\\]", path):
        sh.tee_append(path, echo(["-e", f"\\n[{section}]"]))
    else:
        sh.sed(f"{_range(section)} {{ /^{option}[ \\t]*=/ d; }}", path, inplace=True)
    for word in reversed(words):
        sh.sed(_append_script(section, option, word), path, inplace=True)
    return Call()


def _iniadd(sh: Session, args: list[str]) -> Call:
    sudo, args = _unsudo(args)
    path, section, option = _args(args, 3)
    head = _split_ifs(path) + _split_ifs(section) + _split_ifs(option)
    current = _subst(_iniget_multiline(sh, head).stdout)
    values = current + " " + " ".join(_shift3(args))
    _iniset_multiline(sh, (["-sudo"] if sudo else []) + head + _split_ifs(values))
    return Call()


# -- local.conf helpers (localrc_set / localconf_set, devstack.md §1.9)

def _meta(group: str, conf: str) -> str:
    return f"\\\x01^\\[\\[{group}|{conf}\\]\\]\x01"


_META_END = "\\\x01\\[\\[.*\\]\\]\x01"
_SUB_END = "/\\[\\[.*\\]\\]\\|\\[.*\\]/"


def _lc_has_option(sh: Session, path: str, g: str, c: str, s: str, o: str) -> bool:
    if not s:
        script = f"{_meta(g, c)},{_META_END}{{\n            /{o}[ \\t]*=.*$/p\n        }}"
    else:
        script = (f"{_meta(g, c)},{_META_END}{{\n            /\\[{s}\\]/,{_SUB_END}{{\n"
                  f"                /{o}[ \\t]*=.*$/p}}\n        }}")
    return bool(_subst(sh.sed(script, path, quiet=True)[0]))


def _lc_has_section(sh: Session, path: str, g: str, c: str, s: str) -> bool:
    script = f"{_meta(g, c)},{_META_END}{{\n        /\\[{s}\\]/p\n    }}"
    return bool(_subst(sh.sed(script, path, quiet=True)[0]))


def _lc_update(sh: Session, path: str, g: str, c: str, s: str, o: str, v: str) -> None:
    sub = f"s\x01^\\({o}[ \\t]*=[ \\t]*\\).*$\x01\\1{v}\x01"
    inner = sub if not s else f"/\\[{s}\\]/,{_SUB_END}{sub}"
    sh.sed(f"{_meta(g, c)},{_META_END}{{\n            {inner}\n        }}", path, inplace=True)


def _lc_add(sh: Session, path: str, g: str, c: str, s: str, o: str, v: str) -> None:
    if not s:
        script = f"{_meta(g, c)} a {o}={v}"
    else:
        script = f"{_meta(g, c)},{_META_END}{{\n            /\\[{s}\\]/ a {o}={v}\n        }}"
    sh.sed(script, path, inplace=True)


def _localconf_set(sh: Session, args: list[str]) -> Call:
    _, args = _unsudo(args)
    path, g, c, s, o, v = _args(args, 6)
    if not g or not c or not o or not v:
        return Call()
    if not sh.grep_q(f"^\\[\\[{g}|{c}\\]\\]", path):
        sh.tee_append(path, echo(["-e", f"\\n[[{g}|{c}]]"]))
        if s:
            sh.tee_append(path, echo(["-e", f"[{s}]"]))
        sh.tee_append(path, echo(["-e", f"{o}={v}"]))
    elif not s:
        if not _lc_has_option(sh, path, g, c, s, o):
            _lc_add(sh, path, g, c, s, o, v)
        else:
            _lc_update(sh, path, g, c, s, o, v)
    elif not _lc_has_section(sh, path, g, c, s):
        sh.sed(f"{_meta(g, c)} {{\n        a [{s}]\n        a {o}={v}\n    }}", path,
               inplace=True)
    elif not _lc_has_option(sh, path, g, c, s, o):
        _lc_add(sh, path, g, c, s, o, v)
    else:
        _lc_update(sh, path, g, c, s, o, v)
    return Call()


def _localrc_set(sh: Session, args: list[str]) -> Call:
    path, option, value = _args(args, 3)
    return _localconf_set(sh, [path, "local", "localrc", "", option, value])


FUNCTIONS: Mapping[str, Callable[[Session, list[str]], Call]] = {
    "iniset": _iniset, "iniget": _iniget, "inidelete": _inidelete, "iniadd": _iniadd,
    "iniadd_literal": _iniadd_literal, "iniset_multiline": _iniset_multiline,
    "iniget_multiline": _iniget_multiline, "ini_has_option": _ini_has_option,
    "inicomment": _inicomment, "iniuncomment": _iniuncomment,
    "iniget_sections": _iniget_sections, "localrc_set": _localrc_set,
    "localconf_set": _localconf_set,
}


# --------------------------------------------------------------------------- pure text API

class _TextSession(Session):
    """A session over one in-memory file called ``F``."""

    def __init__(self, text: str | None) -> None:
        super().__init__()
        self.files["F"] = _File("F", text, text)

    def tee_append(self, path: str, data: str) -> int:
        entry = self._file(path)
        entry.text = (entry.text or "") + data
        return 0


def _on_text(fn: str, text: str | None, *args: str) -> tuple[str | None, Call]:
    sh = _TextSession(text)
    call = sh.call(fn, ["F", *args])
    return sh.files["F"].text, call


def set_option(text: str | None, section: str, option: str, value: str) -> str:
    """iniset on text: the new text (a missing file, ``None``, is created)."""
    return _on_text("iniset", text, section, option, value)[0] or ""


def get_option(text: str | None, section: str, option: str) -> str:
    """iniget on text: what devstack prints, without the final newline."""
    return _subst(_on_text("iniget", text, section, option)[1].stdout)


def get_multiline(text: str | None, section: str, option: str) -> str:
    """iniget_multiline on text: the values joined by spaces."""
    return _subst(_on_text("iniget_multiline", text, section, option)[1].stdout)


def has_option(text: str | None, section: str, option: str) -> bool:
    """ini_has_option on text."""
    return _on_text("ini_has_option", text, section, option)[1].rc == 0


def delete_option(text: str | None, section: str, option: str) -> str | None:
    """inidelete on text (``None`` stays ``None``: devstack does not create the file)."""
    return _on_text("inidelete", text, section, option)[0]


def add_literal(text: str | None, section: str, option: str, value: str) -> str | None:
    """iniadd_literal on text."""
    return _on_text("iniadd_literal", text, section, option, value)[0]


def set_multiline(text: str | None, section: str, option: str, *values: str) -> str:
    """iniset_multiline on text."""
    return _on_text("iniset_multiline", text, section, option, *values)[0] or ""


def comment_option(text: str | None, section: str, option: str) -> str | None:
    """inicomment on text."""
    return _on_text("inicomment", text, section, option)[0]


def uncomment_option(text: str | None, section: str, option: str) -> str | None:
    """iniuncomment on text."""
    return _on_text("iniuncomment", text, section, option)[0]


def sections(text: str | None) -> list[str]:
    """iniget_sections on text, as a list of words."""
    return _split_ifs(_on_text("iniget_sections", text)[1].stdout)


# --------------------------------------------------------------------------- file API

def _file_call(fn: str, path: str | os.PathLike[str], *args: str) -> Call:
    sh = Session()
    call = sh.call(fn, [os.fspath(path), *args])
    sh.commit()
    return call


def iniset(path: str | os.PathLike[str], section: str, option: str, value: str) -> None:
    """devstack's iniset on a file, written atomically."""
    _file_call("iniset", path, section, option, value)


def iniget(path: str | os.PathLike[str], section: str, option: str) -> str:
    """devstack's iniget on a file (stdout without the final newline)."""
    return _subst(_file_call("iniget", path, section, option).stdout)


def inidelete(path: str | os.PathLike[str], section: str, option: str) -> None:
    """devstack's inidelete on a file."""
    _file_call("inidelete", path, section, option)


def ini_has_option(path: str | os.PathLike[str], section: str, option: str) -> bool:
    """devstack's ini_has_option on a file."""
    return _file_call("ini_has_option", path, section, option).rc == 0


def iniadd(path: str | os.PathLike[str], section: str, option: str, *values: str) -> None:
    """devstack's iniadd on a file."""
    _file_call("iniadd", path, section, option, *values)


def iniadd_literal(path: str | os.PathLike[str], section: str, option: str, value: str) -> None:
    """devstack's iniadd_literal on a file."""
    _file_call("iniadd_literal", path, section, option, value)


def iniset_multiline(path: str | os.PathLike[str], section: str, option: str,
                     *values: str) -> None:
    """devstack's iniset_multiline on a file."""
    _file_call("iniset_multiline", path, section, option, *values)


def iniget_multiline(path: str | os.PathLike[str], section: str, option: str) -> str:
    """devstack's iniget_multiline on a file."""
    return _subst(_file_call("iniget_multiline", path, section, option).stdout)


def inicomment(path: str | os.PathLike[str], section: str, option: str) -> None:
    """devstack's inicomment on a file."""
    _file_call("inicomment", path, section, option)


def iniuncomment(path: str | os.PathLike[str], section: str, option: str) -> None:
    """devstack's iniuncomment on a file."""
    _file_call("iniuncomment", path, section, option)


def iniget_sections(path: str | os.PathLike[str]) -> list[str]:
    """devstack's iniget_sections on a file."""
    return _split_ifs(_file_call("iniget_sections", path).stdout)
