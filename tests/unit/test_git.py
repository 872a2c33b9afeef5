"""git.py's pure parts: classifying failures, the sha test, the ref readers, a damaged repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dsvm import git, proc


def _failed(*lines: str, timed_out: bool = False) -> proc.Result:
    return proc.Result(argv="git fetch", exit_code=128, seconds=0.1, attempts=1,
                       stdout="\n".join(lines), tail=lines, timed_out=timed_out)


@pytest.mark.parametrize("lines,why", [
    (("fatal: couldn't find remote ref refs/zuul/master/Z1",), "missing"),
    (("fatal: '/m/org/p' does not appear to be a git repository",
      "fatal: Could not read from remote repository."), "missing"),
    (("fatal: repository 'https://z/p/org/x/' not found",), "missing"),
    (("fatal: unable to access 'http://z/p/org/x/': The requested URL returned error: 404",),
     "missing"),
    (("fatal: remote error: access denied or repository not exported: /org/x",), "missing"),
    (("fatal: unable to access 'http://127.0.0.1:9/org/x/': Failed to connect to 127.0.0.1 "
      "port 9: Connection refused",), "network"),
    (("fatal: unable to access 'https://z/': Could not resolve host: z",), "network"),
    (("fatal: unable to access 'https://notfound.example/': Could not resolve host: "
      "notfound.example",), "network"),
    (("fatal: unable to connect to 127.0.0.1:", "127.0.0.1[0: 127.0.0.1]: errno=Connection "
      "refused"), "network"),
    (("ssh: connect to host z port 22: Connection timed out",
      "fatal: Could not read from remote repository."), "network"),
    (("error: RPC failed; HTTP 502", "fatal: early EOF"), "network"),
    (("fatal: bad object HEAD",), "other"),
    (("error: cannot lock ref 'refs/remotes/origin/master'",), "other"),
])
def test_failures_are_classified(lines, why) -> None:
    assert git.classify(_failed(*lines)).value == why
    assert git.is_network_failure(_failed(*lines)) is (why == "network")


def test_a_timeout_is_a_network_failure() -> None:
    assert git.classify(_failed("", timed_out=True)) is git.Failure.NETWORK


@pytest.mark.parametrize("text,ok", [
    ("a" * 40, True), ("0123456789abcdef" * 4, True), ("a" * 39, False), ("A" * 40, False),
    ("g" * 40, False), ("a" * 41, False), ("", False), ("a" * 40 + "\n", False),
])
def test_is_sha(text: str, ok: bool) -> None:
    assert git.is_sha(text) is ok


def test_ls_remote_parsing_keeps_every_ref_and_the_default_branch() -> None:
    sha = "a" * 40
    text = (f"ref: refs/heads/main\tHEAD\n{sha}\tHEAD\n{sha}\trefs/heads/main\n"
            f"{'b' * 40}\trefs/tags/1.0\n{'c' * 40}\trefs/tags/1.0^{{}}\n"
            f"{'d' * 40}\trefs/changes/01/1/1\nnot-a-sha\trefs/heads/evil\n")
    refs, default = git.parse_ls_remote(text)
    assert default == "main"
    assert refs == {"refs/heads/main": sha, "refs/tags/1.0": "b" * 40,
                    "refs/changes/01/1/1": "d" * 40}
    assert git.parse_ls_remote(f"{sha}\trefs/heads/master\n") == (
        {"refs/heads/master": sha}, "master")  # no --symref line: master when it exists


def test_upstream_view_names_a_clones_refs_as_its_origin_does() -> None:
    sha = "a" * 40
    local = {"refs/remotes/origin/main": sha, "refs/remotes/origin/HEAD": sha,
             "refs/remotes/other/x": sha, "refs/tags/1.0": "b" * 40, "refs/heads/main": sha}
    assert git.upstream_view(local) == {"refs/heads/main": sha, "refs/tags/1.0": "b" * 40}


def test_git_env_drops_inherited_git_variables() -> None:
    env = git.git_env({"GIT_DIR": "/elsewhere", "GIT_WORK_TREE": "/x", "PATH": "/bin"})
    assert "GIT_DIR" not in env and "GIT_WORK_TREE" not in env
    assert env["GIT_ALLOW_PROTOCOL"] == "file:git:http:https:ssh"
    assert env["LC_ALL"] == "C" and env["GIT_TERMINAL_PROMPT"] == "0"


def _fake_repo(path: Path, head: str = "ref: refs/heads/master\n") -> Path:
    (path / ".git/objects").mkdir(parents=True)
    (path / ".git/refs").mkdir()
    (path / ".git/HEAD").write_text(head)
    return path


def test_looks_like_repo(tmp_path: Path) -> None:
    assert git.looks_like_repo(_fake_repo(tmp_path / "ok")) is None
    assert git.looks_like_repo(_fake_repo(tmp_path / "sha", "a" * 40)) is None
    assert "corrupt HEAD" in git.looks_like_repo(_fake_repo(tmp_path / "bad", "garbage"))
    assert git.looks_like_repo(tmp_path / "absent") == "missing"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert git.looks_like_repo(empty) == "no HEAD file"


def test_remove_stale_locks(tmp_path: Path) -> None:
    repo = _fake_repo(tmp_path / "r")
    (repo / ".git/index.lock").write_text("")
    (repo / ".git/HEAD.lock").write_text("")
    assert sorted(git.remove_stale_locks(repo)) == ["HEAD.lock", "index.lock"]
    assert git.remove_stale_locks(repo) == []


@pytest.mark.parametrize("config,url", [
    ('[core]\n\tbare = false\n[remote "origin"]\n\turl = https://opendev.org/openstack/nova\n'
     '\tfetch = +refs/heads/*:refs/remotes/origin/*\n', "https://opendev.org/openstack/nova"),
    ('[remote "origin"]\n\tURL=/srv/git/x\n', "/srv/git/x"),
    ('[remote "upstream"]\n\turl = https://a/b\n', None),  # no origin: ask git
    ('[remote "origin"]\n\turl = https://a/b\n\turl = https://c/d\n', None),  # two urls
    ('[remote "origin"]\n\turl = "https://a/b"\n', None),  # quoting: ask git
    ('[include]\n\tpath = other\n[remote "origin"]\n\turl = https://a/b\n', None),
    ('[remote.origin]\n\turl = https://a/b\n', None),
])
def test_origin_url_reads_only_what_is_plain(tmp_path: Path, config: str, url: str | None) -> None:
    repo = _fake_repo(tmp_path / "r")
    (repo / ".git/config").write_text(config)
    assert git.origin_url(repo) == url


def test_read_refs_agrees_with_for_each_ref(tmp_path: Path) -> None:
    import subprocess

    def run(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              cwd=repo, check=True, capture_output=True, text=True,
                              env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)}).stdout

    repo = tmp_path / "r"
    repo.mkdir()
    run("init", "-q", "--initial-branch=master")
    run("commit", "-q", "--allow-empty", "-m", "one")
    one = run("rev-parse", "HEAD").strip()
    for ref in ("refs/remotes/origin/master", "refs/remotes/origin/stable/x",
                "refs/tags/plain", "refs/remotes/other/master", "refs/changes/1/1/1"):
        run("update-ref", ref, one)
    run("tag", "-a", "-m", "annotated", "annotated", one)
    run("pack-refs", "--all")
    run("commit", "-q", "--allow-empty", "-m", "two")  # loose refs/heads/master beats packed
    run("update-ref", "refs/remotes/origin/master", "HEAD")
    run("update-ref", "-d", "refs/remotes/origin/stable/x")  # deleted: gone from packed-refs
    run("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/master")
    (repo / ".git/refs/remotes/origin/master.lock").write_text("")  # a lock is not a ref
    listed = run("for-each-ref", "--format=%(objectname) %(refname)", "refs/heads",
                 "refs/remotes/origin", "refs/tags")
    expected = {name: sha for sha, name in (line.split(" ") for line in listed.splitlines())}
    del expected["refs/remotes/origin/HEAD"]  # symrefs are left out
    assert git.read_refs(repo) == expected
    (repo / ".git/refs/tags/broken").write_text("not a sha\n")
    assert git.read_refs(repo) is None  # anything odd: ask git


def test_local_repo_accepts_only_plain_local_repositories(tmp_path: Path) -> None:
    import subprocess

    work = tmp_path / "work"
    bare = tmp_path / "bare.git"
    for args in (["init", "-q", str(work)], ["init", "-q", "--bare", str(bare)]):
        subprocess.run(["git", *args], check=True, env={"PATH": os.environ["PATH"],
                                                        "HOME": str(tmp_path)})
    assert git.local_repo(str(work)) == work / ".git"
    assert git.local_repo(f"file://{work}") == work / ".git"
    assert git.local_repo(str(bare)) == bare
    assert git.local_repo(str(tmp_path / "missing")) is None
    assert git.local_repo(str(tmp_path)) is None  # a directory, not a repository
    assert git.local_repo(f"file://localhost{work}") == work / ".git"
    spaced = tmp_path / "with space"
    work.rename(spaced)
    assert git.local_repo(f"file://{tmp_path}/with%20space") == spaced / ".git"
    for remote in ("https://opendev.org/openstack/nova", "git@host:org/x", "relative/path",
                   "file://host/srv/x", "file:relative"):
        assert git.local_repo(remote) is None


def test_local_origin_refs_are_what_ls_remote_lists(tmp_path: Path) -> None:
    # The warm workspace reads a local origin's ref files instead of running ls-remote: it
    # must list exactly what ls-remote --heads --tags lists (peeled ^{} lines aside).
    import subprocess

    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}

    def run(*args: str, cwd: Path) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              cwd=cwd, check=True, capture_output=True, text=True,
                              env=env).stdout

    up = tmp_path / "up"
    up.mkdir()
    run("init", "-q", "--initial-branch=master", cwd=up)
    run("commit", "-q", "--allow-empty", "-m", "one", cwd=up)
    run("branch", "stable/x", cwd=up)
    run("tag", "-a", "-m", "annotated", "v1", cwd=up)
    run("tag", "light", cwd=up)
    run("pack-refs", "--all", cwd=up)
    run("commit", "-q", "--allow-empty", "-m", "two", cwd=up)  # loose master beats packed
    run("branch", "feature/new", cwd=up)
    run("update-ref", "refs/changes/1/1/1", "HEAD", cwd=up)  # not a head or tag
    listed = run("ls-remote", "--heads", "--tags", str(up), cwd=up)
    expected = {name: sha for sha, name in (line.split("\t") for line in listed.splitlines())
                if not name.endswith("^{}")}
    assert git.read_gitdir_refs(git.local_repo(str(up)), ("refs/heads/", "refs/tags/")) \
        == expected
