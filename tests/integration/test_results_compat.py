"""Compatibility proven with the pinned upstream tools (subunit2sql 1.10.0 on SQLAlchemy < 2,
subunit2junitxml, os-testr's subunit2html) in a separate, cached venv."""

from __future__ import annotations

import io
import os
import subprocess

import pytest
import sqlalchemy as sa
from lxml import etree

from dsvm.results import db, junit, stream
from tests.fixtures.results_streams import results_streams  # noqa: F401 - fixture
from tests.fixtures.results_upstream import upstream_bin  # noqa: F401 - fixture

pytestmark = pytest.mark.slow


def outcomes(run: stream.Run) -> list[tuple[str, str]]:
    return sorted((t.test_id, t.status) for t in run.tests)


def upstream(bin_dir, tool: str, *args: str, check: bool = True,
             **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / tool), *args], capture_output=True, timeout=300,
                          check=check, **kw)


def _pg_for_upstream(url: str) -> str:
    # upstream runs on psycopg2 (SQLAlchemy 1.4); dsvm on psycopg 3: same server, same data
    return db.normalize_url(url).set(drivername="postgresql+psycopg2").render_as_string(False)


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_url(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/shared.db"
        yield url, url
        return
    url = os.environ.get("DSVM_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("DSVM_TEST_POSTGRES_URL is not set (.ci/services.sh sets it)")
    engine = sa.create_engine(db.normalize_url(url))
    with engine.begin() as conn:
        db.metadata.drop_all(conn)
    yield url, _pg_for_upstream(url)
    with engine.begin() as conn:
        db.metadata.drop_all(conn)
    engine.dispose()


def test_upstream_sql2subunit_reads_what_dsvm_stored(upstream_bin, results_streams,  # noqa: F811
                                                    shared_url) -> None:
    ours_url, their_url = shared_url
    engine = db.connect(ours_url)
    for name in ("mixed", "tempestish", "crash-live"):
        original = stream.read(results_streams[name])
        stored = db.store(engine, original, meta={"zuul_change": "1"})
        out = upstream(upstream_bin, "sql2subunit", "--database-connection", their_url,
                       stored.uuid).stdout
        back = stream.parse(io.BytesIO(out), "sql2subunit")
        expected = [(i, "fail" if s == stream.CRASHED else s) for i, s in outcomes(original)]
        assert outcomes(back) == expected, name
        assert {t.worker for t in back.tests} == {t.worker for t in original.tests}
    engine.dispose()


def test_dsvm_reads_what_upstream_subunit2sql_stored(upstream_bin, results_streams,  # noqa: F811
                                                    shared_url) -> None:
    ours_url, their_url = shared_url
    upstream(upstream_bin, "subunit2sql-db-manage", "--database-connection", their_url,
             "upgrade", "head")
    for name in ("mixed", "tempestish"):
        upstream(upstream_bin, "subunit2sql", "--database-connection", their_url,
                 "--run_meta", f"suite:{name}", str(results_streams[name]))
        engine = db.connect(ours_url)
        back = db.load_run(engine, "last")
        assert back.meta["suite"] == name
        assert outcomes(back) == outcomes(stream.read(results_streams[name]))
        # and dsvm can keep writing into the database upstream created
        db.store(engine, stream.read(results_streams[name]))
        engine.dispose()


def test_statuses_where_upstream_converters_misreport(upstream_bin, results_streams,  # noqa: F811
                                                     tmp_path) -> None:
    src = results_streams["mixed"]
    # (it exits 1 when the stream has failures, like the run it converts)
    up = etree.fromstring(upstream(upstream_bin, "subunit2junitxml", check=False,
                                   stdin=src.open("rb")).stdout)
    ours = etree.fromstring(junit.render(stream.read(src)).encode())

    def case(root, name):
        return root.find(f".//testcase[@name='{name}']")

    # upstream: an unexpected success is a bare <failure> with no message; setUpClass rows
    # have an empty classname; dsvm says what happened and keeps the class
    assert case(up, "setUpClass (suite.test_mixed.BrokenSetup)").get("classname") == ""
    assert ours.find(".//testcase[@name='setUpClass']"
                     "[@classname='suite.test_mixed.BrokenSetup']/failure") is not None
    assert case(ours, "test_uxsuccess").find("failure").get("message").startswith(
        "unexpected success")
    assert case(ours, "test_xfail").find("failure") is None
    # os-testr's subunit2html runs on the same stream (the benchmark's baseline)
    upstream(upstream_bin, "subunit2html", str(src), str(tmp_path / "up.html"))
    assert (tmp_path / "up.html").stat().st_size > 1000
