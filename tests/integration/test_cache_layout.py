"""The canonical cache layout (``node.cache_layout: canonical``): prepare-node lays the cache
out as ``<cache>/<canonical_name>``, where Zuul v3's prepare-workspace-git seeds from;
check-node reports the layout; a Zuul v2 ``dsvm workspace`` still finds its projects there,
so one image serves both kinds of CI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures.gitrepos import git, head_of, make_repo

DSVM = [sys.executable, "-m", "dsvm", "--no-color"]


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ZUUL_", "GIT_BASE"))}
    return subprocess.run([*DSVM, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**clean, **env}, check=False)


def test_canonical_layout_serves_v3_seeding_and_a_v2_workspace(tmp_path: Path) -> None:
    up = tmp_path / "upstream"
    for name in ("openstack/devstack", "openstack/nova"):
        make_repo(up, name, commits=2)
    cache = tmp_path / "opt-git"
    prof = tmp_path / "node.yaml"
    prof.write_text("projects: [openstack/devstack, openstack/nova]\n"
                    f"git: {{base: 'file://{up}', cache: '{cache}', attempts: 1, backoff: 0}}\n"
                    "node: {cache_layout: canonical, canonical_hostname: opendev.org, "
                    "stackrc_projects: false}\n")
    res = _run(["--profile", str(prof), "prepare-node", "--root", str(tmp_path / "root"),
                "--skip", "users", "--skip", "images", "--skip", "pip-cache", "--json"],
               tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["repos"] == {"openstack/devstack": "clone",
                                               "openstack/nova": "clone"}
    nova = cache / "opendev.org/openstack/nova"
    assert (nova / ".git").is_dir() and not (cache / "openstack").exists()
    # prepare-workspace-git seeds a tree with a plain clone of /opt/git/<canonical_name>.
    seeded = tmp_path / "src/opendev.org/openstack/nova"
    git(tmp_path, "clone", "--quiet", str(nova), str(seeded))
    assert head_of(seeded) == git(up / "openstack/nova", "rev-parse", "master")
    # check-node says which layout the cache has...
    res = _run(["--profile", str(prof), "check-node", "--root", str(tmp_path / "root"),
                "--json"], tmp_path)
    checks = {c["name"]: c for c in json.loads(res.stdout)["checks"]}
    assert checks["git-cache"]["ok"], checks["git-cache"]
    assert "layout canonical" in checks["git-cache"]["detail"]
    # ...and, asked for the other layout, that the cache has this one.
    flat = tmp_path / "flat.yaml"
    flat.write_text(prof.read_text().replace("cache_layout: canonical", "cache_layout: name"))
    res = _run(["--profile", str(flat), "check-node", "--root", str(tmp_path / "root"),
                "--json"], tmp_path)
    checks = {c["name"]: c for c in json.loads(res.stdout)["checks"]}
    assert not checks["git-cache"]["ok"]
    assert "node.cache_layout: canonical" in checks["git-cache"]["fix"]
    # A Zuul v2 job on the same image checks its projects out of that cache.
    ws = tmp_path / "job"
    res = _run(["--profile", str(prof), "workspace", "--json"], tmp_path, WORKSPACE=str(ws),
               BASE=str(tmp_path / "stack"), ZUUL_PROJECT="openstack/nova",
               ZUUL_BRANCH="master", ZUUL_PIPELINE="periodic")
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)["projects"]}
    assert rows["openstack/nova"]["source"] == "cache"
    assert head_of(tmp_path / "stack/new/nova") == head_of(seeded)


def test_canonical_layout_without_a_hostname_is_bad_input(tmp_path: Path) -> None:
    prof = tmp_path / "node.yaml"
    prof.write_text("projects: [openstack/nova]\n"
                    f"git: {{base: 'file://{tmp_path}', cache: '{tmp_path / 'c'}'}}\n"
                    "node: {cache_layout: canonical}\n")
    res = _run(["--profile", str(prof), "prepare-node", "--root", str(tmp_path / "root"),
                "--skip", "users", "--skip", "images", "--skip", "pip-cache"], tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "node.canonical_hostname" in res.stderr
    assert not (tmp_path / "c").exists()
