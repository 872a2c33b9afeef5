"""Profiles: YAML files with ``extends:``, ``${VAR}`` expansion and validation with line numbers.

``resolve()`` layers built-in defaults, the profile chain, the environment (``environ.py``) and
command-line options, lowest to highest, into ``Settings``: every dotted key with its value and
where it came from (``default``, ``file:line``, ``env VAR``, ``option --x``). Loading only
reads files; nothing here writes anything.
"""

from __future__ import annotations

import builtins
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from dsvm import environ, schema
from dsvm.errors import Problem, ProfileError, closest

V = TypeVar("V")

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "profiles"
PACKAGED_DIR = Path(__file__).resolve().parent / "profiles"
SEARCH_DIRS_ENV = "DSVM_PROFILE_PATH"


def search_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    """Directories searched for a profile given by name, in order."""
    env = os.environ if env is None else env
    dirs = [Path(p) for p in env.get(SEARCH_DIRS_ENV, "").split(":") if p]
    dirs += [Path.cwd() / "profiles", Path("/etc/dsvm/profiles"),
             Path(env.get("HOME", "~")).expanduser() / ".config/dsvm/profiles",
             SHIPPED_DIR, PACKAGED_DIR]
    seen: list[Path] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen


def find(name: str, env: Mapping[str, str] | None = None, relative_to: Path | None = None) -> Path:
    """Return the path of profile ``name`` (a name or a path); raise ProfileError if absent."""
    as_path = Path(name)
    if name.endswith((".yaml", ".yml")) or "/" in name:
        candidates = [as_path] if as_path.is_absolute() or relative_to is None else \
            [relative_to / as_path, as_path]
        for cand in candidates:
            if cand.is_file():
                return cand.resolve()
        raise ProfileError(f"profile file not found: {name}",
                           hint="give an existing path, or a profile name (dsvm profile list)")
    dirs = ([relative_to] if relative_to else []) + search_dirs(env)
    for d in dirs:
        for ext in (".yaml", ".yml"):
            cand = d / f"{name}{ext}"
            if cand.is_file():
                return cand.resolve()
    known = sorted({p.stem for d in search_dirs(env) if d.is_dir() for p in d.glob("*.y*ml")})
    near = closest(name, known)
    raise ProfileError(
        f"unknown profile '{name}'",
        hint=(f"did you mean '{near}'? " if near else "")
        + f"known profiles: {', '.join(known) or 'none'}; searched "
        + ", ".join(str(d) for d in dirs))


def list_profiles(env: Mapping[str, str] | None = None) -> list[tuple[str, Path, str]]:
    """Return (name, path, description) of every profile found, first one of a name wins."""
    out: dict[str, tuple[str, Path, str]] = {}
    for d in search_dirs(env):
        if not d.is_dir():
            continue
        for path in sorted(d.glob("*.y*ml")):
            if path.stem in out:
                continue
            try:
                data = yaml.safe_load(path.read_text()) or {}
                desc = str(data.get("description", "")) if isinstance(data, dict) else ""
            except (yaml.YAMLError, OSError):
                desc = "(unreadable)"
            out[path.stem] = (path.stem, path, desc)
    return sorted(out.values())


# --------------------------------------------------------------------------------------------
# Loading one file: values plus the line each came from.

@dataclass
class Loaded:
    """One profile file: its raw mapping and the line of each dotted key."""

    path: Path
    data: dict[str, Any]
    lines: dict[str, int]
    text: str

    def where(self, dotted: str) -> str:
        line = self.lines.get(dotted)
        if line is None and "." in dotted:
            line = self.lines.get(dotted.split(".")[0])
        return f"{self.path}:{line}" if line else str(self.path)

    def context(self, dotted: str) -> str | None:
        line = self.lines.get(dotted)
        if not line:
            return None
        src = self.text.splitlines()
        lo, hi = max(1, line - 1), min(len(src), line + 1)
        return "\n".join(f"{n:4d} | {src[n - 1]}" for n in range(lo, hi + 1))


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available


def _load_file(path: Path) -> Loaded:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"cannot read profile {path}: {exc.strerror}") from exc
    # One parse: compose the node tree (for line numbers), then construct values from it.
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ProfileError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}",
                           hint="check indentation and quoting around that line") from exc
    finally:
        loader.dispose()
    if node is None:
        return Loaded(path, {}, {}, text)
    if not isinstance(node, yaml.MappingNode):
        raise ProfileError(f"{path}:{node.start_mark.line + 1}: a profile must be a mapping "
                           f"of settings", hint="see profiles/base.yaml for the shape")
    lines: dict[str, int] = {}
    _record_lines(node, "", lines, depth=0)
    return Loaded(path, data or {}, lines, text)


def _record_lines(node: yaml.Node, prefix: str, lines: dict[str, int], depth: int) -> None:
    if not isinstance(node, yaml.MappingNode) or depth > 1:
        return
    for key_node, value_node in node.value:
        dotted = f"{prefix}{key_node.value}"
        lines[dotted] = key_node.start_mark.line + 1
        _record_lines(value_node, dotted + ".", lines, depth + 1)


# --------------------------------------------------------------------------------------------
# ${VAR} expansion

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand(value: Any, env: Mapping[str, str], where: str, problems: list[Problem]) -> Any:
    """Expand ``${VAR}``/``${VAR:-default}`` in every string of ``value`` (``$$`` is ``$``).

    Bare ``$VAR`` is left alone: devstack meta-section names like ``$NOVA_CONF`` must survive.
    """
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            name, default = m.group(1), m.group(2)
            if name in env and (env[name] != "" or default is None):
                return env[name]
            if default is not None:
                return default
            problems.append(Problem(where, f"${{{name}}} is not set and has no default",
                                    hint=f"export {name}, or write ${{{name}:-default}}"))
            return ""
        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [expand(v, env, where, problems) for v in value]
    if isinstance(value, dict):
        return {k: expand(v, env, where, problems) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------------------------
# Validation

def _check_type(key: schema.Key, value: Any) -> str | None:
    t = key.type
    if value is None:
        return None
    if t == "str" and not isinstance(value, str | int | float) or t == "str" and isinstance(value, bool):
        return "a string"
    if t == "int" and (not isinstance(value, int) or isinstance(value, bool)):
        return "an integer"
    if t == "bool" and not isinstance(value, bool):
        return "true or false"
    if t == "list" and not (isinstance(value, list)
                            and all(isinstance(v, str | int | float) for v in value)):
        return "a list of strings"
    if t == "map" and not (isinstance(value, dict) and all(
            isinstance(v, str | int | float | bool) for v in value.values())):
        return "a mapping of names to plain values"
    if t == "list[map]" and not (isinstance(value, list)
                                 and all(isinstance(v, dict) for v in value)):
        return "a list of mappings"
    if key.choices and str(value) not in key.choices:
        return "one of " + ", ".join(key.choices)
    return None


def validate(loaded: Loaded) -> list[Problem]:
    """Return every problem of one profile file: unknown keys, wrong types, bad choices."""
    problems: list[Problem] = []
    for top, value in loaded.data.items():
        top = str(top)
        if top in schema.TOP:
            err = _check_type(schema.TOP[top], value)
            if err:
                problems.append(Problem(loaded.where(top), f"'{top}' must be {err}",
                                        context=loaded.context(top)))
            continue
        section = schema.SECTIONS.get(top)
        if section is None:
            near = closest(top, list(schema.TOP) + list(schema.SECTIONS))
            problems.append(Problem(loaded.where(top), f"unknown setting '{top}'",
                                    hint=(f"did you mean '{near}'? " if near else "")
                                    + "allowed: " + ", ".join(list(schema.TOP)
                                                              + list(schema.SECTIONS)),
                                    context=loaded.context(top)))
            continue
        if not isinstance(value, dict):
            problems.append(Problem(loaded.where(top), f"'{top}' must be a mapping",
                                    context=loaded.context(top)))
            continue
        for name, item in value.items():
            dotted = f"{top}.{name}"
            key = section.get(str(name))
            if key is None:
                near = closest(str(name), list(section))
                problems.append(Problem(loaded.where(dotted), f"unknown setting '{dotted}'",
                                        hint=(f"did you mean '{top}.{near}'? " if near else "")
                                        + f"allowed in {top}: " + ", ".join(section),
                                        context=loaded.context(dotted)))
                continue
            err = _check_type(key, item)
            if err:
                problems.append(Problem(loaded.where(dotted), f"'{dotted}' must be {err}",
                                        context=loaded.context(dotted)))
    return problems


# --------------------------------------------------------------------------------------------
# Settings: the resolved result with provenance

@dataclass(frozen=True)
class Value:
    """A resolved setting, where it came from, and (when that says more) why."""

    value: Any
    origin: str
    why: str = ""
    is_default: bool = False  # the schema's default: no profile, env or option set it


@dataclass
class Settings:
    """Every dotted key resolved (defaults < profile < env < options), with provenance.

    The phases read typed, frozen views of it (``settings.git``, ``settings.tempest``, ...,
    built from ``schema.py``) and the typed devstack-gate environment (``settings.gate``).
    """

    profile: str
    chain: list[Path] = field(default_factory=list)
    values: dict[str, Value] = field(default_factory=dict)
    gate: environ.Gate = field(default_factory=environ.Gate)
    env: dict[str, str] = field(default_factory=dict)
    loaded: dict[str, Loaded] = field(default_factory=dict)
    _views: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def get(self, dotted: str, default: Any = None) -> Any:
        """Return the value of ``section.name`` (or a top-level key)."""
        v = self.values.get(dotted)
        return default if v is None else v.value

    def origin(self, dotted: str) -> str:
        """Return where the value of ``dotted`` came from."""
        v = self.values.get(dotted)
        return v.origin if v else "unset"

    def is_default(self, dotted: str) -> bool:
        """True when nothing (profile, environment, option) set ``dotted``."""
        v = self.values.get(dotted)
        return v is None or v.is_default

    def why(self, dotted: str) -> str:
        """One line saying why ``dotted`` has its value (for --plan and the run's log)."""
        v = self.values.get(dotted)
        if v is None:
            return f"{dotted} is unset"
        return v.why or f"{dotted} = {v.value} ({v.origin})"

    def section(self, name: str) -> dict[str, Any]:
        """Return one section as a plain dict of resolved values."""
        prefix = name + "."
        return {k[len(prefix):]: v.value for k, v in self.values.items() if k.startswith(prefix)}

    def set(self, dotted: str, value: Any, origin: str, why: str = "") -> None:
        self.values[dotted] = Value(value, origin, why)
        self._views.clear()

    def set_default(self, dotted: str, value: Any) -> None:
        self.values[dotted] = Value(value, "default", is_default=True)
        self._views.clear()

    def _view(self, section: str, cls: type[V]) -> V:
        if section not in self._views:
            self._views[section] = schema.view(cls, section, self.get)
        return self._views[section]  # type: ignore[no-any-return]

    @property
    def top(self) -> schema.Top:
        return self._view("", schema.Top)

    @property
    def git(self) -> schema.Git:
        return self._view("git", schema.Git)

    @property
    def paths(self) -> schema.Paths:
        return self._view("paths", schema.Paths)

    @property
    def devstack(self) -> schema.Devstack:
        return self._view("devstack", schema.Devstack)

    @property
    def cinder(self) -> schema.Cinder:
        return self._view("cinder", schema.Cinder)

    @property
    def tempest(self) -> schema.Tempest:
        return self._view("tempest", schema.Tempest)

    @property
    def timeout(self) -> schema.Timeout:
        return self._view("timeout", schema.Timeout)

    @property
    def hooks(self) -> schema.Hooks:
        return self._view("hooks", schema.Hooks)

    @property
    def logs(self) -> schema.Logs:
        return self._view("logs", schema.Logs)

    @property
    def node(self) -> schema.Node:
        return self._view("node", schema.Node)

    @property
    def results(self) -> schema.Results:
        return self._view("results", schema.Results)

    @property
    def report(self) -> schema.Report:
        return self._view("report", schema.Report)

    @property
    def compliance(self) -> schema.Compliance:
        return self._view("compliance", schema.Compliance)

    def secret_values(self) -> builtins.set[str]:
        """Every secret value in the settings and secret-named env vars (for redaction)."""
        from dsvm import secrets

        extra = list(self.devstack.secrets)
        found = secrets.secret_values({k: v.value for k, v in self.values.items()}, extra)
        found |= {v for v in self.logs.secrets if v}
        found |= {v for k, v in self.env.items() if v and secrets.is_secret_name(k, extra)}
        return found

    def is_secret(self, dotted: str) -> bool:
        spec = schema.key_spec(dotted)
        return bool(spec and spec.secret)

    def as_json(self) -> dict[str, Any]:
        """Stable JSON form: {profile, chain, settings: {key: {value, origin}}}."""
        from dsvm import secrets

        extra = list(self.devstack.secrets)
        settings = {}
        for k, v in sorted(self.values.items()):
            shown = "****" if self.is_secret(k) and v.value else secrets.mask_tree(v.value, extra)
            settings[k] = {"value": shown, "origin": v.origin}
        return {"profile": self.profile, "chain": [str(p) for p in self.chain],
                "settings": settings}


def _chain(name: str, env: Mapping[str, str]) -> list[Loaded]:
    """Load ``name`` and everything it extends, base first; reject cycles."""
    order: list[Loaded] = []
    visiting: list[Path] = []

    def visit(ref: str, relative_to: Path | None, referrer: str | None) -> None:
        try:
            path = find(ref, env, relative_to)
        except ProfileError as exc:
            if referrer:
                exc.message = f"{referrer}: extends: {exc.message}"
            raise
        if path in visiting:
            cycle = " -> ".join(p.stem for p in visiting[visiting.index(path):] + [path])
            raise ProfileError(f"{referrer}: extends: cycle {cycle}",
                               hint="remove one of the 'extends' links")
        if any(item.path == path for item in order):
            return
        visiting.append(path)
        loaded = _load_file(path)
        parents = loaded.data.get("extends") or []
        if isinstance(parents, str):
            parents = [parents]
        if not isinstance(parents, list):
            raise ProfileError(f"{loaded.where('extends')}: extends must be a name or a list")
        for parent in parents:
            visit(str(parent), path.parent, loaded.where("extends"))
        visiting.pop()
        order.append(loaded)

    visit(name, None, None)
    return order


def _deep_merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _deep_merge(out.get(k), v) if k in out else v
        return out
    return over


def resolve(name: str | None = None, env: Mapping[str, str] | None = None,
            options: Mapping[str, Any] | None = None) -> Settings:
    """Resolve a profile into Settings; raise ProfileError listing every problem found.

    ``options`` maps dotted keys to command-line values (origin ``option``); None is ignored.
    """
    env = dict(os.environ if env is None else env)
    name = name or env.get("DSVM_PROFILE") or "base"
    chain = _chain(name, env)
    settings = Settings(profile=name, chain=[c.path for c in chain], env=env)
    for dotted in schema.all_keys():
        spec = schema.key_spec(dotted)
        assert spec is not None
        if dotted != "extends":
            settings.set_default(dotted, spec.default)
    problems: list[Problem] = []
    for loaded in chain:
        problems.extend(validate(loaded))
        settings.loaded[str(loaded.path)] = loaded
        for top, value in loaded.data.items():
            if top == "extends":
                continue
            if top in schema.TOP:
                _apply(settings, loaded, str(top), value, env, problems)
            elif isinstance(value, dict) and top in schema.SECTIONS:
                for sub, item in value.items():
                    if str(sub) in schema.SECTIONS[top]:
                        _apply(settings, loaded, f"{top}.{sub}", item, env, problems)
    from_env = environ.resolve(env, {k: v.value for k, v in settings.values.items()})
    problems.extend(from_env.problems)
    settings.gate = from_env.gate
    for override in from_env.overrides:
        settings.set(override.key, override.value, override.origin, override.why)
    for dotted, value in (options or {}).items():
        if value is not None:
            settings.set(dotted, value, f"option {dotted}")
    if problems:
        raise ProfileError(
            f"profile '{name}' has {len(problems)} problem{'s' if len(problems) > 1 else ''}",
            problems=problems,
            hint="fix the lines above; 'dsvm profile show NAME' prints the resolved result")
    return settings


def _apply(settings: Settings, loaded: Loaded, dotted: str, value: Any,
           env: Mapping[str, str], problems: list[Problem]) -> None:
    where = loaded.where(dotted)
    value = expand(value, env, where, problems)
    spec = schema.key_spec(dotted)
    if spec and spec.type in ("map", "any") and isinstance(value, dict):
        prev = settings.get(dotted)
        if isinstance(prev, dict):
            value = _deep_merge(prev, value)
    settings.set(dotted, value, where)
