"""Backend proof: per Cinder backend, was it exercised, configured but unused, or not configured?

Decided from the job's own evidence only: the collected ``cinder.conf`` (``enabled_backends``,
each backend's ``volume_driver``), the c-vol log (which driver each cinder-volume worker started,
"initialization completed", the volumes it created and deleted), the capabilities the driver
reported (c-sch's "service update" lines: vendor name, protocol) and ``tempest.conf``'s
``[volume]``. Every verdict carries the lines that prove it. Pure but for reading files.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dsvm.compliance.evidence import JobDir, Line, ini_get, ini_options

EXERCISED = "exercised"
UNUSED = "configured-but-unused"
NOT_CONFIGURED = "not-configured"
LVM_DRIVER = "cinder.volume.drivers.lvm.LVMVolumeDriver"

# oslo.log's line: "2026-12-04 19:00:01.123 4242 INFO cinder.volume.manager [...] message"
_HEAD = re.compile(r"^\S+ \d\d:\d\d:\d\d(?:\.\d+)? (?P<pid>\d+) (?P<level>[A-Z]+) (?P<logger>\S+)")
_START = re.compile(r"Starting volume driver (?P<cls>[A-Za-z_][\w.]*) \(")
_INIT_OK = re.compile(r"[Dd]river initialization completed")
_INIT_FAIL = re.compile(r"Failed to initialize driver|Error encountered during initialization "
                        r"of driver")
_CREATED = re.compile(r"Volume (?P<name>\S+) \((?P<id>[0-9a-f-]{36})\): created successfully")
_DELETED = re.compile(r"Deleted volume successfully")
_HOST = re.compile(r"@(?P<backend>[A-Za-z0-9_.-]+?)(?=[#.:,'\s]|$)")
_UPDATE = re.compile(r"service update from\s+(?P<host>[^@\s:]+)(?:@(?P<backend>[^#:\s]+))?"
                     r"(?:#\S+)?: (?P<caps>\{.*)")
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


def _cap(caps: str, key: str) -> str | None:
    m = re.search(rf"['\"]{key}['\"]: ['\"]([^'\"]*)['\"]", caps)
    return m.group(1) if m else None


@dataclass(frozen=True)
class Verdict:
    """One backend's verdict, the proof lines, and what breaks Cinder's rules (``violation``)."""

    name: str
    status: str  # exercised | configured-but-unused | not-configured
    driver: str
    is_declared: bool
    is_lvm: bool
    violation: str | None
    evidence: tuple[Line, ...]
    created: tuple[str, ...] = ()  # volume ids the backend created
    deleted: int = 0
    stats: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "driver": self.driver,
                "declared": self.is_declared, "lvm": self.is_lvm, "violation": self.violation,
                "created": len(self.created), "deleted": self.deleted, "stats": dict(self.stats),
                "notes": list(self.notes), "evidence": [e.as_json() for e in self.evidence]}


@dataclass
class _Worker:
    """What one cinder-volume process (pid) of one log said."""

    driver: str = ""
    backends: set[str] = field(default_factory=set)
    lines: dict[str, Line] = field(default_factory=dict)  # start | init | init_fail | create…
    created: list[str] = field(default_factory=list)
    deleted: int = 0


def scan_volume_log(lines: Iterable[Line]) -> dict[str, _Worker]:
    """pid → what that cinder-volume worker logged (driver, host@backend, creates, deletes)."""
    workers: dict[str, _Worker] = defaultdict(_Worker)
    for line in lines:
        head = _HEAD.match(line.text)
        if head is None:
            continue
        w = workers[f"{line.path}#{head['pid']}"]
        text = line.text[head.end():]
        if m := _START.search(text):
            w.driver = m["cls"]
            w.lines.setdefault("start", line)
        elif _INIT_OK.search(text):
            w.lines.setdefault("init", line)
        elif _INIT_FAIL.search(text):
            w.lines.setdefault("init_fail", line)
        elif m := _CREATED.search(text):
            w.created.append(m["id"])
            w.lines.setdefault("create", line)
        elif _DELETED.search(text):
            w.deleted += 1
            w.lines.setdefault("delete", line)
        for m in _HOST.finditer(text):
            w.backends.add(m["backend"])
    return {k: v for k, v in workers.items() if v.driver or v.created or v.lines}


def reported_stats(lines: Iterable[Line]) -> dict[str, tuple[dict[str, str], Line]]:
    """backend name → (the capabilities it reported, the first line saying so)."""
    out: dict[str, tuple[dict[str, str], Line]] = {}
    for line in lines:
        m = _UPDATE.search(line.text)
        if m is None:
            continue
        caps = m["caps"]
        name = _cap(caps, "volume_backend_name") or m["backend"] or ""
        stats = {k: v for k in ("vendor_name", "storage_protocol", "driver_version")
                 if (v := _cap(caps, k)) is not None}
        if name and name not in out:
            out[name] = (stats, line)
    return out


def _workers_of(name: str, driver: str, workers: Mapping[str, _Worker],
                single: bool) -> list[_Worker]:
    """The workers (processes that started a driver) that ran backend ``name``: those that
    logged host@name, else those that started its driver class, else the only one of a
    one-backend cinder.conf. (The parent cinder-volume process logs "host@backend" too, but
    its child starts the driver: real c-vol logs.)"""
    started = [w for w in workers.values() if w.driver]
    by_host = [w for w in started if name in w.backends]
    if by_host:
        return by_host
    cls = driver.rsplit(".", 1)[-1]
    by_class = [w for w in started if w.driver == cls]
    if by_class:
        return by_class
    return started if single else []


def decide(job: JobDir, declared: Iterable[str], *, reference_job: bool = False
           ) -> tuple[list[Verdict], list[str]]:
    """The verdict of every configured or declared backend, and problems reading evidence."""
    declared = list(declared)
    problems: list[str] = []
    conf_path = job.find("cinder_conf")
    if conf_path is None:
        problems.append("no cinder.conf among the job's files (logs/etc/cinder/cinder.conf.txt)")
        return [Verdict(n, NOT_CONFIGURED, "", True, False,
                        "no cinder.conf: cannot prove the backend was configured", ())
                for n in declared], problems
    options = ini_options(job.lines(conf_path))
    enabled_opt = ini_get(options, "DEFAULT", "enabled_backends")
    enabled = [b.strip() for b in (enabled_opt.value if enabled_opt else "").split(",")
               if b.strip()]
    workers: dict[str, _Worker] = {}
    stats: dict[str, tuple[dict[str, str], Line]] = {}
    logs = job.service_logs()
    for svc, path in logs.items():
        if svc.startswith("c-vol"):
            workers.update(scan_volume_log(job.lines(path)))
        if svc.startswith(("c-sch", "c-vol")):
            for name, found in reported_stats(job.lines(path)).items():
                stats.setdefault(name, found)
    if not any(s.startswith("c-vol") for s in logs):
        problems.append("no c-vol log among the job's files (logs/screen-c-vol.txt)")
    tempest = _tempest_volume(job)
    verdicts = [_configured(name, options, enabled_opt, workers, stats, tempest,
                            name in declared, len(enabled) == 1, reference_job)
                for name in enabled]
    for name in declared:
        if name not in enabled:
            proof = (enabled_opt.line,) if enabled_opt else ()
            verdicts.append(Verdict(name, NOT_CONFIGURED, "", True, False,
                                    f"declared backend {name} is not in cinder.conf's "
                                    "enabled_backends", proof))
    return verdicts, problems


def _tempest_volume(job: JobDir) -> dict[str, Line]:
    path = job.find("tempest_conf")
    if path is None:
        return {}
    options = ini_options(job.lines(path))
    return {o.name: o.line for o in options if o.section == "volume"
            and o.name in ("vendor_name", "storage_protocol", "backend_names")}


def _configured(name: str, options: list[Any], enabled_opt: Any, workers: Mapping[str, _Worker],
                stats: Mapping[str, tuple[dict[str, str], Line]], tempest: Mapping[str, Line],
                is_declared: bool, single: bool, reference_job: bool) -> Verdict:
    driver_opt = ini_get(options, name, "volume_driver")
    driver = driver_opt.value if driver_opt else LVM_DRIVER  # cinder's default driver
    is_lvm = driver == LVM_DRIVER or driver.endswith(".LVMVolumeDriver")
    proof: list[Line] = [enabled_opt.line] + ([driver_opt.line] if driver_opt else [])
    notes: list[str] = [] if driver_opt else [f"[{name}] sets no volume_driver: Cinder's "
                                              "default is LVM"]
    ran = _workers_of(name, driver, workers, single)
    created = [v for w in ran for v in w.created]
    deleted = sum(w.deleted for w in ran)
    for key in ("start", "init", "init_fail", "create", "delete"):
        proof += [w.lines[key] for w in ran if key in w.lines][:1]
    initialised = any("init" in w.lines for w in ran)
    got = stats.get(name)
    reported: dict[str, str] = dict(got[0]) if got else {}
    if got:
        proof.append(got[1])
    for key in ("vendor_name", "storage_protocol"):
        line = tempest.get(key)
        if line is not None:
            proof.append(line)
            value = line.text.partition("=")[2].strip()
            if key in reported and reported[key] != value:
                notes.append(f"tempest.conf [volume] {key} = {value}, but the driver reports "
                             f"{reported[key]}")
    if created and initialised:
        status = EXERCISED
        notes.insert(0, f"{len(created)} volume(s) created, {deleted} deleted on it")
    else:
        status = UNUSED
        notes.insert(0, "driver not initialised" if not initialised else
                     "no volume was created on it")
    violation = None
    if not reference_job:
        if is_lvm:
            violation = (f"backend {name} runs the LVM driver: a vendor CI must test only its "
                         "own backend (set compliance.reference_job for a reference job)")
        elif not is_declared:
            violation = f"backend {name} is enabled in cinder.conf but not declared in the " \
                        "profile's cinder.backends"
    if violation is None and is_declared and status != EXERCISED:
        violation = f"declared backend {name} was not exercised ({notes[0]})"
    return Verdict(name, status, driver, is_declared, is_lvm, violation, tuple(proof),
                   tuple(created), deleted, reported, tuple(notes))


def created_ids(verdicts: Iterable[Verdict]) -> set[str]:
    """Every volume id a backend of this job created (for leak attribution)."""
    return {v for verdict in verdicts for v in verdict.created}


def uuids(text: str) -> list[str]:
    """The UUIDs in ``text`` (object names on an array usually embed the volume's)."""
    return _UUID.findall(text)
