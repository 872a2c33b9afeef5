"""Zuul's job parameters (``ZUUL_*``, ``LOG_PATH``…) parsed and validated into one frozen value.

Everything here is pure: it reads a mapping of environment variables and returns ``Params`` or
raises ``UsageError`` listing every bad value (exit 2). Values from Zuul are untrusted: project
names are checked before they can become paths, refs and branches follow
``git check-ref-format`` rules, URLs must use a protocol dsvm allows. This module never runs git
and never touches the disk; ``workspace.py`` decides what to do with the parameters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from dsvm.errors import Problem, UsageError
from dsvm.git import is_sha

ZERO_SHA = "0" * 40
_DIGITS = re.compile(r"^[0-9]+$")
_UUID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_URL = re.compile(r"^(https?|git|ssh|file)://[^\s]+$|^/[^\s]*$|^[A-Za-z0-9._-]+@[^\s:]+:[^\s]*$")
_BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_BAD_NAME_CHARS = re.compile(r"[\x00-\x20\x7f\\:*?\"<>|]")


@dataclass(frozen=True)
class Change:
    """One item of ``ZUUL_CHANGES``: a change under test."""

    project: str
    branch: str
    ref: str


@dataclass(frozen=True)
class Params:
    """The Zuul parameters of one build. Unset values are ``None``; changes in queue order."""

    project: str | None = None
    branch: str | None = None
    ref: str | None = None
    url: str | None = None
    change: str | None = None
    patchset: str | None = None
    changes: tuple[Change, ...] = ()
    pipeline: str | None = None
    uuid: str | None = None
    commit: str | None = None
    newrev: str | None = None
    oldrev: str | None = None
    refname: str | None = None
    log_path: str | None = None
    base_log_path: str | None = None
    voting: str | None = None
    job: str | None = None  # JOB_NAME / ZUUL_JOB; Zuul v3's zuul.job

    @property
    def kind(self) -> str:
        """``change`` (check/gate), ``ref-update`` (post/tag/release) or ``periodic``."""
        if self.newrev:
            return "ref-update"
        if self.change or self.changes or self.branch and self.ref:
            return "change"
        return "periodic"

    @property
    def change_projects(self) -> tuple[str, ...]:
        """Projects named in ZUUL_CHANGES (and ZUUL_PROJECT), first occurrence first."""
        names = [c.project for c in self.changes] + ([self.project] if self.project else [])
        return tuple(dict.fromkeys(names))

    def as_json(self) -> dict[str, Any]:
        """Stable JSON form: every field, changes as a list of {project, branch, ref}."""
        data = asdict(self)
        data["changes"] = [asdict(c) for c in self.changes]
        data["kind"] = self.kind
        return data


def project_problem(name: str) -> str | None:
    """Why ``name`` cannot be a project (org/name that becomes a path), or None if it can."""
    if not name:
        return "is empty"
    if name.startswith("/"):
        return "is an absolute path"
    if name.startswith("-"):
        return "starts with '-'"
    if _BAD_NAME_CHARS.search(name):
        return "contains whitespace, a control character or one of \\ : * ? \" < > |"
    parts = name.split("/")
    if any(p == "" for p in parts):
        return "has an empty path component"
    if any(p in (".", "..") for p in parts):
        return "has a '.' or '..' component"
    if any(p.endswith(".lock") or p.startswith(".") for p in parts):
        return "has a component starting with '.' or ending with '.lock'"
    return None


def ref_problem(ref: str, *, one_level: bool = True) -> str | None:
    """Why ``ref`` is not a valid git ref name (``git check-ref-format`` rules), or None."""
    if not ref:
        return "is empty"
    if ref.startswith("-"):
        return "starts with '-'"
    if ref == "@" or "@{" in ref:
        return "is '@' or contains '@{'"
    if _BAD_REF_CHARS.search(ref):
        return "contains whitespace, a control character or one of ~ ^ : ? * [ \\"
    if ".." in ref or ref.endswith(".") or ref.endswith("/") or ref.startswith("/"):
        return "contains '..', or starts or ends with '/' or '.'"
    parts = ref.split("/")
    if any(p == "" or p.startswith(".") or p.endswith(".lock") for p in parts):
        return "has an empty component, one starting with '.' or ending with '.lock'"
    if not one_level and len(parts) < 2:
        return "has a single component"
    return None


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a git remote dsvm fetches from, or None."""
    if url.startswith("-"):
        return "starts with '-'"
    if "::" in url.split("/", 1)[0]:
        return "uses a remote helper (transport::address), which dsvm never runs"
    if not _URL.match(url):
        return "is not an http(s)://, git://, ssh://, file:// URL or an absolute path"
    return None


def parse_changes(value: str) -> tuple[Change, ...]:
    """Parse ``project:branch:ref^project:branch:ref…``; raise ValueError naming a bad item."""
    changes = []
    for n, item in enumerate(value.split("^"), start=1):
        # Split from the left twice (spec 1.2): project and branch contain no ':'.
        parts = item.split(":", 2)
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"item {n} {item!r} is not project:branch:ref")
        project, branch, ref = parts
        for what, text, why in (("project", project, project_problem(project)),
                                ("branch", branch, ref_problem(branch)),
                                ("ref", ref, ref_problem(ref))):
            if why:
                raise ValueError(f"item {n}: {what} {text!r} {why}")
        changes.append(Change(project, branch, ref))
    return tuple(changes)


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value if value not in (None, "") else None


def _check(env: Mapping[str, str], problems: list[Problem]) -> None:
    checks: list[tuple[str, Any, str]] = [
        ("ZUUL_PROJECT", project_problem, "a Gerrit project name such as openstack/cinder"),
        ("ZUUL_BRANCH", ref_problem, "a branch name such as master or stable/2024.1"),
        ("ZUUL_REF", ref_problem, "refs/zuul/<branch>/Z<id>, or a branch/tag for post jobs"),
        ("ZUUL_REFNAME", ref_problem, "the ref Gerrit updated"),
        ("ZUUL_URL", url_problem, "the Zuul merger's git URL, e.g. http://zuul.example.org/p"),
    ]
    for name, check, hint in checks:
        value = _get(env, name)
        if value is not None and (why := check(value)):
            problems.append(Problem(f"env {name}", f"{value!r} {why}", hint=hint))
    for name in ("ZUUL_COMMIT", "ZUUL_NEWREV", "ZUUL_OLDREV"):
        value = _get(env, name)
        if value is not None and (why := sha_problem(value)):
            problems.append(Problem(f"env {name}", f"{value!r} {why}"))
    for name in ("ZUUL_CHANGE", "ZUUL_PATCHSET"):
        value = _get(env, name)
        if value is not None and not _DIGITS.match(value):
            problems.append(Problem(f"env {name}", f"{value!r} is not a number"))
    uuid = _get(env, "ZUUL_UUID")
    if uuid is not None and not _UUID.match(uuid):
        problems.append(Problem("env ZUUL_UUID", f"{uuid!r} is not an id (hex, up to 64 chars)"))


def parse(env: Mapping[str, str], *, zuul_url: str | None = None) -> Params:
    """Return the validated Params of ``env``; raise UsageError listing every bad value.

    ``zuul_url`` is the resolved ``git.zuul_url`` setting, used when ``ZUUL_URL`` is unset.
    """
    problems: list[Problem] = []
    _check(env, problems)
    changes: tuple[Change, ...] = ()
    raw_changes = _get(env, "ZUUL_CHANGES")
    if raw_changes is not None:
        try:
            changes = parse_changes(raw_changes)
        except ValueError as exc:
            problems.append(Problem("env ZUUL_CHANGES", f"{exc}: {raw_changes!r}",
                                    hint="items are project:branch:ref joined by '^'"))
    url = _get(env, "ZUUL_URL") or zuul_url or None
    if url and url_problem(url) and not _get(env, "ZUUL_URL"):
        problems.append(Problem("git.zuul_url", f"{url!r} {url_problem(url)}"))
    # zuul-cloner's two usage checks (spec 2.1).
    if _get(env, "ZUUL_REF") and not url:
        problems.append(Problem("env ZUUL_REF", "a Zuul ref needs ZUUL_URL (where to fetch it)",
                                hint="set ZUUL_URL to the Zuul merger's git URL"))
    if _get(env, "ZUUL_NEWREV") and not _get(env, "ZUUL_PROJECT"):
        problems.append(Problem("env ZUUL_NEWREV", "ZUUL_NEWREV is set without ZUUL_PROJECT",
                                hint="a post/tag job names the project whose ref moved"))
    if problems:
        raise UsageError(f"{len(problems)} bad Zuul parameter{'s' * (len(problems) > 1)}",
                         problems=problems,
                         hint="check the Jenkins job parameters Zuul sent")
    return Params(
        project=_get(env, "ZUUL_PROJECT"), branch=_get(env, "ZUUL_BRANCH"),
        ref=_get(env, "ZUUL_REF"), url=url.rstrip("/") if url else None,
        change=_get(env, "ZUUL_CHANGE"), patchset=_get(env, "ZUUL_PATCHSET"), changes=changes,
        pipeline=_get(env, "ZUUL_PIPELINE"), uuid=_get(env, "ZUUL_UUID"),
        commit=_get(env, "ZUUL_COMMIT"), newrev=_get(env, "ZUUL_NEWREV"),
        oldrev=_get(env, "ZUUL_OLDREV"), refname=_get(env, "ZUUL_REFNAME"),
        log_path=_get(env, "LOG_PATH"), base_log_path=_get(env, "BASE_LOG_PATH"),
        voting=_get(env, "ZUUL_VOTING"), job=_get(env, "JOB_NAME") or _get(env, "ZUUL_JOB"))


def ref_for_branch(zuul_ref: str | None, zuul_branch: str | None, branch: str) -> str | None:
    """``refs/zuul/<zuul_branch>/Z…`` rewritten for ``branch``; None when it is no such ref.

    Only the branch path component is replaced (spec 2.8): zuul-cloner's ``re.sub`` treated the
    branch as a regex and rewrote every match, hex digits of the id included.
    """
    if not zuul_ref or not zuul_branch:
        return None
    prefix = f"refs/zuul/{zuul_branch}/"
    if not zuul_ref.startswith(prefix):
        return None
    ident = zuul_ref[len(prefix):]
    if not ident or "/" in ident:
        return None
    return f"refs/zuul/{branch}/{ident}"


def sha_problem(text: str) -> str | None:
    """Why ``text`` is not a full commit id, or None when it is one."""
    return None if is_sha(text) else "is not a full commit id (40 hex digits, 64 in SHA-256 repos)"
