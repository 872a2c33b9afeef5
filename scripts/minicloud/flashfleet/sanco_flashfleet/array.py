"""The FlashFleet array itself: a directory of sparse files, with a login and misbehave switches.

Layout of an array directory::

    array.json                 {"name", "serial", "password", "pools": {pool: capacity_gb}}
    switches.json              optional: {"fail_create": N|true, "leak_on_delete": bool,
                                          "slow_seconds": S}
    pools/<pool>/<object>.img  a volume, snapshot or clone (sparse, size_gb long)
    pools/<pool>/<object>.json {"kind", "size_gb", "source", "created"}

This module imports nothing from Cinder, so the inventory CLI and the tests read an array
without a Cinder install.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

GIB = 1024 ** 3
CHUNK = 1024 * 1024
SWITCHES_ENV = "FLASHFLEET_SWITCHES"


class ArrayError(Exception):
    """The array refused a request (what an array's REST API would answer with an error)."""


class Array:
    """One FlashFleet array rooted at a directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @classmethod
    def initialise(cls, root: str | os.PathLike[str], *, name: str, password: str,
                   pools: dict[str, int]) -> Array:
        """Initialise an empty array (idempotent for the same pools)."""
        array = cls(root)
        array.root.mkdir(parents=True, exist_ok=True)
        meta = {"name": name, "serial": "FF-" + secrets.token_hex(4).upper(),
                "password": password, "pools": pools}
        path = array.root / "array.json"
        if path.exists():
            meta["serial"] = json.loads(path.read_text())["serial"]
        path.write_text(json.dumps(meta, indent=2) + "\n")
        path.chmod(0o600)  # it holds the array's password
        for pool in pools:
            (array.root / "pools" / pool).mkdir(parents=True, exist_ok=True)
        return array

    # -- facts ---------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        path = self.root / "array.json"
        if not path.is_file():
            raise ArrayError(f"no FlashFleet array at {self.root} (array.json missing)")
        meta: dict[str, Any] = json.loads(path.read_text())
        return meta

    def login(self, password: str) -> None:
        """Check the password as the array's API would; raise ArrayError when it is wrong."""
        if not secrets.compare_digest(str(self.meta()["password"]), str(password)):
            raise ArrayError(f"login to array {self.meta()['name']} refused: bad password")

    def switches(self) -> dict[str, Any]:
        """The misbehave switches: switches.json, overridden by $FLASHFLEET_SWITCHES (JSON)."""
        out: dict[str, Any] = {}
        path = self.root / "switches.json"
        if path.is_file():
            out.update(json.loads(path.read_text() or "{}"))
        if os.environ.get(SWITCHES_ENV):
            out.update(json.loads(os.environ[SWITCHES_ENV]))
        return out

    def pools(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.meta()["pools"].items()}

    def _pool(self, pool: str) -> Path:
        if pool not in self.pools():
            raise ArrayError(f"pool {pool!r} does not exist on array {self.meta()['name']}")
        return self.root / "pools" / pool

    def path(self, pool: str, name: str) -> Path:
        """The file of an object (the 'LUN' a host would see)."""
        if "/" in name or name.startswith("."):
            raise ArrayError(f"bad object name {name!r}")
        return self._pool(pool) / f"{name}.img"

    def exists(self, pool: str, name: str) -> bool:
        return self.path(pool, name).is_file()

    def objects(self, pool: str) -> list[dict[str, Any]]:
        """Every object of a pool with its metadata and allocated bytes."""
        out = []
        for img in sorted(self._pool(pool).glob("*.img")):
            meta_path = img.with_suffix(".json")
            meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
            st = img.stat()
            out.append({"name": img.stem, "pool": pool, "kind": meta.get("kind", "unknown"),
                        "size_gb": meta.get("size_gb", st.st_size // GIB),
                        "source": meta.get("source"), "created": meta.get("created"),
                        "allocated_bytes": st.st_blocks * 512})
        return out

    def pool_stats(self, pool: str) -> dict[str, float]:
        """Capacity figures as Cinder reports them (GiB): total, provisioned, free."""
        total = self.pools()[pool]
        provisioned = sum(o["size_gb"] for o in self.objects(pool))
        allocated = sum(o["allocated_bytes"] for o in self.objects(pool)) / GIB
        return {"total_capacity_gb": float(total),
                "provisioned_capacity_gb": float(provisioned),
                "allocated_capacity_gb": round(allocated, 3),
                "free_capacity_gb": float(max(0, total - provisioned))}

    def inventory(self) -> dict[str, Any]:
        """What is on the array (the vendor-compliance check reads this)."""
        meta = self.meta()
        return {"array": meta["name"], "serial": meta["serial"], "vendor": "SanCo",
                "model": "FlashFleet",
                "pools": [{"name": p, **self.pool_stats(p)} for p in self.pools()],
                "objects": [o for p in self.pools() for o in self.objects(p)]}

    # -- operations ------------------------------------------------------------------------
    def create(self, pool: str, name: str, size_gb: int, *, kind: str = "volume",
               source: str | None = None) -> Path:
        """A new object: empty and sparse, or a sparse copy of ``source`` grown to size."""
        self._misbehave_on_create(name)
        path = self.path(pool, name)
        if path.exists():
            raise ArrayError(f"object {name} already exists in pool {pool}")
        stats = self.pool_stats(pool)
        if size_gb > stats["free_capacity_gb"]:
            raise ArrayError(f"pool {pool} has {stats['free_capacity_gb']:.0f} GiB free, "
                             f"{size_gb} GiB asked")
        tmp = path.with_name(f".{path.name}.tmp")
        if source is not None:
            _sparse_copy(self.path(pool, source), tmp)
        with open(tmp, "ab") as fh:
            fh.truncate(max(size_gb * GIB, os.fstat(fh.fileno()).st_size))
        tmp.chmod(0o600)
        tmp.rename(path)
        path.with_suffix(".json").write_text(json.dumps(
            {"kind": kind, "size_gb": size_gb, "source": source, "created": time.time()}))
        return path

    def delete(self, pool: str, name: str) -> bool:
        """Remove an object; False when it was not there. The leak switch keeps it."""
        self._slow()
        path = self.path(pool, name)
        if not path.exists():
            return False
        if self.switches().get("leak_on_delete"):
            return True  # the array says yes and keeps the object: a leak
        path.unlink()
        path.with_suffix(".json").unlink(missing_ok=True)
        return True

    def extend(self, pool: str, name: str, size_gb: int) -> None:
        path = self.path(pool, name)
        if not path.exists():
            raise ArrayError(f"object {name} not found in pool {pool}")
        with open(path, "r+b") as fh:
            fh.truncate(size_gb * GIB)
        meta_path = path.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        meta["size_gb"] = size_gb
        meta_path.write_text(json.dumps(meta))

    def copy_into(self, pool: str, source: str, target: str) -> None:
        """Overwrite ``target`` with the content of ``source`` (revert to a snapshot)."""
        dst = self.path(pool, target)
        size = dst.stat().st_size
        tmp = dst.with_name(f".{dst.name}.tmp")
        _sparse_copy(self.path(pool, source), tmp)
        with open(tmp, "r+b") as fh:
            fh.truncate(max(size, os.fstat(fh.fileno()).st_size))
        tmp.rename(dst)

    # -- switches --------------------------------------------------------------------------
    def _slow(self) -> None:
        delay = float(self.switches().get("slow_seconds") or 0)
        if delay > 0:
            time.sleep(delay)

    def _misbehave_on_create(self, name: str) -> None:
        self._slow()
        fail = self.switches().get("fail_create")
        if not fail:
            return
        if fail is True:
            raise ArrayError(f"array refused to create {name} (switch fail_create)")
        with self._counter("failed_creates") as count:
            if count[0] < int(fail):
                count[0] += 1
                raise ArrayError(f"array refused to create {name} (switch fail_create: "
                                 f"failure {count[0]} of {int(fail)})")

    @contextmanager
    def _counter(self, name: str) -> Iterator[list[int]]:
        path = self.root / f".{name}"
        with open(path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.seek(0)
            count = [int(fh.read().strip() or 0)]
            try:
                yield count
            finally:
                fh.seek(0)
                fh.truncate()
                fh.write(str(count[0]))


def _sparse_copy(src: Path, dst: Path) -> None:
    """Copy only the data regions of ``src`` (SEEK_DATA/SEEK_HOLE), keeping holes."""
    size = src.stat().st_size
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        fd = fin.fileno()
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: no more data
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            fin.seek(start)
            fout.seek(start)
            left = end - start
            while left > 0:
                chunk = fin.read(min(CHUNK, left))
                if not chunk:
                    break
                fout.write(chunk)
                left -= len(chunk)
            pos = end
        fout.truncate(size)
