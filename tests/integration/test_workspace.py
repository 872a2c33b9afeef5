"""The workspace phase against broken things, on real git: a cache missing or damaged, a Zuul
merger down (real HTTP on 127.0.0.1), a workspace left dirty by a previous job, hostile input,
and the ``dsvm workspace`` command end to end."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dsvm import workspace
from dsvm.errors import InfraError
from tests.fixtures import gitrepos
from tests.fixtures.gitrepos import World, git, head_of, run_workspace

git_home = gitrepos.git_home
world_template = gitrepos.world_template
cloner_world = gitrepos.cloner_world

ROOT = Path(__file__).resolve().parents[2]


def change_item(w: World, project: str = "org/project1", number: int = 1):
    sha, ref = w.upstream[project].change(number, base="init")
    return w.merger.enqueue(project, "master", sha, ref)


def test_cache_missing_a_project_falls_back_to_git_base(cloner_world: World) -> None:
    w = cloner_world
    w.cache.add(w.upstream["org/project1"])
    item = change_item(w)
    rows = run_workspace(w, w.merger.env(item), ["org/project1", "org/project2"],
                         use_cache=True)
    assert rows["org/project1"]["source"] == "cache"
    assert rows["org/project2"]["source"] == "network"
    assert "not in the cache" in rows["org/project2"]["fallback"]
    assert rows["org/project2"]["commit"] == w.upstream["org/project2"].tip("master")
    assert rows["org/project1"]["commit"] == item.commit


def test_cache_with_corrupt_head_is_detected_and_skipped(cloner_world: World) -> None:
    w = cloner_world
    cached = w.cache.add(w.upstream["org/project1"], bare=True)
    (cached / "HEAD").write_text("garbage\n")
    rows = run_workspace(w, {}, ["org/project1"], use_cache=True)
    row = rows["org/project1"]
    assert row["source"] == "network" and "corrupt HEAD" in row["fallback"]
    assert row["commit"] == w.upstream["org/project1"].tip("master")


def test_cache_with_missing_objects_is_recloned_from_upstream(cloner_world: World) -> None:
    w = cloner_world
    cached = w.cache.add(w.upstream["org/project1"], bare=True)
    git(cached, "repack", "-a", "-d", "-q")
    for pack in (cached / "objects/pack").glob("*.pack"):
        pack.write_bytes(b"PACK broken")  # the files look fine; the content is gone
    rows = run_workspace(w, {}, ["org/project1"], use_cache=True)
    row = rows["org/project1"]
    assert row["source"] == "network" and "damaged" in row["fallback"]
    assert row["commit"] == head_of(w.base / "new/project1") == \
        w.upstream["org/project1"].tip("master")


def test_dirty_workspace_from_previous_job_is_reused_and_cleaned(cloner_world: World) -> None:
    w = cloner_world
    first = change_item(w, "org/project1", 1)
    run_workspace(w, w.merger.env(first), ["org/project1", "org/project2"])
    repo = w.base / "new/project1"
    (repo / "untracked.txt").write_text("left by the last job")
    (repo / "build").mkdir()
    (repo / "build/lib.so").write_text("ignored or not, it goes")
    (repo / "README").write_text("changed by the last job")
    (repo / ".git/index.lock").write_text("")  # git was killed mid-operation
    (repo / ".git/refs/remotes/origin/master.lock").write_text("")
    inode = (repo / ".git").stat().st_ino
    second = change_item(w, "org/project1", 2)
    rows = run_workspace(w, w.merger.env(second), ["org/project1", "org/project2"])
    assert rows["org/project1"]["reused"] is True
    assert (repo / ".git").stat().st_ino == inode  # not re-cloned
    assert rows["org/project1"]["commit"] == second.commit == head_of(repo)
    assert git(repo, "status", "--porcelain", "--ignored") == ""
    assert not (repo / ".git/index.lock").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(root: Path, port: int) -> ThreadingHTTPServer:
    for repo in root.glob("*/*"):
        git(repo, "update-server-info")  # git's dumb HTTP protocol
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.slow
def test_zuul_url_down_then_up_is_retried(cloner_world: World) -> None:
    w = cloner_world
    item = change_item(w)
    port = _free_port()
    env = {**w.merger.env(item), "ZUUL_URL": f"http://127.0.0.1:{port}"}
    servers: list[ThreadingHTTPServer] = []
    timer = threading.Timer(0.5, lambda: servers.append(_serve(w.merger.root, port)))
    timer.start()
    try:
        rows = run_workspace(w, env, ["org/project1"],
                             profile={"git": {"base": w.upstream.url, "attempts": 4,
                                              "backoff": 1, "cache": "/nonexistent"}})
    finally:
        timer.join()
        for server in servers:
            server.shutdown()
    assert rows["org/project1"]["commit"] == item.commit
    log = (w.base.parent / "job/.dsvm/workspace.log").read_text()
    assert "Failed to connect" in log or "Connection refused" in log


def test_zuul_url_down_for_good_is_exit_3_naming_url_and_project(cloner_world: World) -> None:
    w = cloner_world
    item = change_item(w)
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(InfraError) as err:
        run_workspace(w, {**w.merger.env(item), "ZUUL_URL": url}, ["org/project1"])
    assert err.value.exit_code == 3
    assert url in err.value.message and "org/project1" in err.value.message
    assert "after 2 attempts" in err.value.details["result"]


def test_tag_pipeline_checks_out_the_annotated_tag(cloner_world: World) -> None:
    w = cloner_world
    repo = w.upstream["org/project1"]
    commit = repo.commit("master", "release")
    tag = repo.tag("2014.1", commit, annotated=True)
    assert tag != commit
    env = {"ZUUL_PROJECT": "org/project1", "ZUUL_PIPELINE": "release",
           "ZUUL_REF": "refs/tags/2014.1", "ZUUL_NEWREV": tag, "ZUUL_OLDREV": "0" * 40,
           "ZUUL_URL": w.merger.url}
    rows = run_workspace(w, env, ["org/project1", "org/project2"])
    assert rows["org/project1"]["commit"] == commit == head_of(w.base / "new/project1")
    assert rows["org/project2"]["commit"] == w.upstream["org/project2"].tip("master")


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dsvm", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def _cli_env(w: World, tmp_path: Path, **extra: str) -> tuple[dict[str, str], Path]:
    profile = tmp_path / "p.yaml"
    profile.write_text(f"projects: [org/project1, org/project2]\n"
                       f"git: {{base: {w.upstream.url}, cache: {w.cache.root}, backoff: 0}}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZUUL_")}
    env.update({"BASE": str(w.base), "WORKSPACE": str(tmp_path / "job"), **extra})
    return env, profile


def test_cli_json_is_the_documented_shape(cloner_world: World, tmp_path: Path) -> None:
    w = cloner_world
    w.cache.add(w.upstream["org/project1"])
    item = change_item(w)
    env, profile = _cli_env(w, tmp_path, **w.merger.env(item))
    res = _cli(["--profile", str(profile), "workspace", "--json"], env, tmp_path)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert set(data) == {"projects", "zuul", "seconds"}
    assert 0 < data["seconds"] >= max(r["seconds"] for r in data["projects"])
    rows = {r["name"]: r for r in data["projects"]}
    assert set(rows["org/project1"]) >= {"name", "path", "branch", "ref", "commit", "source",
                                        "fallback"}
    assert rows["org/project1"] | {"seconds": 0} == {
        "name": "org/project1", "path": str(w.base / "new/project1"), "branch": "master",
        "ref": item.ref, "commit": item.commit, "source": "cache", "fallback": None,
        "reused": False, "seconds": 0}
    assert rows["org/project2"]["source"] == "network"
    assert data["zuul"]["ref"] == item.ref and data["zuul"]["changes"][0]["project"] == \
        "org/project1"
    # --plan --json changes nothing and names the same refs first.
    shutil.rmtree(w.base)
    res = _cli(["--profile", str(profile), "workspace", "--plan", "--json"], env, tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["projects"][0]["ref"] == item.ref
    assert not w.base.exists()


@pytest.mark.parametrize("evil,code", [
    ({"ZUUL_BRANCH": "master$(touch${IFS}PWNED)", "ZUUL_REF":
      "refs/zuul/master$(touch${IFS}PWNED)/Z1;touch${IFS}PWNED"}, 0),
    ({"ZUUL_BRANCH": "master", "ZUUL_REF": "refs/zuul/master/Z1`touch PWNED`"}, 2),
    ({"ZUUL_PROJECT": "../../PWNED", "ZUUL_BRANCH": "master"}, 2),
    ({"ZUUL_URL": "ext::sh -c touch% PWNED"}, 2),
])
def test_hostile_zuul_values_never_reach_a_shell(cloner_world: World, tmp_path: Path,
                                                 evil: dict, code: int) -> None:
    w = cloner_world
    env, profile = _cli_env(w, tmp_path, ZUUL_PROJECT="org/project1", ZUUL_URL=w.merger.url,
                            ZUUL_CHANGES="org/project1:master:refs/changes/1/1/1")
    env.update(evil)
    res = _cli(["--profile", str(profile), "workspace", "--json"], env, tmp_path)
    assert res.returncode == code, res.stderr
    assert not list(tmp_path.rglob("PWNED")) and not list(w.base.parent.rglob("PWNED"))
    if code == 2:
        assert "ZUUL_" in res.stderr


def test_example_env_plans_offline(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZUUL_", "GIT_BASE"))}
    for line in (ROOT / "examples/zuul-change.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    env.update({"WORKSPACE": str(tmp_path / "job"), "DSVM_GIT_CACHE": str(tmp_path / "none"),
                "BASE": str(tmp_path / "stack")})
    start = time.monotonic()
    res = _cli(["--profile", str(ROOT / "examples/workspace-demo.yaml"), "workspace", "--plan",
                "--json"], env, tmp_path)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    rows = {r["name"]: r for r in data["projects"]}
    assert rows[env["ZUUL_PROJECT"]]["ref"] == env["ZUUL_REF"]
    assert not (tmp_path / "stack").exists()
    assert time.monotonic() - start < 60


def test_node_download_cache_is_linked_into_devstack_files(cloner_world: World,
                                                           tmp_path: Path) -> None:
    w = cloner_world
    w.upstream.project("openstack/devstack")
    files = tmp_path / "opt-cache-files"
    (files / "images").mkdir(parents=True)
    (files / "cirros.img").write_text("image")
    (files / "images/x.qcow2").write_text("image")
    run_workspace(w, {}, ["openstack/devstack"], profile={"node": {"files_dir": str(files)}})
    linked = w.base / "new/devstack/files"
    assert (linked / "cirros.img").stat().st_ino == (files / "cirros.img").stat().st_ino
    assert (linked / "images/x.qcow2").read_text() == "image"


def test_a_foreign_directory_at_the_destination_is_left_alone(cloner_world: World) -> None:
    w = cloner_world
    foreign = w.base / "new/project1"
    foreign.mkdir(parents=True)
    (foreign / "precious.txt").write_text("not a repo")
    with pytest.raises(InfraError) as err:
        run_workspace(w, {}, ["org/project1"])
    assert "not a git repo" in err.value.message
    assert (foreign / "precious.txt").read_text() == "not a repo"


def test_submodules_are_checked_out(cloner_world: World, git_home: Path) -> None:
    w = cloner_world
    # git >= 2.38.1 refuses local-path submodules unless told; a real job uses https URLs.
    (git_home / ".gitconfig").write_text('[protocol "file"]\n\tallow = always\n')
    lib = w.upstream["org/project2"]
    parent = w.upstream.project("org/withsub")
    sha = gitrepos._fast_commit(
        parent.path, "refs/heads/master", "add a submodule",
        {".gitmodules": f'[submodule "lib"]\n\tpath = lib\n\turl = {lib.path}\n'},
        [parent.tip("master")])
    tree_sha = gitrepos.git(parent.path, "mktree", input=(
        gitrepos.git(parent.path, "ls-tree", sha) + f"\n160000 commit {lib.tip('master')}\tlib\n"))
    commit = gitrepos.git(parent.path, "commit-tree", tree_sha, "-p", sha, "-m", "gitlink")
    parent.update_ref("refs/heads/master", commit)
    rows = run_workspace(w, {}, ["org/withsub"])
    assert rows["org/withsub"]["commit"] == commit
    assert head_of(w.base / "new/withsub/lib") == lib.tip("master")


def _fetches_from_origin(w: World) -> int:
    log = (w.base.parent / "job/.dsvm/workspace.log").read_text()
    return sum(1 for line in log.split("\n") if line.startswith("$ git fetch") and " origin " in line)


def test_reused_workspace_in_sync_with_origin_is_not_fetched_again(cloner_world: World) -> None:
    w = cloner_world
    w.upstream["org/project2"].tag("v1", w.upstream["org/project2"].tip("master"),
                                   annotated=True)
    run_workspace(w, {}, ["org/project1", "org/project2"])
    assert _fetches_from_origin(w) == 2
    repo = w.base / "new/project2"
    (repo / "README").write_text("changed by the last job")
    (repo / "junk.pyc").write_text("x")
    rows = run_workspace(w, {}, ["org/project1", "org/project2"])
    assert _fetches_from_origin(w) == 2  # origin's refs showed nothing new: no fetch
    for name in ("org/project1", "org/project2"):
        assert rows[name]["reused"] and rows[name]["commit"] == w.upstream[name].tip("master")
    assert git(repo, "status", "--porcelain", "--ignored") == ""
    # A local origin's refs are read from its files: no ls-remote process at all.
    assert "$ git ls-remote" not in (w.base.parent / "job/.dsvm/workspace.log").read_text()


def test_reused_workspace_with_a_remote_origin_asks_it_with_ls_remote(
        cloner_world: World) -> None:
    # An upstream over HTTP (git's dumb protocol on 127.0.0.1): one ls-remote per project
    # proves the reused repo current; once upstream moves, the fetch brings the new tip.
    w = cloner_world
    port = _free_port()
    server = _serve(w.upstream.root, port)
    try:
        remote = {"git": {"base": f"http://127.0.0.1:{port}"}}
        run_workspace(w, {}, ["org/project1"], profile=remote)
        rows = run_workspace(w, {}, ["org/project1"], profile=remote)
        log = (w.base.parent / "job/.dsvm/workspace.log").read_text()
        assert log.count("$ git ls-remote") == 1 and _fetches_from_origin(w) == 1
        assert rows["org/project1"]["reused"]
        new_tip = w.upstream["org/project1"].commit("master", "moved on")
        git(w.upstream["org/project1"].path, "update-server-info")
        rows = run_workspace(w, {}, ["org/project1"], profile=remote)
        assert _fetches_from_origin(w) == 2
        assert rows["org/project1"]["commit"] == new_tip == head_of(w.base / "new/project1")
    finally:
        server.shutdown()
        server.server_close()


def test_reused_workspace_follows_an_upstream_that_moved(cloner_world: World) -> None:
    # The previous job's refs are stale: the new tip, a new branch and tag, and the pruning of a
    # deleted branch must all arrive (never a silently old branch tip).
    w = cloner_world
    up = w.upstream["org/project1"]
    up.branch("feature/old")
    run_workspace(w, {}, ["org/project1"])
    repo = w.base / "new/project1"
    new_tip = up.commit("master", "moved on")
    up.branch("stable/new")
    up.tag("v2", new_tip)
    git(up.path, "update-ref", "-d", "refs/heads/feature/old")
    rows = run_workspace(w, {}, ["org/project1"])
    assert rows["org/project1"]["reused"] is True
    assert rows["org/project1"]["commit"] == new_tip == head_of(repo)
    refs = git(repo, "for-each-ref", "--format=%(refname)").split("\n")
    assert "refs/remotes/origin/stable/new" in refs and "refs/heads/stable/new" in refs
    assert "refs/tags/v2" in refs
    assert not any("feature/old" in ref for ref in refs)


def test_reused_workspace_gets_its_origin_repointed(cloner_world: World, tmp_path: Path) -> None:
    w = cloner_world
    run_workspace(w, {}, ["org/project1"])
    repo = w.base / "new/project1"
    mirror = tmp_path / "mirror"
    shutil.copytree(w.upstream.root, mirror)
    moved = gitrepos._fast_commit(mirror / "org/project1", "refs/heads/master", "mirror only",
                                  {"m.txt": "m\n"}, [w.upstream["org/project1"].tip("master")])
    rows = run_workspace(w, {}, ["org/project1"], profile={"git": {"base": str(mirror)}})
    assert git(repo, "remote", "get-url", "origin") == str(mirror / "org/project1")
    assert rows["org/project1"]["commit"] == moved == head_of(repo)


def test_reused_workspace_with_upstream_down_is_exit_3_not_a_stale_tip(cloner_world: World) -> None:
    # The previous job's refs are there, but only origin can say whether they are current.
    w = cloner_world
    run_workspace(w, {}, ["org/project1"])
    down = {"git": {"base": f"http://127.0.0.1:{_free_port()}", "attempts": 2, "backoff": 0}}
    with pytest.raises(InfraError) as err:
        run_workspace(w, {}, ["org/project1"], profile=down)
    assert err.value.exit_code == 3
    assert "org/project1" in err.value.message and "upstream" in err.value.message
    assert "after 2 attempts" in err.value.details["result"]


def test_reused_workspace_missing_objects_gets_the_full_fetch(cloner_world: World) -> None:
    # In sync by its refs, but the commit is gone: the checkout fails, then the full fetch (and
    # its gc-and-retry) gets its chance, as before the ls-remote shortcut existed.
    w = cloner_world
    up = w.upstream["org/project1"]
    run_workspace(w, {}, ["org/project1"])
    repo = w.base / "new/project1"
    new_tip = up.commit("master", "moved on")
    git(repo, "fetch", "-q", "origin", "+refs/heads/*:refs/remotes/origin/*",
        "+refs/heads/*:refs/heads/*", "--update-head-ok")
    loose = repo / ".git/objects" / new_tip[:2] / new_tip[2:]
    assert loose.is_file()
    loose.unlink()
    log = w.base.parent / "job/.dsvm/workspace.log"
    before = log.read_text().count("\n$ git fetch")
    rows = run_workspace(w, {}, ["org/project1"])
    assert rows["org/project1"]["commit"] == new_tip == head_of(repo)
    assert log.read_text().count("\n$ git fetch") > before


def test_fresh_checkout_leaves_no_racily_clean_index(cloner_world: World) -> None:
    # Files written in the index's own second would make the next job's first git command
    # re-read every one of them; dsvm settles the index once that second is over.
    w = cloner_world
    gitrepos.fast_history(w.upstream.root / "org/big", commits=2, files=1500, branches={},
                          seed="big")
    run_workspace(w, {}, ["org/big", "org/project1"])
    repo = w.base / "new/big"
    assert (repo / ".git/index").stat().st_size >= workspace.SETTLE_MIN_INDEX_BYTES
    newest = max(p.stat().st_mtime for p in repo.rglob("*") if ".git" not in p.parts)
    assert int((repo / ".git/index").stat().st_mtime) > int(newest)
    assert git(repo, "status", "--porcelain", "--ignored") == ""
