"""local.conf's config meta-sections (``[[phase|spec]]`` blocks, merged key by key), the checks of
what may go into them, and where a nested profile value was written (``file:line``).

Shared by ``localconf.py`` (which renders local.conf) and ``cinder.py`` (whose backends add
blocks): neither imports the other for these. Pure: no disk beyond the profile text already
loaded, no clock, no environment.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsvm import secrets
from dsvm.errors import Problem

if TYPE_CHECKING:
    from dsvm.profile import Settings

GATE = "devstack-gate"  # the origin of what devstack-gate itself wrote


@dataclass(frozen=True)
class Line:
    """One line of local.conf: its text, where it came from, and how it is shown."""

    text: str
    origin: str
    shown: str | None = None  # the masked form when the line holds a secret

    @property
    def display(self) -> str:
        return self.text if self.shown is None else self.shown


# --------------------------------------------------------------------------------------------
# Config meta-sections: (phase, spec) -> section -> option -> values, merged key by key.

@dataclass
class Option:
    """One option of a config block (several values = a multi-valued option)."""

    values: tuple[str, ...]
    origin: str
    secret: bool = False


@dataclass
class Blocks:
    """The ``[[phase|spec]]`` blocks of a local.conf, in first-seen order."""

    data: dict[tuple[str, str], dict[str, dict[str, Option]]] = field(default_factory=dict)

    def set(self, phase: str, spec: str, section: str, option: str, values: Iterable[str],
            origin: str, secret: bool = False) -> None:
        """Set an option, replacing an earlier value in place (dsconf merge_lc)."""
        sections = self.data.setdefault((phase, spec), {})
        sections.setdefault(section, {})[option] = Option(tuple(values), origin, secret)

    def lines(self) -> list[Line]:
        out: list[Line] = []
        for (phase, spec), sections in self.data.items():
            first = next((o.origin for opts in sections.values() for o in opts.values()), GATE)
            out += [Line("", first), Line(f"[[{phase}|{spec}]]", first)]
            for section, options in sections.items():
                sec_origin = next((o.origin for o in options.values()), first)
                out.append(Line(f"[{section}]", sec_origin))
                for name, opt in options.items():
                    for value in opt.values:
                        text = f"{name} = {value}".rstrip()
                        shown = f"{name} = {secrets.MASK}" if opt.secret and value else None
                        out.append(Line(text, opt.origin, shown))
        return out


# --------------------------------------------------------------------------------------------
# Where a nested profile value was written: file:line, for error messages and --print.

def locate(settings: Settings, path: list[str | int]) -> str:
    """Return ``file:line`` of the profile entry at ``path`` (keys/indexes), or the key's origin."""
    for chain_path in reversed(settings.chain):
        loaded = settings.loaded.get(str(chain_path))
        if loaded is None:
            continue
        node: Any = _compose(loaded.text)
        for step in path:
            node = _child(node, step)
            if node is None:
                break
        if node is not None:
            return f"{_short(loaded.path)}:{node.start_mark.line + 1}"
    dotted = ".".join(str(p) for p in path[:2])
    return short_origin(settings.origin(dotted))


@functools.lru_cache(maxsize=16)
def _compose(text: str) -> Any:
    """The YAML node tree of a profile's text (cached: locate() runs once per value)."""
    import yaml

    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None


def _child(node: Any, step: str | int) -> Any:
    import yaml

    if isinstance(step, int) and isinstance(node, yaml.SequenceNode):
        return node.value[step] if step < len(node.value) else None
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == str(step):
                return key_node if step == "__key__" else value_node
    return None


def _short(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def short_origin(origin: str) -> str:
    """``origin`` with a profile path shortened to the working directory (for display)."""
    head, sep, line = origin.rpartition(":")
    if sep and line.isdigit() and head.startswith("/"):
        return f"{_short(Path(head))}:{line}"
    return origin


# --------------------------------------------------------------------------------------------
# What devstack can carry in a block (devstack.md §2.7).

def check_value(value: str, where: str, what: str, *, secret: bool) -> list[Problem]:
    """Problems of one config-block value: newlines, command substitution, eval-mangled chars."""
    problems = []
    if "\n" in value or "\r" in value:
        problems.append(Problem(where, f"{what}: the value contains a newline",
                                hint="devstack reads one line per option; put it on one line"))
    if "$(" in value or "`" in value:
        problems.append(Problem(where, f"{what}: command substitution ($(...) or backticks) "
                                "is refused", hint="put the literal value in the profile"))
    bad = [c for c in ('"', "\\") if c in value] + (["$"] if secret and "$" in value else [])
    if bad:
        problems.append(Problem(
            where, f"{what}: the value contains {' '.join(repr(c) for c in bad)}, which "
            "devstack's merge would change (it evals values)",
            hint="use a value without these characters (devstack.md §2.4)"))
    return problems


def check_section(name: str, where: str) -> list[Problem]:
    """Problems of a section or option name devstack would mangle (spaces, brackets, '=')."""
    if not name or re.search(r"[\s\[\]=]", name) or name.startswith(("#", ";")):
        return [Problem(where, f"'{name}' cannot be a section or option name in local.conf",
                        hint="no spaces, '[', ']' or '=', and no leading '#' or ';'")]
    return []


def check_spec(spec: str, where: str) -> list[Problem]:
    """Problems of a meta-section header's config file spec."""
    if not spec or re.search(r"[\s|\[\]]", spec) or "$(" in spec or "`" in spec:
        return [Problem(where, f"'{spec}' cannot be a config file spec in a meta-section header",
                        hint="write a variable like $NOVA_CONF or an absolute path")]
    return []
