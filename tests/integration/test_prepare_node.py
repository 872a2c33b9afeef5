"""dsvm prepare-node end to end: a fake node root, a file:// git upstream, a local HTTP server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dsvm import cache, git, node, node_checks, proc, profile
from dsvm.errors import UsageError
from tests.fixtures import gitdaemon
from tests.fixtures.gitrepos import add_commit, make_repo
from tests.fixtures.httpserver import closed_port, serve

DSVM = [sys.executable, "-m", "dsvm"]
git_daemon = gitdaemon.git_daemon


@pytest.fixture
def site(tmp_path: Path):
    """An upstream with devstack (stackrc + image_list.sh), an image server and a fake root."""
    server = serve({"img/cirros.img": os.urandom(200_000), "img/other.img": b"x" * 5000,
                    "extra/get-pip.py": b"print('pip')\n"})
    server.add_sums("img")
    up = tmp_path / "upstream"
    stackrc = ("NOVA_REPO=${NOVA_REPO:-${GIT_BASE}/openstack/nova.git}\n"
               "GITREPO[\"oslo.config\"]=${OSLOCFG_REPO:-${GIT_BASE}/openstack/oslo.config.git}\n"
               "GHOST_REPO=${GHOST_REPO:-${GIT_BASE}/openstack/ghost.git}\n")
    tool = f"#!/bin/bash\necho {server.url('img/cirros.img')}\necho {server.url('img/other.img')}\n"
    make_repo(up, "openstack/devstack", files={"stackrc": stackrc, "tools/image_list.sh": tool})
    for name in ("openstack/nova", "openstack/oslo.config", "openstack/glance"):
        make_repo(up, name, commits=2)
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for f in ("passwd", "group", "shadow", "gshadow", "login.defs"):
        if Path("/etc", f).exists():
            shutil.copy(Path("/etc", f), root / "etc" / f)
    prof = tmp_path / "node.yaml"
    prof.write_text(
        "projects: [openstack/devstack, openstack/nova, openstack/glance]\n"
        f"git: {{base: 'file://{up}', attempts: 2, backoff: 0}}\n"
        f"node: {{get_pip_url: '{server.url('extra/get-pip.py')}', download_attempts: 2}}\n")
    yield {"up": up, "root": root, "server": server, "profile": prof, "tmp": tmp_path}
    server.stop()


def prepare(site, *extra: str, env: dict | None = None, profile_path: Path | None = None):
    argv = [*DSVM, "--no-color", "--profile", str(profile_path or site["profile"]),
            "prepare-node", "--root", str(site["root"]), "--jobs", "2", "--json", *extra]
    return subprocess.run(argv, cwd=site["tmp"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def settings_for(site):
    return profile.resolve(str(site["profile"]), options={"node.root": str(site["root"])})


@pytest.mark.slow
def test_prepare_then_rerun_transfers_nothing(site):
    res = prepare(site)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["repos"] == {"openstack/devstack": "clone", "openstack/glance": "clone",
                            "openstack/nova": "clone", "openstack/oslo.config": "clone"}
    assert any("ghost" in n for n in out["notes"])  # named by stackrc, not upstream: skipped
    assert set(out["images"]) == {"cirros.img", "other.img", "get-pip.py"}
    root = site["root"]
    files = root / "opt/cache/files"
    assert (files / "cirros.img").read_bytes() == site["server"].files["img/cirros.img"]
    manifest = cache.read_manifest(root / "opt/git")
    assert manifest is not None and set(manifest.repos) == set(out["repos"])
    assert manifest.images["cirros.img"]["verified"] == "sha256 from SUMS"
    assert "\nstack:" in (root / "etc/passwd").read_text()
    assert oct((root / "etc/sudoers.d/50_stack_sh").stat().st_mode & 0o777) == "0o440"
    # check-node on the prepared root: everything prepare-node owns passes
    facts = node.NodeFacts(root=root, euid=0, disk_free=lambda p: 100 << 30,
                           which=lambda c: f"/usr/bin/{c}")
    verdict = {c.name: c.ok for c in node_checks.check(settings_for(site), facts)}
    assert verdict | {"kvm": True} == {n: True for n in verdict}

    requests = len(site["server"].requests)
    again = prepare(site)
    assert again.returncode == 0, again.stderr
    out2 = json.loads(again.stdout)
    assert set(out2["repos"].values()) == {"keep"}
    assert set(out2["images"].values()) == {"keep"}
    assert len(site["server"].requests) == requests  # no download, not even a checksum file

    new = add_commit(site["up"] / "openstack/nova")
    third = json.loads(prepare(site, "--skip", "images").stdout)
    assert third["repos"]["openstack/nova"] == "update"
    assert cache.read_manifest(root / "opt/git").repos["openstack/nova"].head == new


def test_unknown_project_exits_2_before_writing(site):
    bad = site["tmp"] / "bad.yaml"
    bad.write_text(site["profile"].read_text().replace("openstack/glance", "openstack/nopez"))
    res = prepare(site, profile_path=bad)
    assert res.returncode == 2
    assert "openstack/nopez" in res.stderr
    assert not (site["root"] / "opt/git").exists()
    assert "\nstack:" not in (site["root"] / "etc/passwd").read_text()


@pytest.mark.slow
def test_unreachable_image_and_git_base_exit_3_listing_what_is_missing(site):
    bad_url = f"http://127.0.0.1:{closed_port()}/img/gone.img"
    prof = site["tmp"] / "img.yaml"
    prof.write_text(site["profile"].read_text().replace("node: {", f"node: {{images: ['{bad_url}'], "))
    res = prepare(site, "--skip", "users", profile_path=prof)
    assert res.returncode == 3, res.stderr
    assert "gone.img" in res.stderr
    manifest = cache.read_manifest(site["root"] / "opt/git")
    assert set(manifest.images) == {"cirros.img", "other.img", "get-pip.py"}  # rest completed
    assert bad_url in manifest.images_missing["gone.img"]

    dead = f"git://127.0.0.1:{closed_port()}"
    res = prepare(site, "--skip", "users", "--skip", "images", "--git-base", dead,
                  "--git-cache", str(site["tmp"] / "other-cache"))
    assert res.returncode == 3
    assert "openstack/nova" in res.stderr and "cannot reach" in res.stderr


@pytest.mark.slow
def test_interrupted_run_is_completed_by_the_next_one(site, tmp_path):
    slow = tmp_path / "slowbin"
    slow.mkdir()
    real_git = shutil.which("git")
    (slow / "git").write_text(f'#!/bin/bash\n[ "$1" = clone ] && sleep 1\nexec {real_git} "$@"\n')
    (slow / "git").chmod(0o755)
    env = {**os.environ, "PATH": f"{slow}:{os.environ['PATH']}"}
    argv = [*DSVM, "--no-color", "--profile", str(site["profile"]), "prepare-node", "--root",
            str(site["root"]), "--jobs", "2", "--skip", "users", "--skip", "images"]
    child = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    tmp_seen = False
    while time.monotonic() < deadline and not tmp_seen:
        tmp_seen = any((site["root"] / "opt/git").glob(f"*/.*{cache.TMP_MARK}*"))
        time.sleep(0.05)
    assert tmp_seen, "no clone started"
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 143, err
    assert not list((site["root"] / "opt/git").glob(f"*/.*{cache.TMP_MARK}*"))
    res = prepare(site, "--skip", "users", "--skip", "images")
    assert res.returncode == 0, res.stderr
    g = git.Git(proc.Runner(tmp_path / "verify.log"))
    for project in json.loads(res.stdout)["repos"]:
        assert g.fsck(cache.repo_path(site["root"] / "opt/git", project)) is None


def test_needs_root_exits_2_before_doing_anything(site):
    facts = node.NodeFacts(root=site["root"], euid=1000, disk_free=lambda p: 0,
                           which=lambda c: None)
    with pytest.raises(UsageError, match="needs root") as err:
        node.plan_prepare(settings_for(site), facts)
    assert err.value.exit_code == 2 and "users" in err.value.message
    assert not (site["root"] / "opt").exists()
    # Without the root-only steps and with writable targets, root is not needed.
    s = profile.resolve(str(site["profile"]), options={
        "node.root": str(site["root"]), "node.skip": ["users"]})
    plan = node.plan_prepare(s, facts)
    assert plan.steps == ("repos", "images", "pip-cache")


def test_from_a_git_daemon_a_rerun_only_lists_each_repo_once(tmp_path, git_daemon):
    for name in ("openstack/nova", "openstack/glance"):
        make_repo(git_daemon.root, name, commits=2, branches=("stable/x",), tags=("1.0",))
    prof = tmp_path / "daemon.yaml"
    prof.write_text("projects: [openstack/nova, openstack/glance]\n"
                    f"git: {{base: '{git_daemon.url}', attempts: 2, backoff: 0}}\n"
                    "node: {stackrc_projects: false}\n")
    argv = [*DSVM, "--no-color", "--profile", str(prof), "prepare-node", "--root",
            str(tmp_path / "root"), "--skip", "users", "--skip", "images", "--skip",
            "pip-cache", "--json"]

    def run() -> tuple[dict, list[str]]:
        for old in tmp_path.rglob("prepare-node.log"):
            old.unlink()
        res = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        log = next(tmp_path.rglob("prepare-node.log")).read_text()
        return json.loads(res.stdout), [ln.split()[2] for ln in log.split("\n")
                                        if ln.startswith("$ git ")]

    first, commands = run()
    assert first["repos"] == {"openstack/nova": "clone", "openstack/glance": "clone"}
    assert sorted(commands) == ["clone", "clone", "ls-remote", "ls-remote"]
    again, commands = run()
    assert again["repos"] == {"openstack/nova": "keep", "openstack/glance": "keep"}
    assert commands == ["ls-remote", "ls-remote"]
    manifest = cache.read_manifest(tmp_path / "root/opt/git")
    assert {r.verified_by for r in manifest.repos.values()} == {"tips"}
