"""The workspace phase: which commit every project of the job gets (pure plan), then getting it.

``plan()`` turns Zuul's parameters, the workspace settings and what the node's git cache holds
(``inspect_cache``, which only reads files) into a ``WorkspacePlan``: for each project its
destination, where it is seeded from (``/opt/git`` cache or the upstream), its origin URL and
the ordered ladder of refs to try, each rung saying why (zuul-cloner's algorithm, spec
zuul-cloner.md §2.4, with devstack-gate's overrides). ``apply()`` walks that plan with
``git.py``, in parallel, and reports what it checked out. This module never decides anything
from a shell string, and never writes outside the planned destinations.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsvm import jobfacts, zuul
from dsvm.errors import DsvmError, InfraError, Problem, UsageError
from dsvm.jobfacts import BranchRules, Job

if TYPE_CHECKING:
    from dsvm.console import Ui
    from dsvm.git import Git
    from dsvm.phase import JobContext, PhaseResult
    from dsvm.profile import Settings
    from dsvm.zuulv3 import Prepared

SETTLE_MIN_INDEX_BYTES = 64 * 1024  # ~700 files: below it, _settle_indexes does not pay
ZUUL_ORIGIN = "file:///dev/null"  # prepare-workspace-git's origin: a tree Zuul prepared


# ----------------------------------------------------------------------------------------------
# Inputs

@dataclass(frozen=True)
class WorkspaceConfig:
    """The workspace settings of one job: projects (with where each was named), paths, URLs."""

    projects: tuple[tuple[str, str], ...]  # (project, where it was named)
    dest_root: str  # $BASE/new
    cache_root: str  # /opt/git
    git_base: str  # "" = no upstream: cache only
    git_base_overrides: Mapping[str, str] = field(default_factory=dict)  # UC -> URL
    branches: BranchRules = field(default_factory=BranchRules)
    clone_map: Mapping[str, str] = field(default_factory=dict)  # project or regex -> dest
    error_on_clone: bool = False  # Zuul v3: a project Zuul did not prepare is an error


@dataclass(frozen=True)
class CacheFact:
    """What the node cache holds for one project: its path, and why it is unusable (or None)."""

    path: str
    problem: str | None  # None: usable; "missing"; or the damage found


def config_from(settings: Settings, env: Mapping[str, str]) -> WorkspaceConfig:
    """Return the WorkspaceConfig of resolved settings and the job's environment."""
    from dsvm import environ

    _, bases = environ.project_overrides(env)
    return WorkspaceConfig(
        projects=jobfacts.needed_projects(settings),
        dest_root=str(Path(settings.paths.base) / "new"),
        cache_root=settings.git.cache,
        git_base=settings.git.base.rstrip("/"),
        git_base_overrides=bases, branches=jobfacts.branch_rules(settings, env),
        clone_map={str(k): str(v) for k, v in settings.top.clone_map.items()},
        error_on_clone=settings.git.error_on_clone)


def project_names(config: WorkspaceConfig, job: Job | zuul.Params) -> list[str]:
    """The job's projects: configured ones, every project under test and every project
    Zuul v3 prepared; sorted, unique."""
    job = as_job(job)
    return sorted({p for p, _ in config.projects} | set(job.zuul.change_projects)
                  | {p.name for p in job.prepared})


def as_job(job: Job | zuul.Params) -> Job:
    """``job`` itself, or a Zuul v2 Job around bare Params."""
    return job if isinstance(job, Job) else Job(job)


def inspect_cache(cache_root: str | os.PathLike[str],
                  projects: Iterable[str]) -> dict[str, CacheFact]:
    """Return what the cache holds for each valid project name (reads a few files, no git).

    Either layout prepare-node writes is read: ``<cache>/<org>/<name>`` or, when that is
    missing, ``<cache>/<host>/<org>/<name>`` (Zuul v3's ``/opt/git/<canonical_name>``).
    """
    from dsvm.git import looks_like_repo

    root = Path(cache_root)
    absent = "missing" if root.is_dir() else "no cache"
    try:
        hosts = sorted(d for d in root.iterdir() if "." in d.name and d.is_dir()) \
            if absent == "missing" else []
    except OSError:
        hosts = []
    facts = {}
    for name in projects:
        if zuul.project_problem(name):
            continue
        path = root / name
        if not path.exists():
            path = next((h / name for h in hosts if (h / name).exists()), path)
        facts[name] = CacheFact(str(path), looks_like_repo(path) if path.exists() else absent)
    return facts


# ----------------------------------------------------------------------------------------------
# The plan

@dataclass(frozen=True)
class Step:
    """One rung of a project's ladder: a ref to try, where it is fetched from, and why."""

    kind: str  # "revision" | "zuul-ref" | "branch" | "tag"
    ref: str
    url: str | None  # fetched from here; None: from origin (already fetched)
    why: str
    unless_branch: str | None = None  # skipped when origin has this branch
    prefetch: str | None = None  # "revision": fetch this ref from url first (result ignored)


@dataclass(frozen=True)
class ProjectCheckout:
    """Everything apply() needs to put one project at its commit."""

    name: str
    path: str
    branch: str
    branch_why: str
    origin: str  # the upstream URL origin points at afterwards
    source: str  # "cache" | "network" | "zuul" (a tree Zuul v3 prepared)
    cache_path: str | None
    note: str | None  # why the cache is not used, when it is not
    steps: tuple[Step, ...]
    under_test: bool
    prepared: str | None = None  # "zuul": the executor's tree, copied as it is
    commit: str | None = None  # "zuul": the commit Zuul recorded (HEAD must be there)

    def as_json(self) -> dict[str, Any]:
        """The --plan --json form of one project (the stable keys; commit known for "zuul")."""
        return {"name": self.name, "path": self.path, "branch": self.branch,
                "ref": self.steps[0].ref if self.steps else None, "commit": self.commit,
                "source": self.source, "fallback": None, "origin": self.origin,
                "branch_why": self.branch_why, "cache_note": self.note,
                "under_test": self.under_test, "steps": [asdict(s) for s in self.steps],
                "prepared": self.prepared}


@dataclass(frozen=True)
class WorkspacePlan:
    """The replayable decision for the whole job: one ProjectCheckout per project."""

    projects: tuple[ProjectCheckout, ...]
    job: Job
    dest_root: str
    cache_root: str

    @property
    def zuul(self) -> zuul.Params:
        return self.job.zuul

    def as_json(self) -> dict[str, Any]:
        """Stable JSON: {"projects": [...], "zuul": {...}, "dest_root", "cache_root"}."""
        return {"projects": [p.as_json() for p in self.projects], "zuul": self.job.as_json(),
                "dest_root": self.dest_root, "cache_root": self.cache_root}


def plan(job: Job | zuul.Params, config: WorkspaceConfig,
         cache: Mapping[str, CacheFact]) -> WorkspacePlan:
    """Return the WorkspacePlan (pure); raise UsageError listing every bad input."""
    job = as_job(job)
    params = job.zuul
    where = dict(config.projects)
    names = project_names(config, job)
    problems = jobfacts.project_problems(
        tuple((n, where.get(n, "zuul" if job.vars else "env ZUUL_CHANGES")) for n in names))
    if problems:
        raise UsageError("bad project names", problems=problems)
    if params.newrev == zuul.ZERO_SHA:
        problems.append(Problem("env ZUUL_NEWREV", f"{params.project}: the ref was deleted "
                                "(ZUUL_NEWREV is all zeros); there is no revision to test"))
    if job.vars is not None:
        # Zuul v3: the network is never contacted. What Zuul did not prepare comes from the
        # node's cache (origin: the cache) or not at all.
        config = replace(config, git_base="", git_base_overrides={})
    prepared = {p.name: p for p in job.prepared}
    checkouts = []
    for name in names:
        if name in prepared:
            checkouts.append(_plan_prepared(prepared[name], config, params))
            continue
        if job.vars is not None and config.error_on_clone:
            problems.append(Problem(f"project {name}", f"is needed ({where.get(name, '?')}) "
                                    "but Zuul did not prepare it (git.error_on_clone)",
                                    hint="add it to the job's required-projects"))
            continue
        item = _plan_project(name, job, config, cache.get(name), problems)
        if item is not None:
            checkouts.append(item)
    _check_destinations(checkouts, problems)
    if problems:
        raise UsageError(f"cannot plan the workspace: {len(problems)} problem"
                         f"{'s' * (len(problems) > 1)}", problems=problems,
                         hint="fix the values named above; 'dsvm workspace --plan' re-checks")
    return WorkspacePlan(tuple(checkouts), job, config.dest_root, config.cache_root)


def _plan_prepared(p: Prepared, config: WorkspaceConfig,
                   params: zuul.Params) -> ProjectCheckout:
    """A tree Zuul v3 prepared: copied to ``$BASE/new/<short_name>`` as it is, no ladder."""
    why = p.checkout_description or "prepared by Zuul"
    return ProjectCheckout(
        name=p.name, path=str(Path(config.dest_root) / p.short_name), branch=p.checkout,
        branch_why=f"zuul.projects checkout ({why})", origin=ZUUL_ORIGIN, source="zuul",
        cache_path=None, note=None, steps=(Step("prepared", p.checkout or p.commit, None, why),),
        under_test=p.name in params.change_projects, prepared=p.path, commit=p.commit)


def ladder(name: str, branch: str, params: zuul.Params) -> tuple[Step, ...]:
    """The ordered refs to try for one project (zuul-cloner §2.4 steps 3-4, pure)."""
    zurl = f"{params.url}/{name}" if params.url else None
    if params.newrev and name == params.project:
        # Post/tag pipeline: the triggering project gets exactly the new revision, no fallback.
        prefetch = params.ref if params.ref and zurl else None
        return (Step("revision", params.newrev, zurl, "ZUUL_NEWREV of the ref update",
                     prefetch=prefetch),)
    steps: list[Step] = []
    # The merger makes refs/zuul/<b>/Z<n> in project p iff an item up to n is for (p, b)
    # (spec 1.3), and ZUUL_CHANGES lists those items: no need to ask ZUUL_URL for the others.
    queued = {(c.project, c.branch) for c in params.changes}

    def has_ref(b: str) -> bool:
        return (name, b) in queued if queued else True

    tip_why = f"tip of {branch}"
    if params.ref and zurl:
        own = zuul.ref_for_branch(params.ref, params.branch, branch)
        if own:
            if has_ref(branch):
                steps.append(Step("zuul-ref", own, zurl, f"Zuul ref for {branch}"))
            master = zuul.ref_for_branch(params.ref, params.branch, "master")
            if master and master != own and has_ref("master"):
                steps.append(Step("zuul-ref", master, zurl,
                                  f"{name} has no branch {branch}: Zuul ref for master",
                                  unless_branch=branch))
            if not steps:
                tip_why += f" ({name} has no change in ZUUL_CHANGES)"
        elif name == params.project:
            steps.append(Step("zuul-ref", params.ref, zurl, "ZUUL_REF as given"))
    steps.append(Step("branch", branch, None, tip_why))
    if branch != "master":
        if branch.startswith("stable/"):
            series = branch.split("/", 1)[1]
            steps.append(Step("tag", f"{series}-eol", None,
                              f"{name} has no branch {branch}: its {series}-eol tag",
                              unless_branch=branch))
        steps.append(Step("branch", "master", None, f"{name} has no branch {branch}: "
                          "tip of master", unless_branch=branch))
    return tuple(steps)


def _plan_project(name: str, job: Job, config: WorkspaceConfig,
                  fact: CacheFact | None, problems: list[Problem]) -> ProjectCheckout | None:
    params = job.zuul
    branch, branch_why = jobfacts.indicated_branch(name, config.branches, job)
    if why := zuul.ref_problem(branch):
        problems.append(Problem(branch_why, f"branch {branch!r} for {name} {why}"))
        return None
    base_override = jobfacts.override_for(config.git_base_overrides, name)
    base = base_override[1].rstrip("/") if base_override else config.git_base
    usable = fact is not None and fact.problem is None
    note = None
    if fact is not None and fact.problem not in (None, "missing", "no cache"):
        note = f"cache {fact.path} is unusable ({fact.problem}): cloning from the upstream"
    elif fact is not None and fact.problem == "missing":
        note = f"not in the cache {Path(fact.path).parent}: cloning from the upstream"
    if base and (why := zuul.url_problem(base)):
        problems.append(Problem("git.base" if not base_override else
                                f"env OVERRIDE_{base_override[0]}_GIT_BASE",
                                f"{base!r} {why}"))
        return None
    if job.vars is not None and not usable:
        problems.append(Problem(f"project {name}", "Zuul did not prepare it and the node's git "
                                f"cache has no usable copy ({fact.problem if fact else 'none'})",
                                hint="add it to the job's required-projects, or to the node "
                                "image with dsvm prepare-node (the network is not used under "
                                "Zuul v3)"))
        return None
    if job.vars is not None:
        note = f"not prepared by Zuul: from the node's cache {fact.path if fact else ''}"
    if not base and not usable:
        problems.append(Problem(f"project {name}", "is not in the git cache and there is no "
                                "upstream to clone it from (git.base is empty)",
                                hint="set GIT_BASE, or OVERRIDE_<PROJECT>_GIT_BASE, or add it "
                                "to the cache with dsvm prepare-node"))
        return None
    assert fact is not None or base
    origin = f"{base}/{name}" if base else (fact.path if fact else "")
    try:
        path = destination(name, config)
    except ValueError as exc:
        problems.append(Problem("clone_map", f"project {name}: {exc}",
                                hint="one rule per project; rules are anchored regexes"))
        return None
    return ProjectCheckout(
        name=name, path=path, branch=branch, branch_why=branch_why,
        origin=origin, source="cache" if usable else "network",
        cache_path=fact.path if usable and fact else None, note=note,
        steps=ladder(name, branch, params), under_test=name in params.change_projects)


def destination(name: str, config: WorkspaceConfig) -> str:
    """Where a project lands: its clone-map entry, else ``$BASE/new/<short name>``.

    Raises ValueError when several clone-map rules match the project or a rule is no regex.
    """
    root = Path(config.dest_root)
    matches = []
    for rule, dest in config.clone_map.items():
        try:
            if rule == name or re.fullmatch(rule, name):
                matches.append((rule, dest))
        except re.error as exc:
            raise ValueError(f"clone_map rule {rule!r} is not a regular expression: "
                             f"{exc}") from exc
    if len(matches) > 1:
        raise ValueError(f"several clone_map rules match it: {', '.join(r for r, _ in matches)}")
    if matches:
        rule, dest = matches[0]
        target = dest if rule == name else re.sub(f"^(?:{rule})$", dest, name)
        return os.path.normpath(root / target)
    return str(root / name.rsplit("/", 1)[-1])


def _check_destinations(checkouts: list[ProjectCheckout], problems: list[Problem]) -> None:
    seen: dict[str, str] = {}
    for item in checkouts:
        if item.path in seen:
            problems.append(Problem(f"project {item.name}", f"shares the destination {item.path}"
                                    f" with {seen[item.path]}",
                                    hint="give one of them a clone_map entry"))
        seen[item.path] = item.name


# ----------------------------------------------------------------------------------------------
# Applying it

@dataclass(frozen=True)
class Outcome:
    """What apply() did for one project (the --json row)."""

    name: str
    path: str
    branch: str
    ref: str
    commit: str
    source: str
    fallback: str | None
    reused: bool
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def apply(workspace: WorkspacePlan, git: Git, *, jobs: int = 4, ui: Ui | None = None,
          on_done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Check every project out as planned; return outcomes in plan order; raise DsvmError.

    Projects run ``jobs`` at a time; a project whose destination lies inside another's waits
    for it (the parent clone needs its directory first).
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed

    by_name: dict[str, Outcome] = {}
    prepared = [p for p in workspace.projects if p.prepared]
    for out in place_prepared(prepared, git):  # first: a cache project may nest in one
        by_name[out.name] = out
        if on_done:
            on_done(out)
    for wave in _waves(p for p in workspace.projects if not p.prepared):
        pool = ThreadPoolExecutor(max_workers=max(1, jobs))
        try:
            futures = [pool.submit(apply_project, item, git) for item in wave]
            for fut in as_completed(futures):
                out = fut.result()  # the first failure (or Ctrl-C) ends the phase
                by_name[out.name] = out
                if on_done:
                    on_done(out)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # queued projects never start
            raise
        pool.shutdown()
    outcomes = [by_name[p.name] for p in workspace.projects]
    _settle_indexes([Path(o.path) for o in outcomes if not o.reused], git, jobs)
    return outcomes


def place_prepared(items: list[ProjectCheckout], git: Git) -> list[Outcome]:
    """Copy the trees Zuul v3 prepared to their destinations, all or none; raise InfraError.

    Every tree is verified first (HEAD at the commit Zuul recorded, destination free or a
    repo of ours), then each is copied whole (``cp -a``: branches, the speculative merge,
    origin ``file:///dev/null`` and all) into a hidden sibling and checked again, and only
    when every copy is good do they replace their destinations. Nothing is fetched.
    """
    if not items:
        return []
    start = time.monotonic()
    problems = []
    for item in items:
        head = git.head(Path(str(item.prepared)))
        if head != item.commit:
            problems.append(Problem(f"project {item.name}", f"{item.prepared} has HEAD at "
                                    f"{head or 'nothing'}, but Zuul recorded {item.commit}"))
        dest = Path(item.path)
        if dest.is_dir() and not (dest / ".git").exists() and any(dest.iterdir()):
            problems.append(Problem(f"project {item.name}", f"{dest} exists, is not empty and "
                                    "is not a git repo", hint="remove it"))
    if problems:
        raise InfraError(f"{len(problems)} tree(s) Zuul prepared cannot be placed; nothing was "
                         "placed", problems=problems,
                         hint="something changed the tree after Zuul pushed it (a pre-run "
                              "playbook?); a recheck starts from a fresh node")
    staged: list[tuple[ProjectCheckout, Path]] = []
    try:
        for item in items:
            dest = Path(item.path)
            partial = dest.parent / f".{dest.name}.dsvm-partial"
            if partial.exists():
                shutil.rmtree(partial)
            partial.parent.mkdir(parents=True, exist_ok=True)
            staged.append((item, partial))
            git.runner.run(["cp", "-a", "--", str(item.prepared), str(partial)],
                           desc=f"copy {item.name} from the tree Zuul prepared")
            if (head := git.head(partial)) != item.commit:
                raise InfraError(f"{item.name}: the copy of {item.prepared} has HEAD at {head}, "
                                 f"not {item.commit}; nothing was placed")
    except BaseException:
        for _, partial in staged:
            shutil.rmtree(partial, ignore_errors=True)
        raise
    outcomes = []
    for item, partial in staged:
        dest = Path(item.path)
        if dest.exists():  # a previous job's repo (checked above): set aside, then removed
            old = dest.parent / f".{dest.name}.dsvm-old"
            shutil.rmtree(old, ignore_errors=True)
            dest.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        partial.rename(dest)
        outcomes.append(Outcome(item.name, item.path, item.branch, item.steps[0].ref,
                                str(item.commit), "zuul", item.steps[0].why or None, False,
                                round(time.monotonic() - start, 3)))
    return outcomes


def _settle_indexes(repos: list[Path], git: Git, jobs: int) -> None:
    """Refresh the index of fresh checkouts once the second they were written in is over.

    A checkout writes its files and then the index within the same second, so git (which
    compares whole seconds) must treat every such file as "racily clean" and re-read it at the
    next index refresh — the next job's, on a reused workspace. Settling it here, while the
    node is ours, costs one ``update-index --refresh`` per fresh repo (the work the next
    command would do; gerrit-git-prep's ``reset --hard`` after the clone did it too) and at
    most a second's wait for the youngest index. Small repos are left alone: re-reading a few
    hundred files costs the next job less than the wait.
    """
    from concurrent.futures import ThreadPoolExecutor

    def index_stat(repo: Path) -> tuple[float, int]:
        try:
            st = (repo / ".git" / "index").stat()
        except OSError:
            return 0.0, 0
        return st.st_mtime, st.st_size

    stats = ((index_stat(r), r) for r in repos)
    pending = sorted((mtime, repo) for (mtime, size), repo in stats
                     if size >= SETTLE_MIN_INDEX_BYTES)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for written, repo in pending:
            # + 50 ms: file times come from the kernel's coarse clock, a tick behind time().
            if written and (wait := int(written) + 1.05 - time.time()) > 0:
                time.sleep(wait)
            pool.submit(git.refresh_index, repo)


def _waves(projects: Iterable[ProjectCheckout]) -> list[list[ProjectCheckout]]:
    items = list(projects)
    # Strings, not Paths: 40 projects make 1,600 comparisons, and pathlib costs ~0.1 s of them.
    paths = {os.path.normpath(p.path) for p in items}

    def depth_of(path: str) -> int:  # how many other projects' destinations contain it
        found, parent = 0, os.path.dirname(path)
        while True:
            found += parent in paths
            if parent == os.path.dirname(parent):
                return found
            parent = os.path.dirname(parent)

    depth = {p.name: depth_of(os.path.normpath(p.path)) for p in items}
    return [[p for p in items if depth[p.name] == d] for d in sorted(set(depth.values()))]


def apply_project(item: ProjectCheckout, git: Git) -> Outcome:
    """Put one project at its planned commit; return the Outcome; raise DsvmError."""
    from dsvm import git as gitmod

    start = time.monotonic()
    dest = Path(item.path)
    reused, source, note = _obtain(item, git, dest)
    try:
        git.set_origin(dest, item.origin)
        step, sha, skipped = _update_and_check_out(item, git, dest, reused)
    except DsvmError as exc:
        if reused or source != "cache" or isinstance(exc, (UsageError, gitmod.RemoteError)):
            raise
        # The copy of the cache is damaged in a way the plan's file checks could not see.
        shutil.rmtree(dest)
        note = f"cache copy of {item.name} is damaged ({exc.message}): cloned from the upstream"
        return _retry_from_network(item, git, start, note)
    return _finish(item, git, dest, step, sha, skipped, source, note, reused, start)


def _update_and_check_out(item: ProjectCheckout, git: Git, dest: Path,
                          reused: bool) -> tuple[Step, str, list[str]]:
    """Bring origin's branches and tags in, walk the ladder, check the rung out."""
    # A reused repo usually mirrors origin already: one ls-remote proves it and spares the
    # fetch (and its connectivity check). Should the checkout then find objects missing, the
    # full fetch below gets its chance to repair the repo, as it always had.
    from dsvm.proc import CommandFailed

    refs = git.origin_in_sync(dest, item.name) if reused else None
    if refs is not None:
        step, sha, skipped = _choose(item, git, dest, refs)
        try:
            git.checkout(dest, sha)
            return step, sha, skipped
        except CommandFailed:
            pass
    git.fetch_origin(dest, item.name)
    step, sha, skipped = _choose(item, git, dest, git.origin_refs(dest))
    git.checkout(dest, sha)
    return step, sha, skipped


def _retry_from_network(item: ProjectCheckout, git: Git, start: float, note: str) -> Outcome:
    from dataclasses import replace

    fresh = replace(item, source="network", cache_path=None, note=note)
    out = apply_project(fresh, git)
    return replace(out, seconds=time.monotonic() - start)


def _finish(item: ProjectCheckout, git: Git, dest: Path, step: Step, sha: str,
            skipped: list[str], source: str, note: str | None, reused: bool,
            start: float) -> Outcome:
    from dsvm import git as gitmod

    if reused:  # a fresh clone has nothing to clean
        git.clean(dest)
    if gitmod.has_submodules(dest):
        git.update_submodules(dest, item.name)
    head = git.head(dest)
    if head != sha:
        raise InfraError(f"{item.name}: HEAD is {head} after checking out {sha}",
                         hint="something changed the repo while dsvm worked on it")
    parts = ([f"{', '.join(skipped)}: {step.why}"] if skipped else []) + ([note] if note else [])
    fallback = "; ".join(parts) or None
    return Outcome(item.name, item.path, item.branch, step.ref, sha, source, fallback, reused,
                   round(time.monotonic() - start, 3))


def _obtain(item: ProjectCheckout, git: Git, dest: Path) -> tuple[bool, str, str | None]:
    """Reuse the repo a previous job left, or clone; return (reused, source, note)."""
    from dsvm import git as gitmod

    if (dest / ".git").exists():
        damage = gitmod.looks_like_repo(dest)
        if damage is None:
            gitmod.remove_stale_locks(dest)
            return True, item.source, None
        shutil.rmtree(dest)  # a repo a killed job left broken: start again
    elif dest.exists() and any(dest.iterdir()):
        # Not ours: dsvm clones into a temporary sibling and renames, so it never leaves a
        # half-made destination behind. Refuse rather than delete someone's directory.
        raise InfraError(f"{item.name}: {dest} exists, is not empty and is not a git repo",
                         hint="remove it (or give the project a clone_map entry)")
    partial = dest.parent / f".{dest.name}.dsvm-partial"
    if partial.exists():
        shutil.rmtree(partial)
    partial.parent.mkdir(parents=True, exist_ok=True)
    source, note = item.source, item.note
    if item.source == "cache" and item.cache_path:
        try:
            git.clone_local(Path(item.cache_path), partial, item.name)
        except DsvmError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            source = "network"
            note = f"cache {item.cache_path} is damaged ({exc.message}): cloned from the upstream"
    if source == "network":
        git.clone_url(item.origin, partial, item.name)
    if dest.exists():
        dest.rmdir()
    partial.rename(dest)
    return False, source, note


def walk(steps: Iterable[Step], has_branch: Callable[[str], bool],
         resolve: Callable[[Step], str | None]) -> tuple[Step, str, list[str]] | None:
    """Return the first step that resolves (with its sha and the skipped steps), or None.

    A step with ``unless_branch`` only applies when origin lacks that branch; a "revision"
    step that does not resolve ends the walk (no fallback for post/tag jobs, spec 2.4 rule 1).
    """
    skipped: list[str] = []
    for step in steps:
        if step.unless_branch and has_branch(step.unless_branch):
            continue
        sha = resolve(step)
        if sha:
            return step, sha, skipped
        if step.kind == "revision":
            return None
        skipped.append(f"no {step.kind} {step.ref}")
    return None


def _choose(item: ProjectCheckout, git: Git, dest: Path,
            refs: Mapping[str, str]) -> tuple[Step, str, list[str]]:
    """Walk the ladder in the repo (``refs``: its origin branches and tags); return (the step
    used, its commit, skipped steps)."""
    found = walk(item.steps, lambda b: f"refs/remotes/origin/{b}" in refs,
                 lambda step: _resolve(step, item, git, dest, refs))
    if found:
        return found
    if item.steps and item.steps[0].kind == "revision":
        raise InfraError(f"failed to check out {item.name} at revision {item.steps[0].ref}",
                         hint="the ref update is not on the upstream nor on ZUUL_URL yet")
    raise UsageError(f"{item.name} has no branch {item.branch} and no master",
                     hint=f"{item.branch} came from {item.branch_why}; check the branch name")


def _resolve(step: Step, item: ProjectCheckout, git: Git, dest: Path,
             refs: Mapping[str, str]) -> str | None:
    if step.kind == "zuul-ref":
        assert step.url
        return git.fetched_sha(dest) if git.fetch_ref(dest, step.url, step.ref, item.name) \
            else None
    if step.kind == "branch":
        return refs.get(f"refs/remotes/origin/{step.ref}")
    if step.kind == "tag":
        return git.rev_parse(dest, f"refs/tags/{step.ref}") \
            if f"refs/tags/{step.ref}" in refs else None
    # revision: the merger has it once it merged the ref update; origin usually has it too.
    if step.url and step.prefetch:
        git.fetch_ref(dest, step.url, step.prefetch, item.name)
    sha = git.rev_parse(dest, step.ref)
    if sha is None and step.url and git.fetch_ref(dest, step.url, step.ref, item.name):
        sha = git.rev_parse(dest, step.ref)
    return sha


def link_files(files_dir: Path, devstack: Path) -> list[str]:
    """Hard-link the node's download cache into ``devstack/files``; return the names linked.

    devstack-gate's setup_workspace step 5: devstack finds images under files/<basename of URL>
    instead of downloading them. Links (copies across filesystems) never replace a file.
    """
    if not files_dir.is_dir() or not devstack.is_dir():
        return []
    target = devstack / "files"
    target.mkdir(exist_ok=True)
    linked = []
    for entry in sorted(files_dir.iterdir()):
        dest = target / entry.name
        if dest.exists() or dest.is_symlink():
            continue
        if entry.is_dir():
            shutil.copytree(entry, dest, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, dest)
        linked.append(entry.name)
    return linked


def _link_or_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


# ----------------------------------------------------------------------------------------------
# The phase

def plan_phase(ctx: JobContext) -> dict[str, Any]:
    """For ``dsvm run --plan``: which commit each project gets and why (reads the cache only)."""
    import dataclasses

    result = run_phase(dataclasses.replace(ctx, plan_only=True))
    return {"projects": result.outputs["projects"], "zuul": result.outputs["zuul"]}


def run_phase(ctx: JobContext) -> PhaseResult:
    """Plan (and unless ctx.plan_only, apply) the workspace; outputs {"projects", "zuul"}."""
    from dsvm import git as gitmod
    from dsvm.phase import PhaseResult

    settings = ctx.settings
    job = ctx.job
    params = job.zuul
    config = config_from(settings, ctx.env)
    cache = inspect_cache(config.cache_root, project_names(config, job))
    workspace = plan(job, config, cache)
    if ctx.plan_only:
        return PhaseResult("workspace", 0, workspace.as_json(),
                           f"planned {len(workspace.projects)} projects")
    timeout = float(settings.git.timeout)
    if (left := ctx.time_left()) is not None:
        timeout = max(1.0, min(timeout, left))
    runner = ctx.runner("workspace")
    git = gitmod.Git(runner, retry=gitmod.Retry(attempts=max(1, settings.git.attempts),
                                                backoff=float(settings.git.backoff),
                                                timeout=timeout))
    for item in workspace.projects:
        if item.note:
            ctx.ui.warn(f"{item.name}: {item.note}")
    with ctx.ui.progress("workspace", len(workspace.projects)) as progress:
        outcomes = apply(workspace, git, jobs=max(1, settings.git.jobs),
                         on_done=lambda o: progress.advance(item=o.name))
    devstack = next((o.path for o in outcomes if o.name.endswith("/devstack")), None)
    files_dir = settings.node.files_dir
    linked = link_files(Path(files_dir), Path(devstack)) if devstack and files_dir else []
    ctx.ui.table("workspace", ["project", "branch", "ref tried", "commit", "source", "seconds"],
                 [(o.name, o.branch, o.ref, o.commit[:12], o.source + (" (reused)" * o.reused),
                   f"{o.seconds:.2f}") for o in outcomes])
    for o in outcomes:
        if o.fallback and o.name in params.change_projects and o.source != "zuul":
            ctx.ui.warn(f"{o.name} is under test but got a fallback: {o.fallback}")
    return PhaseResult("workspace", 0, {"projects": [o.as_json() for o in outcomes],
                                        "zuul": job.as_json(), "files_linked": linked},
                       f"{len(outcomes)} projects checked out")
