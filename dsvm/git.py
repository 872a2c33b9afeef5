"""Git plumbing: one small typed function per operation dsvm needs, run through ``proc.Runner``.

Refs, branches and URLs reaching this module are untrusted (they come from Zuul): they travel as
separate argv items, after ``--`` where git allows it, never inside a shell string. Network
operations have a timeout and bounded retries for infrastructure failures only; a ref that does
not exist is an answer, not an error (``fetch_ref`` returns False). Git runs with inherited
``GIT_*`` variables dropped, no pager, no prompts and ``LC_ALL=C`` so its messages can be
classified. This module decides nothing about *which* commit a project gets (``workspace.py``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dsvm import proc
from dsvm.errors import InfraError

# What git prints when the remote could not be reached (retry, then abort the job) as opposed
# to when it answered "no such ref" (spec zuul-cloner 2.8: classify anywhere in the output).
_INFRA_MARKERS = (
    "unable to access", "could not resolve host", "connection refused", "connection timed out",
    "failed to connect", "operation timed out", "early eof", "remote end hung up",
    "rpc failed", "ssl", "gnutls", "could not read from remote repository",
    "connection reset", "network is unreachable", "no route to host",
)
_MISSING_MARKERS = (
    "couldn't find remote ref", "not found", "does not appear to be a git repository",
    "invalid refspec", "not our ref", "no such remote ref", "returned error: 404",
)

LOCK_FILES = ("index.lock", "HEAD.lock", "config.lock", "packed-refs.lock", "shallow.lock")


class RemoteError(InfraError):
    """A remote (upstream, Zuul merger) could not be reached or refused: not local damage."""


def is_infra_failure(result: proc.Result) -> bool:
    """True when a failed git network command could not reach its remote (vs a missing ref)."""
    if result.timed_out:
        return True
    text = "\n".join(result.tail).lower()
    if any(marker in text for marker in _MISSING_MARKERS):
        return False  # git adds "could not read from remote repository" to these too
    return any(marker in text for marker in _INFRA_MARKERS)


def is_missing_ref(result: proc.Result) -> bool:
    """True when a failed fetch means "the ref (or repo) is not there"."""
    return not is_infra_failure(result)


def git_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment git runs in: no inherited GIT_*, allowed protocols only, no pager."""
    out = proc.clean_env(env)
    out.update({"GIT_PAGER": "cat", "PAGER": "cat", "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0",
                "GIT_ASKPASS": "true", "SSH_ASKPASS": "true"})
    # Config for every git dsvm runs (git >= 2.31 reads it from the environment): no
    # background "maintenance --auto" process after each fetch (40 repos, 40 extra processes).
    # No parallel checkout (checkout.workers): projects are already checked out in parallel,
    # and more writers into the same directories only add filesystem lock contention (cold
    # workspace of 40 projects: 4.2 s with 4 workers each, 3.5 s without, on 2 cores).
    settings = {"maintenance.auto": "false", "gc.auto": "0"}
    out["GIT_CONFIG_COUNT"] = str(len(settings))
    for n, (key, value) in enumerate(settings.items()):
        out[f"GIT_CONFIG_KEY_{n}"] = key
        out[f"GIT_CONFIG_VALUE_{n}"] = value
    return out


@dataclass(frozen=True)
class Retry:
    """How network operations retry: attempts, first backoff in seconds, per-try timeout."""

    attempts: int = 3
    backoff: float = 5.0
    timeout: float | None = 600.0


class Git:
    """Git operations on repos, logged by one runner (a phase's log)."""

    def __init__(self, runner: proc.Runner, *, retry: Retry | None = None,
                 env: Mapping[str, str] | None = None, program: str = "git") -> None:
        self.runner = runner
        self.retry = retry or Retry()
        self.env = git_env(env)
        self.program = program

    def _run(self, argv: list[proc.Arg], desc: str, cwd: Path | None = None,
             **kw: object) -> proc.Result:
        return self.runner.run([self.program, *argv], desc=desc, cwd=cwd, env=self.env,
                               stream=False, **kw)  # type: ignore[arg-type]

    def _net(self, argv: list[proc.Arg], desc: str, cwd: Path | None,
             before_retry: object = None) -> proc.Result:
        """A network command: bounded retries of infrastructure failures, never raises."""
        return self._run(argv, desc, cwd, check=False, attempts=self.retry.attempts,
                         backoff=self.retry.backoff, timeout=self.retry.timeout,
                         retry_if=is_infra_failure, before_retry=before_retry)

    # -- getting a repo ------------------------------------------------------------------------
    def clone_local(self, cache: Path, dest: Path, project: str) -> None:
        """Clone ``cache`` into ``dest`` without checkout: hard-links objects, no network."""
        # A plain path (not file://) makes git link the object files; it copies them when the
        # cache is on another filesystem.
        self._run(["clone", "--quiet", "--no-checkout", "--", os.fspath(cache),
                   os.fspath(dest)], f"clone {project} from the cache")

    def clone_url(self, url: str, dest: Path, project: str) -> None:
        """Clone ``url`` into ``dest`` without checkout; raise InfraError naming the project."""
        res = self._net(["clone", "--quiet", "--no-checkout", "--", url, os.fspath(dest)],
                        f"clone {project}", None)
        if not res.ok:
            raise _failure(f"could not clone {project} from {url}", res, self.runner,
                           "check GIT_BASE / OVERRIDE_<PROJECT>_GIT_BASE and the network")

    def set_origin(self, repo: Path, url: str) -> None:
        """Point ``origin`` at ``url`` (adding the remote when it is missing).

        A reused repo whose config already says exactly that costs no process.
        """
        if origin_url(repo) == url:
            return
        res = self._run(["remote", "set-url", "--", "origin", url], "set origin", repo,
                        check=False)
        if not res.ok:
            self._run(["remote", "add", "--", "origin", url], "add origin", repo)

    def fetch_origin(self, repo: Path, project: str) -> None:
        """Fetch every branch and tag of origin, pruning; local branches mirror origin's.

        A failure that is not the network gets ``git gc`` and one more try, the workaround
        gerrit-git-prep had for ``git remote update`` failing on a damaged repo.
        """
        argv: list[proc.Arg] = ["fetch", "--quiet", "--prune", "--tags", "--force",
                                "--update-head-ok", "--no-write-fetch-head", "origin",
                                "+refs/heads/*:refs/remotes/origin/*",
                                "+refs/heads/*:refs/heads/*"]
        res = self._net(argv, f"fetch {project} from origin", repo)
        if not res.ok and not is_infra_failure(res):
            self.gc(repo)
            res = self._net(argv, f"fetch {project} from origin (after gc)", repo)
        if not res.ok:
            error = _failure(f"could not update {project} from its upstream", res, self.runner,
                             "the upstream git server may be down; a recheck retries")
            raise error if is_infra_failure(res) else InfraError(
                error.message, hint="the local copy may be damaged", log_path=error.log_path,
                details=error.details)

    def origin_in_sync(self, repo: Path, project: str) -> dict[str, str] | None:
        """Ask origin for its branches and tags (``ls-remote``, one round trip, no pack
        negotiation); return {ref: sha} of ``refs/remotes/origin/*`` and ``refs/tags/*`` when
        the repo already mirrors them exactly — ``fetch_origin`` would change nothing — else
        None (the caller fetches). Raises RemoteError when origin cannot be reached.
        """
        local = read_refs(repo)
        if local is None:
            return None
        theirs = self._origin_heads_and_tags(repo, project)
        if theirs is None:
            return None
        heads: dict[str, str] = {}
        tags: dict[str, str] = {}
        for name, sha in theirs.items():
            if name.startswith("refs/heads/"):
                heads[name[len("refs/heads/"):]] = sha
            elif name.startswith("refs/tags/"):
                tags[name] = sha
        mine = {"refs/heads/": {}, "refs/remotes/origin/": {}, "refs/tags/": {}}
        for name, sha in local.items():
            for prefix, table in mine.items():
                if name.startswith(prefix):
                    table[name[len(prefix):] if prefix != "refs/tags/" else name] = sha
        mine["refs/remotes/origin/"].pop("HEAD", None)  # a symref fetch never touches
        if not heads or mine["refs/heads/"] != heads or \
                mine["refs/remotes/origin/"] != heads or mine["refs/tags/"] != tags:
            return None
        return {**{f"refs/remotes/origin/{b}": sha for b, sha in heads.items()}, **tags}

    def _origin_heads_and_tags(self, repo: Path, project: str) -> dict[str, str] | None:
        """{ref: sha} of origin's ``refs/heads/*`` and ``refs/tags/*``, or None when they
        cannot be listed plainly (the caller then fetches). An origin on this machine (a path
        or ``file://``, e.g. a local mirror as GIT_BASE) is read from its ref files, as
        ``ls-remote`` would read them, without two processes; any other is asked once.
        """
        url = origin_url(repo)
        local = local_repo(url) if url else None
        if local is not None:
            refs = read_gitdir_refs(local, ("refs/heads/", "refs/tags/"))
            if refs is not None:
                return refs
        res = self._net(["ls-remote", "--heads", "--tags", "--", "origin"],
                        f"list {project}'s refs on origin", repo)
        if not res.ok:
            if is_infra_failure(res):
                raise _failure(f"could not update {project} from its upstream", res,
                               self.runner, "the upstream git server may be down; a recheck "
                               "retries")
            return None  # let fetch_origin (and its gc-and-retry) deal with it
        refs = {}
        for line in res.stdout.split("\n"):
            sha, _, name = line.partition("\t")
            if not name or name.endswith("^{}"):
                continue
            if not _is_sha(sha):
                return None
            refs[name] = sha
        return refs

    def fetch_ref(self, repo: Path, url: str, ref: str, project: str) -> bool:
        """Fetch ``ref`` from ``url`` into FETCH_HEAD; False when it does not exist there.

        Raises InfraError when ``url`` cannot be reached after the retries: a merger outage
        must not silently test the branch tip instead of the change (zuul-cloner, 2016).
        """
        res = self._net(["fetch", "--quiet", "--no-tags", "--", url, ref],
                        f"fetch {ref} for {project}", repo)
        if res.ok:
            return True
        if is_infra_failure(res):
            raise _failure(f"could not fetch {ref} for {project} from {url}", res, self.runner,
                           "the Zuul merger (ZUUL_URL) is unreachable; a recheck recreates "
                           "the ref once it is back")
        return False

    def gc(self, repo: Path) -> None:
        """``git gc`` (its failure is ignored: it is a repair attempt)."""
        self._run(["gc", "--quiet"], "gc", repo, check=False, timeout=self.retry.timeout)

    # -- facts ---------------------------------------------------------------------------------
    def refs(self, repo: Path, *patterns: str) -> dict[str, str]:
        """Return {refname: sha} of the refs under ``patterns`` (all refs when none given)."""
        res = self._run(["for-each-ref", "--format=%(objectname) %(refname)", *patterns],
                        "list refs", repo)
        out = {}
        # split("\n"), not splitlines(): exotic separators must not split a ref name (pip).
        for line in res.stdout.split("\n"):
            sha, _, name = line.partition(" ")
            if name:
                out[name] = sha
        return out

    def origin_refs(self, repo: Path) -> dict[str, str]:
        """{refname: sha} of ``refs/remotes/origin/*`` and ``refs/tags/*`` (symrefs left out),
        read from the ref files when they are plain, else from ``for-each-ref``."""
        refs = read_refs(repo)
        if refs is None:
            refs = self.refs(repo, "refs/remotes/origin", "refs/tags")
            refs.pop("refs/remotes/origin/HEAD", None)
        return {name: sha for name, sha in refs.items() if not name.startswith("refs/heads/")}

    def rev_parse(self, repo: Path, rev: str) -> str | None:
        """Return the commit ``rev`` names in ``repo``, or None when it names none."""
        res = self._run(["rev-parse", "--verify", "--quiet", "--end-of-options",
                         f"{rev}^{{commit}}"], f"resolve {rev}", repo, check=False)
        sha = res.stdout.strip()
        return sha if res.ok and len(sha) == 40 else None

    def head(self, repo: Path) -> str | None:
        """Return the commit HEAD points at, or None."""
        # A detached HEAD holds the sha itself: read it instead of paying for a process.
        try:
            text = (repo / ".git" / "HEAD").read_text().strip()
        except OSError:
            text = ""
        return text if _is_sha(text) else self.rev_parse(repo, "HEAD")

    def fetched_sha(self, repo: Path) -> str | None:
        """Return the commit the last fetch of a single ref wrote to FETCH_HEAD, or None."""
        # FETCH_HEAD lines are "<sha>\t<flags>\t<description>"; one ref fetched, one line.
        try:
            first = (repo / ".git" / "FETCH_HEAD").read_text().split("\n", 1)[0]
        except OSError:
            return self.rev_parse(repo, "FETCH_HEAD")
        sha = first.split("\t", 1)[0]
        return sha if _is_sha(sha) else self.rev_parse(repo, "FETCH_HEAD")

    # -- working tree --------------------------------------------------------------------------
    def checkout(self, repo: Path, sha: str) -> None:
        """Detach HEAD at ``sha`` and make index and tree match it (``reset --hard``)."""
        self._run(["checkout", "--quiet", "--force", "--detach", sha, "--"],
                  f"check out {sha[:12]}", repo)

    def refresh_index(self, repo: Path) -> None:
        """``update-index --refresh``: re-check racily clean entries and record their stat data
        (a maintenance step: its failure is ignored, the next git command does the same)."""
        self._run(["update-index", "-q", "--refresh"], "refresh the index", repo, check=False)

    def reset_hard(self, repo: Path) -> None:
        """``git reset --hard`` to HEAD (exit 1 tolerated, as zuul-cloner did)."""
        self._run(["reset", "--quiet", "--hard"], "reset", repo, ok_codes=(0, 1))

    def clean(self, repo: Path) -> None:
        """Remove untracked and ignored files (single -f: nested checkouts survive); retry once."""
        self._run(["clean", "-x", "-f", "-d", "-q"], "clean", repo, attempts=2, backoff=1.0)

    def update_submodules(self, repo: Path, project: str) -> None:
        """``submodule sync`` then ``update --init --recursive`` (gerrit-git-prep step 11)."""
        self._run(["submodule", "--quiet", "sync", "--recursive"], "submodule sync", repo)
        res = self._net(["submodule", "--quiet", "update", "--init", "--recursive"],
                        f"submodules of {project}", repo)
        if not res.ok:
            raise _failure(f"could not update the submodules of {project}", res, self.runner,
                           "check the URLs in .gitmodules")


def _is_sha(text: str) -> bool:
    return len(text) == 40 and not text.strip("0123456789abcdef")


def origin_url(repo: Path) -> str | None:
    """The url of remote ``origin`` as ``repo/.git/config`` plainly says it, or None when the
    file says it any other way (no such remote, several urls, quoting, includes): then the
    caller asks git. Reads one small file instead of running a process.
    """
    try:
        text = (repo / ".git" / "config").read_text()
    except (OSError, UnicodeDecodeError):
        return None
    urls: list[str] = []
    section = None
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                return None
            section = line[1:-1].strip()
            if section.lower().startswith("include"):
                return None
            continue
        if section == 'remote "origin"':
            key, eq, value = line.partition("=")
            if key.strip().lower() == "url":
                value = value.strip()
                if not eq or not value or any(c in value for c in '"\\;#'):
                    return None
                urls.append(value)
    return urls[0] if len(urls) == 1 else None


def read_refs(repo: Path) -> dict[str, str] | None:
    """{refname: sha} of ``refs/heads``, ``refs/remotes/origin`` and ``refs/tags`` of the
    checkout ``repo`` read from the files backend, or None (see read_gitdir_refs)."""
    return read_gitdir_refs(repo / ".git", ("refs/heads/", "refs/remotes/origin/", "refs/tags/"))


def read_gitdir_refs(gitdir: Path, prefixes: tuple[str, ...]) -> dict[str, str] | None:
    """{refname: sha} of the refs under ``prefixes`` in ``gitdir`` read from the files backend
    (loose refs beat ``packed-refs``; symrefs left out), or None when the repo stores refs in a
    way this does not read (then ask git). Reads files, runs no process.
    """
    root = os.fspath(gitdir)
    if os.path.exists(os.path.join(root, "reftable")) or \
            not os.path.isdir(os.path.join(root, "refs")):
        return None
    refs: dict[str, str] = {}
    try:
        with open(os.path.join(root, "packed-refs"), encoding="utf-8") as fh:
            packed = fh.read()
    except FileNotFoundError:
        packed = ""
    except (OSError, UnicodeDecodeError):
        return None
    for line in packed.split("\n"):
        if not line or line[0] in "#^":
            continue
        sha, _, name = line.partition(" ")
        if not _is_sha(sha) or not name:
            return None
        if name.startswith(prefixes):
            refs[name] = sha
    for prefix in prefixes:
        if not _read_loose_refs(root, prefix.rstrip("/"), refs):
            return None
    return refs


def _read_loose_refs(root: str, rel: str, refs: dict[str, str]) -> bool:
    """Add the loose refs under ``root/rel`` to ``refs`` (a symref removes its name); False
    when one cannot be read plainly. Strings and scandir: this runs for every project."""
    try:
        entries = list(os.scandir(os.path.join(root, rel)))
    except FileNotFoundError:
        return True
    except OSError:
        return False
    for entry in entries:
        name = f"{rel}/{entry.name}"
        if entry.is_dir(follow_symlinks=False):
            if not _read_loose_refs(root, name, refs):
                return False
            continue
        if entry.name.endswith(".lock"):
            continue
        try:
            with open(entry.path, encoding="ascii") as fh:
                text = fh.read().strip()
        except (OSError, UnicodeDecodeError):
            return False
        if text.startswith("ref: "):
            refs.pop(name, None)
            continue
        if not _is_sha(text):
            return False
        refs[name] = text
    return True


def file_url_path(url: str) -> Path | None:
    """The absolute path a ``file://`` URL names on this machine (``file://localhost/`` too,
    percent-escapes decoded), else None."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return None
    path = Path(unquote(parts.path))
    return path if path.is_absolute() else None


def local_repo(url: str) -> Path | None:
    """The git directory ``url`` names when it is a repository on this machine (an absolute
    path or a ``file://`` URL, bare or not), else None (a remote, or not a plain repo)."""
    path = Path(url) if url.startswith("/") else file_url_path(url)
    if path is None:
        return None
    gitdir = path / ".git" if (path / ".git").is_dir() else path
    if (gitdir / "HEAD").is_file() and (gitdir / "objects").is_dir():
        return gitdir
    return None


def remove_stale_locks(repo: Path) -> list[str]:
    """Delete lock files a killed git left in ``repo/.git``; return the names removed."""
    removed = []
    gitdir = os.path.join(repo, ".git")
    for name in LOCK_FILES:
        lock = os.path.join(gitdir, name)
        if os.path.isfile(lock):
            os.unlink(lock)
            removed.append(name)
    for dirpath, _, files in os.walk(os.path.join(gitdir, "refs")):  # "cannot lock ref"
        for fname in files:
            if fname.endswith(".lock"):
                os.unlink(os.path.join(dirpath, fname))
                removed.append(os.path.relpath(os.path.join(dirpath, fname), gitdir))
    return removed


def has_submodules(repo: Path) -> bool:
    """True when the checkout has a ``.gitmodules`` file."""
    return (repo / ".gitmodules").is_file()


def looks_like_repo(path: Path) -> str | None:
    """Why ``path`` is not a usable git repo (bare or with ``.git``), or None when it looks fine.

    Reads a few files only: cheap enough for ``--plan`` over 40 projects, and catches the
    damage seen on nodes (truncated HEAD, missing objects/ or refs/ dirs).
    """
    gitdir = path / ".git" if (path / ".git").is_dir() else path
    if not (gitdir / "HEAD").is_file():
        return "no HEAD file" if path.is_dir() else "missing"
    try:
        head = (gitdir / "HEAD").read_text(errors="replace").strip()
    except OSError as exc:
        return f"unreadable HEAD ({exc.strerror})"
    if not (head.startswith("ref: refs/") or len(head) == 40 and
            all(c in "0123456789abcdef" for c in head)):
        return f"corrupt HEAD ({head[:40]!r})"
    for sub in ("objects", "refs"):
        if not (gitdir / sub).is_dir():
            return f"no {sub}/ directory"
    return None


def _failure(message: str, result: proc.Result, runner: proc.Runner, hint: str) -> InfraError:
    last = result.tail[-1].strip() if result.tail else ""
    why = "timed out" if result.timed_out else f"exit {result.exit_code}"
    tries = f" after {result.attempts} attempts" if result.attempts > 1 else ""
    return RemoteError(message, hint=hint, log_path=runner.log,
                      details={"command": result.argv,
                               "result": f"{why}{tries}" + (f' (last: "{last}")' if last else "")})
