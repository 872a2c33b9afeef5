"""devstack's ini functions (``inc/ini-config``) in pure Python, byte for byte, quirks included.

This room holds ``iniset``, ``iniget``, ``inidelete``, ``iniadd``, ``iniadd_literal``,
``iniset_multiline``, ``iniget_multiline``, ``ini_has_option``, ``inicomment``,
``iniuncomment``, ``iniget_sections``, ``localrc_set`` and ``localconf_set``. devstack builds
sed scripts by pasting the section and option into them, so the quirks (regex characters are
live, ``/`` breaks a command, ``[a]x=1[a]`` hides the second ``x``…) come from sed itself. To
reproduce them rather than imitate them, each function here builds the *same* sed script
devstack builds and runs it through a small GNU-sed interpreter (``sed.py``); ``echo`` and word
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from dsvm import fsutil
from dsvm.devstack import sed

__all__ = [
    "Call", "FUNCTIONS", "Session", "echo", "split_words",
    "set_option", "get_option", "delete_option", "has_option", "add_literal",
    "set_multiline", "get_multiline", "comment_option", "uncomment_option", "sections",
    "iniset", "iniget", "inidelete", "ini_has_option", "iniadd", "iniadd_literal",
    "iniset_multiline", "iniget_multiline", "inicomment", "iniuncomment", "iniget_sections",
]

IFS = " \t\n"


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
                raise sed.SedError(f"can't read {path}")
            sed.check(script)
        except sed.SedError as exc:
            self.warnings.append(f"{path}: sed would fail here ({exc}); nothing changed")
            return "", 1
        if entry.text is None:
            self.warnings.append(f"{path}: no such file; nothing changed")
            return "", 2
        result = sed.run_sed(script, entry.text, quiet=quiet)
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
        return sed.grep_q(pattern, self._file(path).text)

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
