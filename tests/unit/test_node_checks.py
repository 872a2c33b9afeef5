"""Pure parts of node/cache/images, and check-node against fake node roots with injected facts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dsvm import cache, images, node, node_checks, profile
from dsvm.errors import UsageError

SHA = "a" * 40


@pytest.mark.parametrize("name", ["../etc", "/abs/x", "-rf/x", "a b/c", "a/.git", "a/..", ""])
def test_bad_project_names_are_refused(name):
    with pytest.raises(UsageError):
        cache.validate_project(name)


@pytest.mark.parametrize("exists,complete,local,recorded,action", [
    (False, False, {}, None, "clone"),
    (True, False, {}, None, "reclone"),
    (True, True, {"refs/heads/master": "0" * 40}, "rec", "update"),
    (True, True, {"refs/heads/master": SHA}, None, "update"),
    (True, True, {"refs/heads/master": SHA}, "rec", "keep"),
])
def test_plan_repo(exists, complete, local, recorded, action):
    up = cache.Upstream("o/p", "file:///u/o/p", {"refs/heads/master": SHA}, "master")
    state = cache.RepoState("o/p", Path("/c/o/p"), exists, complete, local)
    rec = cache.RepoRecord("o/p", "file:///u/o/p", "/c/o/p", SHA, "master", 1, 0, 1, "t", "t") \
        if recorded else None
    assert cache.plan_repo(up, state, rec).action == action


def test_redact_url():
    assert cache.redact_url("https://u:pw@host/x") == "https://host/x"


def test_stackrc_projects():
    text = ('NOVA_REPO=${NOVA_REPO:-${GIT_BASE}/openstack/nova.git}\n'
            'GITREPO["oslo.db"]=${OSLODB_REPO:-${GIT_BASE}/openstack/oslo.db.git}\n'
            'X_REPO=${X_REPO:-https://github.com/other/x.git}\n')
    assert node.stackrc_projects(text) == ["openstack/nova", "openstack/oslo.db"]


def test_image_sources_dedupe_by_name_and_drop_unexpanded():
    srcs, notes = images.sources_from_urls(["http://a/c.img", "http://b/c.img",
                                            "http://a/${X}.img", "ftp://a/d.img"])
    assert [s.url for s in srcs] == ["http://a/c.img"] and len(notes) == 2


def test_parse_sums_and_headers():
    assert images.parse_sums(f"{SHA[:32]}  a.img\n{SHA[:32]} *b.img\n") == {
        "a.img": SHA[:32], "b.img": SHA[:32]}
    assert images.total_from_headers(206, {"Content-Range": "bytes 5-9/10"}) == 10
    assert images.total_from_headers(200, {"Content-Length": "7"}) == 7


# -- container detection, from /proc files copied into fake roots -----------------------------

@pytest.mark.parametrize("files,kind", [
    ({"proc/1/environ": "PATH=/bin\0container=lxc\0"}, "lxc"),
    ({"proc/1/cgroup": "12:pids:/lxc/ci-node\n"}, "lxc"),
    ({"proc/1/cgroup": "0::/system.slice/docker-abc.scope\n"}, "docker"),
    ({"run/systemd/container": "systemd-nspawn\n"}, "systemd-nspawn"),
    ({"proc/1/cgroup": "0::/init.scope\n", "proc/1/environ": "TERM=linux\0"}, None),
])
def test_container_detection(tmp_path, files, kind):
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert node_checks.container_kind(tmp_path) == kind


def test_a_copy_of_this_machines_files_gives_the_same_verdict(tmp_path):
    for rel in ("proc/1/cgroup", "proc/1/environ", "run/systemd/container", ".dockerenv",
                "run/.containerenv"):
        try:
            data = Path("/", rel).read_bytes()
        except OSError:
            continue
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    assert node_checks.container_kind(tmp_path) == node_checks.container_kind(Path("/"))


# -- check-node on fake roots -----------------------------------------------------------------

def facts(root: Path, free_gb: int = 100, now: float | None = None) -> node.NodeFacts:
    return node.NodeFacts(root=root, euid=0, disk_free=lambda p: free_gb << 30,
                          which=lambda c: f"/usr/bin/{c}",
                          now=(lambda: now) if now else __import__("time").time)


def settings(root: Path, **opts):
    return profile.resolve("base", env={}, options={"node.root": str(root), **opts})


def healthy_root(root: Path) -> None:
    s = settings(root)
    (root / "etc/sudoers.d").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/bash\n"
                                     "stack:x:1001:1001::/opt/stack/new:/bin/bash\n"
                                     "tempest:x:1002:1002::/home/tempest:/bin/bash\n")
    for name, rule in ((node.STACK_SUDOERS, node.STACK_RULE.format(user="stack")),
                       (node.TEMPEST_SUDOERS, node.TEMPEST_RULE.format(user="tempest"))):
        (root / "etc/sudoers.d" / name).write_text(rule)
        (root / "etc/sudoers.d" / name).chmod(0o440)
    (root / "dev").mkdir()
    (root / "dev/kvm").symlink_to("/dev/null")  # a real, usable character device
    files = root / "opt/cache/files"
    files.mkdir(parents=True)
    (files / "cirros.img").write_bytes(b"abc")
    repos = {}
    for p in s.get("projects"):
        (root / "opt/git" / p / ".git").mkdir(parents=True)
        (root / "opt/git" / p / ".git/HEAD").write_text("ref: refs/heads/master\n")
        repos[p] = cache.RepoRecord(p, "u", "p", SHA, "master", 1, 0, 1, "t", "t")
    cache.write_manifest(root / "opt/git", cache.Manifest(
        written_at=cache.now_iso(), git_base="u", repos=repos, images_dir=str(files),
        images={"cirros.img": {"url": "http://x/cirros.img", "size": 3}}))


def test_healthy_fake_node_passes_every_check(tmp_path):
    healthy_root(tmp_path)
    checks = node_checks.check(settings(tmp_path), facts(tmp_path))
    assert [(c.name, c.ok) for c in checks if not c.ok] == []
    assert [c.name for c in checks] == ["disk", "kvm", "container", "users", "sudo",
                                        "git-cache", "git-cache-age", "images", "commands"]


def test_empty_root_fails_with_a_fix_for_each(tmp_path):
    checks = node_checks.check(settings(tmp_path), facts(tmp_path, free_gb=10))
    failed = {c.name: c for c in checks if not c.ok}
    assert set(failed) == {"disk", "kvm", "users", "sudo", "git-cache", "images"}
    assert all(c.fix for c in failed.values())
    assert "10.0 GB free" in failed["disk"].detail


def test_stale_cache_incomplete_repo_wrong_image_and_lxc(tmp_path):
    healthy_root(tmp_path)
    (tmp_path / "opt/git/openstack/nova/.git" / cache.INCOMPLETE_MARK).write_text("x")
    (tmp_path / "opt/cache/files/cirros.img").write_bytes(b"abcd")
    (tmp_path / "proc/1").mkdir(parents=True)
    (tmp_path / "proc/1/environ").write_text("container=lxc\0")
    late = __import__("time").time() + 200 * 3600
    failed = {c.name: c for c in node_checks.check(settings(tmp_path), facts(tmp_path, now=late))
              if not c.ok}
    assert set(failed) == {"git-cache", "git-cache-age", "images", "container"}
    assert "openstack/nova" in failed["git-cache"].detail
    assert "lxc" in failed["container"].detail


def test_kvm_that_is_a_plain_file_fails(tmp_path):
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/kvm").write_text("")
    kvm = [c for c in node_checks.check(settings(tmp_path), facts(tmp_path)) if c.name == "kvm"][0]
    assert not kvm.ok and "not a character device" in kvm.detail


def test_unknown_skip_step_is_bad_usage(tmp_path):
    with pytest.raises(UsageError, match="unknown step"):
        node.plan_prepare(settings(tmp_path, **{"node.skip": ["bogus"]}), facts(tmp_path))


def test_check_node_cli_json_contract(tmp_path):
    healthy_root(tmp_path)
    res = subprocess.run([sys.executable, "-m", "dsvm", "check-node", "--root", str(tmp_path),
                          "--json"], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "DSVM_PROFILE": "base"}, timeout=60)
    data = json.loads(res.stdout)
    assert set(data) == {"ok", "checks"}
    assert all(set(c) == {"name", "ok", "detail", "fix"} for c in data["checks"])
    assert res.returncode == (0 if data["ok"] else 3)
