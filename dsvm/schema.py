"""The settings schema: every key a profile may set, its type, default and meaning.

One top-level dict per section, owned by the phase that reads it. ``profile.py`` validates
profiles against this and fills in defaults; ``environ.py`` maps environment variables onto
the same dotted keys. Types: ``str``, ``int``, ``bool``, ``list`` (of strings), ``map``
(string → string), ``list[map]`` (list of mappings, validated by the owning phase),
``any`` (free-form YAML, validated by the owning phase).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Key:
    """One setting: type, default, what it means, allowed values, and whether it is secret."""

    type: str
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] | None = None
    secret: bool = False


TOP = {
    "description": Key("str", "", "one line saying what the profile is for"),
    "extends": Key("any", None, "profile name(s) this one builds on"),
    "projects": Key("list", [], "projects (org/name) checked out for every job of the profile"),
    "project_branches": Key("map", {}, "project → branch to check out instead of the Zuul "
                            "branch (like OVERRIDE_<PROJECT>_PROJECT_BRANCH)"),
    "clone_map": Key("map", {}, "project → destination directory (absolute, or relative to "
                     "$BASE/new)"),
}

GIT = {
    "base": Key("str", "https://opendev.org", "clone base URL for projects not in the cache "
                "(GIT_BASE)"),
    "cache": Key("str", "/opt/git", "the node's repo cache (DSVM_GIT_CACHE, --git-cache)"),
    "zuul_url": Key("str", "", "where Zuul refs are fetched from (ZUUL_URL)"),
    "timeout": Key("int", 600, "seconds one git network operation may take"),
    "attempts": Key("int", 3, "tries for a git network operation"),
    "backoff": Key("int", 5, "seconds before the first retry of a git network operation "
                   "(doubled for each further retry)"),
    "jobs": Key("int", 8, "projects the workspace phase checks out in parallel (git is mostly "
                "waiting on the network and the disk, so more than the CPUs)"),
    "error_on_clone": Key("bool", False, "Zuul v3 (--zuul-vars): a project the job needs "
                          "that Zuul did not prepare is an error, not taken from the node's "
                          "cache (devstack's ERROR_ON_CLONE)"),
}

PATHS = {
    "base": Key("str", "/opt/stack", "install root; projects land in $BASE/new (BASE)"),
    "workspace": Key("str", "", "job directory (WORKSPACE); default: the current directory"),
}

DEVSTACK = {
    "localrc": Key("map", {}, "extra localrc variables (NAME: value), after devstack-gate's"),
    "local_config": Key("str", "", "raw text appended to [[local|localrc]] "
                        "(DEVSTACK_LOCAL_CONFIG is appended after it)"),
    "post_config": Key("any", {}, "meta-sections merged into service configs: "
                       "{'$NOVA_CONF': {section: {option: value}}}"),
    "test_config": Key("any", {}, "meta-sections merged after Tempest is installed: "
                       "{'$TEMPEST_CONFIG': {section: {option: value}}}"),
    "enable_services": Key("list", [], "services added to ENABLED_SERVICES"),
    "disable_services": Key("list", [], "services removed from ENABLED_SERVICES"),
    "secrets": Key("list", ["ADMIN_PASSWORD", "DATABASE_PASSWORD", "RABBIT_PASSWORD",
                            "SERVICE_PASSWORD", "SERVICE_TOKEN"],
                   "localrc variables whose values are secret"),
    "user": Key("str", "stack", "user stack.sh runs as (never root)"),
    "dir": Key("str", "", "devstack checkout (default $BASE/new/devstack)"),
}

CINDER = {
    "backends": Key("list[map]", [], "vendor backends: name, volume_driver, type, options, "
                    "secret_options, volume_type, storage_protocol, vendor_name, inventory, "
                    "cleanup, array (docs/configure.md, docs/compliance.md)"),
    "default_volume_type": Key("str", "", "default volume type (default: first backend's)"),
    "tempest_features": Key("map", {}, "Tempest [volume-feature-enabled] flags for the "
                            "backends (manage_snapshot, manage_volume, volume_revert, "
                            "extend_attached_volume, ...); devstack leaves them False for "
                            "non-LVM backends"),
}

TEMPEST = {
    "selection": Key("str", "full", "full | smoke | all | scenario | regex | none | the name "
                     "of an entry of tempest.selections"),
    "regex": Key("str", "", "selection regex (DEVSTACK_GATE_TEMPEST_REGEX)"),
    "include": Key("list", [], "regexes of tests to include"),
    "include_file": Key("str", "", "file of include regexes, one per line"),
    "exclude": Key("list[map]", [], "tests to exclude: {regex, reason} (a reason is required)"),
    "exclude_file": Key("str", "", "file of exclude regexes, each with '# reason'"),
    "selections": Key("any", {}, "named selections: {name: {regex, include, exclude}}"),
    "concurrency": Key("int", 0, "stestr workers (TEMPEST_CONCURRENCY); unset = the number "
                       "of CPUs"),
    "serial": Key("bool", False, "run in one worker"),
    "test_timeout": Key("int", 0, "per-test timeout in seconds (OS_TEST_TIMEOUT); 0 = none"),
    "known_failures": Key("list[map]", [], "known failures: {regex, bug, on: id|traceback}"),
    "user": Key("str", "tempest", "user Tempest runs as"),
    "dir": Key("str", "", "Tempest checkout (default $BASE/new/tempest)"),
    "enabled": Key("bool", True, "run Tempest at all (DEVSTACK_GATE_TEMPEST)"),
    "stestr": Key("str", "", "stestr executable (default: the checkout's .tox/tempest venv, "
                  "then next to dsvm's Python, then PATH)"),
    "rerun_failures": Key("bool", False, "after a run with failures, re-run them serially; "
                          "those that pass are reported as flaky and only the rest fail the run"),
}

TIMEOUT = {
    "job_minutes": Key("int", 120, "the whole job's budget in minutes (BUILD_TIMEOUT ms, or "
                       "DEVSTACK_GATE_TIMEOUT minutes)"),
    "buffer_minutes": Key("int", 10, "reserved for log collection and upload "
                          "(DEVSTACK_GATE_TIMEOUT_BUFFER)"),
    "logs_minutes": Key("int", 5, "budget of the logs phase when the job failed or timed out"),
    "tests_minutes": Key("int", 0, "kept for Tempest: stack.sh is stopped (exit 124) when it "
                         "would leave less than this of the job budget; 0 = no reservation"),
}

HOOKS = {
    "pre_test": Key("any", [], "argument lists run before stack.sh (pre_test_hook)"),
    "gate": Key("any", [], "argument lists replacing devstack+tempest (gate_hook)"),
    "post_test": Key("any", [], "argument lists run after the tests (post_test_hook)"),
}

LOGS = {
    "sources": Key("list[map]", [], "extra files/dirs to collect: {src, dest}"),
    "compression": Key("str", "gzip", "gzip (text as *.txt.gz) or none",
                       choices=("gzip", "none")),
    "size_budget_mb": Key("int", 0, "largest total size of collected logs; 0 = unlimited"),
    "jobs": Key("int", 0, "compression workers; 0 = number of CPUs"),
    "publish": Key("any", {}, "rsync target: {host, user, port, path, key, url, "
                   "known_hosts, attempts, bwlimit_kbps}"),
    "secrets": Key("list", [], "extra literal values to redact", secret=True),
    "defaults": Key("bool", True, "collect devstack-gate's default sources (/var/log/..., "
                    "$BASE/new/..., /etc/<project>) besides logs.sources"),
    "snapshots": Key("bool", True, "run df/free/ps/pip freeze/dpkg -l/journalctl snapshots"),
    "gzip_level": Key("int", 6, "gzip level 1-9 (6: ~2x faster than 9, ~5% larger); "
                      "with ISA-L 1-3/4-6/7-9 map to its levels 1/2/3"),
    "gzip_engine": Key("str", "auto", "auto (ISA-L's igzip when python-isal is installed, "
                       "~10x faster, ~8% larger), isal or zlib",
                       choices=("auto", "isal", "zlib")),
    "keep": Key("int", 3, "previous logs dirs kept after rotation (logs.1 ... logs.N)"),
}

NODE = {
    "min_disk_gb": Key("int", 40, "free disk check-node requires"),
    "images": Key("list", [], "image URLs cached in devstack's files/ (besides IMAGE_URLS)"),
    "cache_max_age_hours": Key("int", 168, "git cache older than this is stale"),
    "jobs": Key("int", 4, "prepare-node parallel workers"),
    "packages": Key("list", [], "distro packages to pre-download"),
    "root": Key("str", "/", "node root every node path is under (an image chroot; tests)"),
    "files_dir": Key("str", "/opt/cache/files", "devstack's download cache (images), "
                     "hard-linked into devstack/files by the workspace phase"),
    "skip": Key("list", [], "prepare-node steps to leave out (users, repos, images, "
                "pip-cache, packages)"),
    "stackrc_projects": Key("bool", True, "also cache the projects the cached devstack's "
                            "stackrc names"),
    "get_pip_url": Key("str", "https://bootstrap.pypa.io/get-pip.py", "extra file devstack "
                       "uses from files/ ('' to skip)"),
    "download_attempts": Key("int", 3, "tries per image download"),
    "required_commands": Key("list", ["git", "sudo", "bash", "python3", "rsync"],
                             "commands check-node requires on PATH"),
    "cache_layout": Key("str", "name", "how the git cache is laid out: name "
                        "(<cache>/<org>/<name>, devstack-gate's) or canonical "
                        "(<cache>/<host>/<org>/<name>, what Zuul v3's prepare-workspace-git "
                        "seeds from); the workspace reads either",
                        choices=("name", "canonical")),
    "canonical_hostname": Key("str", "", "the projects' host for the canonical layout "
                              "(default: the host of git.base, e.g. opendev.org)"),
}

RESULTS = {
    "db": Key("str", "", "results DB URL (DSVM_RESULTS_DB); default sqlite under "
              "~/.local/share/dsvm"),
}

REPORT = {
    "ci_name": Key("str", "", "the CI's name in Gerrit comments"),
    "recheck": Key("str", "recheck", "comment that re-runs the job"),
    "contact": Key("str", "", "whom to contact about this CI"),
    "log_url": Key("str", "", "public URL prefix of published logs"),
    "voting": Key("bool", True, "the job votes; false appends (non-voting) to its line of the "
                  "review comment, as ZUUL_VOTING=0 does"),
}

COMPLIANCE = {
    "reference_job": Key("bool", False, "a reference job (Cinder's own LVM CI): LVM and "
                         "backends the profile does not declare are no violation"),
}

SECTIONS: dict[str, dict[str, Key]] = {
    "git": GIT,
    "paths": PATHS,
    "devstack": DEVSTACK,
    "cinder": CINDER,
    "tempest": TEMPEST,
    "timeout": TIMEOUT,
    "hooks": HOOKS,
    "logs": LOGS,
    "node": NODE,
    "results": RESULTS,
    "report": REPORT,
    "compliance": COMPLIANCE,
}


def key_spec(dotted: str) -> Key | None:
    """Return the Key for ``section.name`` or a top-level name, or None."""
    if "." in dotted:
        section, _, name = dotted.partition(".")
        return SECTIONS.get(section, {}).get(name)
    return TOP.get(dotted)


def all_keys() -> list[str]:
    """Every dotted key, top-level first."""
    keys = list(TOP)
    for section, spec in SECTIONS.items():
        keys.extend(f"{section}.{name}" for name in spec)
    return keys
