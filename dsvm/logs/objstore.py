"""Publishing a logs dir to object storage: OpenStack Swift and the S3 API, on the stdlib.

What Zuul's ``upload-logs-swift`` role does: every file of the logs dir becomes an object
under ``<prefix>/`` (the job's log path), uploaded in parallel with per-file retries and
back-off, with the ``Content-Type`` a browser needs and ``Content-Encoding: gzip`` on
compressed text (``*.txt.gz`` then shows inline), the ``index.html`` of every directory,
and an expiry (Swift's ``X-Delete-After``; S3 has none per object: the result carries a
lifecycle note). A file already there with the same MD5 is not sent again, so a re-run
after a partial upload completes it.

``plan`` lists the uploads (pure but for reading the files' digests); ``SwiftStore`` and
``S3Store`` implement the ``Store`` contract over ``Http`` (http.client, one kept-alive
connection per thread); ``upload`` runs a plan against a store. Credentials come from the
environment or a file (clouds.yaml, an AWS credentials file), never from the profile, and
are never put in a message, a log or the manifest. Why not boto3/swiftclient: two PUTs, a
GET and a HEAD per target are all dsvm needs; the SigV4 signature is forty lines.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import mimetypes
import os
import random
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import quote, unquote, urlsplit

from dsvm.logs.collect import kind_of

DAY = 86400
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript",
              "image/svg+xml")
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


# --------------------------------------------------------------------------------------------
# what to upload


@dataclass(frozen=True)
class Upload:
    """One file to upload: where it is, its key under the prefix, and its headers."""

    rel: str  # path relative to the logs dir (the key under the prefix)
    path: str
    size: int
    md5: str  # hex
    content_type: str
    content_encoding: str = ""


def content_headers(rel: str, gzipped_text: bool = False) -> tuple[str, str]:
    """(Content-Type, Content-Encoding) for a stored name: ``x.txt.gz`` is ``text/plain``
    with ``gzip`` (shown inline), ``x.subunit.gz`` is a download (``application/gzip``);
    ``gzipped_text`` says an unknown ``*.gz`` (``access.txt.2.gz``) holds text."""
    name = rel.rsplit("/", 1)[-1].lower()
    if name.endswith(".gz"):
        inner = _guess(name[:-3])
        if inner.startswith(TEXT_TYPES):
            return inner, "gzip"
        if gzipped_text and not name.endswith(".subunit.gz"):
            return "text/plain; charset=utf-8", "gzip"
        return "application/gzip", ""
    return _guess(name), ""


def _guess(name: str) -> str:
    if name.endswith((".txt", ".log", ".conf", ".ini", ".yaml", ".yml", ".filters", ".sh",
                      ".cfg", ".failure", ".summary", ".md")):
        return "text/plain; charset=utf-8"
    kind, _ = mimetypes.guess_type(name, strict=False)
    if kind is None:
        return "application/octet-stream"
    return f"{kind}; charset=utf-8" if kind.startswith("text/") else kind


def plan(logs_dir: Path) -> list[Upload]:
    """Every regular file under ``logs_dir`` (sorted; ``*.part`` leftovers excluded)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(logs_dir):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(".part") or name.startswith("."):
                continue
            path = Path(dirpath) / name
            if not path.is_file() or path.is_symlink():
                continue
            rel = path.relative_to(logs_dir).as_posix()
            ctype, enc = content_headers(rel, name.endswith(".gz")
                                         and kind_of(path) == "gztext")
            out.append(Upload(rel, str(path), path.stat().st_size, _md5(path), ctype, enc))
    return out


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# HTTP on http.client


class HttpError(Exception):
    """A request that got an answer we cannot use (``status``) or none at all (0)."""

    def __init__(self, what: str, status: int = 0, body: str = "") -> None:
        super().__init__(what)
        self.status = status
        self.body = body

    @property
    def transient(self) -> bool:
        return self.status == 0 or self.status in RETRY_STATUS


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class Http:
    """Requests over one kept-alive connection per thread and host (timeouts everywhere)."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._local = threading.local()

    def request(self, method: str, url: str, headers: Mapping[str, str] | None = None,
                body: bytes | BinaryIO | None = None) -> Response:
        parts = urlsplit(url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        key = (parts.scheme, parts.netloc)
        for attempt in (1, 2):  # a kept-alive connection the server closed: once more, anew
            conn = self._conn(key)
            try:
                if hasattr(body, "seek"):
                    body.seek(0)  # type: ignore[union-attr]
                conn.request(method, path, body=body, headers=dict(headers or {}))
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self._drop(key)
                if attempt == 2 or not isinstance(exc, (http.client.RemoteDisconnected,
                                                        BrokenPipeError,
                                                        ConnectionResetError)):
                    raise HttpError(f"{method} {_safe(url)}: {exc.__class__.__name__}: "
                                    f"{exc}") from None
                continue
            if resp.getheader("connection", "").lower() == "close":
                self._drop(key)
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        raise AssertionError("unreachable")

    def _conn(self, key: tuple[str, str]) -> http.client.HTTPConnection:
        conns: dict[tuple[str, str], http.client.HTTPConnection] = \
            self._local.__dict__.setdefault("conns", {})
        if key not in conns:
            scheme, netloc = key
            cls = http.client.HTTPSConnection if scheme == "https" else \
                http.client.HTTPConnection
            conns[key] = cls(netloc, timeout=self.timeout)
        return conns[key]

    def _drop(self, key: tuple[str, str]) -> None:
        conns = self._local.__dict__.get("conns", {})
        conn = conns.pop(key, None)
        if conn is not None:
            conn.close()


def _safe(url: str) -> str:
    """A URL for messages: no user info, no query string (signatures live there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def check(resp: Response, what: str, ok: Iterable[int] = (200, 201, 202, 204)) -> Response:
    if resp.status not in set(ok):
        snippet = resp.body[:200].decode("utf-8", "replace").strip()
        raise HttpError(f"{what}: HTTP {resp.status}" + (f": {snippet}" if snippet else ""),
                        resp.status, snippet)
    return resp


# --------------------------------------------------------------------------------------------
# the store contract and its two implementations


class Store(Protocol):
    """Where objects go: connect (auth, container), list what is there, put one object."""

    kind: str

    def connect(self) -> None: ...

    def existing(self, prefix: str) -> dict[str, str]: ...  # key -> md5 hex

    def put(self, key: str, upload: Upload) -> None: ...

    def public_url(self, prefix: str) -> str: ...

    def describe(self) -> str: ...


class AuthError(Exception):
    """The credentials were refused (never carries them)."""


@dataclass
class SwiftCredentials:
    """Keystone v3 password auth, or Swift's v1 auth (tempauth, ``ST_AUTH``)."""

    auth_url: str
    username: str
    password: str = field(repr=False)
    project_name: str = ""
    project_id: str = ""
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"
    region_name: str = ""
    interface: str = "public"
    v1: bool = False

    def __repr__(self) -> str:
        return f"SwiftCredentials(auth_url={_safe(self.auth_url)!r}, username={self.username!r})"


class SwiftStore:
    """OpenStack Swift: token from Keystone v3 (catalog: object-store) or v1 auth."""

    kind = "swift"

    def __init__(self, creds: SwiftCredentials, container: str, *, keep_days: int,
                 public: bool = True, url: str = "", http: Http | None = None) -> None:
        self.creds = creds
        self.container = container
        self.keep_days = keep_days
        self.public = public
        self.url = url
        self.http = http or Http()
        self.token = ""
        self.storage_url = ""
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"swift container {self.container} at {_safe(self.storage_url or self.creds.auth_url)}"

    def authenticate(self) -> None:
        c = self.creds
        if c.v1:
            resp = self.http.request("GET", c.auth_url, {"X-Auth-User": c.username,
                                                         "X-Auth-Key": c.password})
            if resp.status in (401, 403):
                raise AuthError(f"Swift auth at {_safe(c.auth_url)} refused user {c.username}")
            check(resp, f"Swift auth at {_safe(c.auth_url)}")
            self.token = resp.headers.get("x-auth-token", "")
            self.storage_url = resp.headers.get("x-storage-url", "")
            return
        base = c.auth_url.rstrip("/")
        base = base if base.endswith("/v3") else base + "/v3"
        project: dict[str, Any] = {"id": c.project_id} if c.project_id else \
            {"name": c.project_name, "domain": {"name": c.project_domain_name}}
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": c.username, "domain": {"name": c.user_domain_name},
            "password": c.password}}}, "scope": {"project": project}}}
        resp = self.http.request("POST", base + "/auth/tokens",
                                 {"Content-Type": "application/json"},
                                 json.dumps(body).encode())
        if resp.status in (401, 403):
            raise AuthError(f"Keystone at {_safe(base)} refused user {c.username}")
        check(resp, f"Keystone auth at {_safe(base)}")
        self.token = resp.headers.get("x-subject-token", "")
        self.storage_url = catalog_url(json.loads(resp.body), "object-store", c.interface,
                                       c.region_name)

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {"X-Auth-Token": self.token, **(extra or {})}

    def _call(self, method: str, path: str, headers: Mapping[str, str] | None = None,
              body: bytes | BinaryIO | None = None) -> Response:
        """One request; a 401 (token expired) re-authenticates once."""
        resp = self.http.request(method, self.storage_url + path, self._headers(headers), body)
        if resp.status == 401:
            with self._lock:
                self.authenticate()
            resp = self.http.request(method, self.storage_url + path, self._headers(headers),
                                     body)
            if resp.status == 401:
                raise AuthError(f"Swift refused the token for {self.describe()}")
        return resp

    def connect(self) -> None:
        self.authenticate()
        where = f"/{quote(self.container)}"
        resp = self._call("HEAD", where)
        if resp.status == 404:
            headers = {"X-Container-Read": ".r:*,.rlistings"} if self.public else {}
            check(self._call("PUT", where, headers), f"create container {self.container}")
        else:
            check(resp, f"container {self.container}")

    def existing(self, prefix: str) -> dict[str, str]:
        out: dict[str, str] = {}
        marker = ""
        while True:
            query = f"?format=json&limit=10000&prefix={quote(prefix + '/')}" \
                    f"&marker={quote(marker)}"
            resp = check(self._call("GET", f"/{quote(self.container)}{query}"),
                         f"list container {self.container}", (200, 204))
            rows = json.loads(resp.body or b"[]")
            if not rows:
                return out
            for row in rows:
                out[row["name"]] = row.get("hash", "")
            marker = rows[-1]["name"]

    def put(self, key: str, upload: Upload) -> None:
        headers = {"Content-Type": upload.content_type, "ETag": upload.md5,
                   "Content-Length": str(upload.size),
                   "X-Delete-After": str(self.keep_days * DAY)}
        if upload.content_encoding:
            headers["Content-Encoding"] = upload.content_encoding
        with open(upload.path, "rb") as fh:
            resp = self._call("PUT", f"/{quote(self.container)}/{quote(key)}", headers, fh)
        check(resp, f"upload {upload.rel}", (201,))

    def public_url(self, prefix: str) -> str:
        base = self.url.rstrip("/") if self.url else f"{self.storage_url}/{quote(self.container)}"
        return f"{base}/{quote(prefix)}/index.html"


def catalog_url(token: Mapping[str, Any], kind: str, interface: str, region: str) -> str:
    """The endpoint of service ``kind`` in a Keystone v3 token body (interface, region)."""
    for service in token.get("token", {}).get("catalog", []):
        if service.get("type") != kind:
            continue
        for ep in service.get("endpoints", []):
            if ep.get("interface") == interface and (not region or ep.get("region_id") == region
                                                     or ep.get("region") == region):
                return str(ep["url"]).rstrip("/")
    raise HttpError(f"the Keystone catalog has no {interface} {kind} endpoint"
                    + (f" in region {region}" if region else ""))


@dataclass
class S3Credentials:
    access_key: str
    secret_key: str = field(repr=False)
    session_token: str = field(default="", repr=False)

    def __repr__(self) -> str:
        return f"S3Credentials(access_key={self.access_key[:4]!r}...)"


class S3Store:
    """The S3 API (AWS Signature V4, path-style URLs: any S3-compatible endpoint)."""

    kind = "s3"

    def __init__(self, creds: S3Credentials, endpoint: str, bucket: str, *, region: str,
                 keep_days: int, url: str = "", http: Http | None = None) -> None:
        self.creds = creds
        self.endpoint = endpoint.rstrip("/")
        self.bucket = bucket
        self.region = region
        self.keep_days = keep_days
        self.url = url
        self.http = http or Http()

    def describe(self) -> str:
        return f"s3 bucket {self.bucket} at {_safe(self.endpoint)}"

    def _call(self, method: str, key: str = "", query: str = "",
              headers: Mapping[str, str] | None = None, body: bytes | None = None,
              path: str | None = None) -> Response:
        path_ = f"/{quote(self.bucket)}" + (f"/{quote(key)}" if key else "")
        url = f"{self.endpoint}{path_}" + (f"?{query}" if query else "")
        data: bytes | BinaryIO | None = body
        payload = hashlib.sha256(body or b"").hexdigest()
        fh = None
        if path is not None:
            fh = open(path, "rb")
            payload = _sha256_file(fh)
            data = fh
        try:
            signed = sign_v4(method, url, dict(headers or {}), payload, self.creds, self.region)
            resp = self.http.request(method, url, signed, data)
        finally:
            if fh is not None:
                fh.close()
        if resp.status == 403 and b"SignatureDoesNotMatch" in resp.body \
                or resp.status == 403 and b"InvalidAccessKeyId" in resp.body \
                or resp.status == 401:
            raise AuthError(f"{self.describe()} refused the access key")
        return resp

    def connect(self) -> None:
        resp = self._call("HEAD")
        if resp.status == 404:
            check(self._call("PUT"), f"create bucket {self.bucket}")
        elif resp.status == 403:
            raise AuthError(f"{self.describe()} refused the access key")
        else:
            check(resp, f"bucket {self.bucket}")

    def existing(self, prefix: str) -> dict[str, str]:
        out: dict[str, str] = {}
        marker = ""
        ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
        while True:
            query = f"marker={quote(marker, safe='')}&prefix={quote(prefix + '/', safe='')}"
            resp = check(self._call("GET", query=query), f"list bucket {self.bucket}")
            root = ET.fromstring(resp.body)
            keys = root.findall(f"{ns}Contents") or root.findall("Contents")
            for item in keys:
                name = _xml_text(item, "Key", ns)
                out[name] = _xml_text(item, "ETag", ns).strip('"')
            truncated = _xml_text(root, "IsTruncated", ns).lower() == "true"
            if not keys or not truncated:
                return out
            marker = _xml_text(keys[-1], "Key", ns)

    def put(self, key: str, upload: Upload) -> None:
        headers = {"Content-Type": upload.content_type, "Content-Length": str(upload.size),
                   "Content-MD5": base64.b64encode(bytes.fromhex(upload.md5)).decode()}
        if upload.content_encoding:
            headers["Content-Encoding"] = upload.content_encoding
        check(self._call("PUT", key, headers=headers, path=upload.path),
              f"upload {upload.rel}", (200, 201))

    def public_url(self, prefix: str) -> str:
        base = self.url.rstrip("/") if self.url else f"{self.endpoint}/{quote(self.bucket)}"
        return f"{base}/{quote(prefix)}/index.html"

    def lifecycle_note(self, prefix: str) -> str:
        return (f"S3 objects do not expire by themselves: a lifecycle rule on bucket "
                f"{self.bucket} expiring prefix {prefix.split('/')[0]}/ after "
                f"{self.keep_days} days keeps logs.publish.keep_days")


def _xml_text(node: ET.Element, tag: str, ns: str) -> str:
    found = node.find(f"{ns}{tag}")
    if found is None:
        found = node.find(tag)
    return (found.text or "") if found is not None else ""


def _sha256_file(fh: BinaryIO) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: fh.read(1 << 20), b""):
        digest.update(block)
    fh.seek(0)
    return digest.hexdigest()


def sign_v4(method: str, url: str, headers: dict[str, str], payload_sha256: str,
            creds: S3Credentials, region: str, service: str = "s3",
            now: float | None = None) -> dict[str, str]:
    """``headers`` plus AWS Signature Version 4 (Authorization, x-amz-date, payload hash)."""
    parts = urlsplit(url)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    day = stamp[:8]
    out = dict(headers)
    out["Host"] = parts.netloc
    out["x-amz-date"] = stamp
    out["x-amz-content-sha256"] = payload_sha256
    if creds.session_token:
        out["x-amz-security-token"] = creds.session_token
    canon_headers = sorted((k.lower().strip(), " ".join(str(v).split())) for k, v in out.items())
    signed_names = ";".join(k for k, _ in canon_headers)
    query = "&".join(sorted(
        f"{quote(unquote(k), safe='-_.~')}={quote(unquote(v), safe='-_.~')}"
        for k, _, v in (p.partition("=") for p in parts.query.split("&") if p)))
    canonical = "\n".join([method, quote(unquote(parts.path or "/"), safe="/-_.~"), query,
                           "".join(f"{k}:{v}\n" for k, v in canon_headers), signed_names,
                           payload_sha256])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{creds.secret_key}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
                            f"SignedHeaders={signed_names}, Signature={signature}")
    return out


# --------------------------------------------------------------------------------------------
# uploading a plan


@dataclass
class Outcome:
    """What one target's upload did: the URL, the files sent, already there, not arrived."""

    target: str
    url: str = ""
    sent: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)  # already there, same MD5: not re-sent
    failed: list[tuple[str, str]] = field(default_factory=list)  # (rel, why)
    error: str = ""  # the target could not be used at all (auth, container, network)
    auth_failed: bool = False
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def state(self) -> str:
        """complete | partial (some files did not arrive) | failed (none could be sent)."""
        if self.error:
            return "partial" if self.sent or self.present else "failed"
        if self.failed:
            return "partial" if self.sent or self.present else "failed"
        return "complete"

    def as_json(self) -> dict[str, Any]:
        return {"target": self.target, "state": self.state, "url": self.url,
                "sent": len(self.sent), "already_there": len(self.present),
                "not_arrived": [rel for rel, _ in self.failed], "error": self.error,
                "notes": self.notes, "seconds": round(self.seconds, 3)}


def upload(store: Store, files: Sequence[Upload], prefix: str, *, jobs: int = 8,
           attempts: int = 4, backoff: float = 1.0, deadline: float | None = None,
           sleep: Callable[[float], None] = time.sleep,
           advance: Callable[[str], None] | None = None) -> Outcome:
    """Upload ``files`` under ``prefix``: directories' ``index.html`` last (a reader who
    opens the URL early finds the listing's links already there)."""
    t0 = time.monotonic()
    result = Outcome(store.describe())
    try:
        store.connect()
        there = store.existing(prefix)
    except AuthError as exc:
        result.error, result.auth_failed = str(exc), True
        return _done(result, t0)
    except HttpError as exc:
        result.error = str(exc)
        return _done(result, t0)
    except (ValueError, KeyError, ET.ParseError) as exc:  # an answer that is no listing
        result.error = f"{store.describe()}: unexpected answer ({exc.__class__.__name__})"
        return _done(result, t0)
    result.url = store.public_url(prefix)
    todo = []
    for f in files:
        if there.get(f"{prefix}/{f.rel}") == f.md5:
            result.present.append(f.rel)
        else:
            todo.append(f)
    todo.sort(key=lambda f: (f.rel.endswith("index.html"), -f.size))
    lock = threading.Lock()

    def one(f: Upload) -> None:
        why = _put_with_retries(store, f"{prefix}/{f.rel}", f, attempts, backoff, deadline,
                                sleep)
        with lock:
            if why:
                result.failed.append((f.rel, why))
            else:
                result.sent.append(f.rel)
            if advance is not None:
                advance(f.rel)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(one, todo))
    result.failed.sort()
    return _done(result, t0)


def _done(result: Outcome, t0: float) -> Outcome:
    result.seconds = time.monotonic() - t0
    return result


def _put_with_retries(store: Store, key: str, f: Upload, attempts: int, backoff: float,
                      deadline: float | None, sleep: Callable[[float], None]) -> str:
    """'' when the object arrived, else why not (after ``attempts`` tries, doubling waits)."""
    why = ""
    for attempt in range(1, max(1, attempts) + 1):
        try:
            store.put(key, f)
            return ""
        except AuthError as exc:
            return str(exc)
        except HttpError as exc:
            why = str(exc)
            if not exc.transient:
                return why
        except OSError as exc:
            return f"cannot read {f.rel}: {exc.strerror or exc}"
        wait = backoff * (2 ** (attempt - 1)) * (0.5 + random.random())
        if attempt == attempts or (deadline is not None and time.monotonic() + wait > deadline):
            break
        sleep(wait)
    return why
