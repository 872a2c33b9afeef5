"""zuul-cloner's own test scenarios (spec zuul-cloner.md §6.1, T1-T9), on real git.

Each build runs dsvm's workspace phase into a fresh $BASE (the cloner's tests wiped the
workspace between builds) and compares every project's HEAD with the commit the table expects.
"""

from __future__ import annotations

import pytest

from tests.fixtures import gitrepos
from tests.fixtures.gitrepos import World, commits, git, head_of, run_workspace

# Fixtures used by these tests (pytest finds them as module attributes).
git_home = gitrepos.git_home
world_template = gitrepos.world_template
cloner_world = gitrepos.cloner_world

P = [f"org/project{n}" for n in range(1, 7)]


def build(world: World, item, projects, n: int, **kw) -> dict[str, object]:
    return commits(run_workspace(world, world.merger.env(item), projects,
                                 base=world.base.parent / f"build{n}-{kw.pop('side', '')}", **kw))


def enqueue(world: World, project: str, branch: str, number: int):
    sha, ref = world.upstream[project].change(number, base="init")
    return world.merger.enqueue(project, branch, sha, ref)


def test_t1_one_branch(cloner_world: World) -> None:
    w = cloner_world
    items = [enqueue(w, "org/project1", "master", 1), enqueue(w, "org/project2", "master", 2)]
    m = {p: w.upstream[p].tip("master") for p in P[:2]}
    assert build(w, items[0], P[:2], 0) == {"org/project1": items[0].commit,
                                             "org/project2": m["org/project2"]}
    assert build(w, items[1], P[:2], 1) == {"org/project1": items[0].commit,
                                             "org/project2": items[1].commit}


@pytest.mark.slow
def test_t2_multi_branch(cloner_world: World) -> None:
    w = cloner_world
    w.havana("org/project2", "org/project4")
    items = [enqueue(w, "org/project1", "master", 1),
             enqueue(w, "org/project2", "stable/havana", 2),
             enqueue(w, "org/project3", "master", 3)]
    M = {p: w.upstream[p].tip("master") for p in P[:4]}
    H = {p: w.upstream[p].tip("stable/havana") for p in ("org/project2", "org/project4")}
    c = [i.commit for i in items]
    expect = [
        [c[0], M["org/project2"], M["org/project3"], M["org/project4"]],
        [c[0], c[1], M["org/project3"], H["org/project4"]],
        [c[0], M["org/project2"], c[2], M["org/project4"]],
    ]
    for n, item in enumerate(items):
        got = build(w, item, P[:4], n)
        assert [got[p] for p in P[:4]] == expect[n], f"build {n}"


@pytest.mark.slow
def test_t3_upgrade(cloner_world: World) -> None:
    w = cloner_world
    w.havana(*P[1:5])
    items = [enqueue(w, "org/project1", "master", 1),
             enqueue(w, "org/project2", "master", 2),
             enqueue(w, "org/project3", "stable/havana", 3),
             enqueue(w, "org/project3", "master", 4),
             enqueue(w, "org/project4", "stable/havana", 5)]
    M = {p: w.upstream[p].tip("master") for p in P}
    H = {p: w.upstream[p].tip("stable/havana") for p in P[1:5]}
    c = [i.commit for i in items]
    # c[2] is project3's havana merge; c[3] its master merge.
    old = [
        [c[0], H[P[1]], H[P[2]], H[P[3]], H[P[4]], M[P[5]]],
        [c[0], H[P[1]], H[P[2]], H[P[3]], H[P[4]], M[P[5]]],
        [c[0], H[P[1]], c[2], H[P[3]], H[P[4]], M[P[5]]],
        [c[0], H[P[1]], c[2], H[P[3]], H[P[4]], M[P[5]]],
        [c[0], H[P[1]], c[2], c[4], H[P[4]], M[P[5]]],
    ]
    new = [
        [c[0], M[P[1]], M[P[2]], M[P[3]], M[P[4]], M[P[5]]],
        [c[0], c[1], M[P[2]], M[P[3]], M[P[4]], M[P[5]]],
        [c[0], c[1], M[P[2]], M[P[3]], M[P[4]], M[P[5]]],
        [c[0], c[1], c[3], M[P[3]], M[P[4]], M[P[5]]],
        [c[0], c[1], c[3], M[P[3]], M[P[4]], M[P[5]]],
    ]
    for n, item in enumerate(items):
        for side, expect, branch in (("old", old, "stable/havana"), ("new", new, "master")):
            got = build(w, item, P, n, side=side, extra_env={"OVERRIDE_ZUUL_BRANCH": branch})
            assert [got[p] for p in P] == expect[n], f"build {n} {side}"


@pytest.mark.slow
def test_t4_project_override(cloner_world: World) -> None:
    w = cloner_world
    w.havana("org/project3", "org/project4", "org/project6")
    items = [enqueue(w, "org/project1", "master", 1),
             enqueue(w, "org/project1", "master", 2),
             enqueue(w, "org/project2", "master", 3),
             enqueue(w, "org/project3", "stable/havana", 4)]
    M = {p: w.upstream[p].tip("master") for p in P}
    H6 = w.upstream["org/project6"].tip("stable/havana")
    c = [i.commit for i in items]
    expect = [
        [c[0], M[P[1]], M[P[2]], M[P[3]], M[P[4]], M[P[5]]],
        [c[1], M[P[1]], M[P[2]], M[P[3]], M[P[4]], M[P[5]]],
        [c[1], c[2], M[P[2]], M[P[3]], M[P[4]], M[P[5]]],
        [c[1], c[2], c[3], M[P[3]], M[P[4]], H6],
    ]
    profile = {"project_branches": {"org/project4": "master"}}
    for n, item in enumerate(items):
        got = build(w, item, P, n, profile=profile)
        assert [got[p] for p in P] == expect[n], f"build {n}"


def test_t4_project_override_from_env(cloner_world: World) -> None:
    w = cloner_world
    w.havana("org/project3", "org/project4")
    item = enqueue(w, "org/project3", "stable/havana", 1)
    got = build(w, item, P[2:4], 0, extra_env={"OVERRIDE_PROJECT4_PROJECT_BRANCH": "master"})
    assert got == {"org/project3": item.commit, "org/project4": w.upstream[P[3]].tip("master")}


def test_env_branch_override_beats_profile_project_branches(cloner_world: World) -> None:
    # The ladder: OVERRIDE_ZUUL_BRANCH (env) beats the profile's project_branches, and
    # OVERRIDE_<PROJECT>_PROJECT_BRANCH beats both (defaults < profile < env < options).
    w = cloner_world
    w.havana("org/project3", "org/project4")
    item = enqueue(w, "org/project3", "stable/havana", 1)
    profile = {"project_branches": {"org/project3": "master", "org/project4": "master"}}
    H4 = w.upstream["org/project4"].tip("stable/havana")
    got = build(w, item, P[2:4], 0, profile=profile,
                extra_env={"OVERRIDE_ZUUL_BRANCH": "stable/havana"})
    assert got == {"org/project3": item.commit, "org/project4": H4}
    got = build(w, item, P[2:4], 1, profile=profile,
                extra_env={"OVERRIDE_ZUUL_BRANCH": "stable/havana",
                           "OVERRIDE_PROJECT4_PROJECT_BRANCH": "master"})
    assert got == {"org/project3": item.commit, "org/project4": w.upstream[P[3]].tip("master")}
    got = build(w, item, P[2:4], 2, profile=profile)  # no env override: the profile's map
    assert got["org/project4"] == w.upstream[P[3]].tip("master")


def test_t5_periodic_with_branch(cloner_world: World) -> None:
    w = cloner_world
    w.upstream["org/project"].branch("stable/havana", "master", 1)
    env = {"ZUUL_PROJECT": "org/project", "ZUUL_PIPELINE": "periodic"}
    for n in range(2):
        rows = run_workspace(w, env, ["org/project"], base=w.base.parent / f"b{n}",
                             extra_env={"OVERRIDE_ZUUL_BRANCH": "stable/havana"})
        assert rows["org/project"]["commit"] == w.upstream["org/project"].tip("stable/havana")
        assert rows["org/project"]["fallback"] is None


def test_t6_periodic_update(cloner_world: World) -> None:
    w = cloner_world
    repo = w.upstream["org/project"]
    enqueue(w, "org/project", "master", 1)  # the merger now has a clone of the repo
    b = repo.commit("master", "change B merged directly")
    env = {"ZUUL_PROJECT": "org/project", "ZUUL_PIPELINE": "periodic", "ZUUL_URL": w.merger.url}
    for n in range(2):
        rows = run_workspace(w, env, ["org/project"], base=w.base.parent / f"b{n}")
        assert rows["org/project"]["commit"] == b


def _post_env(w: World, a: str, old: str) -> dict[str, str]:
    return {"ZUUL_PROJECT": "org/project1", "ZUUL_PIPELINE": "post", "ZUUL_REF": "master",
            "ZUUL_REFNAME": "master", "ZUUL_OLDREV": old, "ZUUL_NEWREV": a, "ZUUL_COMMIT": a,
            "ZUUL_URL": w.merger.url}


def test_t7_post_checkout(cloner_world: World) -> None:
    w = cloner_world
    repo = w.upstream["org/project1"]
    old = repo.tip("master")
    a = repo.commit("master", "change A merged")
    w.merger._repo("org/project1")  # the merger fetched the update before the event
    rows = run_workspace(w, _post_env(w, a, old), ["org/project1"])
    assert rows["org/project1"]["commit"] == a == head_of(w.base / "new/project1")
    assert rows["org/project1"]["ref"] == a


def test_t8_post_and_master_checkout(cloner_world: World) -> None:
    w = cloner_world
    repo = w.upstream["org/project1"]
    old = repo.tip("master")
    a = repo.commit("master", "change A merged")
    rows = run_workspace(w, _post_env(w, a, old), ["org/project1", "org/project2"])
    assert commits(rows) == {"org/project1": a,
                             "org/project2": w.upstream["org/project2"].tip("master")}


def test_t9_cache_dir(cloner_world: World) -> None:
    w = cloner_world
    w.cache.add(w.upstream["org/project1"])
    w.cache.add(w.upstream["org/project2"])
    item = enqueue(w, "org/project1", "master", 1)
    b = w.upstream["org/project2"].commit("master", "change B merged directly")  # cache stale
    rows = run_workspace(w, w.merger.env(item), P[:2], use_cache=True)
    assert commits(rows) == {"org/project1": item.commit, "org/project2": b}
    assert {r["source"] for r in rows.values()} == {"cache"}
    for name in P[:2]:
        origin = git(w.base / "new" / name.split("/")[1], "remote", "get-url", "origin")
        # Deviation (issue 3): origin is the real upstream for every project, never the cache
        # (zuul-cloner pointed the triggering project at ZUUL_URL).
        assert origin == f"{w.upstream.url}/{name}"
        assert str(w.cache.root) not in origin


def test_no_zuul_parameters_checks_out_master(cloner_world: World) -> None:
    w = cloner_world
    rows = run_workspace(w, {}, ["org/project1"])
    assert rows["org/project1"]["commit"] == w.upstream["org/project1"].tip("master")


def test_deleted_ref_is_an_error(cloner_world: World) -> None:
    from dsvm.errors import UsageError

    w = cloner_world
    old = w.upstream["org/project1"].tip("master")
    with pytest.raises(UsageError) as err:
        run_workspace(w, _post_env(w, "0" * 40, old), ["org/project1"])
    assert "deleted" in err.value.problems[0].message
