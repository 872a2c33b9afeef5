"""prepare-node: make a node image that starts every job warm (check-node is ``node_checks.py``).

prepare-node is a pure ``plan_prepare()`` (which steps, which projects, which paths, does it
need root) followed by named steps: ``users`` (``stack``/``tempest`` and devstack-gate's
sudoers rules), ``repos`` (the git cache, ``cache.py``), ``images`` (devstack's downloads,
``images.py``), ``pip-cache`` and ``packages``. Every node path sits under ``node.root``
and every fact (euid, disk free, commands on PATH, the clock) comes from ``NodeFacts``, so
tests run the production code against a fake root.

This room never runs a shell string and never touches a job's workspace.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dsvm import cache, fsutil, git, proc
from dsvm.errors import InfraError, Problem, UsageError
from dsvm.phase import JobContext, PhaseResult
from dsvm.profile import Settings

STEPS = ("users", "repos", "images", "pip-cache", "packages")
ROOT_STEPS = {"users": "creates users and writes /etc/sudoers.d",
              "packages": "downloads packages with apt-get"}
STACK_SUDOERS = "50_stack_sh"
TEMPEST_SUDOERS = "51_tempest_sh"
# devstack-gate's rules (spec/node-prep.md §6): stack may do anything, tempest only this.
STACK_RULE = "{user} ALL=(root) NOPASSWD:ALL\n"
TEMPEST_RULE = "{user} ALL=(root) NOPASSWD:/sbin/ip,/sbin/iptables,/usr/bin/ovsdb-client\n"
GiB = 1 << 30


# --------------------------------------------------------------------------------------------
# Facts and paths

@dataclass(frozen=True)
class NodeFacts:
    """What prepare/check need to know about the machine, injectable for tests."""

    root: Path
    euid: int
    disk_free: Callable[[Path], int]
    which: Callable[[str], str | None]
    now: Callable[[], float] = time.time

    @classmethod
    def real(cls, root: str | os.PathLike[str] = "/") -> NodeFacts:
        """The facts of the running machine (under ``root``)."""
        return cls(root=Path(root), euid=os.geteuid(),
                   disk_free=lambda p: shutil.disk_usage(_existing(p)).free,
                   which=shutil.which)


def under(root: Path, path: str | os.PathLike[str]) -> Path:
    """``path`` (absolute on the node) as seen from here when the node lives at ``root``."""
    p = Path(path)
    if str(root) in ("", "/") or not p.is_absolute():
        return p
    return Path(root) / p.relative_to("/")


def _existing(path: Path) -> Path:
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


@dataclass(frozen=True)
class NodePaths:
    """Where the node keeps things, already under its root."""

    root: Path
    git_cache: Path
    files_dir: Path
    pip_cache: Path
    sudoers_dir: Path
    base: Path
    cache_root: Path | None = None  # the cache directory; git_cache is <it>/<host> (canonical)
    layout: str = "name"  # node.cache_layout

    @classmethod
    def from_settings(cls, settings: Settings) -> NodePaths:
        """Resolve the node paths of ``settings`` (``node.root`` prefixes each of them).

        With ``node.cache_layout: canonical`` the repos (and the manifest) live under
        ``<cache>/<host>``, so a repo's path is ``<cache>/<canonical_name>``.
        """
        root = Path(settings.node.root or "/")
        cache_dir = settings.git.cache
        # An explicit --git-cache/DSVM_GIT_CACHE is a real path; only the default is rebased.
        explicit = not settings.is_default("git.cache")
        cache_root = Path(cache_dir) if explicit else under(root, cache_dir)
        layout = settings.node.cache_layout
        repos = cache_root / canonical_hostname(settings) if layout == "canonical" \
            else cache_root
        return cls(root=root, git_cache=repos, cache_root=cache_root, layout=layout,
                   files_dir=under(root, settings.node.files_dir),
                   pip_cache=under(root, "/var/cache/pip"),
                   sudoers_dir=under(root, "/etc/sudoers.d"),
                   base=under(root, settings.paths.base))


def canonical_hostname(settings: Settings) -> str:
    """The host of the canonical cache layout: ``node.canonical_hostname``, else the host of
    ``git.base``; raise UsageError when there is none or it cannot be a directory name."""
    from urllib.parse import urlsplit

    from dsvm.zuul import project_problem

    host = settings.node.canonical_hostname
    where = "node.canonical_hostname"
    if not host:
        host, where = urlsplit(settings.git.base).hostname or "", "git.base"
    if not host or "/" in host or project_problem(host):
        raise UsageError(f"node.cache_layout canonical needs the projects' hostname; {where} "
                         f"gives {host!r}",
                         hint="set node.canonical_hostname (e.g. opendev.org): repos then live "
                              "at <cache>/<host>/<org>/<name>")
    return host


def cache_layout(cache_root: Path) -> tuple[str, Path] | None:
    """The layout the cache under ``cache_root`` has, by where its manifest is: ("name",
    root) or ("canonical", root/<host>); None when there is no cache there."""
    if cache.manifest_path(cache_root).is_file():
        return "name", cache_root
    try:
        hosts = sorted(d for d in cache_root.iterdir() if "." in d.name and d.is_dir())
    except OSError:
        return None
    return next((("canonical", d) for d in hosts if cache.manifest_path(d).is_file()), None)


def layout_text(layout: str, where: Path) -> str:
    """How check-node names a layout."""
    if layout == "canonical":
        return (f"layout canonical ({where}/<org>/<name>: what Zuul v3's prepare-workspace-git "
                "seeds from)")
    return f"layout name ({where}/<org>/<name>)"


# --------------------------------------------------------------------------------------------
# Plan

@dataclass(frozen=True)
class PreparePlan:
    """Everything prepare-node will do, decided before anything is touched."""

    paths: NodePaths
    steps: tuple[str, ...]
    skipped: Mapping[str, str]
    projects: tuple[str, ...]
    git_base: str
    git: git.Retry
    stackrc_projects: bool
    image_urls: tuple[str, ...]
    packages: tuple[str, ...]
    jobs: int
    stack_user: str = "stack"
    tempest_user: str = "tempest"
    download_attempts: int = 3


def required_projects(settings: Settings) -> tuple[str, ...]:
    """The projects a job of these settings needs (``jobfacts.needed_projects``: the same list
    the workspace checks out), validated, sorted, unique."""
    from dsvm import jobfacts

    named = jobfacts.needed_projects(settings)
    if problems := jobfacts.project_problems(named):
        raise UsageError("invalid project names", problems=problems)
    return tuple(sorted({name for name, _ in named}))


def plan_prepare(settings: Settings, facts: NodeFacts) -> PreparePlan:
    """Decide the steps, projects and paths; raise UsageError for bad input or missing root."""
    skip = list(settings.node.skip)
    unknown = [s for s in skip if s not in STEPS]
    if unknown:
        raise UsageError(f"unknown step(s) for --skip: {', '.join(unknown)}",
                         hint=f"steps are: {', '.join(STEPS)}")
    paths = NodePaths.from_settings(settings)
    packages = settings.node.packages
    skipped = {s: "--skip" for s in skip}
    if "packages" not in skipped and not packages:
        skipped["packages"] = "no packages listed (node.packages)"
    steps = tuple(s for s in STEPS if s not in skipped)
    _require_root(steps, paths, facts)
    extra = list(settings.node.images)
    if settings.node.get_pip_url:
        extra.append(settings.node.get_pip_url)
    return PreparePlan(
        paths=paths, steps=steps, skipped=skipped, projects=required_projects(settings),
        git_base=settings.git.base,
        git=git.Retry(timeout=float(settings.git.timeout), attempts=max(1, settings.git.attempts),
                      backoff=float(settings.git.backoff)),
        stackrc_projects=settings.node.stackrc_projects,
        image_urls=tuple(extra), packages=packages,
        jobs=max(1, settings.node.jobs),
        # '' (run as the current user) still gets the users created on the image.
        stack_user=settings.devstack.user or "stack",
        tempest_user=settings.tempest.user or "tempest",
        download_attempts=max(1, settings.node.download_attempts))


def _require_root(steps: tuple[str, ...], paths: NodePaths, facts: NodeFacts) -> None:
    if facts.euid == 0:
        return
    needs = [f"step '{s}' {why}" for s, why in ROOT_STEPS.items() if s in steps]
    targets = {"repos": paths.git_cache, "images": paths.files_dir, "pip-cache": paths.pip_cache}
    for step, target in targets.items():
        if step in steps and not os.access(_existing(target), os.W_OK):
            needs.append(f"step '{step}' writes {target}")
    if needs:
        raise UsageError("prepare-node needs root here: " + "; ".join(needs),
                         hint="run it as root (sudo dsvm prepare-node), or --skip those steps "
                              "and point --git-cache/--root at directories you own")


# --------------------------------------------------------------------------------------------
# Apply

@dataclass
class PrepareReport:
    """What a prepare-node run did, step by step, and what is missing."""

    steps: dict[str, str] = field(default_factory=dict)
    repos: dict[str, str] = field(default_factory=dict)  # project -> action
    images: dict[str, str] = field(default_factory=dict)  # name -> action
    missing: dict[str, str] = field(default_factory=dict)  # "repo x"/"image y" -> why
    notes: list[str] = field(default_factory=list)
    manifest: str = ""
    repo_records: dict[str, cache.RepoRecord] = field(default_factory=dict)
    image_records: dict[str, Any] = field(default_factory=dict)


def prepare(plan: PreparePlan, runner: proc.Runner, ui: Any,
            stop: threading.Event | None = None) -> PrepareReport:
    """Run the plan's steps; raise UsageError (unknown repo) or InfraError (missing items)."""
    stop = stop or threading.Event()
    report = PrepareReport(steps={s: f"skipped: {why}" for s, why in plan.skipped.items()})
    probed = None
    if "repos" in plan.steps:
        # Read-only peek (the lock comes later: nothing is written before the exit-2 check);
        # it lets a local upstream whose refs did not change skip its ls-remote.
        known = cache.read_manifest(plan.paths.git_cache) if plan.paths.git_cache.is_dir() \
            else None
        probed = cache.probe_all(plan.projects, plan.git_base, runner, plan.git, plan.jobs,
                                 dict(known.repos) if known else None)
        if probed.not_found:
            raise UsageError(
                f"{len(probed.not_found)} project(s) do not exist upstream at "
                f"{cache.redact_url(plan.git_base)}: {', '.join(sorted(probed.not_found))}",
                problems=cache.missing_problems(probed.not_found, "project"),
                hint="fix the profile's projects (or PROJECTS), or GIT_BASE")
    with cache.locked(plan.paths.git_cache):
        prev = cache.read_manifest(plan.paths.git_cache)
        for step in plan.steps:
            with ui.phase(f"prepare-node:{step}"):
                if step == "users":
                    step_users(plan, runner, report)
                elif step == "repos":
                    assert probed is not None
                    step_repos(plan, probed, prev, runner, ui, report, stop)
                elif step == "images":
                    step_images(plan, prev, runner, ui, report, stop)
                elif step == "pip-cache":
                    step_pip_cache(plan, report)
                elif step == "packages":
                    step_packages(plan, runner, report)
            report.steps.setdefault(step, "ok")
        write_manifest(plan, prev, report)
    if report.missing:
        raise InfraError(
            f"prepare-node finished with {len(report.missing)} item(s) missing",
            problems=[Problem(k, v) for k, v in sorted(report.missing.items())],
            log_path=runner.log,
            hint="fix the network/URLs named above and run prepare-node again: what is "
                 "cached is kept and only the missing items are fetched")
    return report


# -- users -------------------------------------------------------------------------------------

def passwd_entries(root: Path) -> dict[str, tuple[int, int, str]]:
    """``{user: (uid, gid, home)}`` from ``<root>/etc/passwd``."""
    out: dict[str, tuple[int, int, str]] = {}
    try:
        text = (under(root, "/etc/passwd")).read_text()
    except OSError:
        return out
    for line in text.split("\n"):
        parts = line.split(":")
        if len(parts) >= 7 and parts[2].isdigit() and parts[3].isdigit():
            out[parts[0]] = (int(parts[2]), int(parts[3]), parts[5])
    return out


def step_users(plan: PreparePlan, runner: proc.Runner, report: PrepareReport) -> None:
    """Create ``stack`` (home $BASE/new) and ``tempest`` with devstack-gate's sudoers rules."""
    root = plan.paths.root
    prefix = [] if str(root) in ("", "/") else ["--prefix", str(root)]
    home = Path("/") / plan.paths.base.relative_to(root) / "new" if prefix else \
        plan.paths.base / "new"
    wanted = [(plan.stack_user, ["-d", str(home)]), (plan.tempest_user, [])]
    for user, extra in wanted:
        if user not in passwd_entries(root):
            runner.run(["useradd", *prefix, "-U", "-m", "-s", "/bin/bash", *extra, "--", user],
                       desc=f"create user {user}")
            report.notes.append(f"created user {user}")
    uid, gid, _ = passwd_entries(root)[plan.stack_user]
    cache_dir = under(root, home) / ".cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(under(root, home), 0o755)
    os.chown(cache_dir, uid, gid)
    write_sudoers(plan.paths.sudoers_dir / STACK_SUDOERS,
                  STACK_RULE.format(user=plan.stack_user), runner)
    write_sudoers(plan.paths.sudoers_dir / TEMPEST_SUDOERS,
                  TEMPEST_RULE.format(user=plan.tempest_user), runner)


def write_sudoers(path: Path, text: str, runner: proc.Runner) -> None:
    """Write a sudoers drop-in 0440 atomically, checked by ``visudo -c`` when available."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with fsutil.atomic_open(path, mode=0o440) as fh:
        fh.write(text.encode())
        fh.flush()
        if proc.which("visudo"):  # checked before it replaces anything sudo reads
            runner.run(["visudo", "-c", "-q", "-f", fh.name], desc=f"check {path.name}")


# -- repos -------------------------------------------------------------------------------------

_STACKRC_REPO = re.compile(
    r"\$\{?GIT_BASE\}?/([A-Za-z0-9_][A-Za-z0-9._-]*/[A-Za-z0-9_][A-Za-z0-9._-]*?)(?:\.git)?"
    r"(?=[}\"'\s]|$)")


def stackrc_projects(text: str) -> list[str]:
    """Projects a devstack ``stackrc`` clones from ``$GIT_BASE`` (``*_REPO`` defaults)."""
    return sorted({m.group(1) for m in _STACKRC_REPO.finditer(text)})


def devstack_project(projects: Mapping[str, Any] | tuple[str, ...]) -> str | None:
    """The devstack project among ``projects`` (openstack/devstack first)."""
    names = sorted(projects)
    for name in ("openstack/devstack", "openstack-dev/devstack"):
        if name in names:
            return name
    return next((n for n in names if n.endswith("/devstack")), None)


def step_repos(plan: PreparePlan, probed: cache.ProbeReport, prev: cache.Manifest | None,
               runner: proc.Runner, ui: Any, report: PrepareReport,
               stop: threading.Event) -> None:
    """Sync the required projects, then the ones the cached devstack's stackrc names."""
    removed = cache.sweep(plan.paths.git_cache)
    if removed:
        report.notes.append(f"removed {len(removed)} half-written repo(s) of an earlier run")
    prev_repos = dict(prev.repos) if prev else {}
    _sync_probed(plan, probed, prev_repos, runner, ui, report, stop, "repos")
    ds = devstack_project(plan.projects)
    stackrc = cache.repo_path(plan.paths.git_cache, ds) / "stackrc" if ds else None
    if plan.stackrc_projects and stackrc is not None and stackrc.is_file():
        extra = [p for p in stackrc_projects(stackrc.read_text(errors="replace"))
                 if p not in plan.projects]
        if extra:
            more = cache.probe_all(extra, plan.git_base, runner, plan.git, plan.jobs,
                                   prev_repos)
            for name in sorted(more.not_found):
                report.notes.append(f"stackrc names {name}, which is not upstream: skipped")
            _sync_probed(plan, more, prev_repos, runner, ui, report, stop, "stackrc repos")


def _sync_probed(plan: PreparePlan, probed: cache.ProbeReport,
                 prev_repos: dict[str, cache.RepoRecord], runner: proc.Runner, ui: Any,
                 report: PrepareReport, stop: threading.Event, title: str) -> None:
    for name, why in probed.unreachable.items():
        report.missing[f"repo {name}"] = why
    with ui.progress(title, len(probed.upstreams)) as bar:
        def done(project: str, record: cache.RepoRecord | None, error: str | None) -> None:
            if error:
                report.missing[f"repo {project}"] = error
                bar.note(f"FAILED {project}: {error}")
            elif record is not None:
                report.repos[project] = record.action
                if record.action != "keep":
                    bar.note(f"{record.action:<8} {project} ({record.seconds:.1f}s)")
            bar.advance(1, project)

        result = cache.sync_all(plan.paths.git_cache, probed.upstreams.values(), runner,
                                plan.git, jobs=plan.jobs, prev=prev_repos, stop=stop,
                                on_done=done)
    report.repo_records.update(result.records)


# -- images ------------------------------------------------------------------------------------

def step_images(plan: PreparePlan, prev: cache.Manifest | None, runner: proc.Runner, ui: Any,
                report: PrepareReport, stop: threading.Event) -> None:
    """Download the images devstack would fetch into ``files_dir`` (verified, resumable)."""
    from dsvm import images  # here: http.client/ssl/urllib cost ~0.1 s to import

    ds = devstack_project(plan.projects)
    repo = cache.repo_path(plan.paths.git_cache, ds) if ds else None
    found = images.discover(repo, runner, plan.image_urls)
    report.notes.extend(found.notes)
    recorded = dict(prev.images) if prev else {}
    dest = plan.paths.files_dir
    todo = [s for s in found.sources
            if not images.keep_existing(dest / s.name, s.url, recorded.get(s.name))]
    kept = {s.name: recorded[s.name] for s in found.sources if s not in todo}
    report.images.update({name: "keep" for name in kept})
    records: dict[str, Any] = dict(kept)
    by_name = {s.name: s for s in todo}
    with ui.progress("images", len(todo)) as bar:
        loader = images.Downloader(attempts=plan.download_attempts, stop=stop,
                                   on_event=bar.note)

        def done(name: str, record: Any, exc: BaseException | None) -> None:
            if isinstance(exc, Exception):
                report.missing[f"image {name}"] = getattr(exc, "message", None) or str(exc)
                bar.note(f"FAILED {name}: {report.missing[f'image {name}']}")
            elif exc is not None:
                raise exc
            else:
                records[name] = record
                report.images[name] = "downloaded"
                bar.note(f"downloaded {name} ({record['size']} bytes, {record['verified']})")
            bar.advance(1, name)

        cache.parallel(sorted(by_name), lambda n: loader.fetch(by_name[n], dest), plan.jobs,
                       stop, done)
    report.image_records.update(records)


# -- pip cache and packages --------------------------------------------------------------------

def step_pip_cache(plan: PreparePlan, report: PrepareReport) -> None:
    """Create the shared pip cache and the files dir, usable by the stack user."""
    owner = passwd_entries(plan.paths.root).get(plan.stack_user)
    for path in (plan.paths.pip_cache, plan.paths.files_dir):
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o755)
    if owner is not None:
        os.chown(plan.paths.pip_cache, owner[0], owner[1])
    else:
        report.notes.append(f"{plan.paths.pip_cache}: user {plan.stack_user} does not exist "
                            "yet, left owned by root")


def step_packages(plan: PreparePlan, runner: proc.Runner, report: PrepareReport) -> None:
    """Download (not install) the listed distro packages into the apt archive cache."""
    if not proc.which("apt-get"):
        report.missing["packages"] = "apt-get not found: only Debian/Ubuntu nodes are supported"
        return
    archives = under(plan.paths.root, "/var/cache/apt/archives")
    (archives / "partial").mkdir(parents=True, exist_ok=True)
    res = runner.run(["apt-get", "-y", "-q", "-d", "-o", f"Dir::Cache::archives={archives}/",
                      "install", "--", *plan.packages], desc="download packages", check=False,
                     env={**proc.clean_env(), "DEBIAN_FRONTEND": "noninteractive"})
    if not res.ok:
        report.missing["packages"] = (res.tail[-1] if res.tail else f"exit {res.exit_code}")


# -- manifest ----------------------------------------------------------------------------------

def write_manifest(plan: PreparePlan, prev: cache.Manifest | None,
                   report: PrepareReport) -> None:
    """Merge this run into the manifest (entries still on disk are kept) and write it."""
    repos = dict(prev.repos) if prev else {}
    repos.update(report.repo_records)
    repos = {k: v for k, v in repos.items()
             if (cache.repo_path(plan.paths.git_cache, k) / ".git").is_dir()}
    imgs = dict(prev.images) if prev else {}
    imgs.update(report.image_records)
    imgs = {k: v for k, v in imgs.items() if (plan.paths.files_dir / k).is_file()}
    manifest = cache.Manifest(
        written_at=cache.now_iso(), git_base=cache.redact_url(plan.git_base), repos=repos,
        missing={k[5:]: v for k, v in report.missing.items() if k.startswith("repo ")},
        images_dir=str(plan.paths.files_dir), images=imgs,
        images_missing={k[6:]: v for k, v in report.missing.items() if k.startswith("image ")},
        steps={**{s: "ok" for s in plan.steps}, **report.steps})
    report.manifest = str(cache.write_manifest(plan.paths.git_cache, manifest))


def report_json(report: PrepareReport) -> dict[str, Any]:
    """Stable JSON of a prepare-node run."""
    data = asdict(report)
    data.pop("repo_records")
    data.pop("image_records")
    return data


def prepare_phase(ctx: JobContext, facts: NodeFacts | None = None) -> PhaseResult:
    """``dsvm prepare-node`` as a phase: plan, run the steps, return what was done."""
    facts = facts or NodeFacts.real(ctx.settings.node.root or "/")
    plan = plan_prepare(ctx.settings, facts)
    runner = ctx.runner("prepare-node")
    report = prepare(plan, runner, ctx.ui)
    changed = sum(1 for a in report.repos.values() if a != "keep")
    return PhaseResult("prepare-node", 0, report_json(report),
                       f"{len(report.repos)} repos ({changed} changed), "
                       f"{len(report.images)} images; manifest {report.manifest}")
