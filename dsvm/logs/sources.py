"""What a job's logs are made of: the source table (devstack-gate's, §7.1) and stored names.

Pure data and pure functions: a ``Source`` says where something is on the node and under which
name it lands in ``$WORKSPACE/logs``; ``stored_name`` applies devstack-gate's renames
(``kern.log`` → ``kern_log.txt``, ``*.log`` → ``*.txt``, configs get ``.txt``). Nothing here
touches the disk or runs a command.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dsvm.errors import Problem, UsageError

# How a source's files are renamed (devstack-gate cleanup_host, §7.1 "Post-processing" 3).
RENAMES = ("file", "log", "config", "keep")


@dataclass(frozen=True)
class Source:
    """One file, directory or glob to collect, and where it lands under the logs dir."""

    src: str  # absolute path on the node; may hold $BASE and a glob in the last part
    dest: str  # relative path in the logs dir ("" = top level for a directory)
    rename: str = "log"  # file | log | config | keep
    why: str = "devstack-gate default"


def _s(src: str, dest: str, rename: str = "log") -> Source:
    return Source(src, dest, rename)


# devstack-gate's cleanup_host table (spec §7.1), grenade-only rows left out. Missing sources
# are normal (not every node runs every service) and are listed in the manifest, not errors.
DEFAULT_SOURCES: tuple[Source, ...] = (
    _s("/var/log/apache2", "apache"),
    _s("/var/log/httpd", "apache"),
    _s("/var/log/rabbitmq", "rabbitmq"),
    _s("/var/log/postgresql/*log", "postgres.log"),
    _s("/var/log/mysql", "mysql"),
    _s("/var/log/libvirt", "libvirt"),
    _s("/etc/sudoers.d", "sudoers.d", "config"),
    _s("/etc/sudoers", "sudoers.txt", "file"),
    _s("/etc/openstack", "etc/openstack", "config"),
    _s("/etc/apache2/sites-enabled", "apache_config", "config"),
    _s("/etc/apache2/conf.d", "apache_config", "config"),
    _s("/etc/httpd/conf.d", "apache_config", "config"),
    _s("$BASE/new/screen-logs", ""),
    _s("$BASE/logs/stack.sh.log", "stack.sh.log"),
    _s("$BASE/logs/stack.sh.log.summary", "stack.sh.summary.log"),
    _s("$BASE/new/devstacklog.txt", "devstacklog.txt"),
    _s("$BASE/new/devstacklog.txt.summary", "devstacklog.summary.txt"),
    _s("$BASE/new/devstack/localrc", "localrc.txt", "file"),
    _s("$BASE/new/devstack/local.conf", "local.conf.txt", "file"),
    _s("$BASE/new/devstack/tempest.log", "verify_tempest_conf.log"),
    _s("/var/log/syslog", "syslog.txt", "file"),
    _s("/var/log/kern.log", "kern_log.txt", "file"),
    _s("$BASE/status/stack/*.failure", "status", "config"),
    _s("$BASE/new/ironic-bm-logs", "ironic-bm-logs"),
    _s("$BASE/new/tempest/etc/tempest.conf", "tempest_conf.txt", "file"),
    _s("$BASE/new/tempest/etc/accounts.yaml", "accounts_yaml.txt", "file"),
    _s("$BASE/new/dstat-csv.log", "dstat-csv_log.txt", "file"),
    _s("$BASE/new/tempest/tempest.log", "tempest.log"),
    _s("/var/log/ceph", "ceph"),
    _s("/etc/ceph/ceph.conf", "ceph_conf.txt", "file"),
    _s("/var/log/openvswitch", "openvswitch"),
    _s("/var/log/glusterfs", "glusterfs"),
    _s("/etc/glusterfs/glusterd.vol", "glusterd.vol", "keep"),
    _s("/etc/resolv.conf", "resolv_conf.txt", "file"),
    _s("/var/log/unbound.log", "unbound_log.txt", "file"),
)

# /etc/<basename> of every project is collected as etc/<basename>/ (spec §7.1).
_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def project_sources(projects: Iterable[str]) -> list[Source]:
    """``/etc/<name>`` → ``etc/<name>/`` for each project (org/name) with a safe name."""
    out = []
    for project in projects:
        name = str(project).rstrip("/").rsplit("/", 1)[-1]
        if _SAFE_PART.match(name) and name not in ("openstack",):
            out.append(Source(f"/etc/{name}", f"etc/{name}", "config"))
    return out


def profile_sources(entries: Any, where: str = "logs.sources") -> list[Source]:
    """The profile's ``logs.sources`` ({src, dest, rename}) as Sources; UsageError if bad."""
    problems: list[Problem] = []
    out: list[Source] = []
    for i, entry in enumerate(entries or []):
        at = f"{where}[{i}]"
        if not isinstance(entry, Mapping) or not entry.get("src"):
            problems.append(Problem(at, "needs at least 'src' (and usually 'dest')",
                                    hint="e.g. {src: /var/log/acme, dest: acme}"))
            continue
        src = str(entry["src"])
        dest = str(entry.get("dest") or posixpath.basename(src.rstrip("/")))
        rename = str(entry.get("rename") or "log")
        if not (src.startswith("/") or src.startswith("$BASE")):
            problems.append(Problem(at, f"src must be absolute: {src!r}"))
        if rename not in RENAMES:
            problems.append(Problem(at, f"rename must be one of {', '.join(RENAMES)}"))
        if not is_safe_relpath(dest, allow_empty=True):
            problems.append(Problem(at, f"dest must be a relative path inside the logs dir: "
                                        f"{dest!r}"))
        out.append(Source(src, dest, rename, why=at))
    if problems:
        raise UsageError(f"bad {where} in the profile", problems=problems)
    return out


def is_safe_relpath(path: str, allow_empty: bool = False) -> bool:
    """True for a relative path with no ``..``, no absolute part and no empty segment."""
    if path in ("", "."):
        return allow_empty
    if path.startswith("/") or "\\" in path or "\x00" in path:
        return False
    parts = path.rstrip("/").split("/")
    return all(p not in ("", ".", "..") for p in parts)


def expand_base(src: str, base: str) -> str:
    """Replace ``$BASE``/``${BASE}`` in a source path by the job's install root."""
    return src.replace("${BASE}", base).replace("$BASE", base)


def stored_name(rel: str, rename: str) -> str:
    """The name a file gets in the logs dir (devstack-gate's renames), before compression.

    ``file``: a single file saved under ``rel``: if it does not end in ``.txt``, its first
    ``.`` becomes ``_`` and ``.txt`` is appended (``save_file``). ``log``: the first ``.log``
    in the name becomes ``.txt``. ``config``: ``.txt`` is appended. ``keep``: unchanged.
    """
    head, _, name = rel.rpartition("/")
    if rename == "file" and not name.endswith(".txt"):
        name = name.replace(".", "_", 1) + ".txt"
    elif rename == "log":
        if ".log" in name:
            name = name.replace(".log", ".txt", 1)
    elif rename == "config" and not name.endswith(".txt"):
        name += ".txt"
    return f"{head}/{name}" if head else name
