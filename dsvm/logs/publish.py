"""Publishing a logs dir: rsync over ssh to the operator's log server under Zuul's LOG_PATH.

``target`` validates the profile's ``logs.publish`` mapping and the job's LOG_PATH into a
frozen ``PublishTarget`` (pure); ``publish`` runs one rsync argv list through ``proc`` with
retries and ``--partial``, so a re-run after an interrupted upload completes it. Untrusted
values (ZUUL_*, LOG_PATH) are validated segment by segment and never meet a shell: rsync's
``--secluded-args`` keeps the remote path away from the remote shell too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsvm import proc, secrets
from dsvm.errors import Problem, UsageError
from dsvm.logs import objstore

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


# --------------------------------------------------------------------------------------------
# logs.publish: one target or a failover list of rsync / swift / s3 targets

TYPES = ("rsync", "swift", "s3")
WHEN = ("always", "failure")
COMMON_KEYS = {"type", "keep_days", "when", "attempts", "jobs", "url"}
RSYNC_KEYS = COMMON_KEYS | {"host", "user", "port", "path", "key", "known_hosts",
                            "bwlimit_kbps"}
SWIFT_KEYS = COMMON_KEYS | {"container", "cloud", "partition", "public", "region_name",
                            "interface"}
S3_KEYS = COMMON_KEYS | {"endpoint", "bucket", "region", "credentials_file", "profile"}
_CONTAINER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
CLOUDS_YAML = ("clouds.yaml", "~/.config/openstack/clouds.yaml", "/etc/openstack/clouds.yaml")


@dataclass(frozen=True)
class Target:
    """One validated ``logs.publish`` entry: where (never with credentials) and how."""

    kind: str  # rsync | swift | s3
    where: str  # for messages: host/container/bucket, no credentials
    log_path: str
    keep_days: int = 30
    when: str = "always"
    attempts: int = 3
    jobs: int = 8
    rsync: PublishTarget | None = None
    store: Callable[[], objstore.Store] | None = field(default=None, repr=False,
                                                       compare=False)
    prefix: str = ""  # the object prefix (the log path, less a partition's segment)
    secrets: tuple[str, ...] = field(default=(), repr=False, compare=False)


def is_configured(publish: Any) -> bool:
    """True when the profile's ``logs.publish`` names at least one target."""
    if isinstance(publish, list):
        return any(is_configured(p) for p in publish)
    return isinstance(publish, Mapping) and bool(publish.get("host") or publish.get("type"))


def targets(publish: Any, env: Mapping[str, str],
            log_path_override: str | None = None) -> list[Target]:
    """Validate ``logs.publish`` (a mapping or a list tried in order) into Targets; every
    problem of every entry is reported at once (UsageError: exit 2)."""
    entries = publish if isinstance(publish, list) else [publish]
    problems: list[Problem] = []
    out: list[Target] = []
    lp = ""
    try:
        lp = _checked("--log-path", log_path_override.strip("/")) if log_path_override \
            else log_path(env)
    except UsageError as exc:
        problems.append(Problem("LOG_PATH", exc.message, exc.hint))
    for i, entry in enumerate(entries):
        where = "logs.publish" if not isinstance(publish, list) else f"logs.publish[{i}]"
        if not isinstance(entry, Mapping):
            problems.append(Problem(where, "must be a mapping (type: rsync|swift|s3, ...)"))
            continue
        kind = str(entry.get("type") or ("rsync" if entry.get("host") else ""))
        if kind not in TYPES:
            problems.append(Problem(f"{where}.type", f"unknown publish type {kind!r}",
                                    "one of: " + ", ".join(TYPES)))
            continue
        allowed = {"rsync": RSYNC_KEYS, "swift": SWIFT_KEYS, "s3": S3_KEYS}[kind]
        for key in sorted(set(map(str, entry)) - allowed):
            hint = "credentials come from the environment or a file, never the profile" \
                if secrets.is_secret_name(key) else "known: " + ", ".join(sorted(allowed))
            problems.append(Problem(f"{where}.{key}", f"not a {kind} publish setting", hint))
        common = _common(entry, where, problems)
        found = len(problems)
        if kind == "rsync":
            target_ = _rsync(entry, where, lp, common, problems)
        elif kind == "swift":
            target_ = _swift(entry, where, lp, common, env, problems)
        else:
            target_ = _s3(entry, where, lp, common, env, problems)
        if target_ is not None and len(problems) == found:
            out.append(target_)
    if problems:
        raise UsageError("bad logs.publish in the profile", problems=problems)
    return out


def _common(entry: Mapping[str, Any], where: str, problems: list[Problem]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, default in (("keep_days", 30), ("attempts", 3), ("jobs", 8)):
        try:
            value = entry.get(key)
            out[key] = int(value if value is not None else default)
        except (TypeError, ValueError):
            problems.append(Problem(f"{where}.{key}", "must be a number"))
            out[key] = default
            continue
        if out[key] <= 0:
            why = "logs would expire at once" if key == "keep_days" else "must be at least 1"
            problems.append(Problem(f"{where}.{key}", f"{out[key]} refused: {why}",
                                    f"a positive number (default {default})"))
    out["when"] = str(entry.get("when") or "always")
    if out["when"] not in WHEN:
        problems.append(Problem(f"{where}.when", f"unknown value {out['when']!r}",
                                "always, or failure (publish only when the job failed)"))
    return out


def _rsync(entry: Mapping[str, Any], where: str, lp: str, common: dict[str, Any],
           problems: list[Problem]) -> Target | None:
    try:
        t = target(entry, {"LOG_PATH": lp or "unset"})
    except UsageError as exc:
        problems.extend(Problem(p.where.replace("logs.publish", where), p.message, p.hint)
                        for p in exc.problems)
        return None
    return Target("rsync", f"rsync {t.host}", lp, rsync=t, **common)


def _url_problem(value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"not an http(s) URL: {value!r}"
    if parts.username or parts.password:
        return "must not hold credentials"
    return ""


def _partition(container: str, lp: str, partition: bool) -> tuple[str, str]:
    """Zuul's partitioning: the log path's first segment moves into the container name."""
    if partition and "/" in lp:
        first, rest = lp.split("/", 1)
        return f"{container}_{first}", rest
    return container, lp


def _public_url(entry: Mapping[str, Any], where: str, problems: list[Problem]) -> str:
    """The target's optional public base URL (``url:``), checked."""
    url = str(entry.get("url") or "")
    if url and (why := _url_problem(url)):
        problems.append(Problem(f"{where}.url", why))
    return url


def _swift(entry: Mapping[str, Any], where: str, lp: str, common: dict[str, Any],
           env: Mapping[str, str], problems: list[Problem]) -> Target | None:
    container = str(entry.get("container") or "")
    if not _CONTAINER.match(container):
        problems.append(Problem(f"{where}.container", "missing or not a container name"
                                if container else "missing", "e.g. container: logs"))
    url = _public_url(entry, where, problems)
    creds = swift_credentials(entry, env, where, problems)
    if creds is None or problems:
        return None
    if creds.auth_url and (why := _url_problem(creds.auth_url)):
        problems.append(Problem(f"{where} auth_url", why))
        return None
    name, prefix = _partition(container, lp, bool(entry.get("partition")))
    keep_days = common["keep_days"]
    public = entry.get("public") is not False

    def build() -> objstore.Store:
        return objstore.SwiftStore(creds, name, keep_days=keep_days, public=public, url=url)

    return Target("swift", f"swift container {name}", lp, store=build, prefix=prefix,
                  secrets=(creds.password,), **common)


def swift_credentials(entry: Mapping[str, Any], env: Mapping[str, str], where: str,
                      problems: list[Problem]) -> objstore.SwiftCredentials | None:
    """From clouds.yaml (``cloud:`` or OS_CLOUD), else ST_AUTH/ST_USER/ST_KEY (v1), else
    OS_AUTH_URL/OS_USERNAME/OS_PASSWORD/OS_PROJECT_NAME (Keystone v3)."""
    region = str(entry.get("region_name") or env.get("OS_REGION_NAME") or "")
    interface = str(entry.get("interface") or env.get("OS_INTERFACE") or "public")
    cloud = str(entry.get("cloud") or env.get("OS_CLOUD") or "")
    if cloud:
        return _cloud(cloud, env, where, region, interface, problems)
    if env.get("ST_AUTH"):
        missing = [v for v in ("ST_USER", "ST_KEY") if not env.get(v)]
        if missing:
            problems.append(Problem(where, f"ST_AUTH is set but {', '.join(missing)} is not"))
            return None
        return objstore.SwiftCredentials(env["ST_AUTH"], env["ST_USER"], env["ST_KEY"],
                                         v1=True)
    if env.get("OS_AUTH_URL"):
        missing = [v for v in ("OS_USERNAME", "OS_PASSWORD") if not env.get(v)]
        if not (env.get("OS_PROJECT_NAME") or env.get("OS_PROJECT_ID")):
            missing.append("OS_PROJECT_NAME")
        if missing:
            problems.append(Problem(where, f"OS_AUTH_URL is set but {', '.join(missing)} "
                                           "is not"))
            return None
        return objstore.SwiftCredentials(
            env["OS_AUTH_URL"], env["OS_USERNAME"], env["OS_PASSWORD"],
            project_name=env.get("OS_PROJECT_NAME", ""),
            project_id=env.get("OS_PROJECT_ID", ""),
            user_domain_name=env.get("OS_USER_DOMAIN_NAME") or "Default",
            project_domain_name=env.get("OS_PROJECT_DOMAIN_NAME") or "Default",
            region_name=region, interface=interface,
            v1=env.get("OS_AUTH_TYPE") == "v1password")
    problems.append(Problem(where, "no Swift credentials",
                            "set cloud: NAME (clouds.yaml) or OS_CLOUD, or OS_AUTH_URL/"
                            "OS_USERNAME/OS_PASSWORD/OS_PROJECT_NAME, or ST_AUTH/ST_USER/"
                            "ST_KEY in the job's environment"))
    return None


def _cloud(cloud: str, env: Mapping[str, str], where: str, region: str, interface: str,
           problems: list[Problem]) -> objstore.SwiftCredentials | None:
    import yaml

    files = [env["OS_CLIENT_CONFIG_FILE"]] if env.get("OS_CLIENT_CONFIG_FILE") else []
    home = env.get("HOME") or str(Path.home())
    files += [c.replace("~", home, 1) for c in CLOUDS_YAML]
    for name in files:
        path = Path(name)
        if not path.is_file():
            continue
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            problems.append(Problem(str(path), f"unreadable clouds.yaml: {exc}"))
            return None
        entry = (data.get("clouds") or {}).get(cloud) if isinstance(data, dict) else None
        if not isinstance(entry, dict):
            continue
        auth = entry.get("auth") or {}
        missing = [k for k in ("auth_url", "username", "password") if not auth.get(k)]
        if missing:
            problems.append(Problem(f"{path}: clouds.{cloud}.auth",
                                    f"missing {', '.join(missing)}"))
            return None
        return objstore.SwiftCredentials(
            str(auth["auth_url"]), str(auth["username"]), str(auth["password"]),
            project_name=str(auth.get("project_name") or ""),
            project_id=str(auth.get("project_id") or ""),
            user_domain_name=str(auth.get("user_domain_name") or "Default"),
            project_domain_name=str(auth.get("project_domain_name") or "Default"),
            region_name=str(entry.get("region_name") or region),
            interface=str(entry.get("interface") or interface),
            v1=str(entry.get("auth_type") or "") == "v1password")
    problems.append(Problem(f"{where}.cloud", f"cloud {cloud!r} is in no clouds.yaml",
                            "looked in " + ", ".join(files)))
    return None


def _s3(entry: Mapping[str, Any], where: str, lp: str, common: dict[str, Any],
        env: Mapping[str, str], problems: list[Problem]) -> Target | None:
    endpoint = str(entry.get("endpoint") or "")
    bucket = str(entry.get("bucket") or "")
    if not endpoint:
        problems.append(Problem(f"{where}.endpoint", "missing", "e.g. https://s3.example.org"))
    elif why := _url_problem(endpoint):
        problems.append(Problem(f"{where}.endpoint", why))
    if not _BUCKET.match(bucket):
        problems.append(Problem(f"{where}.bucket", "missing" if not bucket else
                                f"not an S3 bucket name: {bucket!r}",
                                "3-63 lower-case letters, digits, '.' and '-'"))
    url = _public_url(entry, where, problems)
    creds = s3_credentials(entry, env, where, problems)
    if creds is None or problems:
        return None
    region = str(entry.get("region") or env.get("AWS_DEFAULT_REGION") or "us-east-1")
    keep_days = common["keep_days"]

    def build() -> objstore.Store:
        return objstore.S3Store(creds, endpoint, bucket, region=region, keep_days=keep_days,
                                url=url)

    return Target("s3", f"s3 bucket {bucket}", lp, store=build, prefix=lp,
                  secrets=(creds.secret_key, creds.session_token), **common)


def s3_credentials(entry: Mapping[str, Any], env: Mapping[str, str], where: str,
                   problems: list[Problem]) -> objstore.S3Credentials | None:
    """From ``credentials_file`` (AWS's ini format, section ``profile``), else
    AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, else AWS_SHARED_CREDENTIALS_FILE/~/.aws."""
    import configparser

    given = str(entry.get("credentials_file") or "")
    if not given and env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return objstore.S3Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"],
                                      env.get("AWS_SESSION_TOKEN", ""))
    name = given or env.get("AWS_SHARED_CREDENTIALS_FILE") or \
        str(Path(env.get("HOME") or Path.home()) / ".aws" / "credentials")
    section = str(entry.get("profile") or env.get("AWS_PROFILE") or "default")
    parser = configparser.ConfigParser(interpolation=None)
    try:
        read = parser.read(name, encoding="utf-8")
    except configparser.Error as exc:
        problems.append(Problem(name, f"unreadable credentials file: {exc.__class__.__name__}"))
        return None
    if not read:
        problems.append(Problem(f"{where}.credentials_file" if given else where,
                                f"no S3 credentials ({name} not found)" if given else
                                "no S3 credentials",
                                "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
                                "credentials_file: an AWS credentials file"))
        return None
    if not parser.has_section(section) or not parser.get(section, "aws_access_key_id",
                                                          fallback="") \
            or not parser.get(section, "aws_secret_access_key", fallback=""):
        problems.append(Problem(name, f"[{section}] needs aws_access_key_id and "
                                      "aws_secret_access_key"))
        return None
    return objstore.S3Credentials(parser.get(section, "aws_access_key_id"),
                                  parser.get(section, "aws_secret_access_key"),
                                  parser.get(section, "aws_session_token", fallback=""))
