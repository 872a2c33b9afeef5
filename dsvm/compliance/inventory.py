"""The array after the run: inventories before the stack phase and after Tempest, the leaks
between them, and a cleanup that removes only those.

A backend's ``inventory`` hook (``cinder.backends[*].inventory``, an argv) prints the array's
objects as JSON: a list, or ``{"objects": [...]}``, of ``{"name": ..., "size": ..., "kind":
...}`` (``size`` in bytes, or ``size_gb``; other keys are kept). A *leak* is an object that was not there before
the job, is still there after Tempest, and was created by this job's Cinder (its name or id
carries the id of a volume this job's c-vol log created) — an object another job made on the
same array meanwhile is reported as foreign and never touched. ``cleanup`` (an argv) is called
with the leaked names appended. A hook that fails or prints something else than that JSON is
a warning naming the hook: nothing is cleaned and the job's verdict does not change.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dsvm.compliance.backends import uuids
from dsvm.compliance.evidence import Line
from dsvm.errors import Problem, UsageError

_REQUEST = re.compile(r"Request \((?P<test>[A-Za-z_]\w*:[A-Za-z_]\w*)\)")
_REQ_ID = re.compile(r"\breq-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
LOOKBACK = 400  # tempest.log lines searched above an id for the request that made it


class HookError(Exception):
    """An inventory or cleanup hook failed or printed something unusable."""


@dataclass(frozen=True)
class Hooks:
    """One backend's inventory and cleanup argvs and the array they talk to."""

    backend: str
    array: str
    inventory: tuple[str, ...]
    cleanup: tuple[str, ...] = ()

    @property
    def shown(self) -> str:
        return f"cinder.backends[{self.backend}].inventory ({' '.join(self.inventory)})"


def hooks_of(backends: Iterable[Mapping[str, Any]]) -> list[Hooks]:
    """The backends of the profile that have an inventory hook (raw profile entries);
    UsageError naming every hook that is not an argument list."""
    out = []
    problems: list[Problem] = []
    for i, raw in enumerate(backends):
        if not isinstance(raw, Mapping) or not raw.get("inventory"):
            continue
        name = str(raw.get("name") or "")
        options = raw.get("options") if isinstance(raw.get("options"), Mapping) else {}
        array = str(raw.get("array") or (options or {}).get("san_ip") or name)
        argvs = []
        for key in ("inventory", "cleanup"):
            value = raw.get(key) or []
            if not (isinstance(value, list) and all(isinstance(v, str | int | float)
                                                    for v in value)):
                problems.append(Problem(f"cinder.backends[{i}].{key}", "must be an argument "
                                        "list (not a shell line)",
                                        hint=f"e.g. {key}: [flashfleet-inventory, /srv/ff]"))
                value = []
            argvs.append(tuple(str(v) for v in value))
        out.append(Hooks(name, array, argvs[0], argvs[1]))
    if problems:
        raise UsageError("bad inventory hooks in the profile", problems=problems)
    return [h for h in out if h.inventory]


@dataclass(frozen=True)
class ArrayObject:
    """One object on the array as the inventory hook listed it."""

    name: str
    size: int | None = None
    kind: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {**self.extra, "name": self.name, "size": self.size, "kind": self.kind}


def parse(text: str, shown: str) -> tuple[ArrayObject, ...]:
    """The objects of an inventory hook's output; HookError naming the hook when it is not
    the JSON described above."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise HookError(f"{shown} printed no JSON ({exc}); first bytes: {text[:60]!r}") from exc
    if isinstance(data, Mapping):
        data = data.get("objects")
    if not isinstance(data, list):
        raise HookError(f"{shown} printed JSON that is neither a list of objects nor "
                        '{"objects": [...]}')
    out = []
    for i, item in enumerate(data):
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, Mapping) or not item.get("name"):
            raise HookError(f"{shown}: object {i} has no name")
        out.append(ArrayObject(str(item["name"]), _size(item), str(item.get("kind") or ""),
                               {k: v for k, v in item.items() if k not in ("name", "size",
                                                                           "kind")}))
    return tuple(out)


def _size(item: Mapping[str, Any]) -> int | None:
    """Bytes, from ``size`` (bytes) or ``size_gb`` (GiB, as Cinder counts)."""
    for key, factor in (("size", 1), ("size_gb", 1 << 30)):
        value = item.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value * factor)
    return None


@dataclass(frozen=True)
class Snapshot:
    """One inventory of one backend's array, or why there is none."""

    backend: str
    array: str
    when: str  # UTC, ISO 8601
    objects: tuple[ArrayObject, ...] = ()
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"backend": self.backend, "array": self.array, "when": self.when,
                "error": self.error, "objects": [o.as_json() for o in self.objects]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Snapshot:
        return cls(str(data["backend"]), str(data.get("array") or data["backend"]),
                   str(data.get("when") or ""),
                   tuple(ArrayObject(str(o["name"]), o.get("size"), str(o.get("kind") or ""),
                                     {k: v for k, v in o.items()
                                      if k not in ("name", "size", "kind")})
                         for o in data.get("objects") or []), data.get("error"))


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Leak:
    """An object this job created on the array and left there."""

    backend: str
    name: str
    size: int | None
    kind: str
    volume_id: str | None
    test: str | None  # Class:test that created it, when tempest.log tells
    evidence: Line | None

    def as_json(self) -> dict[str, Any]:
        return {"backend": self.backend, "name": self.name, "size": self.size,
                "kind": self.kind, "volume_id": self.volume_id, "test": self.test,
                "evidence": self.evidence.as_json() if self.evidence else None}


@dataclass(frozen=True)
class Findings:
    """What appeared on one array during the job: leaks (ours) and foreign objects."""

    backend: str
    leaks: tuple[Leak, ...]
    foreign: tuple[ArrayObject, ...]
    warning: str | None = None


def find_leaks(before: Snapshot, after: Snapshot, created: set[str],
               tempest_log: Sequence[Line] = ()) -> Findings:
    """Objects in ``after`` but not ``before``: leaks when they carry the id of a volume this
    job created (``created``), foreign otherwise. Pure."""
    if before.error or after.error:
        return Findings(after.backend, (), (), before.error or after.error)
    known = {o.name for o in before.objects}
    leaks: list[Leak] = []
    foreign: list[ArrayObject] = []
    for obj in after.objects:
        if obj.name in known:
            continue
        ids = uuids(obj.name) + uuids(json.dumps(dict(obj.extra), default=str))
        mine = next((i for i in ids if i in created), None)
        if mine is None:
            foreign.append(obj)
            continue
        test, line = creating_test(mine, tempest_log)
        leaks.append(Leak(after.backend, obj.name, obj.size, obj.kind, mine, test, line))
    return Findings(after.backend, tuple(leaks), tuple(foreign))


def creating_test(volume_id: str, tempest_log: Sequence[Line]) -> tuple[str | None, Line | None]:
    """The test whose request first returned ``volume_id``, and its tempest.log line.

    The id first shows in a response body, a continuation of the DEBUG record of its request;
    the INFO "Request (Class:test)" line of that request carries the same request id. With
    several workers the log interleaves, so the request id decides, not the nearest line."""
    for i, line in enumerate(tempest_log):
        if volume_id not in line.text:
            continue
        window = range(i, max(-1, i - LOOKBACK), -1)
        req = next((m.group() for b in window if (m := _REQ_ID.search(tempest_log[b].text))),
                   None)
        nearest: tuple[str | None, Line | None] = (None, line)
        for back in window:
            m = _REQUEST.search(tempest_log[back].text)
            if m and (req is None or req in tempest_log[back].text):
                return m["test"], tempest_log[back]
            if m and nearest[0] is None:
                nearest = (m["test"], tempest_log[back])
        return nearest
    return None, None


def cleanup_names(findings: Findings, before: Snapshot) -> list[str]:
    """What the cleanup hook may remove: this job's leaks, never an object that existed
    before the job (checked again here, whatever find_leaks said)."""
    existed = {o.name for o in before.objects}
    return [leak.name for leak in findings.leaks if leak.name not in existed]
