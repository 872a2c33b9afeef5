"""dsvm.results.stream: id splitting and parsing of streams written by python-subunit."""

from __future__ import annotations

import io

import pytest

from dsvm.errors import UsageError
from dsvm.results import stream
from tests.fixtures.results_streams import synthetic_stream


@pytest.mark.parametrize(("test_id", "base", "attrs"), [
    ("a.b.C.test_x[id-1,smoke]", "a.b.C.test_x", "id-1,smoke"),
    ("a.b.C.test_x", "a.b.C.test_x", ""),
    ("setUpClass (a.b.C)", "setUpClass (a.b.C)", ""),
    ("[weird]", "[weird]", ""),
])
def test_split_attrs(test_id: str, base: str, attrs: str) -> None:
    assert stream.split_attrs(test_id) == (base, attrs)


@pytest.mark.parametrize(("test_id", "classname", "name"), [
    ("tempest.api.compute.servers.test_servers.ServersTestJSON.test_op[id-2ccd661a,smoke]",
     "tempest.api.compute.servers.test_servers.ServersTestJSON", "test_op[id-2ccd661a,smoke]"),
    # a dot inside the attrs must not move the split
    ("pkg.Cls.test_v[id-1,x.y]", "pkg.Cls", "test_v[id-1,x.y]"),
    ("setUpClass (tempest.api.network.test_networks.NetworksTestJSON)",
     "tempest.api.network.test_networks.NetworksTestJSON", "setUpClass"),
    ("tearDownClass (m.C)", "m.C", "tearDownClass"),
    ("process-returncode", "(root)", "process-returncode"),
    ("pkg.test_ünïcode_名前", "pkg", "test_ünïcode_名前"),
])
def test_split_class(test_id: str, classname: str, name: str) -> None:
    assert stream.split_class(test_id) == (classname, name)


def test_parse_synthetic_counts_and_attachments(tmp_path) -> None:
    path = synthetic_stream(tmp_path / "s.subunit", 100, workers=3, fail_every=10,
                            skip_every=7)
    run = stream.read(path)
    assert len(run.tests) == 100
    fails = [t for t in run.tests if t.status == "fail"]
    assert len(fails) == 10
    assert all(t.attachment("traceback") for t in fails)
    assert all("TimeoutException" in t.details_text() for t in fails)
    skips = [t for t in run.tests if t.status == "skip"]
    assert skips and all(t.details_text().startswith("Skipped until Bug") for t in skips)
    assert {t.worker for t in run.tests} == {0, 1, 2}
    assert all(t.duration > 0 for t in run.tests)
    assert run.problem is None and not run.is_ok


def test_truncated_stream_keeps_completed_tests_and_reports(tmp_path) -> None:
    full = synthetic_stream(tmp_path / "full.subunit", 50, fail_every=0, skip_every=0)
    size = full.stat().st_size
    cut = synthetic_stream(tmp_path / "cut.subunit", 50, fail_every=0, skip_every=0,
                           truncate_at=size // 2 + 7)
    run = stream.read(cut)
    assert run.problem and "Short read" in run.problem
    finished = [t for t in run.tests if t.status == "success"]
    assert 15 < len(finished) < 30
    # the test whose packets were cut is reported, never silently dropped
    assert all(t.status in ("success", stream.CRASHED) for t in run.tests)


def test_empty_and_not_subunit_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="empty"):
        stream.parse(io.BytesIO(b""), "empty")
    with pytest.raises(UsageError, match="not a subunit v2 stream") as exc:
        stream.parse(io.BytesIO(b"Ran 3 tests in 0.1s\nOK\n"), "log.txt")
    assert exc.value.exit_code == 2


def test_missing_file_is_usage_error(tmp_path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        stream.read(tmp_path / "nope.subunit")


@pytest.mark.slow
def test_ten_thousand_tests_parse(tmp_path) -> None:
    path = synthetic_stream(tmp_path / "big.subunit", 10_000, workers=8, log_bytes=100)
    run = stream.read(path)
    assert len(run.tests) == 10_000
    assert run.counts["fail"] == 400
    assert len({t.test_id for t in run.tests}) == 10_000
