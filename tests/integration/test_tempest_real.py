"""The Tempest phase against real Tempest 47.0.0 from the venv: listing and a cloud-free run."""

from __future__ import annotations

import io
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dsvm import proc, tempest
from dsvm.console import Ui
from tests.fixtures.tempest_builders import job_context, make_settings

TEMPEST = Path(sys.executable).parent / "tempest"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not TEMPEST.is_file(), reason="tempest is not installed")]

NO_CLOUD = """
[service_available]
nova = false
cinder = false
glance = false
neutron = false
swift = false
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `tempest init` workspace whose tempest.conf marks every service unavailable."""
    root = tmp_path_factory.mktemp("tempest")
    home = root / "home"
    home.mkdir()
    ws = root / "ws"
    proc.Runner().run([str(TEMPEST), "init", str(ws)], desc="tempest init",
                      env={"HOME": str(home), "PATH": "/usr/bin:/bin"})
    with open(ws / "etc" / "tempest.conf", "a") as fh:
        fh.write(NO_CLOUD)
    return ws


@pytest.fixture(scope="module")
def all_ids(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """dsvm's own discovery of the workspace (stestr list)."""
    root = tmp_path_factory.mktemp("discover")
    ctx = job_context(root, workspace)
    return tempest.discover(ctx, tempest.checkout(ctx))


def tempest_lists(workspace: Path, *filters: list[str]) -> list[set[str]]:
    """Tempest's own listings (`tempest run --list-tests ...`), two at a time."""
    def one(args: list[str]) -> set[str]:
        result = proc.Runner().run([str(TEMPEST), "run", "--list-tests", *args],
                                   desc="tempest list", cwd=workspace, merge_stderr=False,
                                   stream=False)
        return {ln.strip() for ln in result.stdout.split("\n") if ln.strip()}

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(one, filters))


def test_selection_matches_tempest_own_listing(workspace: Path, all_ids: list[str],
                                               tmp_path: Path) -> None:
    include = tmp_path / "include.txt"
    include.write_text("^tempest\\.scenario\\.test_volume # volume scenarios too\n")
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("test_volumes_negative # negative tests are flaky on our array\n"
                       "\\[.*\\bslow\\b.*\\] # slow tests do not fit the budget\n")
    api, scenario, smoke, custom = tempest_lists(
        workspace,
        ["--regex", tempest.API], ["--regex", tempest.SCENARIO_AND_SERIAL], ["--smoke"],
        ["--regex", "tempest.api.volume", "--include-list", str(include),
         "--exclude-list", str(exclude)])

    def dsvm(keys: dict[str, object]) -> set[str]:
        settings = make_settings(tmp_path, keys)
        selection = tempest.select(settings, tempest.read_lists(settings))
        return set(tempest.filter_ids(all_ids, selection).ids)

    assert len(all_ids) > 1000
    full = dsvm({"selection": "full"})
    assert full == api | scenario
    assert not any("slow" in i.split("[")[-1] for i in api)  # tox full drops slow tests
    assert dsvm({"selection": "smoke"}) == smoke
    assert dsvm({"selection": "regex", "regex": "tempest.api.volume",
                 "include_file": str(include), "exclude_file": str(exclude)}) == custom
    assert 0 < len(smoke) < len(custom) < len(full) < len(all_ids)


def test_cloud_free_run_through_stestr(workspace: Path, tmp_path: Path) -> None:
    """The end-to-end test: real Tempest, dsvm's stestr path, a real subunit stream."""
    ui = Ui(plain=True, stream=io.StringIO(), err_stream=io.StringIO())
    ctx = job_context(tmp_path, workspace, {
        "selection": "full-serial",  # one pass, one worker: the cheapest real run
        "exclude": [{"regex": r"^tempest\.api\.identity", "reason": "keystone is not up"}]},
        ui=ui)
    result = tempest.run_phase(ctx)
    counts = result.outputs["counts"]
    assert result.exit_code == 1  # a few setUpClass failures without a cloud
    assert counts["skipped"] > 250 and 0 < counts["failed"] < 20
    assert counts["passed"] + counts["skipped"] + counts["failed"] > 300
    assert counts["selected"] > 1000  # announced by stestr, most skipped class by class
    assert all(f.startswith("setUpClass (") for f in result.outputs["failures"])
    stream = Path(result.outputs["subunit"])
    assert stream.stat().st_size > 10_000
    out = ui.stream.getvalue()  # type: ignore[attr-defined]
    assert "keystone is not up" in out
