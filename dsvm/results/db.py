"""The results database: subunit2sql's schema (alembic head ``10a2b6d4b06e``) on SQLAlchemy 2.

dsvm owns the schema (see ``spec/results.md`` section 3 and DESIGN.md's deviations): the same
tables, columns, types and indexes as subunit2sql 1.10.0, stamped with its head revision so its
tools and openstack-health read what dsvm writes. A run is stored in ONE transaction (nothing
partial on error), bulk inserts instead of a commit per row, attachments as bytes, and a
per-database lock so many nodes storing at once never duplicate a ``tests`` row. This room
never prints; errors are raised with the URL minus its password.
"""

from __future__ import annotations

import os
import uuid as uuidlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from dsvm.errors import InfraError, UsageError
from dsvm.results.stream import CRASHED, FINAL, Attachment, Run, TestResult, split_attrs, utc_naive

HEAD = "10a2b6d4b06e"
# subunit2sql's alembic history, base → head (spec/results.md 3.3).
REVISIONS = ("5ef013efbc2", "1f92cfe8a6d3", "3db7b49816d5", "163fd5aa1380", "4ca26dac400e",
             "13d819bbb0ff", "28ac1ba9c3db", "5332fe255095", "1679b5bc102c", "487f279b8c78",
             "1ff737bef438", "2fb76f1a1393", "b96122f780", "2822a408bdd0", "35cd45895e56", HEAD)
DEFAULT_URL = "sqlite:///~/.local/share/dsvm/results.db"
ENV_VAR = "DSVM_RESULTS_DB"
CRASH_KEY = "dsvm_status"  # test_run_metadata marking a crashed test (stored as 'fail')
LOCK_ID = 0x64737631  # "dsv1": PostgreSQL advisory lock key / MySQL GET_LOCK name suffix
CHUNK = 500
_T = TypeVar("_T")

_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY


class _Blob(sa.types.TypeDecorator[bytes]):
    """Bytes; LONGBLOB on MySQL/MariaDB (a BLOB there holds 64 KB). The MySQL dialect is
    imported only when it is the database's: importing it costs a SQLite store ~5 ms."""

    impl = sa.LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import LONGBLOB

            return dialect.type_descriptor(LONGBLOB())
        return dialect.type_descriptor(sa.LargeBinary())


_BLOB = _Blob()

metadata = sa.MetaData()
tests = sa.Table(
    "tests", metadata,
    sa.Column("id", _PK, primary_key=True, autoincrement=True),
    sa.Column("test_id", sa.String(256), nullable=False),
    sa.Column("run_count", sa.Integer), sa.Column("success", sa.Integer),
    sa.Column("failure", sa.Integer), sa.Column("run_time", sa.Float),
    sa.Index("ix_test_ids", "id", "test_id"), sa.Index("ix_tests_test_id", "test_id"))
runs = sa.Table(
    "runs", metadata,
    sa.Column("uuid", sa.String(36)),
    sa.Column("id", _PK, primary_key=True, autoincrement=True),
    sa.Column("skips", sa.Integer), sa.Column("fails", sa.Integer),
    sa.Column("passes", sa.Integer), sa.Column("run_time", sa.Float),
    sa.Column("artifacts", sa.Text), sa.Column("run_at", sa.DateTime),
    sa.Index("ix_run_at", "run_at"), sa.Index("ix_run_uuid", "uuid"))
test_runs = sa.Table(
    "test_runs", metadata,
    sa.Column("id", _PK, primary_key=True, autoincrement=True),
    sa.Column("test_id", sa.BigInteger), sa.Column("run_id", sa.BigInteger),
    sa.Column("status", sa.String(256)),
    sa.Column("start_time", sa.DateTime), sa.Column("start_time_microsecond", sa.Integer),
    sa.Column("stop_time", sa.DateTime), sa.Column("stop_time_microsecond", sa.Integer),
    sa.Index("ix_test_id_status", "test_id", "status"),
    sa.Index("ix_test_id_start_time", "test_id", "start_time"),
    sa.Index("ix_test_runs_test_id", "test_id"), sa.Index("ix_test_runs_run_id", "run_id"),
    sa.Index("ix_test_runs_start_time", "start_time"),
    sa.Index("ix_test_runs_stop_time", "stop_time"),
    sa.UniqueConstraint("test_id", "run_id", name="uq_test_runs"))


def _meta_table(name: str, owner: str, prefix: str, ix_owner: str) -> sa.Table:
    return sa.Table(
        name, metadata,
        sa.Column("id", _PK, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(255)), sa.Column("value", sa.String(255)),
        sa.Column(owner, sa.BigInteger),
        sa.Index(f"ix_{prefix}_key_value", "key", "value"), sa.Index(ix_owner, owner),
        sa.UniqueConstraint(owner, "key", "value", name=f"uq_{name}"))


run_metadata = _meta_table("run_metadata", "run_id", "run", "ix_run_id")
test_run_metadata = _meta_table("test_run_metadata", "test_run_id", "test_run", "ix_test_run_id")
test_metadata = _meta_table("test_metadata", "test_id", "test", "ix_test_id")
attachments = sa.Table(
    "attachments", metadata,
    sa.Column("id", _PK, primary_key=True, autoincrement=True),
    sa.Column("test_run_id", sa.BigInteger), sa.Column("label", sa.String(255)),
    sa.Column("attachment", _BLOB),
    sa.Index("ix_attach_test_run_id", "test_run_id"))
# dsvm's own tables beside subunit2sql's (subunit2sql's migrations never touch them): created
# with the schema, and added to a database already at HEAD by ensure_schema().
log_signatures = sa.Table(
    "dsvm_log_signatures", metadata,
    sa.Column("id", _PK, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.BigInteger, nullable=False), sa.Column("service", sa.String(64)),
    sa.Column("digest", sa.String(64)), sa.Column("signature", sa.Text),
    sa.Column("first_where", sa.String(512)), sa.Column("first_line", sa.Text),
    sa.Column("count", sa.Integer),
    sa.Index("ix_dsvm_log_signatures_run_id", "run_id"),
    sa.Index("ix_dsvm_log_signatures_digest", "digest"))
DSVM_TABLES = (log_signatures,)
alembic_version = sa.Table(
    "alembic_version", metadata,
    sa.Column("version_num", sa.String(32), nullable=False),
    sa.PrimaryKeyConstraint("version_num", name="alembic_version_pkc"))


@dataclass(frozen=True)
class StoredRun:
    """What ``store()`` wrote: the run's uuid and row id, and how many test results."""

    uuid: str
    id: int
    results: int


# -- connecting ------------------------------------------------------------------------------
def url_for(settings: Any, env: Mapping[str, str], option: str | None = None) -> str:
    """The results database URL: ``--db`` > profile ``results.db`` > $DSVM_RESULTS_DB > the
    SQLite file under ~."""
    configured = option or (settings.results.db if settings is not None else None)
    return configured or env.get(ENV_VAR) or DEFAULT_URL


def normalize_url(url: str) -> sa.URL:
    """Parse ``url``; expand ``~`` in SQLite paths; pick the installed drivers (psycopg 3,
    PyMySQL) for bare ``postgresql://``/``mysql://``. Raise UsageError when it is not a URL."""
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise UsageError(f"not a database URL: {_hide(url)}",
                         hint="examples: sqlite:////var/lib/dsvm/results.db, "
                              "postgresql+psycopg://user:pw@host/db, "
                              "mysql+pymysql://user:pw@host/db") from exc
    if parsed.drivername == "sqlite" and parsed.database and parsed.database != ":memory:":
        parsed = parsed.set(database=os.path.expanduser(parsed.database))
    elif parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername in ("mysql", "mariadb"):
        parsed = parsed.set(drivername=f"{parsed.drivername}+pymysql")
    return parsed


def _hide(url: str | sa.URL) -> str:
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not even a URL: show no more than the scheme
        return str(url).split("://", 1)[0] + "://…"


def shown(engine: Engine) -> str:
    """The engine's URL with the password hidden."""
    return engine.url.render_as_string(hide_password=True)


def connect(url: str) -> Engine:
    """An Engine for ``url`` (SQLite directory created); UsageError for a bad URL or driver."""
    parsed = normalize_url(url)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs = {"connect_args": {"timeout": 60}}
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (sa.exc.NoSuchModuleError, ImportError) as exc:
        raise UsageError(f"no driver for {_hide(parsed)}: {exc}",
                         hint="install psycopg[binary] (PostgreSQL) or PyMySQL (MySQL)") from exc
    except sa.exc.ArgumentError as exc:
        raise UsageError(f"bad database URL {_hide(parsed)}: {exc}") from exc
    if parsed.drivername.startswith("sqlite"):
        _sqlite_immediate(engine)
    return engine


def _sqlite_immediate(engine: Engine) -> None:
    # pysqlite defers BEGIN to the first write; two writers then deadlock on upgrade. Take the
    # write lock when the transaction begins (SQLAlchemy's documented pysqlite recipe).
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        dbapi_conn.isolation_level = None
        # WAL: readers (history, dashboards) do not block the writer, and one fsync per
        # commit is enough (synchronous=NORMAL is durable in WAL mode except on power loss).
        if engine.url.database not in (None, "", ":memory:"):
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction; connection problems become InfraError (exit 3) naming the URL."""
    with _db_errors(engine), engine.begin() as conn:
        yield conn


@contextmanager
def _db_errors(engine: Engine) -> Iterator[None]:
    """Driver errors become InfraError (exit 3) naming the URL without its password."""
    try:
        yield
    except sa.exc.OperationalError as exc:
        raise InfraError(f"results database {shown(engine)} failed: "
                         f"{str(exc.orig or exc).strip().splitlines()[0]}",
                         hint="is the server up and the URL right? nothing was written") from exc
    except sa.exc.DBAPIError as exc:  # the server refused a write (disk full, locks, ...)
        raise InfraError(f"results database {shown(engine)} failed: "
                         f"{str(exc.orig or exc).strip().splitlines()[0]}",
                         hint="nothing of this run was written (one transaction)") from exc


# -- schema ----------------------------------------------------------------------------------
def revision(conn: Connection, names: set[str] | None = None) -> str | None:
    """The alembic revision stamped in the database, '' for no tables at all, None for
    subunit2sql-looking tables without a stamp (``names``: its tables, when known)."""
    if names is None:
        names = set(sa.inspect(conn).get_table_names())
    if "alembic_version" in names:
        row = conn.execute(sa.select(alembic_version.c.version_num)).first()
        return row[0] if row else None
    return "" if not names & {"tests", "runs", "test_runs"} else None


def ensure_schema(conn: Connection, create: bool = True) -> None:
    """Check the schema is at HEAD; create and stamp it in an empty database; else refuse."""
    names = set(sa.inspect(conn).get_table_names())
    rev = revision(conn, names)
    if rev == HEAD:
        missing = [t for t in DSVM_TABLES if t.name not in names]
        if create and missing:
            _create(conn, missing)
        return
    url = conn.engine.url.render_as_string(hide_password=True)
    if rev == "" and create:
        _create(conn)
        conn.execute(alembic_version.insert().values(version_num=HEAD))
        return
    if rev == "":
        raise UsageError(f"{url} holds no results yet",
                         hint="'dsvm results store STREAM --db URL' creates it")
    if rev in REVISIONS:
        raise UsageError(
            f"{url} is at subunit2sql schema revision {rev}, older than {HEAD}",
            hint=f"migrate it with subunit2sql's tool: subunit2sql-db-manage "
                 f"--database-connection '{url}' upgrade head (back it up first)")
    raise UsageError(f"{url} is not a subunit2sql database at a revision dsvm knows "
                     f"({rev or 'no alembic_version'})",
                     hint="point --db at a new or subunit2sql database")


# MySQL/MariaDB's DDL options (InnoDB tables, subunit2sql's 30-character index prefixes on
# tests.test_id), set on the tables only for a MySQL database: naming them in the Table() calls
# makes SQLAlchemy import its MySQL dialect to check them, for every SQLite store too (~30 ms).
_MYSQL_INDEX_LENGTHS: dict[str, Any] = {"ix_test_ids": {"test_id": 30}, "ix_tests_test_id": 30}


def _mysql_options() -> None:
    for table in metadata.tables.values():
        if table is not alembic_version:
            table.dialect_kwargs["mysql_engine"] = "InnoDB"
        for index in table.indexes:
            if index.name in _MYSQL_INDEX_LENGTHS:
                index.dialect_kwargs["mysql_length"] = _MYSQL_INDEX_LENGTHS[index.name]


def _create(conn: Connection, tables: list[sa.Table] | None = None) -> None:
    """CREATE the tables (all by default), with the MySQL options on MySQL/MariaDB."""
    if conn.dialect.name in ("mysql", "mariadb"):
        _mysql_options()
    metadata.create_all(conn, tables=tables, checkfirst=tables is None)


def _lock(conn: Connection) -> None:
    # tests.test_id has no unique constraint: two nodes adding the same new test would both
    # insert it. Serialise writers per database (SQLite: BEGIN IMMEDIATE already did).
    name = conn.dialect.name
    if name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_ID})
    elif name in ("mysql", "mariadb"):
        got = conn.execute(sa.text("SELECT GET_LOCK(:n, 300)"), {"n": f"dsvm-{LOCK_ID}"})
        if got.scalar() != 1:
            raise InfraError("could not take the results database lock within 300 s")


def _unlock(conn: Connection) -> None:
    # After COMMIT/ROLLBACK: GET_LOCK belongs to the session, not the transaction; released
    # before the commit, the next writer could read ``tests`` without this run's new rows.
    if conn.dialect.name in ("mysql", "mariadb"):
        try:
            conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": f"dsvm-{LOCK_ID}"})
        except sa.exc.DBAPIError:  # the session is gone, and its lock with it
            pass


@contextmanager
def _locked_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction holding the per-database writers' lock until it has committed or
    rolled back (PostgreSQL advisory xact lock, MySQL GET_LOCK, SQLite BEGIN IMMEDIATE)."""
    with _db_errors(engine), engine.connect() as conn:
        try:
            with conn.begin():
                _lock(conn)
                yield conn
        finally:
            _unlock(conn)


# -- storing ---------------------------------------------------------------------------------
def db_status(test: TestResult) -> str:
    """The status word stored in test_runs (a crash is a 'fail', as stestr counts it)."""
    return "fail" if test.status == CRASHED else test.status


def label(name: str) -> str:
    """subunit2sql's attachment label: the name cut at the first ':'."""
    return name.split(":", 1)[0][:255]


# test_runs values: status, start (as the driver takes it), its µs, stop, its µs
_Times = tuple[str, Any, int | None, Any, int | None]


@dataclass
class _Rows:
    """A run turned into row values once, before the transaction (the lock is held only for
    the writes). Lists are aligned with ``names``; ``meta``/``atts`` point into them."""

    names: list[str]  # tests.test_id, first-seen order
    counts: list[tuple[int, int, float]]  # (success?, failure?, duration) per name
    times: list[_Times]  # test_runs (status, start, start_µs, stop, stop_µs) per name
    meta: list[tuple[int, str, str]]  # (name index, key, value) for test_run_metadata
    atts: list[tuple[int, str, bytes]]  # (name index, label, data) for attachments
    passes: int
    fails: int
    skips: int


def _rows(run: Run, dialect: sa.Dialect) -> _Rows:
    # test_runs has UNIQUE(test_id, run_id): a test re-run inside one stream keeps its last
    # result (that is what stestr's --until-failure/combine and retries report as final).
    final: dict[str, tuple[TestResult, str]] = {}
    for test in run.tests:
        base, attrs = split_attrs(test.test_id)
        final[base[:256]] = (test, attrs)
    when = _datetime_binder(dialect)
    labels: dict[str, str] = {}
    counts: list[tuple[int, int, float]] = []
    times: list[_Times] = []
    meta: list[tuple[int, str, str]] = []
    atts: list[tuple[int, str, bytes]] = []
    passes = fails = skips = 0
    for i, (test, attrs) in enumerate(final.values()):
        status = test.status
        crashed = status == CRASHED
        if crashed:
            status = "fail"
        ok, bad = int(status == "success"), int(status == "fail")
        passes += ok
        fails += bad
        skips += status == "skip"
        start, stop = test.start, test.stop
        if start is None or stop is None:
            start, stop = utc_naive(start), utc_naive(stop)
            counts.append((ok, bad, 0.0))
            times.append((status, None if start is None else when(start),
                          None if start is None else start.microsecond,
                          None if stop is None else when(stop),
                          None if stop is None else stop.microsecond))
        else:
            if start.tzinfo is not UTC or stop.tzinfo is not UTC:  # subunit's are UTC
                start, stop = utc_naive(start), utc_naive(stop)
            counts.append((ok, bad, max(0.0, (stop - start).total_seconds())))
            times.append((status, when(start), start.microsecond, when(stop), stop.microsecond))
        if attrs:
            meta.append((i, "attrs", attrs[:255]))
        if test.tags:
            meta.append((i, "tags", ",".join(sorted(test.tags))[:255]))
        if crashed:
            meta.append((i, CRASH_KEY, CRASHED))
        for att in test.attachments:
            name = att.name
            lbl = labels.get(name)
            if lbl is None:
                lbl = labels[name] = label(name)
            atts.append((i, lbl, att.data))
    return _Rows(list(final), counts, times, meta, atts, passes, fails, skips)


def _datetime_binder(dialect: sa.Dialect) -> Callable[[datetime], Any]:
    """What the driver is given for a DateTime column, from a naive-UTC or UTC-aware
    datetime (no ``astimezone`` copy for subunit's UTC timestamps): SQLite's text, in
    SQLAlchemy's format (``isoformat`` when that is identical, checked here), other drivers
    a naive datetime."""
    proc = test_runs.c.start_time.type._cached_bind_processor(dialect)
    if proc is None:
        return lambda value: value if value.tzinfo is None else value.replace(tzinfo=None)
    probes = (datetime(2024, 5, 1, 12, 0, 0), datetime(987, 6, 5, 4, 3, 2, 10))
    if all(proc(v) == v.isoformat(" ", "microseconds") for v in probes):
        # 'YYYY-MM-DD HH:MM:SS.ffffff' (26 characters), then '+00:00' when aware
        return lambda value: value.isoformat(" ", "microseconds")[:26]
    return lambda value: proc(value.replace(tzinfo=None))


def store(engine: Engine, run: Run, *, run_uuid: str | None = None,
          meta: Mapping[str, str] | None = None, artifacts: str | None = None,
          run_at: datetime | None = None) -> StoredRun:
    """Write ``run`` in one transaction; return what was stored. Raises UsageError (schema,
    duplicate uuid) or InfraError (database unreachable)."""
    rows = _rows(run, engine.dialect)
    run_uuid = run_uuid or str(uuidlib.uuid4())
    run_meta_rows = [(str(k)[:255], str(v)[:255])
                     for k, v in sorted((meta or {}).items()) if v not in (None, "")]
    with _locked_transaction(engine) as conn:
        ensure_schema(conn)
        if conn.execute(sa.select(runs.c.id).where(runs.c.uuid == run_uuid)).first():
            raise UsageError(f"run {run_uuid} is already in {shown(engine)}")
        inserted = conn.execute(runs.insert().values(
            uuid=run_uuid, passes=rows.passes, fails=rows.fails, skips=rows.skips,
            run_time=run.test_seconds, artifacts=artifacts,
            run_at=utc_naive(run_at) or datetime.now(UTC).replace(tzinfo=None),
        )).inserted_primary_key
        run_id = int(inserted[0]) if inserted is not None else 0
        _executemany(conn, run_metadata.insert(), ("key", "value", "run_id"),
                     [(k, v, run_id) for k, v in run_meta_rows])
        test_ids = _upsert_tests(conn, rows)
        _insert_test_runs(conn, run_id, rows, test_ids)
    return StoredRun(run_uuid, int(run_id), len(rows.names))


def _executemany(conn: Connection, stmt: sa.Insert | sa.Update, keys: tuple[str, ...],
                 rows: list[tuple[Any, ...]], chunk: int | None = None) -> None:
    """executemany of value tuples (in ``keys`` order) straight on the driver, inside the
    connection's transaction: SQLAlchemy's per-row parameter handling was most of the store
    time (benchmarks/bench_results.py). Values must already be what the driver takes (see
    ``_datetime_binder``); no type processing happens here. ``chunk`` bounds the rows per
    statement (PyMySQL sends one multi-row INSERT; MySQL's max_allowed_packet)."""
    if not rows:
        return
    compiled = stmt.compile(dialect=conn.dialect, column_keys=list(keys))
    params: list[Any]
    if compiled.positional:
        order = tuple(compiled.positiontup or ())
        if order != keys:
            pick = [keys.index(k) for k in order]
            rows = [tuple(r[i] for i in pick) for r in rows]
        params = rows
    else:
        params = [dict(zip(keys, r, strict=True)) for r in rows]
    for part in ([params] if chunk is None else _chunks(params, chunk)):
        conn.exec_driver_sql(compiled.string, part)


def _chunks(items: list[_T], size: int = CHUNK) -> Iterator[list[_T]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _marker(conn: Connection) -> str | None:
    """The driver's positional placeholder, or None (then SQLAlchemy expands IN lists)."""
    return {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(conn.dialect.paramstyle)


def _existing_tests(conn: Connection, names: list[str]) -> dict[str, tuple[Any, ...]]:
    """test_id → (id, success, failure, run_count, run_time) of the ``tests`` rows there."""
    existing: dict[str, tuple[Any, ...]] = {}
    mark = _marker(conn)
    cols = "test_id, id, success, failure, run_count, run_time"
    for chunk in _chunks(names):
        if mark:  # SQLAlchemy's expanding IN costs ~10 µs a name; a plain IN list does not
            found = conn.exec_driver_sql(
                f"SELECT {cols} FROM tests WHERE test_id IN ({', '.join([mark] * len(chunk))})",
                tuple(chunk))
        else:
            found = conn.execute(sa.select(tests.c.test_id, tests.c.id, tests.c.success,
                                           tests.c.failure, tests.c.run_count,
                                           tests.c.run_time).where(tests.c.test_id.in_(chunk)))
        for row in found:
            existing.setdefault(row[0], tuple(row[1:]))
    return existing


def _upsert_tests(conn: Connection, rows: _Rows) -> list[int]:
    """Create missing ``tests`` rows and update counters like subunit2sql; return the ids,
    aligned with ``rows.names``."""
    top = conn.execute(sa.select(sa.func.max(tests.c.id))).scalar()
    existing = _existing_tests(conn, rows.names) if top is not None else {}
    new_rows, updates = [], []
    for name, (ok, bad, duration) in zip(rows.names, rows.counts, strict=True):
        if name not in existing:
            new_rows.append((name, ok + bad, ok, bad, duration))
        elif ok or bad:
            tid, success, failure, count, avg = existing[name]
            success, failure = success or 0, failure or 0
            if ok and isinstance(avg, float):  # subunit2sql's running average of passes
                avg = (success * avg + duration) / (success + 1)
            updates.append(((count or 0) + 1, success + ok, failure + bad, avg, tid))
    _executemany(conn, tests.insert(), ("test_id", "run_count", "success", "failure",
                                        "run_time"), new_rows)
    _executemany(conn, tests.update().where(tests.c.id == sa.bindparam("b_id")).values(
        run_count=sa.bindparam("b_count"), success=sa.bindparam("b_ok"),
        failure=sa.bindparam("b_bad"), run_time=sa.bindparam("b_time")),
        ("b_count", "b_ok", "b_bad", "b_time", "b_id"), updates)
    ids = {name: row[0] for name, row in existing.items()}
    if new_rows:  # the writers' lock is held: every row above the old top id is this run's
        new = {r[0] for r in new_rows}
        query = sa.select(tests.c.test_id, tests.c.id)
        for name, tid in conn.execute(query if top is None else query.where(tests.c.id > top)
                                      ).all():
            if name in new:
                ids.setdefault(name, tid)
    return [ids[name] for name in rows.names]


def _insert_test_runs(conn: Connection, run_id: int, rows: _Rows, test_ids: list[int]) -> None:
    _executemany(conn, test_runs.insert(),
                 ("test_id", "run_id", "status", "start_time", "start_time_microsecond",
                  "stop_time", "stop_time_microsecond"),
                 [(tid, run_id, *t) for tid, t in zip(test_ids, rows.times, strict=True)])
    by_test = dict(conn.execute(sa.select(test_runs.c.test_id, test_runs.c.id)
                                .where(test_runs.c.run_id == run_id)).all())
    tr = [by_test[tid] for tid in test_ids]
    _executemany(conn, test_run_metadata.insert(), ("key", "value", "test_run_id"),
                 [(k, v, tr[i]) for i, k, v in rows.meta])  # the table's column order
    _executemany(conn, attachments.insert(), ("test_run_id", "label", "attachment"),
                 [(tr[i], lbl, data) for i, lbl, data in rows.atts], chunk=CHUNK)


# -- reading ---------------------------------------------------------------------------------
def find_run(conn: Connection, ref: str) -> sa.RowMapping:
    """The runs row for a uuid, a numeric id, a unique uuid prefix, or 'last'/'last~N';
    raise UsageError when there is no such run."""
    cols = [runs.c.id, runs.c.uuid, runs.c.run_at, runs.c.passes, runs.c.fails, runs.c.skips,
            runs.c.run_time, runs.c.artifacts]
    query = sa.select(*cols)
    back = _last_offset(ref)
    if back is not None:
        rows = conn.execute(query.order_by(runs.c.run_at.desc(), runs.c.id.desc())
                            .limit(1).offset(back)).mappings().all()
    else:
        cond = runs.c.uuid == ref
        if ref.isdigit():
            cond = sa.or_(cond, runs.c.id == int(ref))
        rows = conn.execute(query.where(cond)).mappings().all()
        if not rows and len(ref) >= 4:
            rows = conn.execute(query.where(runs.c.uuid.startswith(ref, autoescape=True))
                                .limit(2)).mappings().all()
    if len(rows) != 1:
        raise UsageError(f"no run {ref!r} in {conn.engine.url.render_as_string(True)}"
                         if not rows else f"run prefix {ref!r} is ambiguous",
                         hint="'dsvm results history --runs' lists the stored runs")
    return rows[0]


def _last_offset(ref: str) -> int | None:
    """``last`` → 0, ``last~N`` → N, anything else → None."""
    if ref == "last":
        return 0
    if ref.startswith("last~") and ref[5:].isdigit():
        return int(ref[5:])
    return None


def run_meta(conn: Connection, run_ids: list[int]) -> dict[int, dict[str, str]]:
    """run id → its metadata."""
    out: dict[int, dict[str, str]] = {i: {} for i in run_ids}
    for chunk in _chunks(run_ids):
        for rid, key, value in conn.execute(
                sa.select(run_metadata.c.run_id, run_metadata.c.key, run_metadata.c.value)
                .where(run_metadata.c.run_id.in_(chunk))):
            out[rid][key] = value
    return out


def _when(value: datetime | None, micro: int | None) -> datetime | None:
    if value is None:
        return None
    if micro is not None:  # MySQL DATETIME dropped it; the column kept it
        value = value.replace(microsecond=micro)
    return value.replace(tzinfo=UTC)


def load_run(engine: Engine, ref: str, with_attachments: bool = True) -> Run:
    """Rebuild a stored run as a Run (full ids with attrs, statuses, times, attachments)."""
    with transaction(engine) as conn:
        ensure_schema(conn, create=False)
        row = find_run(conn, ref)
        trs = conn.execute(
            sa.select(test_runs.c.id, tests.c.test_id, test_runs.c.status,
                      test_runs.c.start_time, test_runs.c.start_time_microsecond,
                      test_runs.c.stop_time, test_runs.c.stop_time_microsecond)
            .join(tests, tests.c.id == test_runs.c.test_id)
            .where(test_runs.c.run_id == row["id"]).order_by(test_runs.c.id)).all()
        meta: dict[int, dict[str, str]] = {}
        for trid, key, value in conn.execute(
                sa.select(test_run_metadata.c.test_run_id, test_run_metadata.c.key,
                          test_run_metadata.c.value)
                .join(test_runs, test_runs.c.id == test_run_metadata.c.test_run_id)
                .where(test_runs.c.run_id == row["id"])):
            meta.setdefault(trid, {})[key] = value
        atts: dict[int, list[Attachment]] = {}
        if with_attachments:
            for trid, lbl, data in conn.execute(
                    sa.select(attachments.c.test_run_id, attachments.c.label,
                              attachments.c.attachment)
                    .join(test_runs, test_runs.c.id == attachments.c.test_run_id)
                    .where(test_runs.c.run_id == row["id"]).order_by(attachments.c.id)):
                atts.setdefault(trid, []).append(Attachment(lbl or "", _mime(lbl), bytes(data
                                                            or b"")))
        rmeta = run_meta(conn, [row["id"]])[row["id"]]
    result = []
    for trid, name, status, st, stu, sp, spu in trs:
        m = meta.get(trid, {})
        full = f"{name}[{m['attrs']}]" if m.get("attrs") else name
        status = CRASHED if m.get(CRASH_KEY) == CRASHED else status
        if status not in FINAL and status != CRASHED:
            status = "fail"
        tags = frozenset(t for t in (m.get("tags") or "").split(",") if t)
        result.append(TestResult(full, status, _when(st, stu), _when(sp, spu), tags,
                                 tuple(atts.get(trid, ()))))
    meta_all = {"uuid": row["uuid"], **rmeta}
    return Run(tests=tuple(result), source=f"run {row['uuid']}", meta=meta_all)


def _mime(lbl: str | None) -> str:
    if lbl == "traceback":
        return "text/x-traceback;charset=utf8,language=python"
    return "text/plain;charset=utf8"
