"""Images devstack would download: discovery from a devstack tree, and verified downloads.

Discovery follows ``spec/node-prep.md`` §3.1: for every branch of the cached devstack run
``tools/image_list.sh`` (``HOST_IP=SKIP``), falling back to parsing ``IMAGE_URLS`` out of
``stackrc``; the union is deduplicated by file name (what devstack looks for in ``files/``).
Downloads resume a ``.<name>.part`` file with HTTP ``Range``, check the size against the
server's and the checksum (``#sha256=``/``#md5=`` on the URL, or the ``SHA256SUMS``/``MD5SUMS``
file next to the image), retry with back-off, and only then rename the file into place: a
partial or corrupt file is never left looking complete.

This room never runs a shell string and never decides which profiles matter (``node.py``).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsvm import proc
from dsvm.errors import InfraError

CHUNK = 1 << 16
USER_AGENT = "dsvm-prepare-node"
SUMS_FILES = (("sha256", "SHA256SUMS"), ("md5", "MD5SUMS"))
PERMANENT_HTTP = {400, 401, 403, 404, 410}


@dataclass(frozen=True)
class ImageSource:
    """One file to cache: its name in ``files/``, URL and expected checksum (algo, hex)."""

    name: str
    url: str
    checksum: tuple[str, str] | None = None


@dataclass(frozen=True)
class Discovery:
    """Images found in a devstack tree, and notes on how (fallbacks, dropped entries)."""

    sources: tuple[ImageSource, ...]
    notes: tuple[str, ...] = ()


class DownloadError(InfraError):
    """An image could not be downloaded and verified."""


# --------------------------------------------------------------------------------------------
# Pure parsing

def name_of(url: str) -> str:
    """The file name devstack stores ``url`` under: the last path segment."""
    path = urllib.parse.urlsplit(url).path
    return urllib.parse.unquote(path.rsplit("/", 1)[-1])


def split_checksum(url: str) -> tuple[str, tuple[str, str] | None]:
    """Return (url without a ``#sha256=…``/``#md5=…`` fragment, (algo, hex) or None)."""
    base, _, frag = url.partition("#")
    m = re.fullmatch(r"(sha256|sha512|md5)=([0-9a-fA-F]+)", frag)
    return (base, (m.group(1), m.group(2).lower())) if m else (url, None)


def sources_from_urls(urls: Iterable[str]) -> tuple[list[ImageSource], list[str]]:
    """Deduplicate by file name (first wins); drop unusable entries, saying why."""
    out: dict[str, ImageSource] = {}
    notes: list[str] = []
    for raw in urls:
        url, checksum = split_checksum(raw.strip())
        name = name_of(url)
        if not url:
            continue
        if "$" in url or not name or name.startswith("."):
            notes.append(f"skipped {url!r}: unexpanded variable or no file name")
            continue
        if urllib.parse.urlsplit(url).scheme not in ("http", "https", "file"):
            notes.append(f"skipped {url!r}: only http(s) and file URLs are cached")
            continue
        out.setdefault(name, ImageSource(name, url, checksum))
    return list(out.values()), notes


_ASSIGN = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def stackrc_defaults(text: str) -> dict[str, str]:
    """First simple assignment of each variable (``X=${X:-v}`` or ``X=v``), unexpanded."""
    values: dict[str, str] = {}
    for line in text.split("\n"):
        m = _ASSIGN.match(line)
        if not m or m.group(1) in values:
            continue
        value = m.group(2).split(" #", 1)[0].strip().rstrip(";")
        d = re.fullmatch(r"\$\{" + re.escape(m.group(1)) + r":-(.*)\}", value)
        if d:
            value = d.group(1)
        values[m.group(1)] = value.strip('"').strip("'")
    return values


def expand_vars(text: str, values: Mapping[str, str], depth: int = 5) -> str:
    """Expand ``$X``/``${X}``/``${X:-d}`` from ``values``; leave unknown ones in place."""
    pattern = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3)
        if name in values:
            return values[name]
        return m.group(2) if m.group(2) is not None else m.group(0)

    for _ in range(depth):
        new = pattern.sub(sub, text)
        if new == text:
            break
        text = new
    return text


def stackrc_image_urls(text: str) -> list[str]:
    """``IMAGE_URLS`` entries of a stackrc (spec §3.1 legacy parse, plus variable defaults)."""
    values = stackrc_defaults(text)
    urls: list[str] = []
    for line in text.split("\n"):
        line = line.strip()
        if not line.startswith("IMAGE_URLS"):
            continue
        line = line.split(" #", 1)[0].strip()
        if line.endswith(";;"):
            line = line[:-2]
        _, eq, value = line.partition("=")
        if not eq:
            continue
        value = value.strip()
        if value.startswith("${IMAGE_URLS:-"):
            value = value[len("${IMAGE_URLS:-"):]
            value = value[:-1] if value.endswith("}") else value
        value = value.strip().strip('"')
        for item in value.split(","):
            item = expand_vars(item.strip().strip('"'), values)
            if item and not item.endswith("vmdk"):
                urls.append(item)
    return urls


def parse_sums(text: str) -> dict[str, str]:
    """``{file name: hex}`` from a ``SHA256SUMS``/``MD5SUMS`` file (``hex  name``/``hex *name``)."""
    sums = {}
    for line in text.split("\n"):
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and re.fullmatch(r"[0-9a-fA-F]{32,128}", parts[0]):
            sums[parts[1].lstrip("*").strip()] = parts[0].lower()
    return sums


def total_from_headers(status: int, headers: Mapping[str, str]) -> int | None:
    """The full size of the file from Content-Range (206) or Content-Length (200)."""
    if status == 206:
        m = re.search(r"/(\d+)\s*$", headers.get("Content-Range", "") or "")
        return int(m.group(1)) if m else None
    length = headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


# --------------------------------------------------------------------------------------------
# Discovery in a devstack tree

def _branches(runner: proc.Runner, repo: Path) -> list[str]:
    res = runner.run(["git", "for-each-ref", "--format=%(refname)", "refs/remotes/origin"],
                     desc="list devstack branches", cwd=repo, env=proc.clean_env(), check=False)
    return [r for r in res.stdout.split("\n") if r and r != "refs/remotes/origin/HEAD"]


def _image_list_tool(runner: proc.Runner, repo: Path, ref: str) -> list[str] | None:
    """Run ``tools/image_list.sh`` of ``ref`` in a throw-away worktree; None if it fails."""
    has_tool = runner.run(["git", "cat-file", "-e", f"{ref}:tools/image_list.sh"],
                          desc="look for image_list.sh", cwd=repo, env=proc.clean_env(),
                          check=False)
    if not has_tool.ok:
        return None
    tree = repo.parent / f".{repo.name}.dsvm-tmp-images-{os.getpid()}"
    env = proc.clean_env()
    try:
        runner.run(["git", "worktree", "add", "-q", "--detach", str(tree), ref],
                   desc=f"check out devstack {ref}", cwd=repo, env=env)
        env["HOST_IP"] = "SKIP"
        res = runner.run(["bash", "tools/image_list.sh"], desc=f"image_list.sh ({ref})",
                         cwd=tree, env=env, timeout=300, check=False)
    finally:
        runner.run(["git", "worktree", "remove", "--force", str(tree)], desc="drop worktree",
                   cwd=repo, env=proc.clean_env(), check=False)
        shutil.rmtree(tree, ignore_errors=True)
        runner.run(["git", "worktree", "prune"], desc="prune worktrees", cwd=repo,
                   env=proc.clean_env(), check=False)
    if not res.ok:
        return None
    # stderr is merged in: keep only lines that are URLs themselves.
    return [line.strip() for line in res.stdout.split("\n")
            if re.match(r"^\s*(https?|file)://\S+\s*$", line)]


def discover(devstack_repo: Path | None, runner: proc.Runner,
             extra: Iterable[str] = ()) -> Discovery:
    """Images every branch of the cached devstack would download, plus ``extra`` URLs."""
    urls: list[str] = []
    notes: list[str] = []
    if devstack_repo is not None and (devstack_repo / ".git").is_dir():
        for ref in _branches(runner, devstack_repo):
            short = ref[len("refs/remotes/origin/"):]
            found = _image_list_tool(runner, devstack_repo, ref)
            if found is None:
                show = runner.run(["git", "--no-pager", "show", f"{ref}:stackrc"],
                                  desc="read stackrc", cwd=devstack_repo, env=proc.clean_env(), check=False)
                found = stackrc_image_urls(show.stdout) if show.ok else []
                notes.append(f"{short}: image_list.sh unavailable or failed; parsed stackrc "
                             f"({len(found)} URL(s))")
            urls.extend(found)
    elif devstack_repo is not None:
        notes.append(f"no devstack in the cache at {devstack_repo}: only configured images")
    urls.extend(extra)
    sources, dropped = sources_from_urls(urls)
    return Discovery(tuple(sources), tuple(notes + dropped))


# --------------------------------------------------------------------------------------------
# Downloads

@dataclass
class Downloader:
    """Downloads with resume, verification and bounded retries; one per run (caches SUMS)."""

    attempts: int = 3
    timeout: float = 60.0
    backoff: float = 2.0
    stop: threading.Event = field(default_factory=threading.Event)
    on_event: Callable[[str], None] | None = None
    _sums: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def expected_checksum(self, source: ImageSource) -> tuple[str, str] | None:
        """The checksum to verify against: the URL's, else the one in the SUMS file beside it."""
        if source.checksum:
            return source.checksum
        directory = source.url.rsplit("/", 1)[0]
        with self._lock:
            known = self._sums.get(directory)
        if known is None:
            known = {}
            for algo, fname in SUMS_FILES:
                try:
                    text = _fetch_small(f"{directory}/{fname}", self.timeout)
                except (OSError, ValueError, http.client.HTTPException):
                    continue
                for name, hexsum in parse_sums(text).items():
                    known.setdefault(name, (algo, hexsum))
            with self._lock:
                self._sums[directory] = known
        return known.get(source.name)

    def fetch(self, source: ImageSource, dest_dir: Path) -> dict[str, Any]:
        """Download ``source`` into ``dest_dir``; return its manifest record or raise."""
        dest_dir.mkdir(parents=True, exist_ok=True)
        final = dest_dir / source.name
        part = dest_dir / f".{source.name}.part"
        expected = self.expected_checksum(source)
        started = time.monotonic()
        last = "no attempt made"
        resumed = 0
        for attempt in range(1, max(1, self.attempts) + 1):
            if self.stop.is_set():
                raise DownloadError(f"{source.url}: interrupted")
            have = part.stat().st_size if part.exists() else 0
            try:
                self._transfer(source.url, part, have)
                resumed += have
            except _Permanent as exc:
                part.unlink(missing_ok=True)
                raise DownloadError(f"cannot download {source.url}: {exc}") from exc
            except (OSError, ValueError, http.client.HTTPException) as exc:
                last = f"{type(exc).__name__}: {exc}"
                self._retry_pause(source, attempt, last)
                continue
            digest = file_digest(part, expected[0] if expected else "sha256")
            if expected and digest != expected[1]:
                part.unlink()  # never resume onto bytes that proved wrong
                last = f"{expected[0]} mismatch: got {digest}, expected {expected[1]}"
                self._retry_pause(source, attempt, last)
                continue
            sha256 = digest if not expected or expected[0] == "sha256" else \
                file_digest(part, "sha256")
            os.replace(part, final)
            return {"url": source.url, "size": final.stat().st_size, "sha256": sha256,
                    "verified": f"{expected[0]} from {'URL' if source.checksum else 'SUMS'}"
                    if expected else "size only", "attempts": attempt,
                    "resumed_bytes": resumed, "downloaded_at": _now(),
                    "seconds": round(time.monotonic() - started, 3)}
        raise DownloadError(f"cannot download {source.url} after {self.attempts} attempt(s): "
                            f"{last}")

    def _retry_pause(self, source: ImageSource, attempt: int, why: str) -> None:
        if self.on_event is not None:
            self.on_event(f"{source.name}: attempt {attempt} failed ({why})")
        if attempt < self.attempts:
            self.stop.wait(self.backoff * 2 ** (attempt - 1))

    def _transfer(self, url: str, part: Path, have: int) -> None:
        headers = {"User-Agent": USER_AGENT}
        if have:
            headers["Range"] = f"bytes={have}-"
        req = urllib.request.Request(url, headers=headers)
        try:
            resp = urllib.request.urlopen(req, timeout=self.timeout)  # noqa: S310 (http/file only)
        except urllib.error.HTTPError as exc:
            if exc.code == 416:  # our part is not a prefix of this file any more: start over
                part.unlink(missing_ok=True)
                raise OSError("range not satisfiable; restarting") from exc
            if exc.code in PERMANENT_HTTP:
                raise _Permanent(f"HTTP {exc.code} {exc.reason}") from exc
            raise
        with resp:
            status = getattr(resp, "status", 200) or 200
            total = total_from_headers(status, resp.headers)
            mode = "ab" if status == 206 else "wb"
            with open(part, mode) as fh:
                while not self.stop.is_set():
                    chunk = resp.read(CHUNK)
                    if not chunk:
                        break
                    fh.write(chunk)
        size = part.stat().st_size
        if self.stop.is_set():
            raise OSError("interrupted")
        if total is not None and size != total:
            raise OSError(f"connection closed at {size} of {total} bytes")


class _Permanent(Exception):
    """An HTTP answer that retrying will not change (404 …)."""


def keep_existing(final: Path, url: str, recorded: Mapping[str, Any] | None) -> bool:
    """True when ``final`` is the file the manifest recorded for ``url`` (no download needed)."""
    if recorded is None or recorded.get("url") != url or not final.is_file():
        return False
    return final.stat().st_size == recorded.get("size")


def file_digest(path: Path, algo: str) -> str:
    """Hex digest of a file."""
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fetch_small(url: str, timeout: float) -> str:
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (http/file only)
        body: bytes = resp.read(1 << 20)
    return body.decode("utf-8", "replace")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
