"""dsvm.results.phase.run_phase: what the gate job calls after Tempest."""

from __future__ import annotations

import json

import pytest
from lxml import etree

from dsvm import phase, profile
from dsvm.console import Ui
from dsvm.errors import UsageError
from dsvm.results import db
from dsvm.results import phase as results_phase
from tests.fixtures.results_streams import results_streams  # noqa: F401 - fixture


def make_ctx(tmp_path, env_extra: dict[str, str], subunit=None):
    env = {"HOME": str(tmp_path / "home"), "ZUUL_CHANGE": "4711", "ZUUL_PATCHSET": "3",
           "ZUUL_PIPELINE": "check", "ZUUL_COMMIT": "abc123" + "0" * 34, "JOB_NAME": "vendor-dsvm",
           "BUILD_URL": "https://ci.example/job/7/", **env_extra}
    settings = profile.resolve("base", env)
    settings.set("tempest.known_failures",
                 [{"regex": "test_fail$", "bug": "https://launchpad.net/bugs/1"}], "test")
    ctx = phase.context(settings, env, workspace=tmp_path / "ws")
    ctx.ui = Ui(plain=True)
    if subunit is not None:
        ctx.outputs["tempest"] = {"subunit": str(subunit)}
    return ctx


def test_phase_writes_every_artefact_and_stores_metadata(tmp_path, results_streams) -> None:  # noqa: F811
    url = f"sqlite:///{tmp_path}/results.db"
    ctx = make_ctx(tmp_path, {"DSVM_RESULTS_DB": url}, results_streams["mixed"])
    result = results_phase.run_phase(ctx)
    assert result.exit_code == 1 and not result.outputs["ok"]
    out = tmp_path / "ws" / ".dsvm" / "results"
    for name in ("testrepository.subunit", "summary.txt", "junit.xml", "report.html",
                 "history.html"):
        assert (out / name).is_file(), name
    assert "[known: https://launchpad.net/bugs/1]" in (out / "summary.txt").read_text()
    junit = etree.parse(str(out / "junit.xml"))
    assert junit.find(".//testcase[@name='test_fail']/failure").get("message").endswith(
        "[known failure: https://launchpad.net/bugs/1]")
    assert '"history":"history.html"' in (out / "report.html").read_text()
    run = db.load_run(db.connect(url), result.outputs["run_uuid"], with_attachments=False)
    assert {k: run.meta[k] for k in ("zuul_change", "zuul_patchset", "zuul_pipeline",
                                     "zuul_commit", "job_name", "build_url", "profile")} == {
        "zuul_change": "4711", "zuul_patchset": "3", "zuul_pipeline": "check",
        "zuul_commit": "abc123" + "0" * 34, "job_name": "vendor-dsvm",
        "build_url": "https://ci.example/job/7/", "profile": "base"}
    assert run.meta["node"]
    json.dumps(result.outputs)  # the state file must be able to record it


def test_unreachable_database_warns_but_keeps_the_verdict(tmp_path, results_streams) -> None:  # noqa: F811
    ctx = make_ctx(tmp_path, {"DSVM_RESULTS_DB":
                              "postgresql+psycopg://u:hunter2@127.0.0.1:1/x?connect_timeout=2"},
                   results_streams["tempestish"])
    result = results_phase.run_phase(ctx)
    assert result.exit_code == 1
    assert "hunter2" not in result.outputs["db_error"]
    assert "history" not in result.outputs
    assert (tmp_path / "ws" / ".dsvm" / "results" / "report.html").is_file()


def test_no_stream_from_tempest_is_a_usage_error(tmp_path) -> None:
    with pytest.raises(UsageError, match="no subunit stream"):
        results_phase.run_phase(make_ctx(tmp_path, {}))
