"""The node's git repo cache under ``/opt/git``: mirror, refresh, verify, repair, manifest.

The cache keeps devstack-gate's contract (``spec/node-prep.md`` §2.2): ``<cache>/<org>/<name>``
is a normal non-bare clone (working tree on the default branch, remote-tracking refs for every
branch, all tags), origin = the upstream URL. It is crash-safe the way pre-commit's store is: a
new clone is built in a hidden temporary directory next to its final place and renamed into
place only after it verified, an in-place refresh is bracketed by a marker file, so a
half-written repo is always recognised and redone on the next run. ``<cache>/.dsvm-manifest.json``
records what is cached, from where, at which commit, how big and when (``read_manifest``).

This room holds policy only: what to mirror, when to verify, how to repair, the manifest. It
never decides *which* projects a node needs (``node.py``), never checks out a job's commit
(``workspace.py``), and runs git only through ``git.Git`` (its retry policy, classification of
failures and ref readers are git.py's).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from dsvm import fsutil, git, proc
from dsvm.errors import InfraError, Problem, UsageError

MANIFEST_NAME = ".dsvm-manifest.json"
MANIFEST_VERSION = 1
LOCK_NAME = ".dsvm-lock"
TMP_MARK = ".dsvm-tmp-"
INCOMPLETE_MARK = "dsvm-incomplete"  # inside <repo>/.git while a refresh is in flight


# --------------------------------------------------------------------------------------------
# Records

@dataclass(frozen=True)
class Upstream:
    """What the upstream server has for one project (from ``git ls-remote``)."""

    project: str
    url: str
    refs: Mapping[str, str]  # refs/heads/* and refs/tags/* -> sha
    default_branch: str
    other_refs: int = 0  # refs it advertises besides branches and tags (refs/changes/* …)
    # A local (file://) upstream: fingerprint of its ref files, taken before listing them.
    source_digest: str = ""
    # False: not listed because source_digest equals the manifest's, so its refs are the
    # ones recorded there (RepoRecord.refs_digest) and ``refs`` is empty.
    listed: bool = True


@dataclass(frozen=True)
class RepoState:
    """What the cache holds for one project (read-only inspection)."""

    project: str
    path: Path
    exists: bool
    is_complete: bool  # a git work tree with no in-flight marker
    refs: Mapping[str, str] = field(default_factory=dict)  # same naming as Upstream.refs
    damage: str | None = None  # a ref tip that is missing, broken or of the wrong type
    head: str = ""  # the sha the work tree's HEAD names ("" when unknown)
    objects_digest: str = ""  # see objects_digest()


@dataclass(frozen=True)
class RepoAction:
    """What to do with one repo and why: clone, reclone, update or keep."""

    project: str
    action: str
    why: str


@dataclass(frozen=True)
class RepoRecord:
    """One cached repo as the manifest records it."""

    project: str
    url: str
    path: str
    head: str
    default_branch: str
    branches: int
    tags: int
    size_bytes: int
    synced_at: str  # when its content last changed
    verified_at: str
    action: str = "keep"
    seconds: float = 0.0
    # What the last full ``git fsck --connectivity-only`` saw (see is_as_verified): the refs
    # and the object store's files. "" in manifests written before these fields existed.
    refs_digest: str = ""
    objects_digest: str = ""
    fsck_at: str = ""  # when the last full verification (verified_by fsck or clone) passed
    verified_by: str = ""  # "fsck" | "clone" (git's checks of a transport clone) | "tips"
    source_digest: str = ""  # Upstream.source_digest when it was last listed


@dataclass(frozen=True)
class Manifest:
    """``<cache>/.dsvm-manifest.json``: what the node caches; see docs/node.md."""

    written_at: str
    git_base: str
    repos: Mapping[str, RepoRecord]
    missing: Mapping[str, str] = field(default_factory=dict)  # project -> why
    images_dir: str = ""
    images: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    images_missing: Mapping[str, str] = field(default_factory=dict)  # url -> why
    steps: Mapping[str, str] = field(default_factory=dict)  # step -> ok|skipped: why|failed
    version: int = MANIFEST_VERSION

    def age_seconds(self, now: float) -> float:
        """Seconds since the manifest was written (as of ``now``, epoch seconds)."""
        return now - parse_time(self.written_at)


class RepoNotFoundError(UsageError):
    """A project does not exist on the upstream git server."""


class RepoUnreachableError(InfraError):
    """The upstream git server did not answer (after retries)."""


class CacheBusyError(InfraError):
    """Another prepare-node holds the cache lock."""


# --------------------------------------------------------------------------------------------
# Pure helpers

def validate_project(name: str) -> str:
    """Return ``name`` if it is a safe project name (zuul.project_problem); raise UsageError."""
    from dsvm.zuul import project_problem

    if why := project_problem(name):
        raise UsageError(f"invalid project name {name!r}: {why}",
                         hint="a project is org/name, relative, without '..'")
    return name


def repo_path(cache_root: Path, project: str) -> Path:
    """Where ``project`` lives in the cache: ``<cache>/<org>/<name>``."""
    return Path(cache_root) / validate_project(project)


def project_url(git_base: str, project: str) -> str:
    """The upstream URL of ``project`` under ``git_base`` (devstack-gate's ``$GIT_BASE/$P``)."""
    return f"{git_base.rstrip('/')}/{validate_project(project)}"


def redact_url(url: str) -> str:
    """``url`` with any ``user:password@`` removed, for logs and the manifest."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://)[^/@]*@", r"\1", url)


def refs_digest(refs: Mapping[str, str]) -> str:
    """A short fingerprint of ``{ref: sha}`` (order-independent)."""
    return _digest(f"{sha} {ref}" for ref, sha in sorted(refs.items()))


def _digest(lines: Iterable[str]) -> str:
    """The fingerprint form every digest here takes: sha256 of the lines, 32 hex digits."""
    import hashlib

    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:32]


def _file_stats(root: Path, top: Path, *, follow: bool = False
                ) -> Iterator[tuple[str, os.stat_result]]:
    """(path relative to ``root``, stat) of every file under ``top``; one that vanished
    meanwhile is skipped. ``follow``: stat through symlinks (else lstat)."""
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            full = os.path.join(dirpath, name)
            try:
                st = os.stat(full) if follow else os.lstat(full)
            except OSError:
                continue
            yield os.path.relpath(full, root), st


def is_as_verified(local: RepoState, recorded: RepoRecord | None) -> bool:
    """True when ``local`` is exactly what the last full fsck verified, so no git must run.

    ``local`` (``inspect`` or ``inspect_files``) has every ref tip (``origin/*``, tags, the
    local branches at their ``origin/*`` tips) as a valid name and HEAD on an existing
    branch; this adds that those refs and every file of the object store (name, size,
    mtime) are the ones the last ``git fsck --connectivity-only`` passed, so every tip
    still names the object of the right type that fsck walked from. Together they catch a
    missing or broken ref, a missing/extra/truncated/rewritten pack or loose object; they
    do not re-read history behind the tips, which nothing has written since that fsck (we
    hold the lock, git fetch/gc are the only writers and an interrupted fetch leaves its
    marker).
    """
    return (recorded is not None and local.is_complete and local.damage is None
            and bool(recorded.refs_digest) and bool(recorded.objects_digest)
            and recorded.refs_digest == refs_digest(local.refs)
            and recorded.objects_digest == local.objects_digest)


def plan_repo(upstream: Upstream, local: RepoState, recorded: RepoRecord | None) -> RepoAction:
    """Decide what to do with one repo from facts only (no disk, no network)."""
    p = upstream.project
    if not local.exists:
        return RepoAction(p, "clone", "not cached yet")
    if not local.is_complete:
        return RepoAction(p, "reclone", "half-written (interrupted earlier) or not a git repo")
    if recorded is not None and recorded.url != redact_url(upstream.url):
        return RepoAction(p, "update", f"upstream moved from {recorded.url}")
    if not upstream.listed:  # refs unchanged upstream since the recorded sync
        same = recorded is not None and refs_digest(local.refs) == recorded.refs_digest
        return RepoAction(p, "keep" if same else "update",
                          "up to date" if same else "cached refs differ from the manifest")
    if dict(local.refs) != dict(upstream.refs):
        changed = sum(1 for r in set(local.refs) | set(upstream.refs)
                      if local.refs.get(r) != upstream.refs.get(r))
        return RepoAction(p, "update", f"{changed} ref(s) changed upstream")
    if recorded is None:
        return RepoAction(p, "update", "not in the manifest")
    return RepoAction(p, "keep", "up to date")


def now_iso(now: float | None = None) -> str:
    """UTC timestamp, second precision, ISO 8601 with Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))


def parse_time(stamp: str) -> float:
    """Epoch seconds of a ``now_iso`` timestamp (0 when unreadable)."""
    import calendar

    try:
        return float(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))
    except (TypeError, ValueError):
        return 0.0


# Set when a run is interrupted: no new git command starts after that (``git.Git(stop=)``).
STOP = threading.Event()


def _git(runner: proc.Runner, retry: git.Retry) -> git.Git:
    """The git of a prepare-node run: its retry policy, stopped with the run (``STOP``)."""
    return git.Git(runner, retry=retry, stop=STOP)


# --------------------------------------------------------------------------------------------
# Inspect, probe, sync, verify

def objects_digest(repo: Path) -> str:
    """Fingerprint of ``repo``'s object store: every file's name, size and mtime (no content).

    Packs and loose objects are immutable once written, so an unchanged fingerprint means
    no object file was added, lost, truncated or rewritten since it was taken.
    """
    objects = repo / ".git" / "objects"
    return _digest(sorted(f"{rel} {st.st_size} {st.st_mtime_ns}"
                          for rel, st in _file_stats(objects, objects)))


def _head_sha(git_dir: Path, local: Mapping[str, str]) -> tuple[str, str | None]:
    """(sha of HEAD, damage) from ``.git/HEAD`` and the local branches already listed."""
    try:
        head = (git_dir / "HEAD").read_text(errors="replace").strip()
    except OSError as exc:
        return "", f"HEAD unreadable: {exc.strerror}"
    if head.startswith("ref: "):
        sha = local.get(head[5:], "")
        return sha, None if sha else f"HEAD names {head[5:]}, which does not exist"
    if git.is_sha(head):
        return head, None
    return "", f"HEAD is corrupt ({head[:40]!r})"


def inspect(cache_root: Path, project: str, g: git.Git) -> RepoState:
    """What the cache holds for ``project``, ref tips checked (one git process); never writes."""
    return inspect_path(repo_path(cache_root, project), project, g)


def inspect_path(path: Path, project: str, g: git.Git) -> RepoState:
    """``inspect`` of the repo at ``path`` (also a temporary clone before it is renamed)."""
    git_dir = path / ".git"
    if not path.exists():
        return RepoState(project, path, exists=False, is_complete=False)
    complete = (git_dir / "HEAD").is_file() and not (git_dir / INCOMPLETE_MARK).exists()
    if not complete:
        return RepoState(project, path, exists=True, is_complete=False)
    tips = g.ref_tips(path, "refs/heads", "refs/remotes/origin", "refs/tags")
    # A branch must name a commit; any other tip type is damage like a missing object.
    wrong = next((f"{ref} names a {kind}, not a commit" for ref, kind in tips.types.items()
                  if ref.startswith(("refs/heads/", "refs/remotes/")) and kind != "commit"),
                 None)
    local = {ref: sha for ref, sha in tips.refs.items() if ref.startswith("refs/heads/")}
    head, head_damage = _head_sha(git_dir, local)
    return RepoState(project, path, exists=True, is_complete=True,
                     refs={} if wrong else git.upstream_view(tips.refs),
                     damage=tips.problem or wrong or head_damage, head=head,
                     objects_digest=objects_digest(path))


def inspect_files(path: Path, project: str) -> RepoState | None:
    """``inspect`` from the repo's files alone (no git process), or None when they do not
    say it plainly: refs not in the files backend, HEAD not on a local branch, a local
    branch not at its ``origin/*`` tip (then ``inspect`` asks git)."""
    git_dir = path / ".git"
    if not (git_dir / "HEAD").is_file() or (git_dir / INCOMPLETE_MARK).exists():
        return None
    refs = git.read_refs(path)
    if refs is None:
        return None
    local = {ref: sha for ref, sha in refs.items() if ref.startswith("refs/heads/")}
    if any(refs.get("refs/remotes/origin/" + ref[len("refs/heads/"):]) != sha
           for ref, sha in local.items()):
        return None
    head, damage = _head_sha(git_dir, local)
    if damage or head not in local.values():
        return None
    return RepoState(project, path, exists=True, is_complete=True,
                     refs=git.upstream_view(refs), head=head,
                     objects_digest=objects_digest(path))


def source_refs_digest(git_dir: Path) -> str:
    """Fingerprint of the ref storage of the local repo ``git_dir`` ("" when it has no HEAD).

    HEAD, packed-refs and every file under refs/ and reftable/, by name, size, mtime and
    inode: git writes a ref through a lock file renamed into place, so any ref update,
    creation or deletion changes it.
    """
    entries = []
    for name in ("HEAD", "packed-refs"):
        try:
            st = os.stat(git_dir / name)
        except OSError:
            if name == "HEAD":
                return ""
            continue
        entries.append(f"{name} {st.st_size} {st.st_mtime_ns} {st.st_ino}")
    for sub in ("refs", "reftable"):
        entries += (f"{rel} {st.st_size} {st.st_mtime_ns} {st.st_ino}"
                    for rel, st in _file_stats(git_dir, git_dir / sub, follow=True))
    return _digest(sorted(entries))


def probe(project: str, git_base: str, g: git.Git,
          recorded: RepoRecord | None = None) -> Upstream:
    """Ask upstream for the refs of ``project``; raise RepoNotFoundError/RepoUnreachableError.

    A local upstream (a path or file:// on this machine) whose ref files are unchanged since
    ``recorded`` was synced is not listed at all (no git process): its refs are the recorded
    ones.
    """
    url = project_url(git_base, project)
    source = git.local_repo(url)
    digest = source_refs_digest(source) if source is not None else ""
    if digest and recorded is not None and recorded.source_digest == digest \
            and recorded.url == redact_url(url) and recorded.refs_digest:
        return Upstream(project, url, {}, recorded.default_branch, source_digest=digest,
                        listed=False)
    res = g.ls_remote(url, f"list refs of {redact_url(url)}")
    if not res.ok:
        if git.classify(res) is git.Failure.MISSING:
            raise RepoNotFoundError(f"{project} does not exist at {redact_url(url)}")
        why = "timed out" if res.timed_out else (res.tail[-1].strip() if res.tail else "")
        raise RepoUnreachableError(
            f"cannot reach {redact_url(url)} after {res.attempts} attempt(s): {why}")
    listed, default = git.parse_ls_remote(res.stdout)
    if not default:
        raise RepoNotFoundError(f"{project} at {redact_url(url)} has no branches")
    refs = {ref: sha for ref, sha in listed.items()
            if ref.startswith(("refs/heads/", "refs/tags/"))}
    return Upstream(project, url, refs, default, len(listed) - len(refs), digest)


def _tmp_sibling(path: Path) -> Path:
    return path.parent / f".{path.name}{TMP_MARK}{os.urandom(4).hex()}"


def _dir_size(path: Path) -> int:
    return sum(st.st_size for _rel, st in _file_stats(path, path))


def _record(state: RepoState, upstream: Upstream, action: str, started: float,
            prev: RepoRecord | None, verified_by: str = "fsck") -> RepoRecord:
    """The manifest record of a repo that just passed a full verification (``verified_by``:
    ``fsck``, or ``clone`` for git's own checks of a transport clone), ``state`` read after."""
    stamp = now_iso()
    branches = sum(1 for r in state.refs if r.startswith("refs/heads/"))
    record = prev if action == "keep" and prev is not None else RepoRecord(
        project=upstream.project, url=redact_url(upstream.url), path=str(state.path),
        head=state.head, default_branch=upstream.default_branch, branches=branches,
        tags=len(state.refs) - branches, size_bytes=_dir_size(state.path), synced_at=stamp,
        verified_at=stamp)
    return replace(record, action=action, refs_digest=refs_digest(state.refs),
                   objects_digest=state.objects_digest, fsck_at=stamp, verified_by=verified_by,
                   verified_at=stamp, source_digest=upstream.source_digest,
                   seconds=round(time.monotonic() - started, 3))


def _clone_into_place(path: Path, upstream: Upstream, g: git.Git) -> tuple[RepoState, str]:
    """Clone in a hidden sibling, verify it, rename it over ``path`` (old one aside); return
    it and what verified it (``fsck`` or ``clone``).

    The check runs on the temporary clone: a repo that does not verify never reaches ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    trash: Path | None = None
    try:
        # A local copy takes every object file of the mirror: only when it has nothing but
        # branches and tags (a Gerrit mirror's refs/changes/* would bloat the cache).
        source = None if upstream.other_refs else git.local_repo(upstream.url)
        g.clone_copy(upstream.url, tmp, f"clone {redact_url(upstream.url)}", source=source)
        state = inspect_files(tmp, upstream.project) or inspect_path(tmp, upstream.project, g)
        # A clone through the transport is verified by git itself: index-pack hashes every
        # object it receives (their names are those hashes) and clone checks that the refs'
        # history is all there, which is what fsck --connectivity-only would check again. A
        # local copy takes the object files as they are, unhashed: fsck verifies it.
        verified_by = "clone" if source is None else "fsck"
        problem = state.damage or (g.fsck(tmp) if source is not None else None)
        if problem:
            raise InfraError(f"fresh clone of {upstream.project} does not verify: {problem}")
        if path.exists() or path.is_symlink():
            trash = _tmp_sibling(path)
            os.rename(path, trash)
        os.rename(tmp, path)
        return replace(state, path=path), verified_by
    finally:
        for leftover in (tmp, trash):
            if leftover is not None and leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)


def _update_in_place(path: Path, upstream: Upstream, g: git.Git) -> None:
    """Fetch into the existing clone; the marker makes an interrupted update visible."""
    marker = path / ".git" / INCOMPLETE_MARK
    marker.write_text(f"refresh started {now_iso()} by pid {os.getpid()}\n")
    g.fetch_mirror(path, upstream.url, f"fetch {redact_url(upstream.url)}")
    g.checkout_branch(path, upstream.default_branch)
    marker.unlink()


def sync(cache_root: Path, upstream: Upstream, g: git.Git,
         prev: RepoRecord | None = None) -> RepoRecord:
    """Bring one repo in line with upstream, verify it, repair it once; return its record.

    A new or changed repo (and one without digests from an earlier fsck) gets a full
    ``git fsck --connectivity-only``; an unchanged one the check of ``is_as_verified`` on
    what its files say, without running git.
    """
    started = time.monotonic()
    path = repo_path(cache_root, upstream.project)
    quick = inspect_files(path, upstream.project)
    if quick is not None and prev is not None and is_as_verified(quick, prev) \
            and plan_repo(upstream, quick, prev).action == "keep":
        return replace(prev, action="keep", verified_at=now_iso(), verified_by="tips",
                       source_digest=upstream.source_digest,
                       seconds=round(time.monotonic() - started, 3))
    local = inspect(cache_root, upstream.project, g)
    action = plan_repo(upstream, local, prev).action
    problem = local.damage  # a broken tip: fetching into it is pointless, re-clone
    if problem is None:
        if action in ("clone", "reclone"):
            state, verified_by = _clone_into_place(local.path, upstream, g)
            return _record(state, upstream, action, started, prev, verified_by)
        if action == "update":
            _update_in_place(local.path, upstream, g)
            local = inspect(cache_root, upstream.project, g)
        problem = local.damage or g.fsck(local.path)
    if problem:
        # Corrupt on disk (the Zuul test_broken_cache case): a clean re-clone repairs it.
        state, verified_by = _clone_into_place(local.path, upstream, g)
        return _record(state, upstream, "repaired", started, prev, verified_by)
    return _record(local, upstream, action, started, prev)


def sweep(cache_root: Path) -> list[Path]:
    """Delete temporary directories left by an interrupted run; return what was removed."""
    removed: list[Path] = []
    if not Path(cache_root).is_dir():
        return removed
    for org in Path(cache_root).iterdir():
        if not org.is_dir() or org.name.startswith("."):
            continue
        for leftover in org.glob(f".*{TMP_MARK}*"):
            shutil.rmtree(leftover, ignore_errors=True)
            removed.append(leftover)
    return removed


@contextmanager
def locked(cache_root: Path) -> Iterator[None]:
    """Hold the cache's lock for a run; raise CacheBusyError if another run holds it."""
    Path(cache_root).mkdir(parents=True, exist_ok=True)
    with open(Path(cache_root) / LOCK_NAME, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise CacheBusyError(f"another dsvm prepare-node is using {cache_root}",
                                 hint="wait for it to finish") from exc
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------
# Many repos at once

@dataclass
class SyncReport:
    """Outcome of syncing a set of projects."""

    records: dict[str, RepoRecord] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def parallel(items: Iterable[str], work: Callable[[str], Any], jobs: int,
             stop: threading.Event, on_done: Callable[[str, Any, BaseException | None], None]
             ) -> None:
    """Run ``work`` on every item with ``jobs`` threads; stop cleanly on an interrupt.

    On KeyboardInterrupt/SystemExit in the caller's thread, queued items are cancelled and
    the running commands' process groups are terminated before the exception propagates.
    """
    STOP.clear()
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="dsvm-node")
    futures: dict[Future[Any], str] = {}
    try:
        for item in items:
            futures[pool.submit(_unless_stopped, stop, work, item)] = item
        pending = set(futures)
        while pending:
            # A bounded wait, not a sleep: returns as soon as one finishes, and a signal
            # handler's exception still reaches this (main) thread within 0.2 s.
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=lambda f: futures[f]):
                exc = fut.exception()
                on_done(futures[fut], None if exc else fut.result(), exc)
    except BaseException:
        stop.set()
        STOP.set()
        pool.shutdown(wait=False, cancel_futures=True)
        proc.RUNNING.signal_all(15)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _unless_stopped(stop: threading.Event, work: Callable[[str], Any], item: str) -> Any:
    if stop.is_set():
        raise InfraError("interrupted before it started")
    return work(item)


@dataclass
class ProbeReport:
    """Upstream facts for a set of projects, and the ones that failed."""

    upstreams: dict[str, Upstream] = field(default_factory=dict)
    not_found: dict[str, str] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)


def probe_all(projects: Iterable[str], git_base: str, runner: proc.Runner, retry: git.Retry,
              jobs: int, recorded: Mapping[str, RepoRecord] | None = None) -> ProbeReport:
    """``probe`` every project in parallel (read-only); classify the failures."""
    report = ProbeReport()

    def done(project: str, upstream: Any, exc: BaseException | None) -> None:
        if isinstance(exc, RepoNotFoundError):
            report.not_found[project] = exc.message
        elif isinstance(exc, Exception):
            report.unreachable[project] = getattr(exc, "message", None) or str(exc)
        elif exc is not None:
            raise exc
        else:
            report.upstreams[project] = upstream

    known = recorded or {}
    g = _git(runner, retry)
    parallel(sorted(set(projects)), lambda p: probe(p, git_base, g, known.get(p)),
             jobs, threading.Event(), done)
    return report


def sync_all(cache_root: Path, upstreams: Iterable[Upstream], runner: proc.Runner,
             retry: git.Retry, *, jobs: int, prev: Mapping[str, RepoRecord],
             stop: threading.Event | None = None,
             on_done: Callable[[str, RepoRecord | None, str | None], None] | None = None
             ) -> SyncReport:
    """Sync every probed project in parallel; failures are reported, not raised."""
    report = SyncReport()
    by_name = {u.project: u for u in upstreams}
    g = _git(runner, retry)

    def work(project: str) -> RepoRecord:
        return sync(cache_root, by_name[project], g, prev.get(project))

    def done(project: str, record: Any, exc: BaseException | None) -> None:
        if isinstance(exc, Exception):
            report.failed[project] = getattr(exc, "message", None) or str(exc)
        elif exc is not None:
            raise exc
        else:
            report.records[project] = record
        if on_done is not None:
            on_done(project, record, report.failed.get(project))

    parallel(sorted(by_name), work, jobs, stop or threading.Event(), done)
    return report


# --------------------------------------------------------------------------------------------
# Manifest

def manifest_path(cache_root: Path) -> Path:
    """``<cache>/.dsvm-manifest.json``."""
    return Path(cache_root) / MANIFEST_NAME


def read_manifest(cache_root: Path) -> Manifest | None:
    """The cache's manifest, or None when there is none; raise InfraError if unreadable."""
    path = manifest_path(cache_root)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InfraError(f"cannot read the cache manifest {path}: {exc}",
                         hint="run 'dsvm prepare-node' again to rewrite it") from exc
    try:
        repos = {name: RepoRecord(**rec) for name, rec in data.get("repos", {}).items()}
        return Manifest(
            written_at=data["written_at"], git_base=data.get("git_base", ""), repos=repos,
            missing=dict(data.get("missing", {})), images_dir=data.get("images_dir", ""),
            images=dict(data.get("images", {})),
            images_missing=dict(data.get("images_missing", {})),
            steps=dict(data.get("steps", {})), version=int(data.get("version", 1)))
    except (KeyError, TypeError, ValueError) as exc:
        raise InfraError(f"the cache manifest {path} is malformed: {exc}",
                         hint="run 'dsvm prepare-node' again to rewrite it") from exc


def manifest_json(manifest: Manifest) -> dict[str, Any]:
    """The stable JSON form of a manifest (documented in docs/node.md)."""
    data = asdict(manifest)
    data["repos"] = {k: asdict(v) for k, v in sorted(manifest.repos.items())}
    return data


def write_manifest(cache_root: Path, manifest: Manifest) -> Path:
    """Write the manifest atomically (temp file, then rename); return its path."""
    path = manifest_path(cache_root)
    # No fsync: a manifest lost in a power cut is rebuilt by the next run (stestr's reasoning).
    fsutil.write_atomic(path, json.dumps(manifest_json(manifest), indent=2, sort_keys=True) + "\n")
    return path


def missing_problems(missing: Mapping[str, str], where: str) -> list[Problem]:
    """Problems listing what could not be cached, for the exit-3 error."""
    return [Problem(f"{where} {name}", why) for name, why in sorted(missing.items())]
