"""check-node: facts about a node turned into one verdict per check, each failure with its fix.

Disk, /dev/kvm, not a container, the stack/tempest users and their sudo rules, the git cache
(complete for the profile, fresh) and its images, required commands. Every path sits under
``node.root`` and every fact comes from ``node.NodeFacts``, so tests run this code against a
fake root. It never changes the node (``node.py``'s prepare-node does).
"""

from __future__ import annotations

import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dsvm import cache, node
from dsvm.errors import InfraError
from dsvm.phase import JobContext, PhaseResult
from dsvm.profile import Settings


@dataclass(frozen=True)
class Check:
    """One preflight verdict; ``fix`` says what to do when it failed."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None


def container_kind(root: Path) -> str | None:
    """The container technology the node runs in (lxc, docker, …), or None for a VM/metal."""
    def read(rel: str) -> str:
        try:
            return (node.under(root, rel)).read_text(errors="replace")
        except OSError:
            return ""

    declared = read("/run/systemd/container").strip()
    if declared:
        return declared
    for item in read("/proc/1/environ").split("\0"):
        if item.startswith("container=") and item[len("container="):]:
            return item[len("container="):]
    if node.under(root, "/.dockerenv").exists():
        return "docker"
    if node.under(root, "/run/.containerenv").exists():
        return "podman"
    for line in read("/proc/1/cgroup").split("\n"):
        path = line.split(":", 2)[-1]
        for marker, kind in (("/lxc/", "lxc"), ("/lxc.payload", "lxc"), ("/docker", "docker"),
                             ("/kubepods", "kubernetes"), ("/libpod", "podman")):
            if marker in path:
                return kind
    return None


def _check_disk(settings: Settings, paths: node.NodePaths, facts: node.NodeFacts) -> Check:
    need = settings.node.min_disk_gb
    free = facts.disk_free(paths.base)
    ok = free >= need * node.GiB
    return Check("disk", ok, f"{free / node.GiB:.1f} GB free under {paths.base} (need {need} GB)",
                 None if ok else f"grow the disk or free space under {paths.base}; devstack "
                 f"and Tempest need about {need} GB (node.min_disk_gb)")


def _check_kvm(paths: node.NodePaths) -> Check:
    kvm = node.under(paths.root, "/dev/kvm")
    fix = ("enable hardware virtualisation (nested virt on the hypervisor) so /dev/kvm exists "
           "and is read/writable, or run with LIBVIRT_TYPE=qemu (much slower)")
    try:
        mode = kvm.stat().st_mode
    except OSError:
        return Check("kvm", False, f"{kvm} is missing", fix)
    if not stat.S_ISCHR(mode):
        return Check("kvm", False, f"{kvm} is not a character device", fix)
    if not os.access(kvm, os.R_OK | os.W_OK):
        return Check("kvm", False, f"{kvm} is not read/writable", fix)
    return Check("kvm", True, f"{kvm} is usable")


def _check_container(paths: node.NodePaths) -> Check:
    kind = container_kind(paths.root)
    if kind:
        return Check("container", False, f"running inside a container ({kind})",
                     "devstack cannot run in a container (it manages kernel modules, LVM, "
                     "iSCSI and OVS): use a VM or bare-metal node")
    return Check("container", True, "not a container")


def _check_users(settings: Settings, paths: node.NodePaths, facts: node.NodeFacts) -> list[Check]:
    users = node.passwd_entries(paths.root)
    stack_user = settings.devstack.user or "stack"  # '' runs as the current user: the
    tempest_user = settings.tempest.user or "tempest"  # node still needs the users
    absent = [u for u in (stack_user, tempest_user) if u not in users]
    out = [Check("users", not absent,
                 f"missing: {', '.join(absent)}" if absent else f"{stack_user}, {tempest_user}",
                 "run 'dsvm prepare-node' (step users)" if absent else None)]
    problems = []
    if not facts.which("sudo"):
        problems.append("sudo is not installed")
    for name, rule in ((node.STACK_SUDOERS, node.STACK_RULE.format(user=stack_user)),
                       (node.TEMPEST_SUDOERS, node.TEMPEST_RULE.format(user=tempest_user))):
        f = paths.sudoers_dir / name
        try:
            text, mode = f.read_text(), stat.S_IMODE(f.stat().st_mode)
        except OSError:
            problems.append(f"{f} missing")
            continue
        if rule.strip() not in text:
            problems.append(f"{f} lacks '{rule.strip()}'")
        if mode & 0o022:
            problems.append(f"{f} is group/world-writable (sudo ignores it)")
    out.append(Check("sudo", not problems, "; ".join(problems) or "sudo rules in place",
                     "install sudo and run 'dsvm prepare-node' (step users)" if problems
                     else None))
    return out


def _check_cache(settings: Settings, paths: node.NodePaths, facts: node.NodeFacts) -> list[Check]:
    fix = f"run 'dsvm prepare-node' (git cache {paths.git_cache})"
    try:
        manifest = cache.read_manifest(paths.git_cache)
    except InfraError as exc:
        return [Check("git-cache", False, exc.message, fix)]
    if manifest is None:
        found = node.cache_layout(paths.cache_root or paths.git_cache)
        if found is not None:  # a cache with the other layout
            fix = (f"the cache has the {node.layout_text(*found)}: set node.cache_layout: "
                   f"{found[0]}, or run 'dsvm prepare-node' for layout {paths.layout}")
        return [Check("git-cache", False, f"no manifest in {paths.git_cache}", fix),
                Check("images", False, "no manifest, so no record of cached images", fix)]
    wanted = node.required_projects(settings)
    gone = [p for p in wanted if p not in manifest.repos
            or not (cache.repo_path(paths.git_cache, p) / ".git" / "HEAD").is_file()
            or (cache.repo_path(paths.git_cache, p) / ".git" / cache.INCOMPLETE_MARK).exists()]
    out = [Check("git-cache", not gone,
                 f"missing or incomplete: {', '.join(gone)}" if gone
                 else f"{len(wanted)} profile project(s) cached, {len(manifest.repos)} in all; "
                 f"{node.layout_text(paths.layout, paths.git_cache)}",
                 fix if gone else None)]
    age_h = manifest.age_seconds(facts.now()) / 3600
    limit = settings.node.cache_max_age_hours
    fresh = not limit or age_h <= limit
    out.append(Check("git-cache-age", fresh,
                     f"written {age_h:.1f} h ago (limit {limit} h)",
                     None if fresh else "rebuild the node image (dsvm prepare-node)"))
    out.append(_check_images(manifest, fix))
    return out


def _check_images(manifest: cache.Manifest, fix: str) -> Check:
    files_dir = Path(manifest.images_dir)
    bad = [n for n, rec in manifest.images.items()
           if not (files_dir / n).is_file() or (files_dir / n).stat().st_size != rec.get("size")]
    bad += list(manifest.images_missing)
    if not manifest.images and not bad:
        return Check("images", False, f"no images cached in {files_dir or '?'}", fix)
    return Check("images", not bad,
                 f"missing or wrong size: {', '.join(sorted(bad))}" if bad
                 else f"{len(manifest.images)} file(s) in {files_dir}", fix if bad else None)


def _check_commands(settings: Settings, facts: node.NodeFacts) -> Check:
    wanted = list(settings.node.required_commands)
    absent = [c for c in wanted if not facts.which(c)]
    return Check("commands", not absent,
                 f"not on PATH: {', '.join(absent)}" if absent else ", ".join(wanted),
                 f"install {' '.join(absent)} (apt-get install …)" if absent else None)


def check(settings: Settings, facts: node.NodeFacts) -> list[Check]:
    """Every preflight verdict for this node, in a stable order."""
    paths = node.NodePaths.from_settings(settings)
    return [_check_disk(settings, paths, facts), _check_kvm(paths), _check_container(paths),
            *_check_users(settings, paths, facts), *_check_cache(settings, paths, facts),
            _check_commands(settings, facts)]


def checks_json(checks: list[Check]) -> dict[str, Any]:
    """``{"ok": bool, "checks": [{"name", "ok", "detail", "fix"}]}`` (stable)."""
    return {"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}


def run_phase(ctx: JobContext, facts: node.NodeFacts | None = None) -> PhaseResult:
    """check-node as a phase: exit 0 when every check passes, 3 otherwise (nothing raised)."""
    facts = facts or node.NodeFacts.real(ctx.settings.node.root or "/")
    checks = check(ctx.settings, facts)
    data = checks_json(checks)
    failed = [c.name for c in checks if not c.ok]
    return PhaseResult("check-node", 0 if data["ok"] else 3, data,
                       "all checks passed" if not failed else f"failed: {', '.join(failed)}")
