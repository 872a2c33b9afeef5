"""Collecting a job's logs: inspect the sources (read-only), plan (pure), apply (parallel).

``inspect`` walks the sources and says what exists, what is text, and what is refused
(symlinks leading outside the collected sources, FIFOs, unreadable files). ``plan`` turns that
into ``Task``s: stored names, compression, the size budget. ``apply`` rotates an old logs dir
away, runs the tasks on a bounded process pool with progress, then writes ``index.html`` per
directory and ``manifest.json``. This room never runs external commands (see ``snapshot``)
and never prints a secret: the manifest holds counts, not values.
"""

from __future__ import annotations

import glob
import os
import stat
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from dsvm.logs.redact import Redactor, is_config
from dsvm.logs.sources import Source, expand_base, stored_name
from dsvm.logs.store import Stored, Task, init_worker, store, store_in_worker

SAMPLE = 8192
BINARY_SUFFIXES = (".subunit", ".xz", ".bz2", ".zst", ".zip", ".tar", ".tgz", ".png", ".jpg",
                   ".jpeg", ".gif", ".ico", ".db", ".sqlite", ".pyc", ".so", ".qcow2", ".img",
                   ".iso", ".rpm", ".deb", ".whl", ".journal", ".pcap")
RESERVED = ("index.html", "manifest.json")


@dataclass(frozen=True)
class Found:
    """A regular file to collect."""

    path: str  # what is read (a symlink's checked target)
    shown: str  # where it is on the node, as the manifest shows it
    rel: str  # destination relative to the logs dir, before renames
    rename: str
    size: int
    kind: str  # text | gztext | binary


@dataclass(frozen=True)
class Skip:
    """Something not collected, and why; ``problem`` is False for expected cases."""

    source: str
    reason: str
    problem: bool = True


@dataclass(frozen=True)
class Inventory:
    """What ``inspect`` found: files, refusals, and sources absent from this node."""

    found: tuple[Found, ...]
    skipped: tuple[Skip, ...]
    missing: tuple[str, ...]


@dataclass(frozen=True)
class CollectPlan:
    """Every file to write and how, plus what was refused; ``apply`` runs it verbatim."""

    dest: Path
    tasks: tuple[Task, ...]
    skipped: tuple[Skip, ...]
    missing: tuple[str, ...]
    compression: str
    budget: int | None
    cap: int | None  # per-file input cap chosen to meet the budget (None = no cut)


@dataclass
class Collection:
    """What ``apply`` did: the stored files (manifest entries), refusals, rotated dir."""

    plan: CollectPlan
    stored: list[Stored] = field(default_factory=list)
    rotated: Path | None = None

    @property
    def problems(self) -> list[str]:
        """One line per source that could not be collected (missing ones excluded)."""
        lines = [f"{s.source}: {s.reason}" for s in self.plan.skipped if s.problem]
        lines += [f"{s.source}: {s.note}" for s in self.stored if s.skipped]
        return lines


# --------------------------------------------------------------------------------------------
# inspect: read-only


def inspect(sources: Sequence[Source], *, root: Path | None, base: str,
            extra: Sequence[Source] = ()) -> Inventory:
    """Walk ``sources`` (under ``root`` when given) and ``extra`` (job files, never rooted)."""
    found: list[Found] = []
    skipped: list[Skip] = []
    missing: list[str] = []
    entries: list[tuple[Source, str, str]] = []  # source, real path, shown path
    for source, on_node in [*((s, True) for s in sources), *((s, False) for s in extra)]:
        shown = expand_base(source.src, base)
        is_rooted = root is not None and on_node
        real = str(root / shown.lstrip("/")) if root is not None and is_rooted else shown
        matches = sorted(glob.glob(glob.escape(os.path.dirname(real)) + "/"
                                   + os.path.basename(real))) if _is_glob(real) else [real]
        matches = [m for m in matches if os.path.lexists(m)]
        if not matches:
            missing.append(shown)
            continue
        for match in matches:
            rel = source.dest
            if _is_glob(real) and (len(matches) > 1 or "." not in os.path.basename(rel)):
                rel = _join(rel, os.path.basename(match))
            shown_match = _shown(match, root if is_rooted else None)
            entries.append((Source(source.src, rel, source.rename, source.why), match,
                            shown_match))
    allowed = _allowed_roots([real for _, real, _ in entries], root)
    for source, real, shown in entries:
        _inspect_path(Path(real), shown, source.dest, source.rename, allowed, root, found,
                      skipped, top=True)
    return Inventory(tuple(found), tuple(skipped), tuple(missing))


def _is_glob(path: str) -> bool:
    return any(c in os.path.basename(path) for c in "*?[")


def _join(a: str, b: str) -> str:
    return f"{a.rstrip('/')}/{b}" if a else b


def _shown(path: str, root: Path | None) -> str:
    if root is None:
        return path
    try:
        return "/" + str(Path(path).relative_to(root))
    except ValueError:
        return path


def _allowed_roots(paths: Iterable[str], root: Path | None) -> list[Path]:
    """Resolved source paths: a symlink inside a source may only lead into one of these."""
    out = []
    for p in paths:
        try:
            resolved = Path(p).resolve(strict=True)
        except OSError:
            continue
        if root is None or resolved.is_relative_to(root.resolve()):
            out.append(resolved)
    return out


def _inspect_path(path: Path, shown: str, rel: str, rename: str, allowed: list[Path],
                  root: Path | None, found: list[Found], skipped: list[Skip],
                  top: bool = False) -> None:
    try:
        st = os.lstat(path)
    except OSError as exc:
        skipped.append(Skip(shown, f"cannot stat: {exc.strerror}"))
        return
    target = path
    if stat.S_ISLNK(st.st_mode):
        reason, target = _check_link(path, allowed, root, top)
        if reason:
            skipped.append(Skip(shown, reason))
            return
        st = os.stat(target)
    if stat.S_ISDIR(st.st_mode):
        if not top and target != path:
            skipped.append(Skip(shown, "symlink to a directory: not followed"))
            return
        _inspect_dir(target, shown, rel, rename, allowed, root, found, skipped)
    elif stat.S_ISREG(st.st_mode):
        kind = kind_of(target)
        if kind.startswith("unreadable"):
            skipped.append(Skip(shown, kind))
        else:
            found.append(Found(str(target), shown, rel, rename, st.st_size, kind))
    else:
        skipped.append(Skip(shown, "not a regular file (FIFO, socket or device): not read"))


def _check_link(path: Path, allowed: list[Path], root: Path | None,
                top: bool) -> tuple[str, Path]:
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return "broken symlink", path
    if root is not None and not target.is_relative_to(root.resolve()):
        return f"symlink to {os.readlink(path)} leads outside --root: not followed", path
    if not top and not any(target.is_relative_to(a) for a in allowed):
        return (f"symlink to {os.readlink(path)} leads outside the collected sources: "
                "not followed"), path
    return "", target


def _inspect_dir(path: Path, shown: str, rel: str, rename: str, allowed: list[Path],
                 root: Path | None, found: list[Found], skipped: list[Skip]) -> None:
    try:
        names = sorted(os.listdir(path))
    except OSError as exc:
        skipped.append(Skip(shown, f"unreadable directory: {exc.strerror}"))
        return
    aliased = _aliases(path, names)
    for name in names:
        child = path / name
        child_shown = f"{shown.rstrip('/')}/{name}"
        if name in aliased:
            skipped.append(Skip(child_shown, f"collected under its link name {aliased[name]}",
                                problem=False))
            continue
        _inspect_path(child, child_shown, _join(rel, name), rename, allowed, root, found,
                      skipped)


def _aliases(path: Path, names: list[str]) -> dict[str, str]:
    """Files of ``path`` that a symlink in the same directory names (devstack's screen-logs:
    ``screen-n-cpu.log -> screen-n-cpu.2024-05-01-120000.log``): collected once, by link."""
    out: dict[str, str] = {}
    for name in names:
        child = path / name
        if not child.is_symlink():
            continue
        try:
            target = child.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if target.parent == path.resolve() and target.name in names and target.is_file():
            out.setdefault(target.name, name)
    return out


def kind_of(path: Path) -> str:
    """text, gztext (gzip of text), binary, or 'unreadable: why'."""
    try:
        with open(path, "rb") as fh:
            sample = fh.read(SAMPLE)
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
    if path.name.endswith(BINARY_SUFFIXES):
        return "binary"
    if sample[:2] == b"\x1f\x8b":
        try:
            inner = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(sample, SAMPLE)
        except zlib.error:
            return "binary"
        return "gztext" if _is_text(inner) else "binary"
    return "text" if _is_text(sample) else "binary"


def _is_text(sample: bytes) -> bool:
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        if exc.start >= len(sample) - 3:  # a character cut by the sample's end
            return True
    odd = sum(1 for b in sample if b >= 0x80 or (b < 0x20 and b not in b"\t\n\r\f\b\x1b"))
    return odd <= len(sample) // 10


# --------------------------------------------------------------------------------------------
# plan: pure


def plan(inventory: Inventory, dest: Path, *, compression: str = "gzip",
         budget: int | None = None, level: int = 6, engine: str = "zlib",
         reserved: Iterable[str] = ()) -> CollectPlan:
    """Decide each file's stored name, mode and cap; later duplicates of a name are skipped.

    ``reserved`` names are already taken (by an earlier plan into the same ``dest``).
    """
    compress = compression == "gzip"
    cap = budget_cap([f.size for f in inventory.found], budget)
    tasks: list[Task] = []
    skipped = list(inventory.skipped)
    taken: dict[str, str] = {rel: "an earlier source" for rel in reserved}
    for f in inventory.found:
        rel = stored_name(f.rel, f.rename)
        mode = {"text": "redact", "gztext": "redact-gz", "binary": "copy"}[f.kind]
        if f.kind == "text" and compress:
            rel += ".gz"
        if f.kind == "gztext" and not rel.endswith(".gz"):
            rel += ".gz"
        if rel in taken or os.path.basename(rel) in RESERVED and "/" not in rel:
            skipped.append(Skip(f.shown, f"{rel} already taken by {taken.get(rel, 'dsvm')}"))
            continue
        if f.kind == "binary" and cap is not None and f.size > cap:
            skipped.append(Skip(f.shown, f"binary file of {f.size} bytes over the size budget"))
            continue
        taken[rel] = f.shown
        file_cap = cap if cap is not None and f.size > cap and f.kind == "text" else None
        tasks.append(Task(f.path, f.shown, str(dest / rel), rel, mode,
                          compress=mode != "copy" and (compress or mode == "redact-gz"),
                          cap=file_cap, level=level, engine=engine,
                          config=mode != "copy" and is_config(f.shown)))
    return CollectPlan(dest, tuple(tasks), tuple(skipped), inventory.missing, compression,
                       budget, cap)


def budget_cap(sizes: Sequence[int], budget: int | None) -> int | None:
    """The per-file cap C with sum(min(size, C)) <= budget (largest files cut first), or None."""
    if not budget or sum(sizes) <= budget:
        return None
    ordered = sorted(sizes)
    remaining = budget
    for i, size in enumerate(ordered):
        left = len(ordered) - i
        if size * left > remaining:
            return max(remaining // left, 1024)
        remaining -= size
    return None


# --------------------------------------------------------------------------------------------
# apply


def rotate(dest: Path, keep: int = 3) -> Path | None:
    """Move a non-empty ``dest`` to ``dest.1`` (shifting older ones, keeping ``keep``)."""
    if not dest.exists() or (dest.is_dir() and not any(dest.iterdir())):
        return None
    import shutil

    for n in range(keep, 0, -1):
        older = dest.with_name(f"{dest.name}.{n}")
        if older.exists():
            if n == keep:
                shutil.rmtree(older) if older.is_dir() else older.unlink()
            else:
                older.rename(dest.with_name(f"{dest.name}.{n + 1}"))
    rotated = dest.with_name(f"{dest.name}.1")
    dest.rename(rotated)
    return rotated


@dataclass(frozen=True)
class Late:
    """Tasks known only later (node snapshots still running): ``start`` is called once the
    worker processes exist (so no worker is forked holding a command's pipe open), ``tasks``
    once every planned task is queued; it may block until they are ready."""

    start: Callable[[], None]
    tasks: Callable[[], Sequence[Task]]


def merge(first: CollectPlan, then: CollectPlan) -> CollectPlan:
    """One plan holding both plans' tasks, refusals and missing sources."""
    return CollectPlan(first.dest, first.tasks + then.tasks, first.skipped + then.skipped,
                       first.missing + then.missing, first.compression, first.budget,
                       first.cap)


def apply(collect_plan: CollectPlan, redactor: Redactor, *, jobs: int = 0,
          advance: Callable[[Stored], None] | None = None,
          late: Late | None = None) -> list[Stored]:
    """Run every task (in ``jobs`` worker processes when worth it), then ``late``'s tasks;
    return their records."""
    collect_plan.dest.mkdir(parents=True, exist_ok=True)
    tasks = list(collect_plan.tasks)
    jobs = jobs or os.cpu_count() or 1
    results: list[Stored] = []
    if jobs <= 1 or len(tasks) < 4:
        if late:
            late.start()
        for task in [*tasks, *(late.tasks() if late else ())]:
            results.append(store(task, redactor))
            if advance:
                advance(results[-1])
        return results
    import multiprocessing

    # fork: ~0.5 s cheaper than forkserver on 2 loaded cores. Workers only run store()
    # (open/read/re/zlib/write), never the console or logging whose locks a thread may hold.
    ctx = multiprocessing.get_context("fork")
    # Largest first, so one huge log does not start last and run alone.
    tasks.sort(key=lambda t: -_size(t.source))
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=init_worker,
                             initargs=(redactor,)) as pool:
        pending: set[Future[Stored]] = set()
        started = False
        try:
            for task in tasks:  # bounded queue: memory stays flat whatever the file count
                pending.add(pool.submit(store_in_worker, task))
                if late and not started:  # the first submit forked every worker
                    late.start()
                    started = True
                if len(pending) >= jobs * 4:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    _drain(done, results, advance)
            for task in late.tasks() if late else ():
                pending.add(pool.submit(store_in_worker, task))
            done, pending = wait(pending)
            _drain(done, results, advance)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return results


def _drain(done: Iterable[Future[Stored]], results: list[Stored],
           advance: Callable[[Stored], None] | None) -> None:
    for fut in done:
        results.append(fut.result())
        if advance:
            advance(results[-1])


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
