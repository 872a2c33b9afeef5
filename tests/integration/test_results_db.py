"""The results database on real SQLite, PostgreSQL and MariaDB (URLs from .ci/services.sh)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from dsvm.errors import InfraError, UsageError
from dsvm.results import db, history, stream
from dsvm.results.stream import Attachment, Run, TestResult
from tests.fixtures.results_streams import results_streams, synthetic_stream  # noqa: F401

BACKENDS = {"sqlite": None, "postgresql": "DSVM_TEST_POSTGRES_URL",
            "mysql": "DSVM_TEST_MYSQL_URL"}
SPEC_INDEXES = {
    "tests": {"ix_test_ids", "ix_tests_test_id"},
    "runs": {"ix_run_at", "ix_run_uuid"},
    "test_runs": {"ix_test_id_status", "ix_test_id_start_time", "ix_test_runs_test_id",
                  "ix_test_runs_run_id", "ix_test_runs_start_time", "ix_test_runs_stop_time"},
    "run_metadata": {"ix_run_key_value", "ix_run_id"},
    "test_run_metadata": {"ix_test_run_key_value", "ix_test_run_id"},
    "test_metadata": {"ix_test_key_value", "ix_test_id"},
    "attachments": {"ix_attach_test_run_id"},
}
SPEC_UNIQUE = {"test_runs": "uq_test_runs", "run_metadata": "uq_run_metadata",
               "test_run_metadata": "uq_test_run_metadata", "test_metadata": "uq_test_metadata"}


def _wipe(url: str) -> None:
    engine = sa.create_engine(db.normalize_url(url))
    with engine.begin() as conn:
        db.metadata.drop_all(conn)
    engine.dispose()


@pytest.fixture(params=list(BACKENDS))
def db_url(request, tmp_path) -> str:
    var = BACKENDS[request.param]
    if var is None:
        yield f"sqlite:///{tmp_path}/results.db"
        return
    url = os.environ.get(var)
    if not url:
        pytest.skip(f"{var} is not set (.ci/services.sh sets it)")
    _wipe(url)
    yield url
    _wipe(url)


def count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_round_trip_keeps_ids_statuses_times_attachments(db_url, results_streams) -> None:  # noqa: F811
    engine = db.connect(db_url)
    for name in ("mixed", "crash-live"):
        original = stream.read(results_streams[name])
        stored = db.store(engine, original, meta={"zuul_change": "4242", "profile": "base"},
                          artifacts="https://logs.example/42")
        back = db.load_run(engine, stored.uuid)
        key = lambda r: sorted((t.test_id, t.status, t.start, t.stop, t.tags)  # noqa: E731
                               for t in r.tests)
        assert key(back) == key(original)
        atts = {t.test_id: {a.name: a.data for a in t.attachments} for t in back.tests}
        for t in original.tests:
            for a in t.attachments:
                assert atts[t.test_id][db.label(a.name)] == a.data
        assert back.meta["zuul_change"] == "4242"
    with engine.connect() as conn:
        row = conn.execute(sa.select(db.runs).order_by(db.runs.c.id)).mappings().first()
    mixed = stream.read(results_streams["mixed"]).counts
    assert (row["passes"], row["fails"], row["skips"]) == (
        mixed["success"], mixed["fail"], mixed["skip"])  # xfail/uxsuccess not counted
    assert row["artifacts"] == "https://logs.example/42"
    engine.dispose()


def test_schema_matches_subunit2sql_head(db_url) -> None:
    engine = db.connect(db_url)
    db.store(engine, Run(tests=()))
    insp = sa.inspect(engine)
    assert set(insp.get_table_names()) >= set(SPEC_INDEXES) | {"alembic_version"}
    for table, names in SPEC_INDEXES.items():
        found = {ix["name"] for ix in insp.get_indexes(table)}
        uniques = {u["name"] for u in insp.get_unique_constraints(table)}
        assert names <= found, table
        if table in SPEC_UNIQUE:
            assert SPEC_UNIQUE[table] in uniques | found
    cols = {c["name"]: c for c in insp.get_columns("test_runs")}
    assert list(cols) == ["id", "test_id", "run_id", "status", "start_time",
                          "start_time_microsecond", "stop_time", "stop_time_microsecond"]
    assert [c["name"] for c in insp.get_columns("runs")] == [
        "uuid", "id", "skips", "fails", "passes", "run_time", "artifacts", "run_at"]
    if engine.dialect.name == "postgresql":
        assert str(cols["test_id"]["type"]) == "BIGINT"
        rt = {c["name"]: c for c in insp.get_columns("tests")}["run_time"]
        assert str(rt["type"]) == "DOUBLE PRECISION"
    if engine.dialect.name in ("mysql", "mariadb"):  # the options set only for MySQL
        lengths = {ix["name"]: ix.get("dialect_options", {}).get("mysql_length")
                   for ix in insp.get_indexes("tests")}
        assert lengths == {"ix_test_ids": {"test_id": 30}, "ix_tests_test_id": {"test_id": 30}}
        att = {c["name"]: c for c in insp.get_columns("attachments")}["attachment"]
        assert str(att["type"]) == "LONGBLOB"
        assert insp.get_table_options("tests")["mysql_engine"] == "InnoDB"
    with engine.connect() as conn:
        assert conn.execute(sa.text("select version_num from alembic_version")).all() == [
            (db.HEAD,)]
    engine.dispose()


def _run(results: dict[str, str], start: dt.datetime, secs: float = 1.0) -> Run:
    tests = tuple(TestResult(f"tempest.api.volume.test_volumes.VolumesTest.{name}[id-{i}]",
                             status, start, start + dt.timedelta(seconds=secs),
                             frozenset({"worker-0"}),
                             (Attachment("traceback", "text/plain", b"Error: x"),)
                             if status == "fail" else ())
                  for i, (name, status) in enumerate(sorted(results.items())))
    return Run(tests=tests)


def test_counters_history_flaky_and_failing_since(db_url) -> None:
    engine = db.connect(db_url)
    t0 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    plan = [  # (commit, change, {test: status}) oldest → newest
        ("aaa1", "100,1", {"test_x": "success", "test_y": "success"}),
        ("aaa1", "100,1", {"test_x": "fail", "test_y": "success"}),
        ("bbb2", "101,1", {"test_x": "fail", "test_y": "fail"}),
        ("ccc3", "102,1", {"test_x": "fail", "test_y": "fail"}),
    ]
    uuids = []
    for i, (commit, change, results) in enumerate(plan):
        c, p = change.split(",")
        stored = db.store(engine, _run(results, t0 + dt.timedelta(hours=i), secs=1 + i),
                          meta={"zuul_commit": commit, "zuul_change": c, "zuul_patchset": p},
                          run_at=t0 + dt.timedelta(hours=i))
        uuids.append(stored.uuid)
    with engine.connect() as conn:
        rows = {r.test_id: r for r in conn.execute(sa.select(db.tests))}
    x = rows["tempest.api.volume.test_volumes.VolumesTest.test_x"]
    assert (x.run_count, x.success, x.failure) == (4, 1, 3)
    runs, results = history.fetch(engine, last=10, test_regex="test_")
    hist = {t.test_id.rsplit(".", 1)[-1]: t for t in history.analyse(runs, results).tests}
    assert hist["test_x"].is_flaky and not hist["test_y"].is_flaky
    assert hist["test_x"].failure_rate == pytest.approx(0.75)
    assert hist["test_x"].failing_since.uuid == uuids[1] and hist["test_x"].streak == 3
    assert hist["test_y"].failing_since.commit == "bbb2" and hist["test_y"].streak == 2
    cmp = history.compare(db.load_run(engine, uuids[0]), db.load_run(engine, "last~2"))
    assert cmp.new_failures == ("tempest.api.volume.test_volumes.VolumesTest.test_x",)
    assert history.compare(db.load_run(engine, "last~1"), db.load_run(engine, "last")
                           ).new_failures == ()
    with pytest.raises(UsageError, match="no run"):
        db.load_run(engine, "00000000-dead-beef-0000-000000000000")
    engine.dispose()


def test_duplicate_uuid_and_failed_store_write_nothing(db_url) -> None:
    engine = db.connect(db_url)
    run = _run({"test_a": "success", "test_b": "fail"}, dt.datetime(2024, 5, 1, tzinfo=dt.UTC))
    db.store(engine, run, run_uuid="11111111-2222-3333-4444-555555555555")
    before = [count(engine, t) for t in (db.runs, db.tests, db.test_runs, db.attachments)]
    with pytest.raises(UsageError, match="already"):
        db.store(engine, run, run_uuid="11111111-2222-3333-4444-555555555555")
    assert [count(engine, t) for t in (db.runs, db.tests, db.test_runs, db.attachments)] == before
    engine.dispose()


def test_failure_mid_store_rolls_back_everything(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/r.db"
    engine = db.connect(url)
    db.store(engine, Run(tests=()))
    with engine.begin() as conn:  # the database itself refuses attachments half-way through
        conn.exec_driver_sql("CREATE TRIGGER no_space BEFORE INSERT ON attachments "
                             "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    run = _run({"test_a": "success", "test_b": "fail"}, dt.datetime(2024, 5, 1, tzinfo=dt.UTC))
    with pytest.raises(InfraError, match="disk is full"):
        db.store(engine, run)
    assert count(engine, db.runs) == 1 and count(engine, db.tests) == 0
    assert count(engine, db.test_runs) == 0
    engine.dispose()


def test_older_revision_is_refused_with_the_migrate_command(tmp_path) -> None:
    engine = db.connect(f"sqlite:///{tmp_path}/old.db")
    db.store(engine, Run(tests=()))
    with engine.begin() as conn:
        conn.execute(sa.text("update alembic_version set version_num='1679b5bc102c'"))
    with pytest.raises(UsageError) as exc:
        db.store(engine, _run({"t": "success"}, dt.datetime(2024, 5, 1, tzinfo=dt.UTC)))
    assert "1679b5bc102c" in exc.value.message
    assert "subunit2sql-db-manage" in exc.value.hint and "upgrade head" in exc.value.hint
    assert count(engine, db.runs) == 1
    engine.dispose()


def _dsvm(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dsvm", "--no-color", "results", *args],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_cli_bad_and_unreachable_urls_hide_the_password(results_streams, tmp_path) -> None:  # noqa: F811
    src = str(results_streams["tempestish"])
    bad = _dsvm("store", src, "--db", "not a url")
    assert bad.returncode == 2 and "not a database URL" in bad.stderr
    down = _dsvm("store", src, "--db",
                 "postgresql+psycopg://ci:s3cr3t-pw@127.0.0.1:1/results?connect_timeout=2")
    assert down.returncode == 3, down.stderr
    assert "s3cr3t-pw" not in down.stderr + down.stdout and "127.0.0.1:1" in down.stderr
    nodriver = _dsvm("store", src, "--db", "oracle://u:pw@h/x")
    assert nodriver.returncode == 2
    env = {"DSVM_RESULTS_DB": f"sqlite:///{tmp_path}/env.db"}
    ok = _dsvm("store", src, "--json", "--meta", "job_name=vendor-dsvm", env=env)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "env.db").exists()
    missing = _dsvm("compare", "last", "nope-nope", env=env)
    assert missing.returncode == 2 and "no run 'nope-nope'" in missing.stderr


def test_default_db_is_under_home(results_streams, tmp_path) -> None:  # noqa: F811
    home = tmp_path / "home"
    res = _dsvm("store", str(results_streams["tempestish"]),
                env={"HOME": str(home), "DSVM_RESULTS_DB": ""})
    assert res.returncode == 0, res.stderr
    assert (home / ".local/share/dsvm/results.db").is_file()


@pytest.mark.slow
def test_eight_concurrent_stores_into_postgresql_lose_nothing(tmp_path) -> None:
    url = os.environ.get("DSVM_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("DSVM_TEST_POSTGRES_URL is not set (.ci/services.sh sets it)")
    _wipe(url)
    src = synthetic_stream(tmp_path / "s.subunit", 300, workers=4)
    procs = [subprocess.Popen([sys.executable, "-m", "dsvm", "--no-color", "results", "store",
                               str(src), "--db", url, "--meta", f"node=n{i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(8)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, outs
    engine = db.connect(url)
    assert count(engine, db.runs) == 8
    assert count(engine, db.tests) == 300  # no duplicated tests rows
    assert count(engine, db.test_runs) == 8 * 300
    with engine.connect() as conn:
        counts = {r[0] for r in conn.execute(sa.select(db.tests.c.run_count))}
    assert counts <= {8, 0}  # every non-skip test counted in all 8 runs
    engine.dispose()
    _wipe(url)
