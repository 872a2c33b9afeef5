"""``dsvm workspace --zuul-vars`` (Zuul v3+) on real git trees built as the executor leaves them:
several projects, a speculative merge, a dependent change ahead in ``items``, a stable branch by
``override_checkout``, a flat ``workspace-scheme`` — with every network path unreachable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import gitrepos
from tests.fixtures.gitrepos import git, head_of, make_repo
from tests.fixtures.zuulv3 import DEAD_ORIGIN, Executor

git_home = gitrepos.git_home
DEAD = "http://127.0.0.1:9"  # nothing listens on the discard port: any contact fails


@pytest.fixture
def executor(tmp_path: Path, git_home: Path) -> Executor:
    home = tmp_path / "zuul-home"
    home.mkdir()
    return Executor(home=home, upstream=tmp_path / "upstream")


def _job(executor: Executor, tmp_path: Path, *, extra_profile: str = "",
         cached: tuple[str, ...] = ("openstack/requirements",)) -> dict[str, object]:
    """A v3 job for openstack/cinder: os-brick's change ahead of cinder's, devstack at the
    job's stable branch (override_checkout), a flat tree; a profile project Zuul did not
    prepare, in the node cache."""
    ex = executor
    commits = {
        "openstack/os-brick": ex.project("openstack/os-brick", change=1001, patchset=2),
        "openstack/cinder": ex.project("openstack/cinder", change=1002, patchset=4),
        "openstack/devstack": ex.project("openstack/devstack", checkout="stable/2024.1",
                                         description="job override ref", required=False),
        "openstack/tempest": ex.project("openstack/tempest", flat=True, required=False),
    }
    cache = tmp_path / "cache"
    for name in cached:
        make_repo(cache, name, commits=2)
        git(tmp_path, "clone", "--quiet", str(cache / name), str(cache / f"{name}.tmp"))
        os.rename(cache / name, cache / f"{name}.bare")
        os.rename(cache / f"{name}.tmp", cache / name)
    profile = tmp_path / "v3.yaml"
    profile.write_text(f"projects: {json.dumps(['openstack/requirements'])}\n"
                       f"git: {{base: '{DEAD}', cache: {cache}, attempts: 1, backoff: 0}}\n"
                       f"{extra_profile}")
    data = ex.variable("openstack/cinder", override_checkout="stable/2024.1")
    return {"commits": commits, "profile": profile, "vars": data,
            "file": ex.write(tmp_path / "zuul-vars.json", data), "base": tmp_path / "stack"}


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZUUL_", "GIT_BASE"))}
    env.update({"WORKSPACE": str(tmp_path / "job"), "BASE": str(tmp_path / "stack"),
                "http_proxy": DEAD, "https_proxy": DEAD, "HTTP_PROXY": DEAD,
                "HTTPS_PROXY": DEAD, **extra})
    return env


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dsvm", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


def test_prepared_trees_are_placed_at_their_commits_offline(executor: Executor,
                                                            tmp_path: Path) -> None:
    job = _job(executor, tmp_path)
    res = _cli(["--profile", str(job["profile"]), "workspace", "--zuul-vars", str(job["file"]),
                "--src-root", str(executor.home), "--json"], _env(tmp_path), tmp_path)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert set(data) == {"projects", "zuul", "seconds"}
    rows = {r["name"]: r for r in data["projects"]}
    new = tmp_path / "stack/new"
    for name, commit in job["commits"].items():  # type: ignore[attr-defined]
        short = name.rsplit("/", 1)[-1]
        row = rows[name]
        assert (row["path"], row["commit"], row["source"]) == (str(new / short), commit, "zuul")
        assert head_of(new / short) == commit
        assert git(new / short, "remote", "get-url", "origin") == DEAD_ORIGIN
        assert git(new / short, "status", "--porcelain") == ""
    # The speculative merge (which no upstream has) is what got placed, on its branch.
    assert (new / "cinder/change-1002.txt").is_file() and (new / "os-brick/change-1001.txt")
    assert git(new / "cinder", "rev-parse", "--abbrev-ref", "HEAD") == "master"
    assert rows["openstack/devstack"]["branch"] == "stable/2024.1"
    assert git(new / "devstack", "rev-parse", "--abbrev-ref", "HEAD") == "stable/2024.1"
    assert rows["openstack/devstack"]["fallback"] == "job override ref"
    assert rows["openstack/cinder"]["fallback"] == "zuul branch"
    # A project Zuul did not prepare came from the node cache at the job's branch ladder
    # (override_checkout stable/2024.1 → no such branch → master), and says so.
    req = rows["openstack/requirements"]
    assert req["source"] == "cache" and "not prepared by Zuul" in req["fallback"]
    assert head_of(new / "requirements") == head_of(tmp_path / "cache/openstack/requirements")
    assert "openstack/requirements: not prepared by Zuul" in res.stderr
    z = data["zuul"]
    assert (z["source"], z["project"], z["change"], z["patchset"], z["pipeline"], z["job"]) == \
        ("zuul-vars", "openstack/cinder", "1002", "4", "check", "dsvm-tempest-acme")
    assert [c["project"] for c in z["changes"]] == ["openstack/os-brick", "openstack/cinder"]
    assert z["uuid"] == executor.build and z["url"] is None
    assert z["log_path"] == f"02/1002/4/check/dsvm-tempest-acme/{executor.build[:7]}"


def test_run_plan_with_zuul_vars_in_the_environment_is_offline(executor: Executor,
                                                                tmp_path: Path) -> None:
    job = _job(executor, tmp_path)
    wrapped = executor.write(tmp_path / "zuul-vars.yaml", job["vars"], wrap=True, fmt="yaml")
    env = _env(tmp_path, DSVM_ZUUL_VARS=str(wrapped))
    res = _cli(["--profile", str(job["profile"]), "run", "--plan", "--json", "--src-root",
                str(executor.home)], env, tmp_path)
    assert res.returncode == 0, res.stderr
    phases = json.loads(res.stdout)["phases"]
    rows = {r["name"]: r for r in phases["workspace"]["projects"]}
    assert rows["openstack/cinder"]["commit"] == job["commits"]["openstack/cinder"]  # type: ignore[index]
    assert rows["openstack/cinder"]["source"] == "zuul"
    assert phases["workspace"]["zuul"]["source"] == "zuul-vars"
    # local.conf takes the job's branch (override_checkout) and LIBS_FROM_GIT the required
    # projects plus the project under test, as devstack's own Zuul job does.
    local_conf = phases["configure"]["local_conf"]
    libs = [line for line in local_conf.splitlines() if line.startswith("LIBS_FROM_GIT=")]
    assert libs == ["LIBS_FROM_GIT=cinder,os-brick"]
    assert not (tmp_path / "stack").exists()


def test_a_tree_not_at_zuuls_commit_is_refused_and_nothing_is_placed(executor: Executor,
                                                                     tmp_path: Path) -> None:
    job = _job(executor, tmp_path)
    tree = executor.tree("openstack/tempest")
    recorded = head_of(tree)
    (tree / "local.txt").write_text("a pre-run playbook committed this\n")
    git(tree, "add", "local.txt")
    git(tree, "commit", "--quiet", "-m", "not what Zuul prepared")
    res = _cli(["--profile", str(job["profile"]), "workspace", "--zuul-vars", str(job["file"]),
                "--src-root", str(executor.home)], _env(tmp_path), tmp_path)
    assert res.returncode == 3, res.stdout + res.stderr
    assert "openstack/tempest" in res.stderr and recorded in res.stderr
    assert head_of(tree) in res.stderr
    new = tmp_path / "stack/new"
    assert not new.exists() or not [p for p in new.iterdir() if p.name != "requirements"]


def test_error_on_clone_refuses_a_project_zuul_did_not_prepare(executor: Executor,
                                                               tmp_path: Path) -> None:
    job = _job(executor, tmp_path, extra_profile="")
    profile = Path(str(job["profile"]))
    profile.write_text(profile.read_text().replace("backoff: 0}", "backoff: 0, "
                                                   "error_on_clone: true}"))
    res = _cli(["--profile", str(profile), "workspace", "--plan", "--zuul-vars",
                str(job["file"]), "--src-root", str(executor.home)], _env(tmp_path), tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "openstack/requirements" in res.stderr and "git.error_on_clone" in res.stderr
    assert "required-projects" in res.stderr


@pytest.mark.parametrize("break_it,key", [
    (lambda f, d, ex: f.write_text("{not json: [nor yaml"), "neither JSON nor YAML"),
    (lambda f, d, ex: f.write_text("[1, 2]"), "does not hold a mapping"),
    (lambda f, d, ex: (d.pop("projects"), f.write_text(json.dumps(d))), "zuul.projects"),
    (lambda f, d, ex: (d["projects"]["opendev.org/openstack/cinder"].update(
        src_dir="../../etc"), f.write_text(json.dumps(d))),
     "zuul.projects['opendev.org/openstack/cinder'].src_dir"),
    (lambda f, d, ex: (d["projects"]["opendev.org/openstack/cinder"].update(
        src_dir="src/nowhere"), f.write_text(json.dumps(d))),
     "zuul.projects['opendev.org/openstack/cinder'].src_dir"),
    (lambda f, d, ex: (d["projects"]["opendev.org/openstack/cinder"].update(commit="main"),
                       f.write_text(json.dumps(d))),
     "zuul.projects['opendev.org/openstack/cinder'].commit"),
    (lambda f, d, ex: (d["projects"]["opendev.org/openstack/cinder"].update(
        name="../../x"), f.write_text(json.dumps(d))),
     "zuul.projects['opendev.org/openstack/cinder'].name"),
])
def test_bad_vars_exit_2_naming_the_key(executor: Executor, tmp_path: Path, break_it,
                                        key: str) -> None:
    job = _job(executor, tmp_path)
    vars_file = Path(str(job["file"]))
    break_it(vars_file, json.loads(vars_file.read_text()), executor)
    res = _cli(["--profile", str(job["profile"]), "workspace", "--zuul-vars", str(vars_file),
                "--src-root", str(executor.home)], _env(tmp_path), tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert key in res.stderr
    assert not (tmp_path / "stack").exists()


def test_a_src_dir_that_is_not_a_repo_is_bad_input(executor: Executor, tmp_path: Path) -> None:
    job = _job(executor, tmp_path)
    (executor.home / "src/plain").mkdir(parents=True)
    data = json.loads(Path(str(job["file"])).read_text())
    data["projects"]["opendev.org/openstack/cinder"]["src_dir"] = "src/plain"
    vars_file = executor.write(tmp_path / "bad.json", data)
    res = _cli(["--profile", str(job["profile"]), "workspace", "--zuul-vars", str(vars_file),
                "--src-root", str(executor.home)], _env(tmp_path), tmp_path)
    assert res.returncode == 2, res.stderr
    assert "src_dir" in res.stderr and "not a git repo" in res.stderr


def test_legacy_vars_without_zuul_vars_exit_2_with_the_hint(tmp_path: Path) -> None:
    env = _env(tmp_path, ZUUL_PROJECT="openstack/cinder", ZUUL_BRANCH="master",
               ZUUL_PIPELINE="check", ZUUL_SHORT_PROJECT_NAME="cinder",
               ZUUL_CHANGES="openstack/cinder:master:refs/changes/02/1002/4")
    res = _cli(["workspace", "--plan"], env, tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "--zuul-vars" in res.stderr and "zuul_legacy_vars" in res.stderr
