"""Real stestr streams through dsvm results, cross-checked with python-subunit's own tools."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from dsvm.results import junit, stream
from tests.fixtures.results_streams import results_streams  # noqa: F401 - fixture

BIN = Path(sys.executable).parent
DSVM = [sys.executable, "-m", "dsvm"]


def subunit_stats(path: Path) -> dict[str, int]:
    out = subprocess.run([str(BIN / "subunit-stats")], stdin=path.open("rb"),
                         capture_output=True, text=True, check=False).stdout
    return {m.group(1).lower(): int(m.group(2))
            for m in re.finditer(r"^(\w+) tests:\s+(\d+)", out, re.M)}


def dsvm(*args: str, stdin: bytes | None = None, env: dict | None = None,
         ) -> subprocess.CompletedProcess:
    return subprocess.run([*DSVM, "--no-color", *args], input=stdin, capture_output=True,
                          check=False, timeout=120, env=env)


@pytest.mark.parametrize("name", ["mixed", "mixed-live", "tempestish", "crash-live"])
def test_counts_agree_with_subunit_stats(results_streams, name) -> None:  # noqa: F811
    run = stream.read(results_streams[name])
    stats = subunit_stats(results_streams[name])
    c = run.counts
    assert stats["total"] == len(run.tests)
    assert stats["skipped"] == c["skip"]
    # subunit-stats counts xfail and uxsuccess as passed; dsvm keeps them apart
    assert stats["passed"] == c["success"] + c["xfail"] + c["uxsuccess"]
    assert stats["failed"] == c["fail"] + c[stream.CRASHED]


def test_mixed_statuses_exact(results_streams) -> None:  # noqa: F811
    run = stream.read(results_streams["mixed"])
    by_name = {t.test_id.rsplit(".", 1)[-1]: t.status for t in run.tests}
    assert by_name["test_xfail"] == "xfail" and by_name["test_uxsuccess"] == "uxsuccess"
    assert by_name["test_fail"] == "fail" and by_name["test_error"] == "fail"
    assert by_name["test_ünïcode_名前"] == "success"
    ids = {t.test_id for t in run.tests}
    assert "setUpClass (suite.test_mixed.BrokenSetup)" in ids
    assert "setUpClass (suite.test_mixed.SkippedClass)" in ids
    att = {t.test_id: t for t in run.tests}["suite.test_mixed.Outcomes.test_attachments"]
    assert att.attachment("api-log").text() == "GET /v2.1/servers 200\n"
    assert {t.worker for t in run.tests} == {0, 1}


def test_live_stream_ignores_exists_and_keeps_stray_output(results_streams) -> None:  # noqa: F811
    live = stream.read(results_streams["mixed-live"])
    stored = stream.read(results_streams["mixed"])
    assert sorted((t.test_id, t.status) for t in live.tests) == \
        sorted((t.test_id, t.status) for t in stored.tests)
    assert b"captured stdout line" in live.stray_output


def test_crashed_worker_is_an_error_never_dropped(results_streams) -> None:  # noqa: F811
    run = stream.read(results_streams["crash-live"])
    crashed = [t for t in run.tests if t.status == stream.CRASHED]
    assert [t.test_id for t in crashed] == ["suite.test_crash.Crash.test_b_crashes"]
    root = etree.fromstring(junit.render(run).encode())
    case = root.find(".//testcase[@name='test_b_crashes']")
    assert case.find("error") is not None


def test_summary_exit_codes_and_stdin(results_streams, tmp_path) -> None:  # noqa: F811
    failing = dsvm("results", "summary", str(results_streams["mixed"]))
    assert failing.returncode == 1, failing.stderr
    # stestr's own totals for this suite: Failed 3 (incl. setUpClass), Unexpected Success 1
    assert b"FAILED: 4 failing test(s)" in failing.stdout
    # a run with only passes/skips: filter the stream with python-subunit's own tool
    passing = subprocess.run([str(BIN / "subunit-filter"), "--no-failure", "--no-error",
                              "--no-passthrough"],
                             stdin=results_streams["tempestish"].open("rb"),
                             capture_output=True, check=True).stdout
    ok = dsvm("results", "summary", "-", "--json", stdin=passing)
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    (tmp_path / "passing.subunit").write_bytes(passing)
    assert data["ok"] is True and data["counts"]["fail"] == 0
    assert data["total"] == subunit_stats(tmp_path / "passing.subunit")["total"] >= 1
    bad = dsvm("results", "summary", str(results_streams["not-subunit"]))
    assert bad.returncode == 2 and b"not a subunit v2 stream" in bad.stderr
    empty = dsvm("results", "summary", "-", stdin=b"")
    assert empty.returncode == 2 and b"empty" in empty.stderr


def test_truncated_real_stream(results_streams) -> None:  # noqa: F811
    run = stream.read(results_streams["truncated"])
    full = stream.read(results_streams["mixed"])
    assert run.problem
    assert 0 < len([t for t in run.tests if t.status != stream.CRASHED]) < len(full.tests)
    res = dsvm("results", "summary", str(results_streams["truncated"]))
    assert b"truncated or corrupt" in res.stdout


def test_junit_and_html_outputs_to_files(results_streams, tmp_path) -> None:  # noqa: F811
    xml_path, html_path = tmp_path / "out" / "junit.xml", tmp_path / "report.html"
    assert dsvm("results", "junit", str(results_streams["tempestish"]), "-o",
                str(xml_path)).returncode == 0
    root = etree.parse(str(xml_path)).getroot()
    names = {(c.get("classname"), c.get("name")) for c in root.iter("testcase")}
    assert ("suite.api.compute.test_servers.ServersTestJSON",
            "test_list_servers[id-2ccd661a-50a6-5fa0-a0f9-b28403ba69dd,smoke]") in names
    assert dsvm("results", "html", str(results_streams["mixed"]), "-o",
                str(html_path)).returncode == 0
    page = html_path.read_text()
    assert "<script src" not in page and "http://" not in page and "https://" not in page
    assert "test_ünïcode_名前" in page
