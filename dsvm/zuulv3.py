"""Zuul v3+'s ``zuul`` variable (``--zuul-vars FILE``) read and validated into frozen values.

Zuul v3 sends no ``ZUUL_*`` environment: a job gets the Ansible variable ``zuul`` and finds
every project the executor prepared as a real repo at ``~/<src_dir>`` (origin
``file:///dev/null``, the speculative merge checked out on ``checkout``, HEAD at ``commit``;
zuul-jobs' prepare-workspace-git). ``load()`` reads the variable from a JSON or YAML file
(bare, or as ``{"zuul": {...}}``), checks every value (names before they become paths, refs,
shas, each ``src_dir`` a repo inside the source root) and returns ``Vars``: the prepared
projects, and Zuul's parameters mapped onto ``zuul.Params`` so that every reader downstream
sees one shape whichever Zuul ran the job. Every bad value is collected into one UsageError
(exit 2) naming its key. This module reads the file and a few files of each tree; it never
runs git and never changes anything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsvm import zuul
from dsvm.errors import Problem, UsageError

_DIGITS = re.compile(r"^[0-9]+$")
_BUILD = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_JOB = re.compile(r"^[A-Za-z0-9_.+@-]{1,200}$")


@dataclass(frozen=True)
class Prepared:
    """One project of ``zuul.projects``: the tree the executor left, and what it must hold."""

    name: str  # openstack/nova
    short_name: str  # nova
    canonical_name: str  # opendev.org/openstack/nova
    src_dir: str  # as Zuul gave it, relative to the source root
    path: str  # the tree: <src_root>/<src_dir>, resolved
    checkout: str  # the branch (or tag) Zuul checked out
    checkout_description: str  # why Zuul chose it ("zuul branch", "project override ref"…)
    commit: str  # the sha HEAD must be at
    required: bool  # in the job's required-projects


@dataclass(frozen=True)
class Vars:
    """The ``zuul`` variable of one build, validated."""

    params: zuul.Params
    projects: tuple[Prepared, ...]
    override_checkout: str | None
    timeout: int | None  # zuul.timeout, seconds
    project_short_name: str | None
    src_root: str
    file: str


def read(path: str | Path, *, where: str = "--zuul-vars") -> Mapping[str, Any]:
    """The ``zuul`` mapping held in ``path``; raise UsageError when it is not JSON/YAML of one."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{where}: cannot read {path}: {getattr(exc, 'strerror', exc)}",
                         hint="give the file the pre-run playbook wrote") from exc
    try:
        data = json.loads(text)
    except ValueError:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UsageError(f"{where}: {path} is neither JSON nor YAML",
                             problems=[Problem(str(path), str(exc).splitlines()[0])],
                             hint="write it with {{ zuul | to_json }} (see zuul/playbooks)"
                             ) from exc
    if isinstance(data, Mapping) and isinstance(data.get("zuul"), Mapping) \
            and "projects" not in data:
        data = data["zuul"]
    if not isinstance(data, Mapping):
        raise UsageError(f"{where}: {path} does not hold a mapping (the zuul variable)",
                         hint="the file holds the zuul variable, bare or as {\"zuul\": {...}}")
    return data


def load(path: str | Path, src_root: str | Path, *, where: str = "--zuul-vars") -> Vars:
    """Read and validate the ``zuul`` variable in ``path`` against the trees under
    ``src_root``; raise UsageError listing every bad value."""
    return parse(read(path, where=where), src_root=Path(src_root), file=str(path))


def parse(data: Mapping[str, Any], *, src_root: Path, file: str = "zuul vars") -> Vars:
    """Validate a ``zuul`` mapping (and that each ``src_dir`` is a repo under ``src_root``)."""
    problems: list[Problem] = []
    get = _Getter(data, file, problems)
    raw_project = data.get("project")
    project: Mapping[str, Any] = raw_project if isinstance(raw_project, Mapping) else {}
    if "project" in data and not isinstance(data.get("project"), Mapping):
        problems.append(Problem(f"{file}: zuul.project", "is not a mapping"))
    name = get.text("project.name", project.get("name"), zuul.project_problem)
    short = get.text("project.short_name", project.get("short_name"), _short_problem)
    branch = get.text("branch", data.get("branch"), zuul.ref_problem)
    ref = get.text("ref", data.get("ref"), zuul.ref_problem)
    override = get.text("override_checkout", data.get("override_checkout"), zuul.ref_problem)
    change = get.text("change", data.get("change"), _number_problem)
    patchset = get.text("patchset", data.get("patchset"), _number_problem)
    newrev = get.text("newrev", data.get("newrev"), zuul.sha_problem)
    oldrev = get.text("oldrev", data.get("oldrev"), zuul.sha_problem)
    build = get.text("build", data.get("build"), _pattern(_BUILD, "an id (hex, up to 64 chars)"))
    job = get.text("job", data.get("job"), _pattern(_JOB, "a job name"))
    pipeline = get.text("pipeline", data.get("pipeline"), _pattern(_JOB, "a pipeline name"))
    timeout = get.number("timeout", data.get("timeout"))
    projects = _projects(data, src_root, file, problems)
    changes = _items(data.get("items"), file, problems)
    if problems:
        raise UsageError(f"{len(problems)} bad value{'s' * (len(problems) > 1)} in the zuul "
                         f"variable ({file})", problems=problems,
                         hint="the file must hold Zuul's own zuul variable: write it with "
                              "{{ zuul | to_json }} in the pre-run playbook")
    under_test = next((p for p in projects if p.name == name), None)
    voting = data.get("voting")
    params = zuul.Params(
        project=name, branch=branch, ref=ref, change=change, patchset=patchset,
        changes=changes, pipeline=pipeline, uuid=build, newrev=newrev, oldrev=oldrev,
        commit=under_test.commit if under_test else None, job=job,
        voting=None if voting is None else str(bool(voting)).lower(),
        log_path=log_path(change=change, patchset=patchset, pipeline=pipeline, job=job,
                          build=build, project=name))
    return Vars(params=params, projects=projects, override_checkout=override, timeout=timeout,
                project_short_name=short, src_root=str(src_root), file=file)


def log_path(*, change: str | None, patchset: str | None, pipeline: str | None,
             job: str | None, build: str | None, project: str | None) -> str | None:
    """The log path of a build (``zuul.build``-based, the shape dsvm publishes v2 logs under):
    ``<change[-2:]>/<change>/<patchset>/<pipeline>/<job>/<build[:7]>`` for a change,
    ``<pipeline>/<project>/<job>/<build[:7]>`` otherwise; None without a build and job."""
    if not build or not job:
        return None
    if change and patchset:
        return f"{change[-2:]}/{change}/{patchset}/{pipeline or 'check'}/{job}/{build[:7]}"
    if project:
        return f"{pipeline or 'periodic'}/{project}/{job}/{build[:7]}"
    return None


class _Getter:
    """Reads optional scalar keys of the variable, recording a Problem per bad one."""

    def __init__(self, data: Mapping[str, Any], file: str, problems: list[Problem]) -> None:
        self.data, self.file, self.problems = data, file, problems

    def text(self, key: str, value: Any, check: Any) -> str | None:
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            self.problems.append(Problem(f"{self.file}: zuul.{key}",
                                         f"is a {type(value).__name__}, not a string"))
            return None
        text = str(value)
        if why := check(text):
            self.problems.append(Problem(f"{self.file}: zuul.{key}", f"{text!r} {why}"))
            return None
        return text

    def number(self, key: str, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            self.problems.append(Problem(f"{self.file}: zuul.{key}",
                                         f"{value!r} is not a positive number of seconds"))
            return None
        return value


def _short_problem(text: str) -> str | None:
    if "/" in text or text in (".", ".."):
        return "is not a single path component"
    return zuul.project_problem(text)


def _number_problem(text: str) -> str | None:
    return None if _DIGITS.match(text) else "is not a number"



def _pattern(regex: re.Pattern[str], what: str) -> Any:
    return lambda text: None if regex.match(text) else f"is not {what}"


def _projects(data: Mapping[str, Any], src_root: Path, file: str,
              problems: list[Problem]) -> tuple[Prepared, ...]:
    raw = data.get("projects")
    if not isinstance(raw, Mapping) or not raw:
        problems.append(Problem(f"{file}: zuul.projects",
                                "is missing" if raw is None else "is not a non-empty mapping",
                                hint="Zuul always sends the projects it prepared, keyed by "
                                     "canonical name"))
        return ()
    root = src_root.resolve()
    out = []
    for key, entry in raw.items():
        where = f"{file}: zuul.projects[{str(key)!r}]"
        if not isinstance(entry, Mapping):
            problems.append(Problem(where, "is not a mapping"))
            continue
        before = len(problems)
        get = _Getter(entry, file, problems)
        prefix = f"projects[{str(key)!r}]."
        values = {
            "name": get.text(prefix + "name", entry.get("name"), zuul.project_problem),
            "short_name": get.text(prefix + "short_name", entry.get("short_name"),
                                   _short_problem),
            "canonical_name": get.text(prefix + "canonical_name",
                                       entry.get("canonical_name") or key, zuul.project_problem),
            "checkout": get.text(prefix + "checkout", entry.get("checkout"), zuul.ref_problem),
            "commit": get.text(prefix + "commit", entry.get("commit"), zuul.sha_problem),
            "src_dir": get.text(prefix + "src_dir", entry.get("src_dir"), lambda t: None),
        }
        for needed in ("name", "short_name", "commit", "src_dir"):
            if entry.get(needed) in (None, ""):
                problems.append(Problem(f"{where}.{needed}", "is missing"))
        if len(problems) > before:
            continue
        path = _tree(str(values["src_dir"]), root, f"{where}.src_dir", problems)
        if path is None:
            continue
        out.append(Prepared(
            name=str(values["name"]), short_name=str(values["short_name"]),
            canonical_name=str(values["canonical_name"]), src_dir=str(values["src_dir"]),
            path=str(path), checkout=values["checkout"] or "",
            checkout_description=str(entry.get("checkout_description") or ""),
            commit=str(values["commit"]), required=bool(entry.get("required"))))
    return tuple(sorted(out, key=lambda p: p.name))


def _tree(src_dir: str, root: Path, where: str, problems: list[Problem]) -> Path | None:
    """The resolved tree of ``src_dir``, or None after recording why it cannot be used."""
    from dsvm.git import looks_like_repo

    # Resolved, then compared by path components: a string prefix would let /home/zuul2
    # pass for /home/zuul (Zuul's own _is_safe_path slip, STYLE.md).
    path = (root / src_dir).resolve()
    if not path.is_relative_to(root):
        problems.append(Problem(where, f"{src_dir!r} is outside the source root {root}",
                                hint="pass --src-root DIR: the directory the executor pushed "
                                     "the projects under (the home directory by default)"))
        return None
    damage = looks_like_repo(path) if (path / ".git").is_dir() else (
        "missing" if not path.exists() else "not a git repo (no .git directory)")
    if damage:
        problems.append(Problem(where, f"{path} is not a usable repo: {damage}",
                                hint="the executor pushes every project before the job runs; "
                                     "check --src-root"))
        return None
    return path


def _items(raw: Any, file: str, problems: list[Problem]) -> tuple[zuul.Change, ...]:
    """``zuul.items`` (the change and those ahead of it) as ``zuul.Change``s, queue order."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.append(Problem(f"{file}: zuul.items", "is not a list"))
        return ()
    out = []
    for n, item in enumerate(raw):
        where = f"{file}: zuul.items[{n}]"
        if not isinstance(item, Mapping):
            problems.append(Problem(where, "is not a mapping"))
            continue
        raw_project = item.get("project")
        project: Mapping[str, Any] = raw_project if isinstance(raw_project, Mapping) else {}
        name, branch = project.get("name"), item.get("branch")
        change, patchset = item.get("change"), item.get("patchset")
        if not isinstance(name, str) or (why := zuul.project_problem(name)):
            problems.append(Problem(f"{where}.project.name",
                                    f"{name!r} {why if isinstance(name, str) else 'is missing'}"))
            continue
        if not isinstance(branch, str) or zuul.ref_problem(branch):
            problems.append(Problem(f"{where}.branch", f"{branch!r} is not a branch"))
            continue
        if change is None:  # a ref update or periodic item: nothing to fetch for it
            continue
        if not _DIGITS.match(str(change)) or not _DIGITS.match(str(patchset)):
            problems.append(Problem(where, f"change {change!r} patchset {patchset!r} are not "
                                    "numbers"))
            continue
        c = str(change)
        out.append(zuul.Change(name, branch, f"refs/changes/{c[-2:].zfill(2)}/{c}/{patchset}"))
    return tuple(out)
