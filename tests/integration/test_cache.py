"""cache.py against real git: clone, keep, update, repair, sweep, probe, manifest."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dsvm import cache, git, proc
from dsvm.errors import InfraError
from tests.fixtures import gitdaemon
from tests.fixtures.gitrepos import add_commit, make_repo, tip
from tests.fixtures.httpserver import closed_port

RETRY = git.Retry(timeout=30, attempts=2, backoff=0.01)
git_daemon = gitdaemon.git_daemon


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    root = tmp_path / "upstream"
    make_repo(root, "openstack/nova", commits=4, branches=("stable/2024.1",), tags=("1.0",))
    make_repo(root, "openstack/glance", commits=2)
    return root


@pytest.fixture
def g(tmp_path: Path) -> git.Git:
    return git.Git(proc.Runner(tmp_path / "cache.log"), retry=RETRY)


def _sync(cache_root: Path, upstream: Path, project: str, g: git.Git,
          prev: cache.RepoRecord | None = None) -> cache.RepoRecord:
    up = cache.probe(project, f"file://{upstream}", g)
    return cache.sync(cache_root, up, g, prev)


def _packs(repo: Path) -> set[str]:
    return {p.name for p in (repo / ".git/objects").rglob("*") if p.is_file()}


def test_clone_is_a_full_nonbare_clone_with_upstream_origin(tmp_path, upstream, g):
    rec = _sync(tmp_path / "git", upstream, "openstack/nova", g)
    repo = tmp_path / "git/openstack/nova"
    assert rec.action == "clone" and rec.head == tip(upstream / "openstack/nova")
    assert (repo / "file0.txt").is_file()  # working tree checked out
    refs = cache.inspect(tmp_path / "git", "openstack/nova", g).refs
    assert set(refs) == {"refs/heads/master", "refs/heads/stable/2024.1", "refs/tags/1.0"}
    url = proc.Runner().run(["git", "config", "remote.origin.url"], desc="url", cwd=repo)
    assert url.stdout.strip() == f"file://{upstream}/openstack/nova"
    assert rec.branches == 2 and rec.tags == 1 and rec.size_bytes > 0


def test_second_sync_keeps_and_transfers_nothing(tmp_path, upstream, g):
    first = _sync(tmp_path / "git", upstream, "openstack/nova", g)
    before = _packs(tmp_path / "git/openstack/nova")
    again = _sync(tmp_path / "git", upstream, "openstack/nova", g, first)
    assert again.action == "keep" and again.synced_at == first.synced_at
    assert _packs(tmp_path / "git/openstack/nova") == before


def test_upstream_change_is_fetched_and_checked_out(tmp_path, upstream, g):
    first = _sync(tmp_path / "git", upstream, "openstack/nova", g)
    new = add_commit(upstream / "openstack/nova", files={"added.txt": "hello\n"})
    rec = _sync(tmp_path / "git", upstream, "openstack/nova", g, first)
    assert rec.action == "update" and rec.head == new
    assert (tmp_path / "git/openstack/nova/added.txt").read_text() == "hello\n"
    assert not (tmp_path / "git/openstack/nova/.git" / cache.INCOMPLETE_MARK).exists()


def test_corrupt_repo_is_detected_and_repaired(tmp_path, upstream, g):
    first = _sync(tmp_path / "git", upstream, "openstack/nova", g)
    repo = tmp_path / "git/openstack/nova"
    # Every object file (a clone copied from a local upstream may hold loose objects only).
    for obj in (repo / ".git/objects").rglob("*"):
        if obj.is_file() and obj.parent.name != "info":
            obj.chmod(0o644)
            obj.write_bytes(b"garbage")
    assert g.fsck(repo) is not None
    rec = _sync(tmp_path / "git", upstream, "openstack/nova", g, first)
    assert rec.action == "repaired"
    assert g.fsck(repo) is None


def test_half_written_repo_and_leftovers_are_redone(tmp_path, upstream, g):
    first = _sync(tmp_path / "git", upstream, "openstack/nova", g)
    repo = tmp_path / "git/openstack/nova"
    (repo / ".git" / cache.INCOMPLETE_MARK).write_text("interrupted\n")
    leftover = tmp_path / f"git/openstack/.glance{cache.TMP_MARK}dead"
    shutil.copytree(repo, leftover)
    assert cache.sweep(tmp_path / "git") == [leftover]
    assert not leftover.exists()
    rec = _sync(tmp_path / "git", upstream, "openstack/nova", g, first)
    assert rec.action == "reclone"
    assert not (repo / ".git" / cache.INCOMPLETE_MARK).exists()


def test_probe_tells_missing_from_unreachable(tmp_path, upstream, g):
    with pytest.raises(cache.RepoNotFoundError, match="openstack/nope"):
        cache.probe("openstack/nope", f"file://{upstream}", g)
    with pytest.raises(cache.RepoUnreachableError, match="2 attempt"):
        cache.probe("openstack/nova", f"git://127.0.0.1:{closed_port()}", g)


def test_manifest_round_trip(tmp_path, upstream, g):
    rec = _sync(tmp_path / "git", upstream, "openstack/glance", g)
    m = cache.Manifest(written_at=cache.now_iso(), git_base="file:///x",
                       repos={rec.project: rec}, missing={"openstack/y": "unreachable"},
                       images_dir="/opt/cache/files", images={"a.img": {"size": 3}})
    cache.write_manifest(tmp_path / "git", m)
    assert cache.read_manifest(tmp_path / "git") == m
    (tmp_path / "git" / cache.MANIFEST_NAME).write_text("{not json")
    with pytest.raises(InfraError, match="cannot read the cache manifest"):
        cache.read_manifest(tmp_path / "git")
    assert cache.read_manifest(tmp_path / "nothing") is None


def test_lock_refuses_a_second_run(tmp_path):
    with cache.locked(tmp_path):
        with pytest.raises(cache.CacheBusyError):
            with cache.locked(tmp_path):
                pass


def test_unchanged_repo_is_verified_by_its_tips_and_a_lost_object_still_caught(
        tmp_path, upstream, g):
    first = _sync(tmp_path / "git", upstream, "openstack/nova", g)
    assert first.verified_by == "fsck" and first.refs_digest and first.objects_digest
    again = _sync(tmp_path / "git", upstream, "openstack/nova", g, first)
    assert again.action == "keep" and again.verified_by == "tips"
    # A lost object behind the tips: the object files changed, so the full fsck runs.
    repo = tmp_path / "git/openstack/nova"
    tip_sha = tip(upstream / "openstack/nova")
    loose = [p for p in (repo / ".git/objects").glob("??/*") if p.parent.name + p.name != tip_sha]
    packs = list((repo / ".git/objects/pack").glob("*.pack"))
    for victim in (packs or loose[:1]):
        victim.unlink()
    rec = _sync(tmp_path / "git", upstream, "openstack/nova", g, again)
    assert rec.action == "repaired" and rec.verified_by == "fsck"
    assert g.fsck(repo) is None


def test_a_broken_ref_tip_is_damage(tmp_path, upstream, g):
    _sync(tmp_path / "git", upstream, "openstack/nova", g)
    repo = tmp_path / "git/openstack/nova"
    (repo / ".git/refs/tags/ghost").write_text("1" * 40 + "\n")
    state = cache.inspect(tmp_path / "git", "openstack/nova", g)
    assert state.damage and "missing object" in state.damage


def test_local_upstream_is_listed_again_only_when_its_refs_change(tmp_path, upstream, g):
    base = f"file://{upstream}"
    first = _sync(tmp_path / "git", upstream, "openstack/nova", g)
    assert first.source_digest
    quiet = cache.probe("openstack/nova", base, g, first)
    assert not quiet.listed and quiet.default_branch == "master"
    assert cache.sync(tmp_path / "git", quiet, g, first).action == "keep"
    new = add_commit(upstream / "openstack/nova")
    moved = cache.probe("openstack/nova", base, g, first)
    assert moved.listed and moved.refs["refs/heads/master"] == new
    assert cache.sync(tmp_path / "git", moved, g, first).action == "update"


def test_mirror_with_other_refs_is_cloned_over_the_transport(tmp_path, upstream, g):
    nova = upstream / "openstack/nova"
    proc.Runner().run(["git", "update-ref", "refs/changes/01/1/1", "HEAD"], desc="ref", cwd=nova)
    up = cache.probe("openstack/nova", f"file://{upstream}", g)
    assert up.other_refs == 1
    cache.sync(tmp_path / "git", up, g)
    assert "(local copy)" not in (tmp_path / "cache.log").read_text()
    cache.sync(tmp_path / "git2", cache.probe("openstack/glance", f"file://{upstream}", g),
               g)
    assert "--local --no-hardlinks" in (tmp_path / "cache.log").read_text()


def test_a_branch_that_names_no_commit_is_damage_and_repaired(tmp_path, upstream, g):
    first = _sync(tmp_path / "git", upstream, "openstack/nova", g)
    repo = tmp_path / "git/openstack/nova"
    proc.Runner().run(["git", "update-ref", "refs/remotes/origin/stable/2024.1", "HEAD^{tree}"],
                      desc="point a branch at a tree", cwd=repo)
    state = cache.inspect(tmp_path / "git", "openstack/nova", g)
    assert state.damage == "refs/remotes/origin/stable/2024.1 names a tree, not a commit"
    assert _sync(tmp_path / "git", upstream, "openstack/nova", g, first).action == "repaired"


# -- against a real git daemon on loopback ---------------------------------------------------

def _git_commands(log: Path) -> list[str]:
    """The git subcommands a runner logged, in order ("$ git <sub> ..." lines)."""
    return [line.split()[2] for line in log.read_text().split("\n") if line.startswith("$ git ")]


def test_rerun_against_a_git_daemon_asks_once_per_repo_and_runs_nothing_else(tmp_path,
                                                                             git_daemon):
    names = ["openstack/nova", "openstack/glance", "openstack/cinder"]
    for name in names:
        make_repo(git_daemon.root, name, commits=3, branches=("stable/x",), tags=("1.0",))
    root = tmp_path / "git"

    def run(log: Path, prev: dict[str, cache.RepoRecord]) -> dict[str, cache.RepoRecord]:
        runner = proc.Runner(log)
        probed = cache.probe_all(names, git_daemon.url, runner, RETRY, 2, prev)
        assert set(probed.upstreams) == set(names), probed
        done = cache.sync_all(root, probed.upstreams.values(), runner, RETRY, jobs=2,
                              prev=prev)
        assert not done.failed, done.failed
        return done.records

    first = run(tmp_path / "first.log", {})
    assert {(r.action, r.verified_by) for r in first.values()} == {("clone", "clone")}
    # A transport clone is verified by git's own checks: no fsck, no for-each-ref after it.
    assert sorted(_git_commands(tmp_path / "first.log")) == ["clone"] * 3 + ["ls-remote"] * 3
    again = run(tmp_path / "again.log", first)
    assert {(r.action, r.verified_by) for r in again.values()} == {("keep", "tips")}
    assert _git_commands(tmp_path / "again.log") == ["ls-remote"] * len(names)

    new = add_commit(git_daemon.root / "openstack/glance")
    third = run(tmp_path / "third.log", again)
    assert third["openstack/glance"].action == "update"
    assert third["openstack/glance"].head == new
    assert {third[n].action for n in names if n != "openstack/glance"} == {"keep"}
    assert "fetch" in _git_commands(tmp_path / "third.log")


def test_a_project_the_daemon_does_not_serve_is_not_found(tmp_path, git_daemon):
    make_repo(git_daemon.root, "openstack/nova")
    runner = proc.Runner(tmp_path / "probe.log")
    probed = cache.probe_all(["openstack/nova", "openstack/nope"], git_daemon.url, runner,
                             RETRY, 2)
    assert set(probed.upstreams) == {"openstack/nova"}
    assert set(probed.not_found) == {"openstack/nope"} and not probed.unreachable
    assert _git_commands(tmp_path / "probe.log").count("ls-remote") == 2  # not retried


def test_a_local_branch_off_its_origin_tip_is_checked_by_git(tmp_path, upstream, g):
    first = _sync(tmp_path / "git", upstream, "openstack/nova", g)
    repo = tmp_path / "git/openstack/nova"
    assert cache.inspect_files(repo, "openstack/nova") is not None
    (repo / ".git/refs/heads/master").write_text("1" * 40 + "\n")  # no such object
    assert cache.inspect_files(repo, "openstack/nova") is None  # the files cannot vouch
    rec = _sync(tmp_path / "git", upstream, "openstack/nova", g, first)
    assert rec.action == "repaired" and g.fsck(repo) is None


def test_a_transport_clone_of_a_corrupt_upstream_never_reaches_the_cache(tmp_path, git_daemon):
    nova = make_repo(git_daemon.root, "openstack/nova", commits=2)
    blob = proc.Runner().run(["git", "rev-parse", "master:file0.txt"], desc="blob", cwd=nova)
    sha = blob.stdout.strip()
    loose = nova / "objects" / sha[:2] / sha[2:]
    loose.chmod(0o644)
    loose.write_bytes(b"garbage")  # the server now sends what it has: not that object
    runner = proc.Runner(tmp_path / "sync.log")
    probed = cache.probe_all(["openstack/nova"], git_daemon.url, runner, RETRY, 1)
    done = cache.sync_all(tmp_path / "git", probed.upstreams.values(), runner, RETRY, jobs=1,
                          prev={})
    assert set(done.failed) == {"openstack/nova"} and not done.records
    assert not (tmp_path / "git/openstack/nova").exists()
    assert not list((tmp_path / "git/openstack").glob(f".*{cache.TMP_MARK}*"))
