"""Git plumbing: one small typed function per operation dsvm needs, run through ``proc.Runner``.

Refs, branches and URLs reaching this module are untrusted (they come from Zuul): they travel as
separate argv items, after ``--`` where git allows it, never inside a shell string. Network
operations follow one policy (``Retry``: a timeout, bounded retries of network failures only,
as ``classify`` tells them from a missing repo or ref); a ref that does not exist is an
answer, not an error (``fetch_ref`` returns False). Git runs with inherited ``GIT_*``
variables dropped, no pager, no prompts and ``LC_ALL=C`` so its messages can be classified.
Refs are read here too, from ``ls-remote``, ``for-each-ref`` or the ref files. This module
decides nothing about *which* commit a project gets (``workspace.py``) or what the node
caches (``cache.py``).
"""

from __future__ import annotations

import enum
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dsvm import proc
from dsvm.errors import InfraError

LOCK_FILES = ("index.lock", "HEAD.lock", "config.lock", "packed-refs.lock", "shallow.lock")

# What git prints when the remote answered "no such repository / ref" (an answer: never
# retried) as opposed to when it could not be reached (retried, then the job aborts): the
# words of file://, git daemon and smart http; matched anywhere in the output (spec
# zuul-cloner 2.8). git adds "could not read from remote repository" to both kinds.
_MISSING_MARKERS = (
    "couldn't find remote ref", "no such remote ref", "not our ref", "invalid refspec",
    "does not appear to be a git repository", "repository not found", "no such repository",
    "not exported", "not found", "returned error: 404",
)
_NETWORK_MARKERS = (
    "unable to access", "could not resolve host", "connection refused", "connection timed out",
    "failed to connect", "unable to connect", "operation timed out", "early eof",
    "remote end hung up", "rpc failed", "ssl", "gnutls", "could not read from remote repository",
    "connection reset", "network is unreachable", "no route to host",
)


class Failure(enum.Enum):
    """Why a git command that talks to a remote failed (``classify``)."""

    MISSING = "missing"  # the remote answered: no such repository or ref
    NETWORK = "network"  # the remote could not be reached, or timed out: worth a retry
    OTHER = "other"  # anything else (local damage, a bad argument): not retried


class RemoteError(InfraError):
    """A remote (upstream, Zuul merger) could not be reached or refused: not local damage."""


def classify(result: proc.Result) -> Failure:
    """Say why the failed git command of ``result`` failed, from its output (LC_ALL=C)."""
    if result.timed_out:
        return Failure.NETWORK
    text = "\n".join(result.tail).lower()
    # A host name can contain "not found" ("could not resolve host: notfound.example").
    if "could not resolve host" not in text and any(m in text for m in _MISSING_MARKERS):
        return Failure.MISSING
    if any(m in text for m in _NETWORK_MARKERS):
        return Failure.NETWORK
    return Failure.OTHER


def is_network_failure(result: proc.Result) -> bool:
    """The retry predicate of every git network command: ``classify`` says NETWORK."""
    return classify(result) is Failure.NETWORK


def is_sha(text: str) -> bool:
    """True when ``text`` is a full object name (40 hex digits, or 64 in a SHA-256 repo)."""
    return len(text) in (40, 64) and not text.strip("0123456789abcdef")


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
    """How every git network operation retries (settings ``git.*``): attempts, the first
    back-off in seconds (doubled for each further try), and the per-try timeout."""

    attempts: int = 3
    backoff: float = 5.0
    timeout: float | None = 600.0


@dataclass(frozen=True)
class RefTips:
    """A repo's refs with the type of the object each names (``Git.ref_tips``)."""

    refs: Mapping[str, str]  # refname -> sha
    types: Mapping[str, str]  # refname -> commit | tag | tree | blob
    problem: str | None  # what git said about a missing object or broken ref, else None


class Git:
    """Git operations on repos, logged by one runner (a phase's log).

    ``stop``, once set, refuses to start any further git command (an interrupted
    prepare-node: the running ones are being killed, no new one may begin).
    """

    def __init__(self, runner: proc.Runner, *, retry: Retry | None = None,
                 env: Mapping[str, str] | None = None, program: str = "git",
                 stop: threading.Event | None = None) -> None:
        self.runner = runner
        self.retry = retry or Retry()
        self.env = git_env(env)
        self.program = program
        self.stop = stop

    def _run(self, argv: list[proc.Arg], desc: str, cwd: Path | None = None, *,
             check: bool = True, attempts: int = 1,
             backoff: float = 1.0, timeout: float | None = None, merge_stderr: bool = True
             ) -> proc.Result:
        if self.stop is not None and self.stop.is_set():
            raise InfraError(f"{desc}: not started, the run was interrupted")
        # stream=False: the Popen fast path. Git here is quiet (-q) and short or silent, so
        # line-by-line streaming buys nothing, and sh's wait(timeout) polls every 0.1 s.
        return self.runner.run([self.program, *argv], desc=desc, cwd=cwd, env=self.env,
                               stream=False, check=check,
                               attempts=attempts, backoff=backoff, timeout=timeout,
                               retry_if=is_network_failure, merge_stderr=merge_stderr)

    def _net(self, argv: list[proc.Arg], desc: str, cwd: Path | None, *,
             check: bool = False) -> proc.Result:
        """A network command under the retry policy (retries NETWORK failures only)."""
        return self._run(argv, desc, cwd, check=check, attempts=self.retry.attempts,
                         backoff=self.retry.backoff, timeout=self.retry.timeout)

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

    def clone_copy(self, url: str, dest: Path, desc: str, *, source: Path | None = None) -> None:
        """Clone ``url`` into ``dest`` with a work tree, sharing no object file with it;
        raise CommandFailed after the retries.

        With ``source`` (the repo ``url`` names on this machine) git's local clone copies its
        object files instead of packing and re-indexing every object, then origin is set
        to ``url``. Such a copy is not hashed by index-pack: the caller verifies it (fsck).
        """
        if source is None:
            self._net(["clone", "-q", "--no-hardlinks", "--", url, os.fspath(dest)], desc,
                      None, check=True)
            return
        self._net(["clone", "-q", "--local", "--no-hardlinks", "--", os.fspath(source),
                   os.fspath(dest)], f"{desc} (local copy)", None, check=True)
        self._run(["remote", "set-url", "origin", "--", url], "set origin", dest)

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
        if not res.ok and classify(res) is not Failure.NETWORK:
            self.gc(repo)
            res = self._net(argv, f"fetch {project} from origin (after gc)", repo)
        if not res.ok:
            error = _failure(f"could not update {project} from its upstream", res, self.runner,
                             "the upstream git server may be down; a recheck retries")
            raise error if classify(res) is Failure.NETWORK else InfraError(
                error.message, hint="the local copy may be damaged", log_path=error.log_path,
                details=error.details)

    def fetch_mirror(self, repo: Path, url: str, desc: str) -> None:
        """Point origin at ``url`` and fetch every branch (as ``origin/*``) and tag, pruning
        deleted ones; local branches are left alone. Raise CommandFailed after the retries."""
        self.set_origin(repo, url)
        self._net(["fetch", "-q", "--prune", "--no-auto-gc", "origin",
                   "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"],
                  desc, repo, check=True)

    def ls_remote(self, url: str, desc: str, *, cwd: Path | None = None,
                  heads_and_tags: bool = False) -> proc.Result:
        """``git ls-remote --symref`` of ``url`` (only branches and tags with
        ``heads_and_tags``) under the retry policy; never raises: the caller classifies a
        failure and reads the answer with ``parse_ls_remote``."""
        what: list[proc.Arg] = ["--heads", "--tags"] if heads_and_tags else ["--symref"]
        return self._net(["ls-remote", *what, "--", url], desc, cwd)

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
        heads = {name: sha for name, sha in theirs.items() if name.startswith("refs/heads/")}
        mine = {name: sha for name, sha in local.items() if name.startswith("refs/heads/")}
        if not heads or mine != heads or upstream_view(local) != theirs:
            return None
        # theirs, as fetch_origin names them here: heads as origin/*, tags as they are
        return {("refs/remotes/origin/" + name[len("refs/heads/"):]
                 if name.startswith("refs/heads/") else name): sha for name, sha in theirs.items()}

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
        res = self.ls_remote("origin", f"list {project}'s refs on origin", cwd=repo,
                             heads_and_tags=True)
        if not res.ok:
            if classify(res) is Failure.NETWORK:
                raise _failure(f"could not update {project} from its upstream", res,
                               self.runner, "the upstream git server may be down; a recheck "
                               "retries")
            return None  # let fetch_origin (and its gc-and-retry) deal with it
        return parse_ls_remote(res.stdout)[0]

    def fetch_ref(self, repo: Path, url: str, ref: str, project: str) -> bool:
        """Fetch ``ref`` from ``url`` into FETCH_HEAD; False when it does not exist there.

        Raises InfraError when ``url`` cannot be reached after the retries: a merger outage
        must not silently test the branch tip instead of the change (zuul-cloner, 2016).
        """
        res = self._net(["fetch", "--quiet", "--no-tags", "--", url, ref],
                        f"fetch {ref} for {project}", repo)
        if res.ok:
            return True
        if classify(res) is Failure.NETWORK:
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
        return {name: sha for name, (sha, _kind) in _parse_for_each_ref(res.stdout).items()}

    def ref_tips(self, repo: Path, *patterns: str) -> RefTips:
        """The refs under ``patterns`` with their object types, in one ``for-each-ref``.

        ``%(objecttype)`` makes git look every tip object up: a missing one ends it with
        "fatal: missing object", a ref file that names no valid sha is skipped with "warning:
        ignoring broken ref". Either becomes ``problem``.
        """
        res = self._run(["for-each-ref", "--format=%(objectname) %(refname) %(objecttype)",
                         *patterns], "list and check refs", repo, check=False,
                        merge_stderr=False)
        parsed = _parse_for_each_ref(res.stdout)
        refs = {name: sha for name, (sha, _kind) in parsed.items()}
        types = {name: kind for name, (_sha, kind) in parsed.items()}
        if not res.ok:
            return RefTips(refs, types, res.tail[-1].strip() if res.tail
                           else f"exit {res.exit_code}")
        broken = [ln.strip() for ln in res.tail if ln.startswith(("warning:", "error:"))]
        return RefTips(refs, types, broken[0] if broken else None)

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
        return sha if res.ok and is_sha(sha) else None

    def head(self, repo: Path) -> str | None:
        """Return the commit HEAD points at, or None."""
        # A detached HEAD holds the sha itself: read it instead of paying for a process.
        try:
            text = (repo / ".git" / "HEAD").read_text().strip()
        except OSError:
            text = ""
        return text if is_sha(text) else self.rev_parse(repo, "HEAD")

    def fetched_sha(self, repo: Path) -> str | None:
        """Return the commit the last fetch of a single ref wrote to FETCH_HEAD, or None."""
        # FETCH_HEAD lines are "<sha>\t<flags>\t<description>"; one ref fetched, one line.
        try:
            first = (repo / ".git" / "FETCH_HEAD").read_text().split("\n", 1)[0]
        except OSError:
            return self.rev_parse(repo, "FETCH_HEAD")
        sha = first.split("\t", 1)[0]
        return sha if is_sha(sha) else self.rev_parse(repo, "FETCH_HEAD")

    def fsck(self, repo: Path) -> str | None:
        """None when ``repo`` is sound (``fsck --connectivity-only``), else what git said."""
        res = self._run(["fsck", "--connectivity-only", "--no-progress", "--no-dangling"],
                        "verify", repo, check=False)
        if res.ok:
            return None
        return (res.tail[-1] if res.tail else f"git fsck exit {res.exit_code}").strip()

    # -- working tree --------------------------------------------------------------------------
    def checkout(self, repo: Path, sha: str) -> None:
        """Detach HEAD at ``sha`` and make index and tree match it (``reset --hard``)."""
        self._run(["checkout", "--quiet", "--force", "--detach", sha, "--"],
                  f"check out {sha[:12]}", repo)

    def checkout_branch(self, repo: Path, branch: str) -> None:
        """Put the work tree on the tip of ``origin/<branch>`` as local ``branch`` (reset to
        it) and make ``origin/HEAD`` name it; raise InfraError for an unusable name."""
        if not _BRANCH.match(branch):
            raise InfraError(f"branch {branch!r} of {repo} is not a valid name")
        self._run(["checkout", "-q", "-f", "-B", branch, f"refs/remotes/origin/{branch}", "--"],
                  f"check out {branch}", repo)
        self._run(["symbolic-ref", "refs/remotes/origin/HEAD", f"refs/remotes/origin/{branch}"],
                  "set origin/HEAD", repo)

    def refresh_index(self, repo: Path) -> None:
        """``update-index --refresh``: re-check racily clean entries and record their stat data
        (a maintenance step: its failure is ignored, the next git command does the same)."""
        self._run(["update-index", "-q", "--refresh"], "refresh the index", repo, check=False)

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


_BRANCH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/-]*$")


# -- reading refs: one reader per source (ls-remote, for-each-ref, the ref files) ------------

def parse_ls_remote(text: str) -> tuple[dict[str, str], str]:
    """({ref: sha} of every ref ``ls-remote`` listed, default branch) from its output.

    HEAD and peeled ``^{}`` lines are left out; the default branch comes from ``--symref``'s
    ``ref: refs/heads/x\tHEAD`` line ("" when HEAD names no branch: "master" if it exists).
    """
    refs: dict[str, str] = {}
    default = ""
    # split("\n"), not splitlines(): other separators must not smuggle in a ref (pip's note).
    for line in text.split("\n"):
        if line.startswith("ref: ") and line.endswith("\tHEAD"):
            target = line[5:-5]
            if target.startswith("refs/heads/"):
                default = target[len("refs/heads/"):]
            continue
        sha, _, name = line.partition("\t")
        if name and name != "HEAD" and not name.endswith("^{}") and is_sha(sha):
            refs[name] = sha
    if not default and "refs/heads/master" in refs:
        default = "master"
    return refs, default


def _parse_for_each_ref(text: str) -> dict[str, tuple[str, str]]:
    """{refname: (sha, type)} from ``for-each-ref --format='%(objectname) %(refname)[ %(
    objecttype)]'`` (type "" when not asked for; a ref name never contains a space)."""
    out: dict[str, tuple[str, str]] = {}
    # split("\n"), not splitlines(): exotic separators must not split a ref name (pip).
    for line in text.split("\n"):
        sha, _, rest = line.partition(" ")
        name, _, kind = rest.partition(" ")
        if name:
            out[name] = (sha, kind)
    return out


def upstream_view(refs: Mapping[str, str]) -> dict[str, str]:
    """A clone's refs as its origin names them: ``refs/remotes/origin/x`` as
    ``refs/heads/x`` (``origin/HEAD`` left out), tags as they are, anything else dropped."""
    out: dict[str, str] = {}
    prefix = "refs/remotes/origin/"
    for name, sha in refs.items():
        if name.startswith(prefix) and name != prefix + "HEAD":
            out["refs/heads/" + name[len(prefix):]] = sha
        elif name.startswith("refs/tags/"):
            out[name] = sha
    return out


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
        if not is_sha(sha) or not name:
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
        if not is_sha(text):
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
    if not (head.startswith("ref: refs/") or is_sha(head)):
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
