"""What is new in the logs: service-log ERROR/TRACE lines reduced to signatures, and the ones a
failed run has that the last passing run of the same job did not (logjuicer's baseline idea,
with the results database as the baseline's memory instead of a Zuul API).

``normalise()`` and ``extract()`` are pure but for reading the job's logs; ``store()`` and
``baseline()`` talk to the results database (the ``dsvm_log_signatures`` table of
``dsvm/results/db.py``, beside subunit2sql's tables).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dsvm.compliance.evidence import JobDir, Line
from dsvm.results import db

MARKER = "dsvm_log_signatures"  # run_metadata key: this run's signatures were taken
LEVELS = ("ERROR", "CRITICAL", "TRACE")
MAX_TEXT = 1000

_HEAD = re.compile(r"^\S+ \d\d:\d\d:\d\d(?:\.\d+)? \d+ (?P<level>[A-Z]+) (?P<logger>\S+) ?")
_CONTEXT = re.compile(r"^\[[^\]]*\] ?")  # oslo's [req-… user project …] context
# Order matters: timestamps and UUIDs before the numbers inside them.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"), "<ts>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                r"[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<addr>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"(?<![\w:])(?:[0-9a-fA-F]{0,4}:){3,7}[0-9a-fA-F]{0,4}(?![\w:])"), "<ip>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b"), "<hex>"),  # ids, digests
    (re.compile(r"\b\d+(?:\.\d+)?"), "<n>"),  # not inside a word: sha1, ipv4, c-vol2
)


def normalise(message: str) -> str:
    """``message`` with ids, UUIDs, addresses, numbers and timestamps replaced by tokens."""
    text = message.strip()
    for pattern, token in _RULES:
        text = pattern.sub(token, text)
    return re.sub(r"\s+", " ", text)


@dataclass(frozen=True)
class Signature:
    """One normalised ERROR/TRACE line of one service, its first occurrence and count."""

    service: str
    text: str  # "LEVEL logger normalised-message"
    first: Line
    count: int

    @property
    def digest(self) -> str:
        return hashlib.sha256(f"{self.service}\n{self.text}".encode()).hexdigest()

    def as_json(self) -> dict[str, Any]:
        return {"service": self.service, "signature": self.text, "count": self.count,
                "first": self.first.as_json()}


def line_signature(text: str) -> str | None:
    """The signature of one oslo.log line when it is an ERROR/CRITICAL/TRACE line, else None."""
    head = _HEAD.match(text)
    if head is None or head["level"] not in LEVELS:
        return None
    rest = normalise(_CONTEXT.sub("", text[head.end():]))
    if not rest:  # the blank lines between chained tracebacks
        return None
    level = "ERROR" if head["level"] == "TRACE" else head["level"]  # old oslo: TRACE lines
    return f"{level} {head['logger']} {rest}"[:MAX_TEXT]


def of_lines(service: str, lines: Iterable[Line]) -> list[Signature]:
    """The distinct signatures of one service's log, in order of first occurrence."""
    first: dict[str, Line] = {}
    counts: dict[str, int] = {}
    for line in lines:
        sig = line_signature(line.text)
        if sig is None:
            continue
        first.setdefault(sig, line)
        counts[sig] = counts.get(sig, 0) + 1
    return [Signature(service, s, first[s], counts[s]) for s in first]


def extract(job: JobDir) -> list[Signature]:
    """Every service log's signatures (service = the screen-<svc> name)."""
    out: list[Signature] = []
    for service, path in sorted(job.service_logs().items()):
        out += of_lines(service, job.lines(path))
    return out


def new_since(current: Iterable[Signature], baseline: Iterable[str]) -> list[Signature]:
    """The signatures of ``current`` whose digest is not in ``baseline``."""
    known = set(baseline)
    return [s for s in current if s.digest not in known]


# -- the results database -------------------------------------------------------------------
def store(engine: Engine, run_uuid: str, sigs: Iterable[Signature]) -> int:
    """Store the signatures with the stored run ``run_uuid``; return how many."""
    table = db.log_signatures
    rows = [{"service": s.service[:64], "digest": s.digest, "signature": s.text,
             "first_where": s.first.where[:512], "first_line": s.first.text[:MAX_TEXT],
             "count": s.count} for s in sigs]
    with db.transaction(engine) as conn:
        db.ensure_schema(conn)
        run_id = db.find_run(conn, run_uuid)["id"]
        conn.execute(sa.delete(table).where(table.c.run_id == run_id))
        conn.execute(sa.delete(db.run_metadata).where(db.run_metadata.c.run_id == run_id,
                                                      db.run_metadata.c.key == MARKER))
        if rows:
            conn.execute(table.insert(), [{**r, "run_id": run_id} for r in rows])
        conn.execute(db.run_metadata.insert().values(run_id=run_id, key=MARKER,
                                                     value=str(len(rows))))
    return len(rows)


@dataclass(frozen=True)
class Baseline:
    """The last passing run of the same job that has signatures stored."""

    uuid: str
    run_at: str
    digests: frozenset[str]


def baseline(engine: Engine, job: Mapping[str, str], exclude_uuid: str | None = None
             ) -> Baseline | None:
    """The last passing run (no failed test, some passed) whose metadata matches ``job``
    ({"job_name": …} or {"profile": …}) and has signatures; None when there is none."""
    runs, meta = db.runs, db.run_metadata
    with db.transaction(engine) as conn:
        if db.revision(conn) != db.HEAD or not sa.inspect(conn).has_table(
                db.log_signatures.name):
            return None
        query = sa.select(runs.c.id, runs.c.uuid, runs.c.run_at).where(
            runs.c.fails == 0, runs.c.passes > 0)
        for i, (key, value) in enumerate([*job.items(), (MARKER, None)]):
            m = meta.alias(f"m{i}")
            cond = sa.and_(m.c.run_id == runs.c.id, m.c.key == key)
            if value is not None:
                cond = sa.and_(cond, m.c.value == value)
            query = query.where(sa.exists().where(cond))
        if exclude_uuid:
            query = query.where(runs.c.uuid != exclude_uuid)
        row = conn.execute(query.order_by(runs.c.run_at.desc(), runs.c.id.desc()).limit(1)
                           ).first()
        if row is None:
            return None
        digests = frozenset(d for (d,) in conn.execute(
            sa.select(db.log_signatures.c.digest).where(db.log_signatures.c.run_id == row[0])))
    return Baseline(row[1], str(row[2]), digests)
