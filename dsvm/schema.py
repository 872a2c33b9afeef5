"""The settings schema: every key a profile may set, its type, default and meaning.

One frozen dataclass per section (``git``, ``paths``, ``tempest``, ...), each field a key whose
``Key`` (type, default, help) sits in the field's metadata: the only place defaults live.
``profile.py`` validates profiles against ``SECTIONS`` and fills in the defaults;
``environ.py`` maps environment variables onto the same dotted keys; the phases read the
resolved values through the typed views (``settings.git.timeout``), built by ``view()``.
Types: ``str``, ``int``, ``bool``, ``list`` (of strings), ``map`` (string → plain value),
``list[map]`` (list of mappings, validated by the owning phase), ``any`` (free-form YAML,
validated by the owning phase).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

T = TypeVar("T")
Strs = tuple[str, ...]
Map = Mapping[str, Any]
Maps = tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class Key:
    """One setting: type, default, what it means, allowed values, and whether it is secret."""

    type: str
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] | None = None
    secret: bool = False


def key(type_: str, default: Any, help: str, *, choices: tuple[str, ...] | None = None,
        secret: bool = False) -> Any:
    """A view field carrying its Key (no dataclass default: a view is built from settings)."""
    return field(metadata={"key": Key(type_, default, help, choices, secret)})


@dataclass(frozen=True)
class Top:
    """The top-level keys: what the profile is and which projects every job gets."""

    description: str = key("str", "", "one line saying what the profile is for")
    projects: Strs = key("list", [], "projects (org/name) checked out for every job of the profile")
    project_branches: Map = key("map", {}, "project → branch to check out instead of the Zuul "
        "branch (like OVERRIDE_<PROJECT>_PROJECT_BRANCH)")
    clone_map: Map = key("map", {}, "project → destination directory (absolute, or relative to "
        "$BASE/new)")


@dataclass(frozen=True)
class Git:
    """git.*: where repos come from and how patient git is with the network."""

    base: str = key("str", "https://opendev.org", "clone base URL for projects not in the cache "
        "(GIT_BASE)")
    cache: str = key("str", "/opt/git", "the node's repo cache (DSVM_GIT_CACHE, --git-cache)")
    zuul_url: str = key("str", "", "where Zuul refs are fetched from (ZUUL_URL)")
    timeout: int = key("int", 600, "seconds one git network operation may take")
    attempts: int = key("int", 3, "tries for a git network operation")
    backoff: int = key("int", 5, "seconds before the first retry of a git network operation "
        "(doubled for each further retry)")
    jobs: int = key("int", 8, "projects the workspace phase checks out in parallel (git is mostly "
        "waiting on the network and the disk, so more than the CPUs)")
    error_on_clone: bool = key("bool", False, "Zuul v3 (--zuul-vars): a project the job needs "
        "that Zuul did not prepare is an error, not taken from the node's cache (devstack's "
        "ERROR_ON_CLONE)")


@dataclass(frozen=True)
class Paths:
    """paths.*: the install root and the job directory."""

    base: str = key("str", "/opt/stack", "install root; projects land in $BASE/new (BASE)")
    workspace: str = key("str", "", "job directory (WORKSPACE); default: the current directory")


@dataclass(frozen=True)
class Devstack:
    """devstack.*: what local.conf gets besides devstack-gate's lines, and who runs stack.sh."""

    localrc: Map = key("map", {}, "extra localrc variables (NAME: value), after devstack-gate's")
    local_config: str = key("str", "", "raw text appended to [[local|localrc]] "
        "(DEVSTACK_LOCAL_CONFIG is appended after it)")
    post_config: Any = key("any", {}, "meta-sections merged into service configs: "
        "{'$NOVA_CONF': {section: {option: value}}}")
    test_config: Any = key("any", {}, "meta-sections merged after Tempest is installed: "
        "{'$TEMPEST_CONFIG': {section: {option: value}}}")
    enable_services: Strs = key("list", [], "services added to ENABLED_SERVICES")
    disable_services: Strs = key("list", [], "services removed from ENABLED_SERVICES")
    secrets: Strs = key("list", ["ADMIN_PASSWORD", "DATABASE_PASSWORD", "RABBIT_PASSWORD",
        "SERVICE_PASSWORD", "SERVICE_TOKEN"],
        "localrc variables whose values are secret")
    user: str = key("str", "stack", "user stack.sh runs as (never root)")
    dir: str = key("str", "", "devstack checkout (default $BASE/new/devstack)")


@dataclass(frozen=True)
class Cinder:
    """cinder.*: vendor backends and their Tempest feature flags."""

    backends: Maps = key("list[map]", [], "vendor backends: name, volume_driver, type, options, "
        "secret_options, volume_type, storage_protocol, vendor_name, inventory, cleanup, array "
        "(docs/configure.md, docs/compliance.md)")
    default_volume_type: str = key("str", "", "default volume type (default: first backend's)")
    tempest_features: Map = key("map", {}, "Tempest [volume-feature-enabled] flags for the "
        "backends (manage_snapshot, manage_volume, volume_revert, "
        "extend_attached_volume, ...); devstack leaves them False for "
        "non-LVM backends")


@dataclass(frozen=True)
class Tempest:
    """tempest.*: which tests run, how, and as whom."""

    selection: str = key("str", "full", "full | smoke | all | scenario | regex | none | the name "
        "of an entry of tempest.selections")
    regex: str = key("str", "", "selection regex (DEVSTACK_GATE_TEMPEST_REGEX)")
    include: Strs = key("list", [], "regexes of tests to include")
    include_file: str = key("str", "", "file of include regexes, one per line")
    exclude: Maps = key("list[map]", [], "tests to exclude: {regex, reason} (a reason is required)")
    exclude_file: str = key("str", "", "file of exclude regexes, each with '# reason'")
    selections: Any = key("any", {}, "named selections: {name: {regex, include, exclude}}")
    concurrency: int = key("int", 0, "stestr workers (TEMPEST_CONCURRENCY); unset = the number "
        "of CPUs")
    serial: bool = key("bool", False, "run in one worker")
    test_timeout: int = key("int", 0, "per-test timeout in seconds (OS_TEST_TIMEOUT); 0 = none")
    known_failures: Maps = key("list[map]", [], "known failures: {regex, bug, on: id|traceback}")
    user: str = key("str", "tempest", "user Tempest runs as")
    dir: str = key("str", "", "Tempest checkout (default $BASE/new/tempest)")
    enabled: bool = key("bool", True, "run Tempest at all (DEVSTACK_GATE_TEMPEST)")
    stestr: str = key("str", "", "stestr executable of the environment that imports Tempest "
        "(default: the first of tempest.venv, <checkout>/.tox/tempest, $DEST/data/venv, "
        "PATH whose python imports Tempest)")
    venv: str = key("str", "", "venv with Tempest and its plugins (its bin/stestr runs the tests)")
    rerun_failures: bool = key("bool", False, "after a run with failures, re-run them serially; "
        "those that pass are reported as flaky and only the rest fail the run")


@dataclass(frozen=True)
class Timeout:
    """timeout.*: the job's budget and how it is split."""

    job_minutes: int = key("int", 120, "the whole job's budget in minutes (BUILD_TIMEOUT ms, or "
        "DEVSTACK_GATE_TIMEOUT minutes)")
    buffer_minutes: int = key("int", 10, "reserved for log collection and upload "
        "(DEVSTACK_GATE_TIMEOUT_BUFFER)")
    logs_minutes: int = key("int", 5, "budget of the logs phase when the job failed or timed out")
    tests_minutes: int = key("int", 0, "kept for Tempest: stack.sh is stopped (exit 124) when it "
        "would leave less than this of the job budget; 0 = no reservation")


@dataclass(frozen=True)
class Hooks:
    """hooks.*: argument lists run around the phases."""

    pre_test: Any = key("any", [], "argument lists run before stack.sh (pre_test_hook)")
    gate: Any = key("any", [], "argument lists replacing devstack+tempest (gate_hook)")
    post_test: Any = key("any", [], "argument lists run after the tests (post_test_hook)")


@dataclass(frozen=True)
class Logs:
    """logs.*: what is collected, how it is compressed, where it is published."""

    sources: Maps = key("list[map]", [], "extra files/dirs to collect: {src, dest}")
    compression: str = key("str", "gzip", "gzip (text as *.txt.gz) or none",
        choices=("gzip", "none"))
    size_budget_mb: int = key("int", 0, "largest total size of collected logs; 0 = unlimited")
    jobs: int = key("int", 0, "compression workers; 0 = number of CPUs")
    publish: Any = key("any", {}, "where logs are published: one target or a list tried "
        "in order; {type: rsync, host, user, port, path, key, known_hosts, url, bwlimit_kbps}, "
        "{type: swift, container, cloud, partition, public, url}, {type: s3, endpoint, "
        "bucket, region, credentials_file, profile, url}; each also keep_days (30), "
        "when (always|failure), attempts, jobs (docs/logs.md)")
    secrets: Strs = key("list", [], "extra literal values to redact", secret=True)
    defaults: bool = key("bool", True, "collect devstack-gate's default sources (/var/log/..., "
        "$BASE/new/..., /etc/<project>) besides logs.sources")
    snapshots: bool = key("bool", True, "run df/free/ps/pip freeze/dpkg -l/journalctl snapshots")
    gzip_level: int = key("int", 6, "gzip level 1-9 (6: ~2x faster than 9, ~5% larger); "
        "with ISA-L 1-3/4-6/7-9 map to its levels 1/2/3")
    gzip_engine: str = key("str", "auto", "auto (ISA-L's igzip when python-isal is installed, "
        "~10x faster, ~8% larger), isal or zlib",
        choices=("auto", "isal", "zlib"))
    keep: int = key("int", 3, "previous logs dirs kept after rotation (logs.1 ... logs.N)")


@dataclass(frozen=True)
class Node:
    """node.*: what prepare-node caches and check-node requires."""

    min_disk_gb: int = key("int", 40, "free disk check-node requires")
    images: Strs = key("list", [], "image URLs cached in devstack's files/ (besides IMAGE_URLS)")
    cache_max_age_hours: int = key("int", 168, "git cache older than this is stale")
    jobs: int = key("int", 4, "prepare-node parallel workers")
    packages: Strs = key("list", [], "distro packages to pre-download")
    root: str = key("str", "/", "node root every node path is under (an image chroot; tests)")
    files_dir: str = key("str", "/opt/cache/files", "devstack's download cache (images), "
        "hard-linked into devstack/files by the workspace phase")
    skip: Strs = key("list", [], "prepare-node steps to leave out (users, repos, images, "
        "pip-cache, packages)")
    stackrc_projects: bool = key("bool", True, "also cache the projects the cached devstack's "
        "stackrc names")
    get_pip_url: str = key("str", "https://bootstrap.pypa.io/get-pip.py", "extra file devstack "
        "uses from files/ ('' to skip)")
    download_attempts: int = key("int", 3, "tries per image download")
    required_commands: Strs = key("list", ["git", "sudo", "bash", "python3", "rsync"],
        "commands check-node requires on PATH")
    cache_layout: str = key("str", "name", "how the git cache is laid out: name "
        "(<cache>/<org>/<name>, devstack-gate's) or canonical (<cache>/<host>/<org>/<name>, "
        "what Zuul v3's prepare-workspace-git seeds from); the workspace reads either",
        choices=("name", "canonical"))
    canonical_hostname: str = key("str", "", "the projects' host for the canonical layout "
        "(default: the host of git.base, e.g. opendev.org)")


@dataclass(frozen=True)
class Results:
    """results.*: where test results are stored."""

    db: str = key("str", "", "results DB URL (DSVM_RESULTS_DB); default sqlite under "
        "~/.local/share/dsvm")


@dataclass(frozen=True)
class Report:
    """report.*: what the review comment says."""

    ci_name: str = key("str", "", "the CI's name in Gerrit comments")
    recheck: str = key("str", "recheck", "comment that re-runs the job")
    contact: str = key("str", "", "whom to contact about this CI")
    log_url: str = key("str", "", "public URL prefix of published logs")
    voting: bool = key("bool", True, "the job votes; false appends (non-voting) to its line of "
        "the review comment, as ZUUL_VOTING=0 does")


@dataclass(frozen=True)
class Compliance:
    """compliance.*: how the job is graded against Cinder's third-party CI rules."""

    reference_job: bool = key("bool", False, "a reference job (Cinder's own LVM CI): LVM and "
        "backends the profile does not declare are no violation")


SECTION_VIEWS: dict[str, type] = {
    "git": Git,
    "paths": Paths,
    "devstack": Devstack,
    "cinder": Cinder,
    "tempest": Tempest,
    "timeout": Timeout,
    "hooks": Hooks,
    "logs": Logs,
    "node": Node,
    "results": Results,
    "report": Report,
    "compliance": Compliance,
}


def keys_of(cls: type) -> dict[str, Key]:
    """The Keys of one view's fields, in field order."""
    return {f.name: f.metadata["key"] for f in fields(cls)}


TOP: dict[str, Key] = {**keys_of(Top),
                       "extends": Key("any", None, "profile name(s) this one builds on")}
SECTIONS: dict[str, dict[str, Key]] = {name: keys_of(cls) for name, cls in SECTION_VIEWS.items()}


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


def _typed(spec: Key, value: Any) -> Any:
    """A resolved value in its view type: None is the default, lists become tuples."""
    if value is None:
        value = spec.default
    if spec.type == "str":
        return "" if value is None else str(value)
    if spec.type == "int":
        return int(value)
    if spec.type == "bool":
        return bool(value)
    if spec.type == "list":
        return tuple(str(v) for v in value)
    if spec.type == "list[map]":
        return tuple(value)
    if spec.type == "map":
        return dict(value)
    return value


def view(cls: type[T], section: str, lookup: Callable[[str], Any]) -> T:
    """Build the frozen view ``cls`` of one section from resolved values (``lookup(dotted)``)."""
    prefix = f"{section}." if section else ""
    return cls(**{name: _typed(spec, lookup(prefix + name))
                  for name, spec in keys_of(cls).items()})
