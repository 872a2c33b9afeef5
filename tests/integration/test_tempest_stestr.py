"""The Tempest phase against real stestr, on a small suite shaped like Tempest."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest
import subunit
import testtools

from dsvm import cli, tempest
from dsvm.console import Ui
from dsvm.errors import EXIT_TIMEOUT, EXIT_USAGE, BudgetExpiredError, UsageError
from tests.fixtures.tempest_builders import copy_suite, job_context

HANG = "test_volume_delete_hangs"


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    return copy_suite(tmp_path / "tempest")


def plain_ui() -> Ui:
    return Ui(plain=True, stream=io.StringIO(), err_stream=io.StringIO())


def outcomes(path: Path) -> dict[str, str]:
    """Final status per test id, read back with python-subunit (the results phase's view)."""
    got: dict[str, str] = {}

    class Collect(testtools.StreamResult):
        def status(self, test_id=None, test_status=None, **kw):  # type: ignore[no-untyped-def]
            if test_id and test_status in tempest.FINAL:
                short = test_id if " " in test_id else test_id.split("[")[0].rsplit(".", 1)[-1]
                got[short] = test_status
            assert kw.get("file_name") != "Parser Error"

    with open(path, "rb") as fh:
        subunit.ByteStreamToStreamResult(fh, non_subunit_name="stdout").run(Collect())
    return got


def test_full_run_counts_and_stream(tmp_path: Path, suite: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ui = plain_ui()
    ctx = job_context(tmp_path, suite, {"selection": "full", "concurrency": 2}, ui=ui)
    result = tempest.run_phase(ctx)
    assert result.exit_code == 1  # stestr exited 0; the verdict comes from the stream
    assert result.outputs["counts"] == {"selected": 11, "passed": 7, "failed": 2, "skipped": 1,
                                        "xfail": 0, "uxsuccess": 0, "crashed": 0}
    stream = Path(result.outputs["subunit"])
    assert stream == ctx.workspace / ".dsvm/tempest/testrepository.subunit"
    seen = outcomes(stream)
    assert seen["test_volume_extend"] == "fail"
    assert seen["test_volume_migrate"] == "skip"
    # The class-level pseudo test stands for the class's two tests.
    assert seen["setUpClass (tempest.api.volume.test_snapshots.SnapshotsTestJSON)"] == "fail"
    assert "test_volume_backup" not in seen  # slow: not in full
    assert seen["test_create_server_from_volume_snapshot"] == "success"  # scenario pass
    assert result.outputs["failures"] == [
        "setUpClass (tempest.api.volume.test_snapshots.SnapshotsTestJSON)",
        "tempest.api.volume.test_volumes.VolumesTestJSON.test_volume_extend"
        "[id-3fa8ae3a-b9d6-4b3b-a6c1-4a5c1b1f1e44]"]
    out = ui.stream.getvalue()  # type: ignore[attr-defined]
    assert "FAIL tempest.api.volume.test_volumes.VolumesTestJSON.test_volume_extend" in out
    assert "wrong size" in out  # the failure line carries the exception
    assert "... tempest full: finished, 11/11 done, 2 failed, ETA 0s in " in out
    assert (ctx.workspace / ".dsvm/tempest.log").read_text().count("$ env ") == 2


def test_exclusions_are_printed_with_reasons(tmp_path: Path, suite: Path) -> None:
    ui = plain_ui()
    ctx = job_context(tmp_path, suite, {
        "selection": "smoke",
        "exclude": [{"regex": "test_snapshot", "reason": "snapshots unsupported (bug 42)"}]},
        ui=ui)
    result = tempest.run_phase(ctx)
    assert result.exit_code == 0
    assert result.outputs["counts"]["passed"] == 3
    assert result.outputs["counts"]["selected"] == 3
    out = ui.stream.getvalue()  # type: ignore[attr-defined]
    assert "snapshots unsupported (bug 42)" in out and "test_snapshot" in out


@pytest.mark.slow
def test_budget_expiry_keeps_a_valid_partial_stream(tmp_path: Path, suite: Path) -> None:
    ctx = job_context(tmp_path, suite, {"selection": "regex", "serial": True,
                                        "regex": f"test_volume_list {HANG}"}, budget=8.0)
    with pytest.raises(BudgetExpiredError) as err:
        tempest.run_phase(ctx)
    assert err.value.exit_code == EXIT_TIMEOUT
    stream = ctx.workspace / ".dsvm/tempest/testrepository.subunit"
    assert str(stream) in err.value.details["subunit"]
    seen = outcomes(stream)
    assert seen == {"test_volume_list": "success"}  # the hung test has no final status
    assert "crashed" in err.value.details["counts"]


def test_per_test_timeout_fails_the_hung_test(tmp_path: Path, suite: Path) -> None:
    ctx = job_context(tmp_path, suite, {"selection": "regex", "regex": HANG,
                                        "test_timeout": 1}, budget=60)
    result = tempest.run_phase(ctx)
    assert result.exit_code == 1
    assert result.outputs["counts"]["failed"] == 1
    assert outcomes(Path(result.outputs["subunit"])) == {HANG: "fail"}


@pytest.mark.slow
def test_rerun_failed_reports_flaky_tests(tmp_path: Path, suite: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    ui = plain_ui()
    ctx = job_context(tmp_path, suite, {"selection": "regex",
                                        "regex": "test_volume_attach_flaky test_volume_extend "
                                                 "test_snapshot"},
                      env={"TEMPEST_FIXTURE_STATE": str(state)}, ui=ui)
    first = tempest.run_phase(ctx)
    assert first.exit_code == 1 and len(first.outputs["failures"]) == 3
    again = tempest.rerun_failed(ctx)  # reads the failures the first run recorded
    assert again.exit_code == 1
    assert [f.split("[")[0].rsplit(".", 1)[-1] for f in again.outputs["flaky"]] == [
        "test_volume_attach_flaky"]
    assert len(again.outputs["still_failing"]) == 2
    assert again.outputs["counts"]["selected"] == 4  # flaky, extend, the class's two tests
    assert again.outputs["subunit"].endswith("rerun.subunit")
    assert "flaky (failed, then passed on re-run)" in ui.err_stream.getvalue()  # type: ignore


@pytest.mark.slow
def test_rerun_failures_setting_does_it_in_the_phase(tmp_path: Path, suite: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    ctx = job_context(tmp_path, suite, {"selection": "regex", "rerun_failures": True,
                                        "regex": "test_volume_attach_flaky test_volume_list"},
                      env={"TEMPEST_FIXTURE_STATE": str(state)}, ui=plain_ui())
    result = tempest.run_phase(ctx)
    assert result.exit_code == 0  # the only failure passed on re-run ...
    assert len(result.outputs["flaky"]) == 1  # ... and is reported, not hidden
    assert result.outputs["counts"]["failed"] == 1
    assert result.outputs["rerun_subunit"].endswith("rerun.subunit")


def test_selection_matching_nothing_is_exit_2(tmp_path: Path, suite: Path) -> None:
    ctx = job_context(tmp_path, suite, {"selection": "regex", "regex": "no_such_test"},
                      ui=plain_ui())
    with pytest.raises(UsageError, match="matches no test") as err:
        tempest.run_phase(ctx)
    assert err.value.exit_code == EXIT_USAGE


def test_checkout_without_stestr_conf_is_exit_2(tmp_path: Path, suite: Path) -> None:
    (suite / ".stestr.conf").unlink()
    ctx = job_context(tmp_path, suite, ui=plain_ui())
    with pytest.raises(UsageError, match="no .stestr.conf"):
        tempest.run_phase(ctx)


def run_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    for key in list(os.environ):
        if key.startswith(("DEVSTACK_GATE", "TEMPEST_", "ZUUL_", "DSVM_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NO_COLOR", "1")
    # The suite's environment is dsvm's own venv (Tempest on PATH, as an operator may have it).
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    return cli.main(["tempest", "--workspace", str(ws), "--user", "", *argv])


@pytest.mark.slow
def test_cli_list_and_exit_codes(tmp_path: Path, suite: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(tmp_path, monkeypatch, "--tempest-dir", str(suite), "--list",
                   "--selection", "smoke") == 0
    listed = capsys.readouterr().out.split()
    assert len(listed) == 4 and all("smoke" in i for i in listed)
    assert run_cli(tmp_path, monkeypatch, "--tempest-dir", str(suite), "--list",
                   "--concurrency", "0") == EXIT_USAGE
    assert "concurrency" in capsys.readouterr().err
    assert run_cli(tmp_path, monkeypatch, "--tempest-dir", str(suite), "--list",
                   "--regex", "(unclosed") == EXIT_USAGE
    assert "invalid regex" in capsys.readouterr().err
    assert run_cli(tmp_path, monkeypatch, "--tempest-dir", str(tmp_path), "--list") \
        == EXIT_USAGE
    assert run_cli(tmp_path, monkeypatch, "--tempest-dir", str(suite),
                   "--regex", "test_create_server\\[", "--serial") == 0
    assert "1 passed" in capsys.readouterr().out
    assert run_cli(tmp_path, monkeypatch, "--tempest-dir", str(suite), "--regex",
                   f"test_volume_list {HANG}", "--timeout", "3") == EXIT_TIMEOUT
