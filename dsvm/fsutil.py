"""Files written whole or not at all: a temporary file beside the target, then a rename.

The one atomic writer of dsvm (state file, summaries, manifest, local.conf, ini edits, sudoers
drop-ins, collected logs). No fsync, as stestr's file repository: after a crash the old file
or the new one is there, which is all a re-run needs. It never imports ``tempfile`` (``dsvm
ini``'s start-up time) and never writes a byte before the mode is set, so a file that will
hold a secret is never readable by others, not even for a moment.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

StrPath = str | os.PathLike[str]


def new_file_mode() -> int:
    """The permission bits of a new file: 0666 minus the umask (as ``tee`` or ``>`` give)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def default_mode(path: StrPath) -> int:
    """The permission bits ``path`` has now, or a new file's."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return new_file_mode()


@contextmanager
def atomic_open(path: StrPath, *, mode: int | None = None,
                owner_like: StrPath | None = None) -> Iterator[BinaryIO]:
    """A binary file that replaces ``path`` when the block ends without an exception.

    ``mode`` defaults to ``default_mode(path)``. The file gets the owner of ``path`` if it
    exists, else of ``owner_like`` (so the stack user can read what root wrote); a change of
    owner only root may make is skipped. The temporary file is removed on any failure; the
    block may check it by name (``fh.name``, after ``fh.flush()``) before it is renamed, e.g.
    with ``visudo -c``.
    """
    target = os.fspath(path)
    try:
        existing: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        existing = None
    if mode is None and existing is None:
        # A new file's mode is what the kernel gives 0666 under the umask: no chmod needed.
        fd, tmp = _temp_beside(target, 0o666)
    else:
        fd, tmp = _temp_beside(target, 0o600)
        os.fchmod(fd, stat.S_IMODE(existing.st_mode) if mode is None and existing else
                  mode if mode is not None else new_file_mode())
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.raw.name = tmp  # type: ignore[attr-defined]  # fdopen names it by its fd
            yield fh
            _give_owner(fh.fileno(), existing, owner_like)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_atomic(path: StrPath, data: str | bytes, *, mode: int | None = None,
                 owner_like: StrPath | None = None, errors: str = "strict") -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8) through ``atomic_open``."""
    raw = data.encode("utf-8", errors) if isinstance(data, str) else data
    with atomic_open(path, mode=mode, owner_like=owner_like) as fh:
        fh.write(raw)


def _give_owner(fd: int, existing: os.stat_result | None, owner_like: StrPath | None) -> None:
    ref = existing
    if ref is None and owner_like is not None:
        try:
            ref = os.stat(owner_like)
        except FileNotFoundError:
            return
    if ref is not None and (ref.st_uid, ref.st_gid) != (os.geteuid(), os.getegid()):
        try:
            os.fchown(fd, ref.st_uid, ref.st_gid)
        except PermissionError:
            pass  # only root can give a file away; the caller's own is fine then


def is_temporary(name: str) -> bool:
    """True for the name of one of our temporary files (a leftover of a crash, not content)."""
    head, sep, tail = name.rpartition(".dsvm-")
    return bool(sep) and head.startswith(".") and tail.replace("-", "").isdigit()


def _temp_beside(target: str, create_mode: int) -> tuple[int, str]:
    """A new file next to ``target``, on the same filesystem (so the rename is atomic)."""
    directory, name = os.path.split(target)
    for attempt in range(100):
        tmp = os.path.join(directory or ".", f".{name}.dsvm-{os.getpid()}-{attempt}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, create_mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {name} in {directory or '.'}")

