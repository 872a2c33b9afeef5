"""Publishing a logs dir: rsync over ssh to the operator's log server under Zuul's LOG_PATH.

``target`` validates the profile's ``logs.publish`` mapping and the job's LOG_PATH into a
frozen ``PublishTarget`` (pure); ``publish`` runs one rsync argv list through ``proc`` with
retries and ``--partial``, so a re-run after an interrupted upload completes it. Untrusted
values (ZUUL_*, LOG_PATH) are validated segment by segment and never meet a shell: rsync's
``--secluded-args`` keeps the remote path away from the remote shell too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsvm import proc
from dsvm.errors import Problem, UsageError

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")
_HOST = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\])$")
_USER = re.compile(r"^[a-z_][a-z0-9_.-]*$", re.IGNORECASE)
# rsync exit codes worth another try: socket/protocol/IO/partial/timeouts, ssh's 255.
TRANSIENT = {5, 10, 11, 12, 23, 30, 35, 255}


@dataclass(frozen=True)
class PublishTarget:
    """Where and how to upload: ``user@host:path/log_path`` with this key; the public URL."""

    host: str
    user: str
    port: int
    path: str
    log_path: str
    key: str
    known_hosts: str
    url: str
    attempts: int = 3
    bwlimit_kbps: int = 0

    @property
    def remote(self) -> str:
        """The rsync destination (a directory)."""
        user = f"{self.user}@" if self.user else ""
        return f"{user}{self.host}:{self.path.rstrip('/')}/{self.log_path}/"

    @property
    def public_url(self) -> str:
        """The URL to put in the Gerrit comment ('' when no url is configured)."""
        return f"{self.url.rstrip('/')}/{self.log_path}/" if self.url else ""


def is_configured(publish: Any) -> bool:
    """True when the profile's ``logs.publish`` names a host."""
    return isinstance(publish, Mapping) and bool(publish.get("host"))


def log_path(env: Mapping[str, str]) -> str:
    """LOG_PATH, or Zuul's convention built from ZUUL_*; UsageError when neither is possible.

    ``<change[-2:]>/<change>/<patchset>/<pipeline>/<job>/<uuid[:7]>`` for a change,
    ``<pipeline>/<project>/<job>/<uuid[:7]>`` for a ref (periodic, post).
    """
    given = env.get("LOG_PATH", "").strip("/")
    if given:
        return _checked("LOG_PATH", given)
    uuid = (env.get("ZUUL_UUID") or "")[:7]
    job = env.get("JOB_NAME") or env.get("ZUUL_JOB") or ""
    pipeline = env.get("ZUUL_PIPELINE") or "check"
    change, patchset = env.get("ZUUL_CHANGE", ""), env.get("ZUUL_PATCHSET", "")
    if change and patchset and uuid and job:
        return _checked("ZUUL_*", f"{change[-2:]}/{change}/{patchset}/{pipeline}/{job}/{uuid}")
    project = env.get("ZUUL_PROJECT", "")
    if project and uuid and job:
        return _checked("ZUUL_*", f"{pipeline}/{project}/{job}/{uuid}")
    raise UsageError("cannot tell where to publish: LOG_PATH is not set and ZUUL_CHANGE/"
                     "ZUUL_PATCHSET (or ZUUL_PROJECT), ZUUL_UUID and JOB_NAME are incomplete",
                     hint="export LOG_PATH=<path under the log server's root>, or pass "
                          "--log-path")


def _checked(where: str, path: str) -> str:
    parts = path.strip("/").split("/")
    bad = [p for p in parts if not _SEGMENT.match(p) or p in (".", "..")]
    if bad:
        raise UsageError(f"{where}: unsafe log path segment {bad[0]!r} in {path!r}",
                         hint="letters, digits and . _ @ + - only; no '..'")
    return "/".join(parts)


def target(publish: Mapping[str, Any], env: Mapping[str, str],
           log_path_override: str | None = None) -> PublishTarget:
    """Validate ``logs.publish`` and the log path into a PublishTarget (every problem listed)."""
    problems: list[Problem] = []
    where = "logs.publish"
    host = str(publish.get("host") or "")
    user = str(publish.get("user") or "")
    path = str(publish.get("path") or "")
    key = str(publish.get("key") or "")
    known_hosts = str(publish.get("known_hosts") or "")
    if not _HOST.match(host):
        problems.append(Problem(f"{where}.host", f"not a host name: {host!r}"))
    if user and not _USER.match(user):
        problems.append(Problem(f"{where}.user", f"not a user name: {user!r}"))
    if not path.startswith("/"):
        problems.append(Problem(f"{where}.path", "must be an absolute directory on the server"))
    for name, value in (("key", key), ("known_hosts", known_hosts), ("path", path)):
        if value and re.search(r"[\s'\"\\]", value):
            problems.append(Problem(f"{where}.{name}", "must not contain spaces or quotes"))
    try:
        port = int(publish.get("port") or 22)
    except (TypeError, ValueError):
        problems.append(Problem(f"{where}.port", "must be a number"))
        port = 22
    if problems:
        raise UsageError("bad logs.publish in the profile", problems=problems)
    lp = _checked("--log-path", log_path_override.strip("/")) if log_path_override \
        else log_path(env)
    return PublishTarget(host=host, user=user, port=port, path=path, log_path=lp, key=key,
                         known_hosts=known_hosts, url=str(publish.get("url") or ""),
                         attempts=int(publish.get("attempts") or 3),
                         bwlimit_kbps=int(publish.get("bwlimit_kbps") or 0))


def argv(t: PublishTarget, logs_dir: Path) -> list[str]:
    """The rsync argument list (pure): contents of ``logs_dir`` into the remote directory."""
    ssh = ["ssh", "-p", str(t.port), "-o", "BatchMode=yes", "-o", "ConnectTimeout=20",
           "-o", "ServerAliveInterval=15", "-o", "StrictHostKeyChecking=accept-new"]
    if t.key:
        ssh += ["-i", t.key, "-o", "IdentitiesOnly=yes"]
    if t.known_hosts:
        ssh += ["-o", f"UserKnownHostsFile={t.known_hosts}"]
    cmd = ["rsync", "-rlt", "--chmod=D755,F644", "--partial", "--mkpath", "-s",
           "--timeout=120", "-e", " ".join(ssh)]
    if t.bwlimit_kbps:
        cmd.append(f"--bwlimit={t.bwlimit_kbps}")
    return [*cmd, "--", f"{str(logs_dir).rstrip('/')}/", t.remote]


def publish(t: PublishTarget, logs_dir: Path, runner: proc.Runner,
            timeout: float | None = None) -> proc.Result:
    """Upload ``logs_dir``; return the rsync Result; raise CommandFailed after the retries."""
    return runner.run(argv(t, logs_dir), desc=f"publish logs to {t.host}", timeout=timeout,
                      attempts=max(1, t.attempts), backoff=2.0,
                      retry_if=lambda r: r.exit_code in TRANSIENT,
                      hint="check logs.publish (host, key) and that the server accepts the key; "
                           "re-running resumes a partial upload")
