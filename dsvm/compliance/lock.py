"""The array lock: two jobs sharing one storage array take turns at its inventory and cleanup.

Named after the array, so it means the same on every node: a PostgreSQL advisory lock or a
MariaDB/MySQL ``GET_LOCK`` when the results database is a server (the one thing the nodes of a
CI share), a file lock beside the SQLite results database otherwise (one node). ``kind()``
decides (pure); ``ArrayLock`` holds it for a ``with`` block.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from dsvm.errors import InfraError
from dsvm.results import db

POLL = 0.2


def kind(db_url: str) -> str:
    """``postgresql`` | ``mysql`` | ``file``: which lock a results database URL gives."""
    name = db.normalize_url(db_url).get_backend_name()
    if name == "postgresql":
        return "postgresql"
    if name in ("mysql", "mariadb"):
        return "mysql"
    return "file"


def advisory_key(array: str) -> int:
    """The signed 64-bit PostgreSQL advisory lock key of ``array``."""
    digest = hashlib.sha256(f"dsvm-array:{array}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def mysql_name(array: str) -> str:
    """The GET_LOCK name of ``array`` (MySQL caps names at 64 characters)."""
    name = f"dsvm-array-{array}"
    return name if len(name) <= 64 else "dsvm-array-" + hashlib.sha1(array.encode()).hexdigest()


def file_path(array: str, db_url: str) -> Path:
    """The lock file: beside a SQLite results database (so every job of the node shares it),
    else in the temporary directory."""
    parsed = db.normalize_url(db_url)
    database = parsed.database if parsed.get_backend_name() == "sqlite" else None
    directory = Path(database).parent if database and database != ":memory:" \
        else Path(tempfile.gettempdir())
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", array)[:80]
    return directory / f"dsvm-array-{safe}.lock"


class ArrayLock:
    """Hold the lock of ``array`` for a with-block; InfraError after ``timeout`` seconds."""

    def __init__(self, array: str, db_url: str, timeout: float = 600.0) -> None:
        self.array = array
        self.db_url = db_url
        self.timeout = timeout
        self.kind = kind(db_url)
        self._engine: Any = None
        self._conn: Any = None
        self._fd: int | None = None

    @property
    def shown(self) -> str:
        if self.kind == "postgresql":
            return f"PostgreSQL advisory lock {advisory_key(self.array)} (array {self.array})"
        if self.kind == "mysql":
            return f"MariaDB GET_LOCK('{mysql_name(self.array)}')"
        return f"file lock {file_path(self.array, self.db_url)}"

    def __enter__(self) -> ArrayLock:
        if self.kind == "file":
            self._take_file()
        else:
            self._take_db()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def _take_file(self) -> None:
        path = file_path(self.array, self.db_url)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise InfraError(f"the array lock {self.shown} is still held after "
                                     f"{self.timeout:.0f} s", hint="another job is taking "
                                     "the inventory of or cleaning the same array") from None
                time.sleep(POLL)
        self._fd = fd

    def _take_db(self) -> None:
        import sqlalchemy as sa

        self._engine = db.connect(self.db_url)
        try:
            self._conn = self._engine.connect()
            deadline = time.monotonic() + self.timeout
            while True:
                if self.kind == "postgresql":
                    got = self._conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"),
                                             {"k": advisory_key(self.array)}).scalar()
                else:
                    got = self._conn.execute(sa.text("SELECT GET_LOCK(:n, :t)"),
                                             {"n": mysql_name(self.array),
                                              "t": max(0, min(5, int(self.timeout)))}
                                             ).scalar() == 1
                self._conn.commit()  # the lock is the session's, not the transaction's
                if got:
                    return
                if time.monotonic() >= deadline:
                    raise InfraError(f"the array lock {self.shown} is still held after "
                                     f"{self.timeout:.0f} s", hint="another job is taking "
                                     "the inventory of or cleaning the same array")
                time.sleep(POLL)
        except sa.exc.DBAPIError as exc:
            self.release()
            raise InfraError(f"could not take the array lock {self.shown} in "
                             f"{db.shown(self._engine)}: "
                             f"{str(exc.orig or exc).strip().splitlines()[0]}") from exc
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Give the lock back (idempotent; closing the session would release it too)."""
        import sqlalchemy as sa

        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._conn is not None:
            try:
                if self.kind == "postgresql":
                    self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"),
                                       {"k": advisory_key(self.array)})
                else:
                    self._conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"),
                                       {"n": mysql_name(self.array)})
                self._conn.commit()
            except sa.exc.DBAPIError:  # the session is gone, and its lock with it
                pass
            self._conn.close()
            self._conn = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
