"""The Tempest phase: which tests to run (a pure selection), and running them through stestr.

``select()`` turns settings (profile keys and devstack-gate's ``DEVSTACK_GATE_TEMPEST*``
variables) into a frozen ``Selection``; ``filter_ids()`` applies it to a test listing exactly
as stestr does. ``run_phase()`` runs the selection with ``stestr run --subunit`` in the Tempest
checkout (as the tempest user), within the job's time budget, writing the raw subunit v2 stream
to ``$WORKSPACE/.dsvm/tempest/testrepository.subunit`` and counting results live for progress
(``dsvm.results.decoder``, the one subunit v2 decoder, fed by the thread that copies stestr's
stdout). This room never parses results beyond those counts (``dsvm.results`` owns the full
parser) and never runs a command except through ``dsvm.proc``.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsvm import console, proc
from dsvm.errors import (
    EXIT_OK,
    EXIT_TESTS_FAILED,
    BudgetExpiredError,
    InfraError,
    Problem,
    UsageError,
    closest,
)
from dsvm.phase import JobContext, PhaseResult, RerunOutputs, TempestOutputs
from dsvm.profile import Settings
from dsvm.results.decoder import Decoder

PHASE = "tempest"

# Tempest's tox.ini regexes (spec/devstack-gate.md §6.2, spec/results.md §6.2, tempest 47.0.0).
NOT_SLOW = r"(?!.*\[.*\bslow\b.*\])"
API = NOT_SLOW + r"(^tempest\.api)"
SCENARIO_AND_SERIAL = NOT_SLOW + r"(^tempest\.scenario)|(^tempest\.serial_tests)"
FULL_SERIAL = NOT_SLOW + r"(^tempest\.(api|scenario|serial_tests))"
SMOKE = r"\[.*\bsmoke\b.*\]"
SCENARIO = r"(^tempest\.scenario)"
ALL = "tempest"  # devstack-gate's `tox -eall -- 'tempest'`

STREAM_NAME = "testrepository.subunit"
RERUN_STREAM_NAME = "rerun.subunit"
FAILURES_NAME = "failures.txt"
NO_MATCH = "doesn't match with anything"  # stestr's message when a selection is empty
FINAL = {"success", "fail", "skip", "xfail", "uxsuccess"}
FAILED = {"fail", "uxsuccess"}


# --------------------------------------------------------------------------------------------
# Selection: pure data

@dataclass(frozen=True)
class Exclusion:
    """One excluded regex, why, and where it was written (file:line or profile key)."""

    regex: str
    reason: str
    where: str


@dataclass(frozen=True)
class Pass:
    """One stestr invocation: include regexes OR'ed (none = every test), serial or not."""

    name: str
    include: tuple[str, ...]
    serial: bool = False


@dataclass(frozen=True)
class Selection:
    """What to run: passes in order, exclusions for all of them, workers, per-test timeout."""

    name: str
    why: str
    passes: tuple[Pass, ...]
    exclude: tuple[Exclusion, ...] = ()
    concurrency: int = 1
    test_timeout: int = 0
    notes: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """Stable JSON form (documented in docs/tempest.md)."""
        return {"name": self.name, "why": self.why, "concurrency": self.concurrency,
                "test_timeout": self.test_timeout, "notes": list(self.notes),
                "passes": [{"name": p.name, "include": list(p.include), "serial": p.serial}
                           for p in self.passes],
                "exclude": [{"regex": e.regex, "reason": e.reason, "where": e.where}
                            for e in self.exclude]}


@dataclass(frozen=True)
class Listing:
    """A selection applied to a test listing: ids per pass, and what each exclusion removed."""

    passes: tuple[tuple[str, ...], ...]
    excluded: tuple[tuple[Exclusion, tuple[str, ...]], ...]

    @property
    def ids(self) -> list[str]:
        """Every selected id, in pass order."""
        return [i for ids in self.passes for i in ids]


def _builtin(name: str, regex: str = "") -> tuple[Pass, ...] | None:
    return {
        "full": (Pass("api", (API,)), Pass("scenario", (SCENARIO_AND_SERIAL,), serial=True)),
        "full-serial": (Pass("full-serial", (FULL_SERIAL,), serial=True),),
        "smoke": (Pass("smoke", (SMOKE,)),),
        "smoke-serial": (Pass("smoke-serial", (SMOKE,), serial=True),),
        "scenario": (Pass("scenario", (SCENARIO,), serial=True),),
        "all": (Pass("all", (ALL,)),),
        "regex": (Pass("regex", tuple(regex.split())),),
    }.get(name)


BUILTIN = ("full", "full-serial", "smoke", "smoke-serial", "scenario", "all", "regex", "none")


def _choose(settings: Settings) -> tuple[str, str]:
    """Return (selection name, why), as resolved: profile < devstack-gate's variables
    (``environ.TEMPEST_SELECTION``) < option."""
    return settings.tempest.selection, settings.why("tempest.selection")


def plan(ctx: JobContext) -> Selection:
    """The Selection the phase will run (``dsvm run --plan`` and ``run_phase`` both call this);
    no pass at all when Tempest is disabled."""
    settings = ctx.settings
    if not settings.tempest.enabled:
        return Selection(name="none", passes=(),
                         why=f"tempest.enabled is false ({settings.origin('tempest.enabled')})")
    return select(settings, read_lists(settings))


def plan_phase(ctx: JobContext) -> dict[str, Any]:
    """For ``dsvm run --plan``: the selection (``plan()``) and the environment that would run it."""
    return {**plan(ctx).as_json(), "environment": describe(ctx)}


def select(settings: Settings, lists: Mapping[str, str] | None = None,
           cpus: int | None = None) -> Selection:
    """Return the Selection the settings ask for; raise UsageError listing every problem.

    ``lists`` holds the text of the include/exclude files named in the settings (read by
    ``read_lists``); ``cpus`` is the default concurrency (None: this node's CPUs). Reads no
    disk, clock or environment.
    """
    lists = lists or {}
    t = settings.tempest
    problems: list[Problem] = []
    notes: list[str] = []
    name, why = _choose(settings)
    regex = t.regex.strip()
    named = t.selections or {}
    include = _inline_regexes(settings, "tempest.include", problems)
    include += _file_regexes(t.include_file, lists, problems)
    exclude = _exclusions(list(t.exclude), settings.origin("tempest.exclude"), problems)
    exclude += _file_exclusions(t.exclude_file, lists, problems)
    if name == "none":
        passes: tuple[Pass, ...] = ()
    elif name in BUILTIN:
        if name == "regex" and not regex and not include:
            problems.append(Problem(settings.origin("tempest.regex"),
                                    "selection 'regex' needs tempest.regex "
                                    "(DEVSTACK_GATE_TEMPEST_REGEX) or an include list"))
        passes = _builtin(name, regex) or ()
        if regex and name != "regex":
            notes.append(f"tempest.regex is set ({settings.origin('tempest.regex')}) but the "
                         f"selection is '{name}': the regex is not used")
    elif isinstance(named, dict) and name in named:
        passes, more = _named(name, named[name], settings.origin("tempest.selections"),
                              problems)
        exclude += more
    else:
        near = closest(name, [*BUILTIN, *(named if isinstance(named, dict) else {})])
        problems.append(Problem(settings.origin("tempest.selection"),
                                f"unknown selection '{name}'",
                                hint=(f"did you mean '{near}'? " if near else "")
                                + f"built in: {', '.join(BUILTIN)}; or a key of "
                                "tempest.selections"))
        passes = ()
    if include and passes:
        # stestr ORs include-list lines with the regexes: they widen the first pass.
        first = passes[0]
        passes = (Pass(first.name, first.include + tuple(include), first.serial), *passes[1:])
    elif include and name != "none":
        passes = (Pass("include", tuple(include)),)
    for p in passes:
        for rx in p.include:
            _check_regex(rx, f"selection {name} ({p.name})", problems)
    workers = concurrency(settings, cpus, problems)
    if t.serial:
        passes = tuple(Pass(p.name, p.include, True) for p in passes)
    if problems:
        raise UsageError(f"the Tempest selection has {len(problems)} problem"
                         f"{'s' if len(problems) > 1 else ''}", problems=problems,
                         hint="fix the inputs named above ('dsvm profile show' prints where "
                              "each value came from)")
    return Selection(name=name, why=why, passes=passes, exclude=tuple(exclude),
                     concurrency=1 if t.serial else workers, test_timeout=t.test_timeout,
                     notes=tuple(notes))


def concurrency(settings: Settings, cpus: int | None = None,
                problems: list[Problem] | None = None) -> int:
    """The stestr workers: tempest.concurrency (TEMPEST_CONCURRENCY), else one per CPU.

    The one place this is decided (``--plan`` and the run both come here). devstack-gate
    defaulted to half the CPUs above 3; dsvm gives Tempest every CPU (docs/tempest.md).
    """
    value = settings.tempest.concurrency
    unset = settings.get("tempest.concurrency") is None  # a profile's explicit null
    if unset or value == 0 and settings.is_default("tempest.concurrency"):
        return max(1, (os.cpu_count() or 1) if cpus is None else cpus)
    if value < 1:
        if problems is not None:
            problems.append(Problem(settings.origin("tempest.concurrency"),
                                    f"concurrency must be a positive number, got {value!r}",
                                    hint="leave tempest.concurrency unset for one worker per "
                                         "CPU"))
        return 1
    return value


def _check_regex(regex: str, where: str, problems: list[Problem]) -> bool:
    try:
        re.compile(regex)
    except re.error as exc:
        problems.append(Problem(where, f"invalid regex {regex!r}: {exc}"))
        return False
    if "#" in regex:
        # stestr list files treat '#' as the start of a comment (spec/results.md §5.2).
        problems.append(Problem(where, f"regex {regex!r} contains '#', which stestr's list "
                                       "files cannot carry", hint="use \\x23 instead"))
        return False
    return True


def _inline_regexes(settings: Settings, key: str, problems: list[Problem]) -> list[str]:
    out = []
    for i, item in enumerate(settings.get(key) or []):
        where = f"{settings.origin(key)} {key.split('.')[-1]}[{i}]"
        text = str(item).strip()
        if text and _check_regex(text, where, problems):
            out.append(text)
    return out


def _lines(path: str, lists: Mapping[str, str],
           problems: list[Problem]) -> Iterable[tuple[str, str, str]]:
    """Yield (where, regex, comment) for each non-blank line of a list file."""
    if path not in lists:
        problems.append(Problem(path, "list file not found",
                                hint="give an existing file (paths are relative to the "
                                     "current directory)"))
        return
    # split("\n"), not splitlines(): a stray form feed must not make a line of its own.
    for n, raw in enumerate(lists[path].split("\n"), 1):
        regex, _, comment = raw.partition("#")
        if regex.strip() or comment.strip():
            yield f"{path}:{n}", regex.strip(), comment.strip()


def _file_regexes(path: Any, lists: Mapping[str, str], problems: list[Problem]) -> list[str]:
    if not path:
        return []
    return [rx for where, rx, _ in _lines(str(path), lists, problems)
            if rx and _check_regex(rx, where, problems)]


def _file_exclusions(path: Any, lists: Mapping[str, str],
                     problems: list[Problem]) -> list[Exclusion]:
    if not path:
        return []
    out = []
    for where, rx, reason in _lines(str(path), lists, problems):
        if not rx:
            continue  # a comment line
        if not reason:
            problems.append(Problem(where, f"exclusion {rx!r} has no reason",
                                    hint="write 'REGEX # why it is excluded (bug link)'"))
        elif _check_regex(rx, where, problems):
            out.append(Exclusion(rx, reason, where))
    return out


def _exclusions(entries: Any, origin: str, problems: list[Problem]) -> list[Exclusion]:
    out: list[Exclusion] = []
    if not isinstance(entries, list):
        problems.append(Problem(origin, "exclude must be a list of {regex, reason}"))
        return out
    for i, entry in enumerate(entries):
        where = f"{origin} exclude[{i}]"
        if not isinstance(entry, dict) or not str(entry.get("regex") or "").strip():
            problems.append(Problem(where, f"exclusion {entry!r} needs a regex and a reason",
                                    hint="write {regex: 'test_name', reason: 'why (bug link)'}"))
            continue
        rx = str(entry["regex"]).strip()
        reason = str(entry.get("reason") or "").strip()
        if not reason:
            problems.append(Problem(where, f"exclusion {rx!r} has no reason",
                                    hint="every excluded test is printed with its reason; "
                                         "add reason: 'why (bug link)'"))
        elif _check_regex(rx, where, problems):
            out.append(Exclusion(rx, reason, where))
    return out


def _named(name: str, spec: Any, origin: str,
           problems: list[Problem]) -> tuple[tuple[Pass, ...], list[Exclusion]]:
    where = f"{origin} selections.{name}"
    if not isinstance(spec, dict):
        problems.append(Problem(where, "a named selection is a mapping: {regex, include, "
                                       "exclude, serial}"))
        return (), []
    unknown = set(spec) - {"regex", "include", "exclude", "serial", "description"}
    if unknown:
        problems.append(Problem(where, f"unknown keys {sorted(unknown)}",
                                hint="allowed: regex, include, exclude, serial, description"))
    regex = spec.get("regex") or []
    regexes = [regex] if isinstance(regex, str) else list(regex)
    regexes += list(spec.get("include") or [])
    regexes = [str(r).strip() for r in regexes if str(r).strip()]
    if not regexes:
        problems.append(Problem(where, "a named selection needs a regex or an include list"))
    exclude = _exclusions(spec.get("exclude") or [], where, problems)
    return (Pass(name, tuple(regexes), bool(spec.get("serial"))),), exclude


def filter_ids(ids: Sequence[str], selection: Selection) -> Listing:
    """Apply the selection to a listing exactly as ``stestr run`` would, pass by pass.

    Include regexes are OR'ed with ``re.search``; each excluded id is charged to the first
    exclusion that matches it (stestr's order).
    """
    excluder = _combined([e.regex for e in selection.exclude])
    charged: dict[int, list[str]] = {i: [] for i in range(len(selection.exclude))}
    compiled = [re.compile(e.regex) for e in selection.exclude]
    passes = []
    for p in selection.passes:
        matcher = _combined(list(p.include)) if p.include else None
        chosen = []
        for test_id in ids:
            if matcher is not None and not matcher(test_id):
                continue
            if excluder is not None and excluder(test_id):
                first = next(i for i, rx in enumerate(compiled) if rx.search(test_id))
                if test_id not in charged[first]:
                    charged[first].append(test_id)
                continue
            chosen.append(test_id)
        passes.append(tuple(chosen))
    return Listing(passes=tuple(passes),
                   excluded=tuple((e, tuple(charged[i])) for i, e in
                                  enumerate(selection.exclude)))


def _combined(regexes: list[str]) -> Callable[[str], Any] | None:
    """One search over an alternation of the regexes (much faster than one per regex).

    Falls back to one search per regex when a regex uses group references, whose numbers
    an alternation would shift.
    """
    if not regexes:
        return None
    if any(re.search(r"\\[1-9]|\(\?P[=>]|\(\?\(", rx) for rx in regexes):
        each = [re.compile(rx) for rx in regexes]
        return lambda s: any(rx.search(s) for rx in each)
    return re.compile("|".join(f"(?:{rx})" for rx in regexes)).search


def read_lists(settings: Settings) -> dict[str, str]:
    """Read the include/exclude files named in the settings; missing ones are left out
    (``select`` reports them)."""
    out = {}
    for path in (settings.tempest.include_file, settings.tempest.exclude_file):
        if path:
            try:
                out[str(path)] = Path(path).read_text(encoding="utf-8")
            except OSError:
                pass
    return out


def include_list_text(p: Pass) -> str:
    """The --include-list file of a pass."""
    return "".join(f"{rx}\n" for rx in p.include)


def exclude_list_text(exclusions: Sequence[Exclusion]) -> str:
    """The --exclude-list file: 'regex # reason' lines (stestr keeps the reason)."""
    return "".join(f"{e.regex} # {' '.join(e.reason.split())}\n" for e in exclusions)


# --------------------------------------------------------------------------------------------
# Running: facts, argv, live counts

@dataclass(frozen=True)
class Checkout:
    """Where Tempest runs: the checkout, the environment (stestr + python) that imports
    Tempest, why it was chosen, the plugins it has, and the user to run as."""

    dir: Path
    stestr: str
    user: str
    python: str = ""
    why: str = ""
    plugins: tuple[str, ...] = ()


@dataclass(frozen=True)
class Environment:
    """One candidate Tempest environment: where it came from, its stestr and its python."""

    name: str
    stestr: str
    python: str


@dataclass(frozen=True)
class Probe:
    """What one environment's python says: the Tempest it imports (or why not), its plugins."""

    tempest: str = ""
    error: str = ""
    plugins: tuple[str, ...] = ()


# Run with the candidate environment's own python in the checkout (so the checkout's own
# ``tempest`` package wins, as in stestr's discovery): imports what discovery imports (a real
# Tempest's config and plugin loader, which need oslo.config, oslo.log, stevedore...), and
# names the top-level modules of the tempest.test_plugins entry points (the plugins there).
PROBE = """\
import json, os, sys, importlib.metadata as m
sys.path.insert(0, os.getcwd())
out = {}
try:
    import tempest
    here = os.path.dirname(tempest.__file__)
    if os.path.isfile(os.path.join(here, "test_discover", "plugins.py")):
        import tempest.config, tempest.test_discover.plugins
        out["tempest"] = m.version("tempest")
    else:  # a Tempest-shaped suite of the checkout's own
        out["tempest"] = "(package " + here + ")"
except Exception as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"
eps = m.entry_points(group="tempest.test_plugins")
out["plugins"] = sorted({ep.value.split(":")[0].split(".")[0] for ep in eps})
print(json.dumps(out))
"""

# A selection names a plugin's tests by its module (cinder_tempest_plugin, ...).
_PLUGIN_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*tempest[A-Za-z0-9_]*")


def environments(stestr: str, stestr_origin: str, venv: str, venv_origin: str, tdir: Path,
                 dest: Path, on_path: str | None) -> list[Environment]:
    """The candidate environments in the order they are tried (pure).

    An explicit tempest.stestr or tempest.venv is the only candidate; otherwise devstack's
    ``<checkout>/.tox/tempest``, then its global venv ``$DEST/data/venv`` (GLOBAL_VENV,
    default since 2023.2), then the stestr on PATH. dsvm's own venv is never one: it cannot
    import Tempest's dependencies.
    """
    if stestr:
        return [Environment(f"tempest.stestr ({stestr_origin})", stestr, "")]
    if venv:
        return [Environment(f"tempest.venv ({venv_origin})", str(Path(venv) / "bin/stestr"),
                            str(Path(venv) / "bin/python"))]
    out = [Environment(".tox/tempest", str(tdir / ".tox/tempest/bin/stestr"),
                       str(tdir / ".tox/tempest/bin/python")),
           Environment("$DEST/data/venv", str(dest / "data/venv/bin/stestr"),
                       str(dest / "data/venv/bin/python"))]
    if on_path:
        out.append(Environment("PATH", on_path, ""))
    return out


def _python_of(stestr: str) -> str:
    """The python an stestr runs under: its venv's, else its ``#!`` line's."""
    beside = Path(stestr).parent / "python"
    if beside.is_file():
        return str(beside)
    try:
        with open(stestr, "rb") as fh:
            first = fh.readline(400).decode("utf-8", "replace")
    except OSError:
        return ""
    if first.startswith("#!"):
        words = first[2:].split()
        if words and Path(words[0]).name == "env" and len(words) > 1:
            return proc.which(words[1]) or ""
        return words[0] if words else ""
    return ""


def probe(runner: proc.Runner, env: Environment, user: str, tdir: Path) -> Probe:
    """Ask the environment's python whether it imports Tempest, and which plugins it has."""
    import json

    python = env.python if env.python and Path(env.python).is_file() \
        else _python_of(env.stestr)
    if not Path(env.stestr).is_file():
        return Probe(error=f"no {env.stestr}")
    if not python:
        return Probe(error=f"cannot tell which python {env.stestr} runs under")
    result = runner.run(proc.as_user(user or None, [python, "-c", PROBE]),
                        desc=f"probe Tempest environment {env.name}", check=False, cwd=tdir,
                        merge_stderr=False, stream=False, timeout=120,
                        env=proc.clean_env())
    try:
        data = json.loads(result.stdout.strip().split("\n")[-1])
    except (ValueError, IndexError):
        return Probe(error=f"{python} exited {result.exit_code}: "
                           f"{' | '.join(result.tail[-2:])[-200:]}")
    return Probe(tempest=str(data.get("tempest") or ""), error=str(data.get("error") or ""),
                 plugins=tuple(data.get("plugins") or ()))


def plugins_named(selection: Selection) -> list[str]:
    """Plugin modules the selection's include regexes name (e.g. cinder_tempest_plugin)."""
    found = {m for p in selection.passes for rx in p.include for m in _PLUGIN_MODULE.findall(rx)}
    return sorted(found - {"tempest"})


def _user(settings: Settings, listing: bool) -> tuple[str, str]:
    """(user to run as, note): a missing tempest user fails a run but not a listing."""
    import pwd

    user = settings.tempest.user
    if not user:
        return "", ""
    try:
        pwd.getpwnam(user)
    except KeyError:
        if listing:  # listing runs no test: anyone who can read the tree may list it
            return "", f"tempest.user '{user}' does not exist; listing as the current user"
        raise UsageError(f"tempest.user '{user}' does not exist on this node",
                         details={"tempest.user": settings.origin("tempest.user")},
                         hint="create the user (prepare-node does), or set tempest.user "
                              "to '' to run as the current user") from None
    return user, ""


def checkout(ctx: JobContext, *, listing: bool = False,
             runner: proc.Runner | None = None) -> Checkout:
    """Find the Tempest checkout and the first environment that imports Tempest.

    Raises UsageError when there is no checkout, no environment imports Tempest (each
    candidate is named with its reason), the tempest user is missing (except when
    ``listing``), or the selection names a plugin the environment lacks.
    """
    settings = ctx.settings
    tdir = Path(settings.tempest.dir or ctx.base / "new" / "tempest")
    if not (tdir / ".stestr.conf").is_file():
        raise UsageError(f"no .stestr.conf in the Tempest checkout {tdir}",
                         details={"tempest.dir": f"{tdir} ({settings.origin('tempest.dir')})"},
                         hint="give the checkout with --tempest-dir (or tempest.dir); "
                              "'tempest init DIR' makes a workspace with one")
    user, note = _user(settings, listing)
    if note:
        ctx.ui.warn(note)
    runner = runner or ctx.runner(PHASE)
    candidates = environments(settings.tempest.stestr, settings.origin("tempest.stestr"),
                              settings.tempest.venv,
                              settings.origin("tempest.venv"), tdir, ctx.base / "new",
                              proc.which("stestr"))
    rejected: list[str] = []
    for env in candidates:
        found = probe(runner, env, user, tdir)
        if found.tempest:
            why = f"{env.name}: imports tempest {found.tempest}" + (
                f" (not: {'; '.join(rejected)})" if rejected else "")
            co = Checkout(dir=tdir.resolve(), stestr=env.stestr, user=user,
                          python=env.python or _python_of(env.stestr), why=why,
                          plugins=found.plugins)
            runner.note(f"# Tempest environment {why}")
            _check_plugins(ctx, co)
            if not listing and not found.tempest.startswith("("):  # a real Tempest
                check_cloud(tempest_conf(co.dir, ctx.env))
            return co
        rejected.append(f"{env.name}: {found.error}")
    raise UsageError("no environment that can import Tempest",
                     details={env.name: reason.split(": ", 1)[-1]
                              for env, reason in zip(candidates, rejected, strict=True)},
                     log_path=str(runner.log) if runner.log else None,
                     hint="install Tempest (and its plugins) in <checkout>/.tox/tempest as "
                          "devstack does, or set tempest.venv / tempest.stestr")


def tempest_conf(tdir: Path, env: Mapping[str, str]) -> Path:
    """The tempest.conf Tempest will read when run in ``tdir`` (tempest/config.py's order:
    $TEMPEST_CONFIG_DIR/$TEMPEST_CONFIG, else <cwd>/etc, else /etc/tempest)."""
    name = env.get("TEMPEST_CONFIG") or "tempest.conf"
    if env.get("TEMPEST_CONFIG_DIR"):
        return Path(env["TEMPEST_CONFIG_DIR"]) / name
    local = tdir / "etc"
    return (local if local.is_dir() else Path("/etc/tempest")) / name


def check_cloud(conf: Path, timeout: float = 10) -> None:
    """Exit 3 before any test runs when tempest.conf is missing or its identity endpoint
    does not answer (Tempest would fail every test with a connection error)."""
    import configparser
    import urllib.error
    import urllib.request

    if not conf.is_file():
        raise InfraError(f"no tempest.conf at {conf}",
                         hint="stack.sh writes it (devstack's lib/tempest); set "
                              "TEMPEST_CONFIG_DIR when it lives elsewhere")
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        parser.read(conf)
    except configparser.Error as exc:
        raise InfraError(f"{conf} does not parse: {exc}") from None
    uri = parser.get("identity", "uri_v3", fallback="") or parser.get("identity", "uri",
                                                                      fallback="")
    if not uri:
        return  # nothing to check against (Tempest will say what is missing)
    try:
        with urllib.request.urlopen(uri, timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return  # it answered
    except (OSError, ValueError) as exc:
        raise InfraError(f"the identity endpoint of tempest.conf does not answer: {uri}",
                         details={"tempest.conf": str(conf), "error": str(exc)},
                         hint="the cloud is down (see the service logs), or tempest.conf "
                              "points at the wrong place") from None


def _check_plugins(ctx: JobContext, co: Checkout) -> None:
    """Exit 2 when the selection names plugin tests the environment does not have."""
    try:
        selection = plan(ctx)
    except UsageError:
        return  # the caller reports a bad selection itself
    missing = [m for m in plugins_named(selection) if m not in co.plugins]
    if missing:
        raise UsageError(f"the Tempest selection '{selection.name}' names plugin tests "
                         f"({', '.join(missing)}) the Tempest environment does not have",
                         details={"environment": co.why,
                                  "plugins there": ", ".join(co.plugins) or "none"},
                         hint="install the plugin into that environment (devstack installs "
                              "plugins into .tox/tempest), or choose one that has it with "
                              "tempest.venv")


def describe(ctx: JobContext) -> dict[str, Any]:
    """For ``--plan``: which environment would run the tests now, and why (probes only: no
    log is written)."""
    try:
        co = checkout(ctx, runner=proc.Runner())
    except UsageError as exc:
        return {"chosen": None, "why": exc.message, "details": exc.details}
    return {"chosen": co.stestr, "python": co.python, "why": co.why,
            "plugins": list(co.plugins), "user": co.user or "(current)"}


def stestr_argv(co: Checkout, p: Pass, selection: Selection, include: Path | None,
                exclude: Path | None, combine: bool) -> list[str]:
    """The argv of one pass (env assignments first, then stestr, wrapped for the user)."""
    env = [f"OS_TEST_TIMEOUT={selection.test_timeout}"] if selection.test_timeout else []
    argv = [co.stestr, "run", "--subunit"]
    argv += ["--serial"] if p.serial else ["--concurrency", str(selection.concurrency)]
    if include is not None:
        argv += ["--include-list", str(include)]
    if exclude is not None:
        argv += ["--exclude-list", str(exclude)]
    if combine:
        argv.append("--combine")
    # env(1) carries the variables through runuser/sudo, which reset the environment.
    return [str(a) for a in proc.as_user(co.user or None, ["env", *env, *argv])]


def _class_of(test_id: str) -> str | None:
    """'setUpClass (pkg.mod.Class)' -> 'pkg.mod.Class' (class-level pseudo tests)."""
    m = re.fullmatch(r"(?:setUpClass|tearDownClass|setUpModule|tearDownModule) \((.+)\)",
                     test_id)
    return m.group(1) if m else None


@dataclass
class Counts:
    """Live counts of one run (minimal: dsvm.results owns the real parser)."""

    selected: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    xfail: int = 0
    uxsuccess: int = 0
    crashed: int = 0

    def as_json(self) -> dict[str, int]:
        return dict(self.__dict__)

    @property
    def failures(self) -> int:
        return self.failed + self.uxsuccess + self.crashed

    def add(self, other: Counts) -> None:
        for key, value in other.__dict__.items():
            setattr(self, key, getattr(self, key) + value)


class Tracker:
    """The live decoder's sink: counts a stestr stream as it arrives and reports progress."""

    def __init__(self, on_done: Callable[[int], None],
                 on_failure: Callable[[str, str], None]) -> None:
        self.counts = Counts()
        self.outcomes: dict[str, str] = {}
        self.noise: list[str] = []  # non-subunit stdout (stestr's own messages)
        self._expected: set[str] = set()
        self._running: set[str] = set()
        self._tracebacks: dict[str, bytearray] = {}
        self._on_done = on_done
        self._on_failure = on_failure
        self.lock = threading.Lock()

    def status(self, test_id: str | None = None, test_status: str | None = None,
               test_tags: Any = None, runnable: bool = True, file_name: str | None = None,
               file_bytes: bytes | None = None, eof: bool = False, mime_type: str | None = None,
               route_code: str | None = None, timestamp: Any = None) -> None:
        """Count one packet."""
        with self.lock:
            if test_id is None:
                if file_bytes and sum(map(len, self.noise)) < 8192:
                    self.noise.append(bytes(file_bytes).decode("utf-8", "replace"))
                return
            if file_name == "traceback" and file_bytes:
                self._tracebacks.setdefault(test_id, bytearray()).extend(file_bytes)
            if test_status == "exists":
                self._expected.add(test_id)
                self.counts.selected = len(self._expected)
            elif test_status == "inprogress":
                self._running.add(test_id)
            elif test_status in FINAL:
                self._final(test_id, test_status)

    def _final(self, test_id: str, test_status: str) -> None:
        self._running.discard(test_id)
        self.outcomes[test_id] = test_status
        key = {"success": "passed", "fail": "failed", "skip": "skipped"}.get(test_status,
                                                                            test_status)
        setattr(self.counts, key, getattr(self.counts, key) + 1)
        done = 1
        cls = _class_of(test_id)
        if cls is not None:  # a class-level result stands for every test of the class
            members = [t for t in self._expected if t.startswith(cls + ".")
                       and t not in self.outcomes]
            for member in members:
                self.outcomes[member] = "class:" + test_status
            done = max(1, len(members))
        self._on_done(done)
        if test_status in FAILED:
            tb = self._tracebacks.pop(test_id, bytearray()).decode("utf-8", "replace")
            last = next((ln.strip() for ln in reversed(tb.splitlines()) if ln.strip()), "")
            self._on_failure(test_id, last or test_status)
        else:
            self._tracebacks.pop(test_id, None)

    def finish(self) -> None:
        """Count tests that started but never finished as crashed (spec/results.md §1.3)."""
        with self.lock:
            for test_id in sorted(self._running):
                self.outcomes[test_id] = "crashed"
                self.counts.crashed += 1
                self._on_failure(test_id, "test did not finish (worker crashed or killed)")
            self._running.clear()

    @property
    def failed_ids(self) -> list[str]:
        """Ids with a failing final status (class pseudo ids included, members not)."""
        return sorted(t for t, s in self.outcomes.items()
                      if s in FAILED or s == "crashed")


class Display:
    """Progress: tests done / total, failures so far, ETA; Jenkins gets a line per failure
    and the console's heartbeat (a line a minute, however quiet stestr is) with the count."""

    def __init__(self, ctx: JobContext, label: str, total: Callable[[], int]) -> None:
        self.ui = ctx.ui
        self.label = label
        self.total_of = total
        self.done = 0
        self.failed = 0
        self.start = time.monotonic()
        self._stack = ExitStack()
        self._bar: Any = None
        self._lock = threading.Lock()
        if self.ui.plain:  # from the start: the first test may take minutes to report
            self._bar = self._stack.enter_context(self.ui.progress(label, None, self._status))

    def eta(self, total: int) -> str:
        if not self.done or total <= self.done:
            return "?" if not self.done else "0s"
        left = (time.monotonic() - self.start) / self.done * (total - self.done)
        return console.duration(left)

    def advance(self, n: int) -> None:
        with self._lock:
            self.done += n
            if self.ui.plain:  # the heartbeat builds the status when it is due
                self._bar.advance(n)
                return
            if self._bar is None:  # the total grows as stestr's workers announce tests,
                # so the bar has none; the item text carries done/total and the ETA
                self._bar = self._stack.enter_context(self.ui.progress(self.label, None))
            self._bar.advance(n, item=self._status())

    def _status(self) -> str:
        total = max(self.total_of(), self.done)
        return f"{self.done}/{total} done, {self.failed} failed, ETA {self.eta(total)}"

    def failure(self, test_id: str, why: str) -> None:
        with self._lock:
            self.failed += 1
            line = f"FAIL {test_id}" + (f": {why}" if why else "")
            if self._bar is not None:
                self._bar.note(line)
            else:
                self.ui.info(line)

    def close(self) -> None:
        self._stack.close()


# --------------------------------------------------------------------------------------------
# The phase

@dataclass
class _Run:
    """What the passes of one run produced."""

    tracker: Tracker
    display: Display
    counts: Counts = field(default_factory=Counts)
    stderr: list[str] = field(default_factory=list)


def _tempest_dir(ctx: JobContext) -> Path:
    path = ctx.dsvm_log_dir / PHASE
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)  # the tempest user reads the list files from here
    return path


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o644)
    return path


def run_phase(ctx: JobContext) -> PhaseResult:
    """Run the selected Tempest tests; return counts and the subunit stream path.

    Returns exit code 1 when tests failed (the verdict comes from the stream, never from
    stestr's exit code). Raises UsageError for bad input or an empty selection,
    BudgetExpiredError (124) when the budget runs out (the partial stream is kept).
    """
    settings = ctx.settings
    selection = plan(ctx)
    if not selection.passes:
        return PhaseResult(PHASE, EXIT_OK, {}, f"skipped: selection 'none' ({selection.why})")
    co = checkout(ctx)
    _announce(ctx, selection, co)
    out = _tempest_dir(ctx)
    stream = out / STREAM_NAME
    result = _run_passes(ctx, co, selection, stream, list(selection.passes))
    failures = result.tracker.failed_ids
    _write(out / FAILURES_NAME, "".join(f"{t}\n" for t in failures))
    _summary(ctx, selection, result.counts, failures)
    exit_code = EXIT_TESTS_FAILED if result.counts.failures else EXIT_OK
    rerun = None
    if exit_code and settings.tempest.rerun_failures:
        rerun = _rerun(ctx, failures, co, selection)
        exit_code = EXIT_TESTS_FAILED if rerun.still_failing else EXIT_OK
    outputs = TempestOutputs(str(stream), result.counts.as_json(), selection.as_json(),
                             tuple(failures), rerun)
    c = result.counts
    return PhaseResult(PHASE, exit_code, outputs.as_json(),
                       f"{c.selected} selected: {c.passed} passed, {c.failures} failed, "
                       f"{c.skipped} skipped ({selection.name})")


def _announce(ctx: JobContext, selection: Selection, co: Checkout) -> None:
    ui = ctx.ui
    ui.info(f"Tempest selection '{selection.name}': {selection.why}")
    for p in selection.passes:
        mode = "serially" if p.serial else f"with {selection.concurrency} workers"
        ui.detail(f"  pass {p.name} {mode}: {' | '.join(p.include) or '(every test)'}")
    for note in selection.notes:
        ui.warn(note)
    ui.info(f"Tempest environment {co.why}")
    ui.detail(f"  checkout {co.dir}, stestr {co.stestr}, user {co.user or '(current)'}")


def _run_passes(ctx: JobContext, co: Checkout, selection: Selection, stream: Path,
                passes: list[Pass]) -> _Run:
    """Run each pass with stestr into one stream file; raise on budget expiry or no tests."""
    out = stream.parent
    exclude = _write(out / "exclude.txt", exclude_list_text(selection.exclude)) \
        if selection.exclude else None
    counts: list[Counts] = []
    display = Display(ctx, f"tempest {selection.name}", lambda: counts[0].selected)
    run = _Run(tracker=Tracker(display.advance, display.failure), display=display)
    counts.append(run.tracker.counts)
    runner = ctx.runner(PHASE)
    env = proc.clean_env(ctx.env)
    if selection.test_timeout:
        env["OS_TEST_TIMEOUT"] = str(selection.test_timeout)
    stream.unlink(missing_ok=True)
    try:
        with open(stream, "ab") as sink:
            for n, p in enumerate(passes):
                include = _write(out / f"include-{n}.txt", include_list_text(p)) \
                    if p.include else None
                argv = stestr_argv(co, p, selection, include, exclude, combine=n > 0)
                _one_pass(ctx, runner, run, argv, env, co, sink, p, stream)
    finally:
        display.close()
    if not run.counts.selected and not run.tracker.outcomes:
        raise UsageError(f"the Tempest selection '{selection.name}' matches no test",
                         details={"selection": selection.why},
                         hint="check the regexes with 'dsvm tempest --list'; an empty run is "
                              "never a green run", log_path=runner.log)
    return run


def _one_pass(ctx: JobContext, runner: proc.Runner, run: _Run, argv: list[str],
              env: dict[str, str], co: Checkout, sink: Any, p: Pass, stream: Path) -> None:
    """One stestr invocation: each chunk of stdout goes to the stream file, then to the live
    counts, in the one thread that reads the pipe (no second pipe, thread or parser import)."""
    left = ctx.time_left()
    if left is not None and left <= 0:
        raise BudgetExpiredError("the job's time budget ran out before Tempest started",
                                 details={"subunit": str(stream)})
    before = Counts(**run.tracker.counts.as_json())
    noise_before = len(run.tracker.noise)
    reader = Decoder(run.tracker)
    broken: list[str] = []

    def feed(chunk: bytes) -> None:
        sink.write(chunk)
        sink.flush()  # on disk first: an interrupted run keeps every byte stestr wrote
        if broken:
            return
        try:
            reader.feed(chunk)
        except Exception as exc:  # never stop pumping stestr's output for the counts
            broken.append(str(exc))
            ctx.ui.warn(f"live progress stopped: {exc}")

    try:
        result = runner.run_bytes(argv, desc=f"stestr run ({p.name})", out=feed, cwd=co.dir,
                                  env=env, timeout=left)
    except KeyboardInterrupt:
        sink.flush()
        trim_partial(stream)
        raise
    finally:
        if not broken:
            try:
                reader.close()
            except Exception as exc:
                ctx.ui.warn(f"live progress stopped: {exc}")
        run.tracker.finish()
        sink.flush()
    _account(run, before)
    if result.exit_code < 0 and not result.timed_out:  # killed by a signal (Jenkins abort)
        trim_partial(stream)
    if result.timed_out:
        kept = trim_partial(stream)
        raise BudgetExpiredError(
            f"the job's time budget ran out during Tempest ({p.name}); stestr was stopped",
            details={"subunit": f"{stream} ({kept} bytes kept)",
                     "counts": _count_line(run.counts)},
            log_path=runner.log, hint="raise timeout.job_minutes, or select fewer tests")
    _check_exit(result, run, p, runner, "".join(run.tracker.noise[noise_before:]))


def _account(run: _Run, before: Counts) -> None:
    now = run.tracker.counts
    delta = Counts(**{k: getattr(now, k) - getattr(before, k) for k in now.as_json()})
    run.counts.add(delta)


def _check_exit(result: proc.Result, run: _Run, p: Pass, runner: proc.Runner,
                noise: str) -> None:
    """stestr --subunit exits 0 even when tests fail: only a pass with no results is an
    error."""
    if result.exit_code == 0:
        return
    if NO_MATCH in noise:
        run.display.ui.warn(f"pass {p.name} matched no test")
        return  # _run_passes fails the run when no pass matched anything
    if run.tracker.outcomes:
        run.display.ui.warn(f"stestr exited {result.exit_code} in pass {p.name}; the verdict "
                            "comes from the stream")
        return
    raise InfraError(f"stestr failed before running any test (pass {p.name})",
                     details={"command": result.argv, "result": f"exit {result.exit_code}",
                              "output": (noise.strip() or " | ".join(result.tail[-3:]))[-300:]},
                     log_path=runner.log,
                     hint="an import error in a test module or plugin stops discovery; try "
                          "'stestr list' in the Tempest checkout")


def trim_partial(path: Path) -> int:
    """Cut a stream killed mid-packet back to its last whole packet; return its size.

    Walks subunit v2 framing only (signature, flags, length; spec/results.md §1.1).
    """
    data = path.read_bytes()
    pos = good = 0
    while pos < len(data):
        if data[pos] != 0xB3:  # non-subunit bytes between packets are allowed
            pos += 1
            good = pos
            continue
        if pos + 4 > len(data):
            break
        first = data[pos + 3]
        width = (first >> 6) + 1  # a varint's top two bits give its size in bytes
        if width > 3 or pos + 3 + width > len(data):
            break
        length = first & 0x3F
        for b in data[pos + 4:pos + 3 + width]:
            length = (length << 8) | b
        if length < 8 or pos + length > len(data):
            break
        pos += length
        good = pos
    if good < len(data):
        with open(path, "r+b") as fh:
            fh.truncate(good)
    return good


def _count_line(c: Counts) -> str:
    return (f"{c.passed} passed, {c.failed} failed, {c.skipped} skipped, {c.xfail} xfail, "
            f"{c.uxsuccess} unexpected success, {c.crashed} crashed")


def _summary(ctx: JobContext, selection: Selection, counts: Counts,
             failures: list[str]) -> None:
    ui = ctx.ui
    ui.table(f"Tempest {selection.name}", ["selected", "passed", "failed", "skipped", "xfail",
                                           "uxsuccess", "crashed"],
             [[counts.selected, counts.passed, counts.failed, counts.skipped, counts.xfail,
               counts.uxsuccess, counts.crashed]])
    if selection.exclude:
        # One print of aligned lines: a rich table of a vendor's few hundred exclusions
        # costs ~0.1-0.2 s of CPU at the end of every run.
        width = min(60, max(len(e.regex) for e in selection.exclude))
        ui.info("\n".join([f"excluded on purpose (never run): {len(selection.exclude)} "
                            "regexes", *(f"  {e.regex:<{width}} # {e.reason} ({e.where})"
                                         for e in selection.exclude)]))
    for test_id in failures[:50]:
        ui.info(f"failed: {test_id}")
    if len(failures) > 50:
        ui.info(f"... and {len(failures) - 50} more failures")


# --------------------------------------------------------------------------------------------
# Listing and re-running

def discover(ctx: JobContext, co: Checkout) -> list[str]:
    """Every test id of the checkout (``stestr list``, after ``stestr init`` when needed)."""
    runner = ctx.runner(PHASE)
    env = proc.clean_env(ctx.env)
    if not (co.dir / ".stestr").exists():
        runner.run(proc.as_user(co.user or None, [co.stestr, "init"]), desc="stestr init",
                   cwd=co.dir, env=env)
    result = runner.run(proc.as_user(co.user or None, [co.stestr, "list"]), desc="stestr list",
                        cwd=co.dir, env=env, merge_stderr=False, check=False, stream=False)
    if result.exit_code != 0:
        raise InfraError("stestr could not list the Tempest tests",
                         details={"command": result.argv, "result": f"exit {result.exit_code}"},
                         log_path=runner.log,
                         hint="'Failures during discovery' means a test module or plugin "
                              "does not import; run 'stestr list' in the checkout")
    return [ln.strip() for ln in result.stdout.split("\n") if ln.strip()]


def list_selected(ctx: JobContext) -> tuple[Selection, Listing]:
    """The selection and the ids it picks from the checkout; UsageError when it picks none."""
    selection = plan(ctx)
    co = checkout(ctx, listing=True)
    listing = filter_ids(discover(ctx, co), selection)
    if selection.passes and not listing.ids:
        raise UsageError(f"the Tempest selection '{selection.name}' matches no test",
                         details={"selection": selection.why,
                                  "regexes": " | ".join(rx for p in selection.passes
                                                        for rx in p.include)},
                         hint="an empty run is never a green run; check the regexes")
    return selection, listing


def rerun_regexes(failures: Iterable[str]) -> list[str]:
    """Include regexes re-running exactly the failed tests (a failed class: all of it)."""
    out = []
    for test_id in failures:
        cls = _class_of(test_id)
        out.append("^" + re.escape(cls) + r"\." if cls else "^" + re.escape(test_id) + "$")
    return [rx.replace("#", r"\x23") for rx in out]


def rerun_failed(ctx: JobContext, *, failures: list[str] | None = None,
                 co: Checkout | None = None, selection: Selection | None = None) -> PhaseResult:
    """Re-run the last run's failures serially; those that pass are reported as flaky.

    Exit code 1 when some still fail, 0 when every failure passed on re-run (they are listed
    as flaky, never hidden). Raises UsageError when there is no previous run.
    """
    out = _tempest_dir(ctx)
    if failures is None:
        path = out / FAILURES_NAME
        if not path.is_file():
            raise UsageError("no previous Tempest run to re-run the failures of",
                             details={"looked for": str(path)},
                             hint="run 'dsvm tempest' first (in the same workspace)")
        failures = [ln for ln in path.read_text().split("\n") if ln.strip()]
    if not failures:
        ctx.ui.ok("the last Tempest run had no failures: nothing to re-run")
        return PhaseResult(PHASE, EXIT_OK, {"flaky": [], "still_failing": []},
                           "no failures to re-run")
    rerun = _rerun(ctx, failures, co or checkout(ctx), selection)
    return PhaseResult(PHASE, EXIT_TESTS_FAILED if rerun.still_failing else EXIT_OK,
                       rerun.as_json(), f"re-run: {len(rerun.flaky)} flaky, "
                                        f"{len(rerun.still_failing)} still failing")


def _rerun(ctx: JobContext, failures: list[str], co: Checkout,
           selection: Selection | None) -> RerunOutputs:
    """Run ``failures`` again, serially, into rerun.subunit; say which were flaky."""
    base = selection or select(ctx.settings, read_lists(ctx.settings), cpus=1)
    again = Selection(name="rerun", why=f"re-run of {len(failures)} failures",
                      passes=(Pass("rerun", tuple(rerun_regexes(failures)), serial=True),),
                      test_timeout=base.test_timeout)
    ctx.ui.info(f"re-running {len(failures)} failed tests serially")
    stream = _tempest_dir(ctx) / RERUN_STREAM_NAME
    run = _run_passes(ctx, co, again, stream, list(again.passes))
    flaky, still = _flaky(failures, run.tracker.outcomes)
    for test_id in flaky:
        ctx.ui.warn(f"flaky (failed, then passed on re-run): {test_id}")
    for test_id in still:
        ctx.ui.info(f"still failing: {test_id}")
    return RerunOutputs(str(stream), run.counts.as_json(), tuple(flaky), tuple(still))


def _flaky(failures: list[str], outcomes: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """Split the first run's failures by their re-run outcomes: (flaky, still failing)."""
    flaky: list[str] = []
    still: list[str] = []
    for test_id in failures:
        cls = _class_of(test_id)
        if cls:
            mine = [s for t, s in outcomes.items() if t.startswith(cls + ".") or
                    _class_of(t) == cls]
        else:
            mine = [outcomes[test_id]] if test_id in outcomes else []
        ok = bool(mine) and all(s.split(":")[-1] in {"success", "skip", "xfail"} for s in mine)
        (flaky if ok else still).append(test_id)
    return flaky, still


def which_stestr() -> str | None:
    """The stestr next to this Python, or on PATH (for tests and benchmarks)."""
    import shutil
    import sys

    here = Path(sys.executable).parent / "stestr"
    return str(here) if here.is_file() else shutil.which("stestr")
