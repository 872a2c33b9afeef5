"""devstack's meta-config (``inc/meta-config``): how stack.sh reads a ``local.conf``.

This room holds ``get_meta_section``, ``get_meta_section_files``, ``extract_localrc_section``,
``merge_config_file`` and ``merge_config_group`` with devstack's results (devstack.md §2,
vectors in ``spec/vectors/localconf.jsonl``). devstack turns each merged option into a shell
line (``iniset $NOVA_CONF DEFAULT x "value"``) that is ``read`` and ``eval``'d; this module
builds the same lines and interprets them with a small, inert model of bash: ``$VAR``,
``${VAR}``, ``${VAR:-default}``… expand from the given environment, quotes and backslashes
behave as in bash, and the ini calls go to ``dsvm.devstack.ini``.

What it never does: run a command. ``$(...)``, backticks and ``$((...))`` raise
``CommandSubstitutionError`` (exit 2) instead of being run — the one deliberate difference
from devstack — redirections are refused the same way, and any other command a line would
start is reported, not run. It prints nothing itself: messages come back in ``MergeResult``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field

from dsvm.devstack import ini
from dsvm.errors import UsageError

__all__ = ["CommandSubstitutionError", "MergeResult", "extract_localrc_section",
           "get_meta_section", "get_meta_section_files", "merge_config_file",
           "merge_config_group", "PHASES"]

PHASES = ("post-config", "extra", "post-extra", "test-config")
_HEADER = re.compile(r"\[\[.+\|.*\]\]")
_INI_CALLS = ("iniset", "inidelete", "iniadd_literal")


class CommandSubstitutionError(UsageError):
    """local.conf would make devstack run a command; dsvm refuses (exit 2)."""


@dataclass
class MergeResult:
    """What a meta-config step printed, its exit status and the files it wrote."""

    stdout: str = ""
    rc: int = 0
    warnings: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- awk parts

def _awk_unescape(value: str) -> str:
    """``awk -v name=value`` processes backslash escapes in value."""
    table = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
             "\\": "\\", '"': '"', "/": "/"}

    def sub(m: re.Match[str]) -> str:
        esc = m.group(1)
        if esc[0] in "01234567":
            return chr(int(esc, 8))
        return table.get(esc, esc)

    return re.sub(r"\\([0-7]{1,3}|.)", sub, value, flags=re.DOTALL)


def _records(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _awk_fields(line: str) -> list[str]:
    """awk's default field splitting: blanks only (a CR stays part of a field)."""
    return [f for f in re.split(r"[ \t\n]+", line) if f]


def _header(line: str) -> tuple[str, str] | None:
    """(group, file spec) of a meta-section header line, or None."""
    if not _HEADER.match(line):
        return None
    fields = _awk_fields(line)
    first = re.sub(r"[\[\]]", "", fields[0]) if fields else ""
    parts = first.split("|")
    return parts[0], (parts[1] if len(parts) > 1 else "")


def get_meta_section(text: str, group: str, configfile: str) -> str:
    """The lines of every ``[[group|configfile]]`` block, in file order (each ending in LF)."""
    if not configfile:
        return ""
    group, configfile = _awk_unescape(group), _awk_unescape(configfile)
    out: list[str] = []
    inside = False
    for line in _records(text):
        head = _header(line)
        if head is not None:
            inside = head == (group, configfile) and head[0] != ""
            continue
        if inside:
            out.append(line + "\n")
    return "".join(out)


def get_meta_section_files(text: str, group: str) -> list[str]:
    """The file spec of every header of ``group``, in file order, repeats included."""
    group = _awk_unescape(group)
    return [head[1] for line in _records(text)
            if (head := _header(line)) is not None and head[0] == group]


def _merge_commands(lines: str, configfile: str) -> list[str]:
    """The shell lines devstack's merge awk program prints for one config file."""
    section = last_section = ""
    sections: list[str] = []
    names: list[list[str]] = []
    values: dict[tuple[str, str], list[str]] = {}
    for line in _records(lines):
        if re.match(r"\[.+\]", line):
            fields = _awk_fields(line)
            section = re.sub(r"[\[\]]", "", fields[0]) if fields else ""
            continue
        if re.match(r" *#", line) or not re.match(r"[^ \t]", line):
            continue
        eq = line.find("=")
        attr = re.sub(r"[ \t]*$", "", line[:eq] if eq > 0 else "")
        value = line[eq + 1:] if eq >= 0 else line
        value = value.strip(" \t")
        key = (section, attr)
        if key not in values:
            if section != last_section:
                sections.append(section)
                names.append([])
                last_section = section
            if names:
                names[-1].append(attr)
            values[key] = [value]
        else:
            values[key].append(value)
    out: list[str] = []
    for sec, attrs in zip(sections, names, strict=True):
        for attr in reversed(attrs):
            vals = values[(sec, attr)]
            if len(vals) == 1:
                out.append(f'iniset {configfile} {sec} {attr} "{vals[0]}"')
                continue
            out.append(f"inidelete {configfile} {sec} {attr}")
            out.append(f'iniset {configfile} {sec} {attr} "{vals[-1]}"')
            out.extend(f'iniadd_literal {configfile} {sec} {attr} "{v}"'
                       for v in reversed(vals[:-1]))
    return out


# --------------------------------------------------------------------------- a tiny, inert bash

class _SyntaxError(Exception):
    pass


class _BadSubstitution(Exception):
    pass


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _shown(line: str) -> str:
    """A generated line for a message: the call and names, never the value (it may be secret)."""
    head = line.split('"', 1)[0].rstrip()
    return head + (' "…"' if '"' in line else "")


class _Shell:
    """Expands and runs the lines devstack eval's; never runs anything but the ini calls."""

    def __init__(self, env: MutableMapping[str, str], session: ini.Session,
                 positional: list[str], runner: str, where: str) -> None:
        self.env, self.session, self.positional = env, session, positional
        self.runner, self.where = runner, where
        self.warnings: list[str] = []

    # read (without -r): backslash escapes go, a trailing backslash joins the next line
    @staticmethod
    def read_lines(lines: list[str]) -> list[str]:
        out: list[str] = []
        i = 0
        while i < len(lines):
            buf: list[str] = []
            line = lines[i]
            i += 1
            while True:
                j = 0
                cont = False
                while j < len(line):
                    c = line[j]
                    if c == "\\":
                        if j + 1 < len(line):
                            buf.append(line[j + 1])
                            j += 2
                            continue
                        cont = True
                        break
                    buf.append(c)
                    j += 1
                if cont and i < len(lines):
                    line = lines[i]
                    i += 1
                    continue
                break
            out.append("".join(buf).strip(" \t"))
        return out

    def run(self, line: str) -> int:
        """eval one line; return its status (2 for a syntax error: the line is lost)."""
        try:
            commands = self._parse(line)
        except _SyntaxError as exc:
            self.warnings.append(f"{self.where}: devstack's eval rejects this line ({exc}); "
                                 f"it is lost: {_shown(line)}")
            return 2
        rc = 0
        for op, words in commands:
            if (op == "&&" and rc != 0) or (op == "||" and rc == 0):
                continue
            try:
                fields = self._expand_words(words)
            except _BadSubstitution:
                self.warnings.append(f"{self.where}: bad substitution in {_shown(line)}")
                rc = 1
                continue
            rc = self._call(fields)
        return rc

    def _call(self, fields: list[str]) -> int:
        if not fields:
            return 0
        name = fields[0]
        if name in ini.FUNCTIONS:
            return self.session.call(name, fields[1:]).rc
        self.warnings.append(f"{self.where}: devstack would run the command {name!r} here; "
                             "dsvm runs no commands from local.conf (status 127)")
        return 127

    # -- parsing into commands of words; a word is a list of (text, splittable) pieces
    def _parse(self, line: str) -> list[tuple[str, list[list[tuple[str, bool]]]]]:
        commands: list[tuple[str, list[list[tuple[str, bool]]]]] = []
        words: list[list[tuple[str, bool]]] = []
        word: list[tuple[str, bool]] | None = None
        op = ";"
        i, n = 0, len(line)
        while i < n:
            c = line[i]
            if c in " \t\n":
                if word is not None:
                    words.append(word)
                    word = None
                i += 1
            elif c == "#" and word is None:
                break
            elif c in ";&|":
                if word is not None:
                    words.append(word)
                    word = None
                two = line[i:i + 2]
                nxt = two if two in ("&&", "||") else c
                if not words:
                    raise _SyntaxError(f"syntax error near unexpected token `{nxt}'")
                commands.append((op, words))
                words, op = [], nxt
                i += len(nxt)
            elif c in "<>":
                raise CommandSubstitutionError(
                    f"{self.where}: a local.conf line would redirect to a file: {_shown(line)}",
                    hint="devstack evaluates local.conf lines as shell; remove < and > "
                         "from section and option names")
            elif c in "()":
                raise _SyntaxError(f"syntax error near unexpected token `{c}'")
            else:
                word = word if word is not None else []
                i = self._piece(line, i, word)
        if word is not None:
            words.append(word)
        if words:
            commands.append((op, words))
        elif op != ";":
            raise _SyntaxError("syntax error: unexpected end of file")
        return commands

    def _refuse(self, what: str) -> CommandSubstitutionError:
        return CommandSubstitutionError(
            f"{self.where}: {what} in local.conf: devstack would run it as a command; "
            "dsvm refuses to",
            hint="write the literal value, or use $VAR / ${VAR} (expanded from the "
                 "environment)")

    def _piece(self, line: str, i: int, word: list[tuple[str, bool]]) -> int:
        c = line[i]
        if c == "'":
            end = line.find("'", i + 1)
            if end < 0:
                raise _SyntaxError("unexpected EOF while looking for matching `''")
            word.append((line[i + 1:end], False))
            return end + 1
        if c == '"':
            return self._dquote(line, i + 1, word)
        if c == "\\":
            if i + 1 < len(line):
                word.append((line[i + 1], False))
                return i + 2
            word.append(("", False))
            return i + 1
        if c == "`":
            raise self._refuse("a backtick command substitution")
        if c == "$":
            text, i = self._dollar(line, i, quoted=False)
            word.append((text, True))
            return i
        word.append((c, False))
        return i + 1

    def _dquote(self, line: str, i: int, word: list[tuple[str, bool]]) -> int:
        buf: list[str] = []
        n = len(line)
        while i < n:
            c = line[i]
            if c == '"':
                word.append(("".join(buf), False))
                return i + 1
            if c == "\\" and i + 1 < n and line[i + 1] in '$`"\\\n':
                buf.append(line[i + 1])
                i += 2
            elif c == "`":
                raise self._refuse("a backtick command substitution")
            elif c == "$":
                text, i = self._dollar(line, i, quoted=True)
                buf.append(text)
            else:
                buf.append(c)
                i += 1
        raise _SyntaxError("unexpected EOF while looking for matching `\"'")

    def _dollar(self, line: str, i: int, quoted: bool) -> tuple[str, int]:
        nxt = line[i + 1:i + 2]
        if nxt == "(":
            raise self._refuse("a $(...) command substitution")
        if nxt == "{":
            end, depth, j = -1, 0, i + 1
            while j < len(line):
                if line[j] == "{":
                    depth += 1
                elif line[j] == "}":
                    depth -= 1
                    if depth == 0:
                        end = j
                        break
                j += 1
            if end < 0:
                raise _SyntaxError("unexpected EOF while looking for matching `}'")
            return self._brace(line[i + 2:end]), end + 1
        m = _NAME.match(line, i + 1)
        if m:
            return self.env.get(m.group(0), ""), m.end()
        if nxt and nxt in "0123456789@*#?$!-":
            return self._special(nxt), i + 2
        if nxt == "'" and not quoted:
            end = line.find("'", i + 2)
            if end < 0:
                raise _SyntaxError("unexpected EOF while looking for matching `''")
            return ini._echo_escapes(line[i + 2:end])[0], end + 1
        return "$", i + 1

    def _special(self, ch: str) -> str:
        if ch.isdigit():
            k = int(ch)
            if k == 0:
                return self.runner
            return self.positional[k - 1] if k <= len(self.positional) else ""
        return {"@": " ".join(self.positional), "*": " ".join(self.positional),
                "#": str(len(self.positional)), "?": "0", "$": str(os.getpid()),
                "!": "", "-": "hB"}[ch]

    def _brace(self, body: str) -> str:
        if "$(" in body or "`" in body:
            raise self._refuse("a command substitution")
        if body.startswith("#") and _NAME.fullmatch(body[1:]):
            return str(len(self.env.get(body[1:], "")))
        m = _NAME.match(body) or re.match(r"[0-9@*#?$!-]", body)
        if not m:
            raise _BadSubstitution("${" + body + "}")
        name, rest = m.group(0), body[m.end():]
        is_set = name in self.env if _NAME.fullmatch(name) else True
        value = self.env.get(name, "") if _NAME.fullmatch(name) else self._special(name)
        if not rest:
            return value
        op = re.match(r":?[-=+?]", rest)
        if not op:
            raise _BadSubstitution("${" + body + "}")
        word = self._expand_inner(rest[op.end():])
        colon, kind = op.group(0).startswith(":"), op.group(0)[-1]
        present = bool(value) if colon else is_set
        if kind == "-":
            return value if present else word
        if kind == "=":
            if not present:
                self.env[name] = word
                return word
            return value
        if kind == "+":
            return word if present else ""
        if not present:
            raise _BadSubstitution(f"{name}: {word or 'parameter null or not set'}")
        return value

    def _expand_inner(self, text: str) -> str:
        piece: list[tuple[str, bool]] = []
        i = 0
        while i < len(text):
            i = self._piece(text, i, piece)
        return "".join(t for t, _ in piece)

    @staticmethod
    def _expand_words(words: list[list[tuple[str, bool]]]) -> list[str]:
        fields: list[str] = []
        for word in words:
            cur, have = "", False
            for text, split in word:
                if not split:
                    cur += text
                    have = True
                    continue
                parts = re.split(r"[ \t\n]+", text)
                for k, part in enumerate(parts):
                    if k and (have or cur):
                        fields.append(cur)
                        cur, have = "", False
                    cur += part
                    have = have or bool(part)
            if have or cur:
                fields.append(cur)
        return fields

    def expand_spec(self, spec: str) -> str:
        """``$(eval "echo $configfile")``: the spec's value after expansion."""
        commands = self._parse("echo " + spec) if spec.strip() else []
        fields = self._expand_words(commands[0][1])[1:] if commands else []
        return ini._subst(ini.echo(fields))


# --------------------------------------------------------------------------- the functions

def extract_localrc_section(local_conf: str, localrc: str, localrc_auto: str) -> MergeResult:
    """Write ``.localrc.auto`` from the ``[[local|localrc]]`` blocks, unless ``localrc`` exists.

    Like stack.sh, the old ``.localrc.auto`` is removed first.
    """
    result = MergeResult()
    try:
        os.unlink(localrc_auto)
    except FileNotFoundError:
        pass
    text = _read(local_conf)
    if text is None:
        return result
    for lfile in ini.split_words("\n".join(get_meta_section_files(text, "local"))):
        if lfile != "localrc":
            continue
        if os.access(localrc, os.R_OK) and os.path.isfile(localrc):
            result.stdout += "localrc and local.conf:[[local]] both exist, using localrc\n"
        else:
            body = "# Generated file, do not edit\n" + get_meta_section(text, "local", lfile)
            ini.write_atomic(localrc_auto, body, existed=False)
            if localrc_auto not in result.written:
                result.written.append(localrc_auto)
    return result


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "surrogateescape")
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return None


def merge_config_group(local_conf: str, group: str, env: Mapping[str, str] | None = None,
                       *, cwd: str | None = None, runner: str = "dsvm") -> MergeResult:
    """Merge every ``[[group|file]]`` block of ``local_conf`` into its file (devstack.md §2.4).

    ``env`` gives the variables (default ``os.environ``); relative specs resolve against
    ``cwd``. Raises CommandSubstitutionError when a line would run a command.
    """
    result = MergeResult()
    text = _read(local_conf)
    if text is None:
        return result
    variables = dict(os.environ if env is None else env)
    cwd = cwd or os.getcwd()
    session = ini.Session(cwd=cwd)
    for spec in ini.split_words("\n".join(get_meta_section_files(text, group))):
        shell = _Shell(variables, session, [local_conf, group, spec], runner,
                       f"[[{group}|{spec}]]")
        real = shell.expand_spec(spec)
        if not real:
            result.stdout += (f"[WARNING] {runner}:184 unknown config file specification: "
                              f"{spec} is undefined\n")
            break
        target = os.path.join(cwd, real)
        parent = os.path.dirname(target)
        if os.path.exists(parent) and not os.path.isdir(parent):
            session.commit()
            result.warnings.append(f"[ERROR] {runner}:188 bogus config file specification "
                                   f"{spec} ({spec}={real}, {os.path.dirname(real)} exists but "
                                   "it is not a directory)")
            result.rc = 1
            return result
        if not os.path.exists(parent):
            _make_dir(parent, variables.get("STACK_USER"))
        result.rc = merge_config_file(text, group, spec, session, shell, result)
    result.written = session.commit()
    result.warnings[:0] = session.warnings
    return result


def _make_dir(path: str, owner: str | None) -> None:
    os.makedirs(path, exist_ok=True)
    if owner and os.geteuid() == 0:
        import shutil

        try:
            shutil.chown(path, user=owner)
        except (LookupError, PermissionError):
            pass


def merge_config_file(text: str, group: str, spec: str, session: ini.Session,
                      shell: _Shell, result: MergeResult) -> int:
    """Merge one (group, spec)'s blocks into the file; return the step's status."""
    real = shell.expand_spec(spec)
    target = os.path.join(session.cwd or os.getcwd(), real)
    if session.read(real) is None and not os.path.isfile(target):
        if session.tee_append(real, "") != 0:
            result.warnings.append(f"[ERROR] could not create config file {real} ({spec})")
            return 1
    lines = _merge_commands(get_meta_section(text, group, spec), spec)
    rc = 0
    for line in _Shell.read_lines(lines):
        rc = shell.run(line)
    result.warnings.extend(shell.warnings)
    shell.warnings.clear()
    return rc
