"""A job's evidence: where its files are, and their lines with ``file:line`` locations.

A finished job directory (``$WORKSPACE``) holds the published logs (``logs/``, named as
devstack-gate names them, text possibly gzipped) and dsvm's working state (``.dsvm/``). While
``dsvm run`` is still going the logs are not collected yet, so a *live* JobDir also looks at the
node's own files (``/etc/cinder/cinder.conf``, ``$BASE/new/screen-logs/...``). This room only
reads; it never writes, and never looks at the node unless asked to.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsvm.errors import UsageError

# kind → (names under logs/, paths in the job dir or on the node). The published names are the
# logs phase's (dsvm/logs/sources.py: /etc/<project> → etc/<project>/*.txt, tempest.log →
# tempest.txt); a node path starting with "/" or "$BASE" is read only by a live JobDir.
LOCATIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "cinder_conf": (("etc/cinder/cinder.conf.txt", "etc/cinder/cinder.conf"),
                    ("/etc/cinder/cinder.conf",)),
    "tempest_conf": (("tempest_conf.txt",), ("$BASE/new/tempest/etc/tempest.conf",)),
    "tempest_log": (("tempest.txt", "tempest.log"), ("$BASE/new/tempest/tempest.log",)),
    "testr_results": (("testr_results.html",), (".dsvm/results/report.html",)),
    "subunit": (("testrepository.subunit.gz", "testrepository.subunit"),
                (".dsvm/results/testrepository.subunit", ".dsvm/tempest/testrepository.subunit")),
    "summary_json": (("dsvm/summary.json",), (".dsvm/summary.json",)),
    "state": (("dsvm/state.json",), (".dsvm/state.json",)),
}
SCREEN_DIR = "$BASE/new/screen-logs"
# kind → its name inside the logs phase's sources, before renames (a live JobDir maps these
# through the job's source table, whose owner is dsvm/logs: /etc/cinder → etc/cinder, ...).
SOURCE_NAMES: dict[str, tuple[str, ...]] = {
    "cinder_conf": ("etc/cinder/cinder.conf",),
    "tempest_conf": ("tempest_conf.txt",),
    "tempest_log": ("tempest.log",),
}


@dataclass(frozen=True)
class Line:
    """One line of an evidence file: where it is and what it says."""

    path: str  # as shown: relative to the job dir when inside it
    number: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.number}"

    def as_json(self) -> dict[str, Any]:
        return {"where": self.where, "text": self.text}


def is_job_dir(root: Path) -> bool:
    """A job directory has dsvm's state file (working, or published with the logs)."""
    return (root / ".dsvm" / "state.json").is_file() or (root / "logs" / "dsvm" /
                                                          "state.json").is_file()


class JobDir:
    """The files of one job; ``live`` also reads the node's (under ``node_root``)."""

    def __init__(self, root: Path, *, base: str = "/opt/stack", node_root: Path | None = None,
                 live: bool = False, sources: tuple[tuple[str, str], ...] = ()) -> None:
        self.root = root
        self.base = base
        self.node_root = node_root or Path("/")
        self.live = live
        self.sources = sources  # (src, dest) of the logs phase's sources, for a live JobDir

    @classmethod
    def open(cls, root: str | Path, **kwargs: Any) -> JobDir:
        """The JobDir at ``root``; UsageError (exit 2) when it is not a job directory."""
        path = Path(root).resolve()
        if not path.is_dir():
            raise UsageError(f"{root}: no such directory",
                             hint="give the job's $WORKSPACE (it holds .dsvm/ and logs/)")
        if not is_job_dir(path):
            raise UsageError(f"{root} is not a dsvm job directory: it has neither "
                             ".dsvm/state.json nor logs/dsvm/state.json",
                             hint="give the $WORKSPACE of a job that 'dsvm run' ran")
        return cls(path, **kwargs)

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def node_path(self, path: str) -> Path:
        expanded = path.replace("${BASE}", self.base).replace("$BASE", self.base)
        return self.node_root / expanded.lstrip("/")

    def _candidates(self, kind: str) -> Iterator[Path]:
        published, other = LOCATIONS[kind]
        for name in published:
            yield self.logs / name
            yield self.logs / f"{name}.gz"
        if self.live:
            for name in SOURCE_NAMES.get(kind, ()):
                for src, dest in self.sources:
                    dest = dest.strip("/")
                    if dest in ("", "."):
                        yield self.node_path(f"{src.rstrip('/')}/{name}")
                    elif name == dest:
                        yield self.node_path(src)
                    elif name.startswith(dest + "/"):
                        yield self.node_path(src.rstrip("/") + name[len(dest):])
        for name in other:
            if name.startswith(("/", "$BASE")):
                if self.live:
                    yield self.node_path(name)
            else:
                yield self.root / name

    def find(self, kind: str) -> Path | None:
        """The first existing file of ``kind`` (see LOCATIONS), or None."""
        return next((p for p in self._candidates(kind) if p.is_file()), None)

    def is_published(self, path: Path) -> bool:
        return path.is_relative_to(self.logs)

    def shown(self, path: Path) -> str:
        """``path`` relative to the job dir when inside it, else absolute."""
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)

    def service_logs(self) -> dict[str, Path]:
        """Service name (``c-vol``, ``key``…) → its log: ``logs/screen-<svc>.txt[.gz]``, and
        while live the node's ``$BASE/new/screen-logs/screen-<svc>.{txt,log}``."""
        found: dict[str, Path] = {}
        dirs = [self.logs]
        if self.live:
            dirs += [self.node_path(src) for src, dest in self.sources
                     if dest.strip("/") in ("", ".")] + [self.node_path(SCREEN_DIR)]
        for directory in dirs:
            if not directory.is_dir():
                continue
            for path in sorted(directory.glob("screen-*")):
                name = path.name.removeprefix("screen-")
                for suffix in (".gz", ".txt", ".log"):
                    name = name.removesuffix(suffix)
                if path.is_file() and name and "." not in name:
                    found.setdefault(name, path)
        return found

    def json_object(self, what: str) -> dict[str, Any]:
        """One of the job's JSON files as an object ({} when missing or unreadable)."""
        path = self.find(what)
        if path is None:
            return {}
        try:
            data = json.loads(read_text(path))
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def state(self) -> dict[str, Any]:
        """The job's state file ({} when unreadable)."""
        return self.json_object("state")

    def outputs(self, phase: str) -> dict[str, Any]:
        """One phase's recorded outputs ({} when it did not run)."""
        rec = (self.state().get("phases") or {}).get(phase) or {}
        out = rec.get("outputs") if isinstance(rec, dict) else None
        return dict(out) if isinstance(out, dict) else {}

    def lines(self, path: Path) -> list[Line]:
        """The lines of ``path`` (gzip or not) with their numbers."""
        shown = self.shown(path)
        return [Line(shown, i, text) for i, text in enumerate(read_text(path).splitlines(), 1)]


def read_bytes(path: Path) -> bytes:
    """The content of ``path``, gunzipped when it is gzip (by its magic, whatever its name)."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    return data


def read_text(path: Path) -> str:
    return read_bytes(path).decode("utf-8", errors="replace")


# -- a located ini reader: cinder.conf and tempest.conf as the services read them ----------
@dataclass(frozen=True)
class Option:
    """One ``option = value`` of an ini file, with its line."""

    section: str
    name: str
    value: str
    line: Line


def ini_options(lines: list[Line]) -> list[Option]:
    """Every option of an oslo.config-style file, in file order (continuation lines and
    comments ignored; a later duplicate is also returned: ``ini_get`` takes the last)."""
    out: list[Option] = []
    section = "DEFAULT"
    for line in lines:
        text = line.text.strip()
        if not text or text[0] in "#;":
            continue
        if text.startswith("[") and text.endswith("]"):
            section = text[1:-1].strip()
            continue
        if line.text[:1] in " \t":  # a continuation of the previous value
            continue
        name, sep, value = text.partition("=")
        if sep:
            out.append(Option(section, name.strip(), value.strip(), line))
    return out


def ini_get(options: list[Option], section: str, name: str) -> Option | None:
    """The effective ``[section] name`` (the last one, as oslo.config reads it)."""
    found = [o for o in options if o.section == section and o.name == name]
    return found[-1] if found else None
