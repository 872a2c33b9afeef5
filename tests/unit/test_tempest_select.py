"""dsvm.tempest's pure parts: selection from settings, filtering a listing, stream framing."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import subunit
import testtools
from stestr import selection as stestr_selection

from dsvm import tempest
from dsvm.errors import EXIT_USAGE, UsageError
from tests.fixtures.tempest_builders import IDS, make_settings


def ids_of(selection: tempest.Selection) -> list[str]:
    return tempest.filter_ids(IDS, selection).ids


def short(ids: list[str]) -> list[str]:
    return [re.sub(r"\[.*\]$", "", i).rsplit(".", 1)[-1] for i in ids]


# -- which selection -----------------------------------------------------------------------

def test_default_is_tempest_full_two_passes(tmp_path: Path) -> None:
    sel = tempest.select(make_settings(tmp_path), cpus=4)
    assert sel.name == "full"
    assert [(p.name, p.serial) for p in sel.passes] == [("api", False), ("scenario", True)]
    assert sel.concurrency == 4
    assert "tempest.selection" in sel.why
    listing = tempest.filter_ids(IDS, sel)
    assert short(list(listing.passes[0])) == ["test_create_server", "test_reboot_hard",
                                              "test_volume_create", "test_volume_migrate",
                                              "test_volume_migrate_retype"]
    # tox full's second pass: non-slow scenario, and every serial test (slow ones too).
    assert short(list(listing.passes[1])) == ["test_minimum_basic", "test_aggregate",
                                              "test_ops"]


@pytest.mark.parametrize(("env", "name", "serial"), [
    ({"DEVSTACK_GATE_TEMPEST_FULL": "1"}, "full", False),
    ({"DEVSTACK_GATE_TEMPEST_ALL": "1"}, "all", False),
    ({"DEVSTACK_GATE_TEMPEST_ALL_PLUGINS": "1"}, "all", False),
    ({"DEVSTACK_GATE_SMOKE_SERIAL": "1"}, "smoke-serial", True),
    ({"DEVSTACK_GATE_TEMPEST_SCENARIOS": "1"}, "scenario", True),
    ({"DEVSTACK_GATE_TEMPEST_DISABLE_TENANT_ISOLATION": "1"}, "full-serial", True),
    # First match wins, in devstack-gate's order.
    ({"DEVSTACK_GATE_TEMPEST_FULL": "1", "DEVSTACK_GATE_TEMPEST_REGEX": "volume"}, "regex",
     False),
    ({"DEVSTACK_GATE_TEMPEST_FULL": "1", "DEVSTACK_GATE_TEMPEST_ALL": "1"}, "all", False),
    ({"DEVSTACK_GATE_TEMPEST_FULL": "1", "DEVSTACK_GATE_SMOKE_SERIAL": "1"}, "full", False),
])
def test_devstack_gate_variables_map_to_tox_environments(tmp_path: Path, env: dict[str, str],
                                                          name: str, serial: bool) -> None:
    sel = tempest.select(make_settings(tmp_path, {"selection": "smoke"}, env), cpus=2)
    assert sel.name == name
    assert sel.passes[0].serial is serial
    assert sel.why.startswith("DEVSTACK_GATE_")


def test_selections_pick_what_tempest_tox_picks(tmp_path: Path) -> None:
    def pick(name: str) -> list[str]:
        return short(ids_of(tempest.select(make_settings(tmp_path, {"selection": name}))))

    assert pick("smoke") == ["test_create_server", "test_volume_create",
                             "test_volume_slow_smoke", "test_backup_smoke"]
    assert pick("scenario") == ["test_volume_boot_pattern", "test_minimum_basic"]
    assert pick("full-serial") == ["test_create_server", "test_reboot_hard",
                                   "test_volume_create", "test_volume_migrate",
                                   "test_volume_migrate_retype", "test_minimum_basic", "test_ops"]
    # 'tempest' (devstack-gate's ALL) is a search: plugin tests match too.
    assert len(pick("all")) == len(IDS)


def test_option_beats_environment_beats_profile(tmp_path: Path) -> None:
    env = {"DEVSTACK_GATE_TEMPEST_FULL": "1"}
    by_env = tempest.select(make_settings(tmp_path, {"selection": "smoke"}, env))
    assert by_env.name == "full"
    by_option = tempest.select(make_settings(tmp_path, {"selection": "smoke"}, env,
                                             {"tempest.selection": "scenario"}))
    assert by_option.name == "scenario" and "option" in by_option.why


def test_regex_words_are_ored_like_tempest_run(tmp_path: Path) -> None:
    env = {"DEVSTACK_GATE_TEMPEST_REGEX": r"test_reboot test_aggregate\b"}
    sel = tempest.select(make_settings(tmp_path, env=env))
    assert sel.passes[0].include == ("test_reboot", r"test_aggregate\b")
    assert short(ids_of(sel)) == ["test_reboot_hard", "test_aggregate"]


def test_named_selection_with_exclusions(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, {
        "selection": "volume",
        "selections": {"volume": {"regex": r"^tempest\.(api|scenario)\..*volume",
                                  "exclude": [{"regex": "migrate", "reason": "bug 1"}]}}})
    sel = tempest.select(settings)
    listing = tempest.filter_ids(IDS, sel)
    # The regex also matches the 'volume' attribute of a scenario's id.
    assert short(listing.ids) == ["test_volume_create", "test_volume_slow_smoke",
                                  "test_volume_boot_pattern", "test_minimum_basic"]
    (exclusion, removed), = listing.excluded
    assert exclusion.reason == "bug 1" and "selections.volume" in exclusion.where
    assert short(list(removed)) == ["test_volume_migrate", "test_volume_migrate_retype"]


def test_include_widens_and_exclude_charges_first_match(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, {
        "selection": "smoke", "include": [r"test_reboot_hard"],
        "exclude": [{"regex": "test_volume", "reason": "backend has no volumes"},
                    {"regex": "test_volume_create", "reason": "never charged"},
                    {"regex": "cinder_tempest_plugin", "reason": "plugin not installed"}]})
    listing = tempest.filter_ids(IDS, tempest.select(settings))
    assert short(listing.ids) == ["test_create_server", "test_reboot_hard"]
    assert [len(ids) for _, ids in listing.excluded] == [2, 0, 1]


def test_include_file_alone_and_exclude_file_with_reasons(tmp_path: Path) -> None:
    inc = tmp_path / "include.txt"
    inc.write_text("# volume API only\n^tempest\\.api\\.volume\n\n")
    exc = tmp_path / "exclude.txt"
    exc.write_text("test_volume_migrate_retype  # retype is not supported (bug 2)\n")
    settings = make_settings(tmp_path, {"selection": "regex", "include_file": str(inc),
                                        "exclude_file": str(exc)})
    sel = tempest.select(settings, tempest.read_lists(settings))
    assert short(ids_of(sel)) == ["test_volume_create", "test_volume_migrate",
                                  "test_volume_slow_smoke"]
    assert sel.exclude[0].where == f"{exc}:1"
    assert sel.exclude[0].reason == "retype is not supported (bug 2)"


def test_filter_agrees_with_stestr_construct_list(tmp_path: Path) -> None:
    """stestr's own selection code is the oracle for include/exclude semantics."""
    sel = tempest.select(make_settings(tmp_path, {
        "selection": "regex", "regex": r"smoke \[.*\bslow\b",
        "exclude": [{"regex": r"(volume)_\1?create|plugin", "reason": "backrefs work"}]}))
    exclude_file = tmp_path / "exclude.txt"
    exclude_file.write_text(tempest.exclude_list_text(sel.exclude))
    expected = stestr_selection.construct_list(
        list(IDS), regexes=list(sel.passes[0].include), exclude_list=str(exclude_file))
    assert sorted(ids_of(sel)) == sorted(expected)
    assert len(expected) == 5


def test_concurrency_from_environment_and_serial(tmp_path: Path) -> None:
    assert tempest.select(make_settings(tmp_path, env={"TEMPEST_CONCURRENCY": "3"}),
                          cpus=8).concurrency == 3
    serial = tempest.select(make_settings(tmp_path, {"serial": True}), cpus=8)
    assert serial.concurrency == 1 and all(p.serial for p in serial.passes)


def test_test_timeout_from_devstack_gate_variable(tmp_path: Path) -> None:
    sel = tempest.select(make_settings(tmp_path, env={"TEMPEST_OS_TEST_TIMEOUT": "160"}))
    assert sel.test_timeout == 160


def test_none_and_notes(tmp_path: Path) -> None:
    assert tempest.select(make_settings(tmp_path, {"selection": "none"})).passes == ()
    sel = tempest.select(make_settings(tmp_path, {"selection": "smoke", "regex": "x"}))
    assert sel.notes and "not used" in sel.notes[0]


# -- bad input: exit 2, naming the input ---------------------------------------------------

@pytest.mark.parametrize(("keys", "options", "expected"), [
    ({"selection": "regex", "regex": "tempest.api.(volume"}, {}, "invalid regex"),
    ({"exclude": [{"regex": "test_x"}]}, {}, "has no reason"),
    ({"exclude": [{"reason": "no regex"}]}, {}, "needs a regex and a reason"),
    ({"exclude": [{"regex": "a#b", "reason": "r"}]}, {}, "contains '#'"),
    ({"include_file": "/nonexistent/include.txt"}, {}, "list file not found"),
    ({}, {"tempest.concurrency": 0}, "concurrency must be a positive number"),
    ({}, {"tempest.concurrency": -2}, "concurrency must be a positive number"),
    ({"selection": "smok"}, {}, "unknown selection 'smok'"),
    ({"selection": "regex"}, {}, "needs tempest.regex"),
    ({"selection": "v", "selections": {"v": {"regexp": "x"}}}, {}, "unknown keys"),
])
def test_bad_input_is_a_usage_error(tmp_path: Path, keys: dict, options: dict,
                                    expected: str) -> None:
    settings = make_settings(tmp_path, keys, options=options)
    with pytest.raises(UsageError) as err:
        tempest.select(settings, tempest.read_lists(settings))
    assert err.value.exit_code == EXIT_USAGE
    assert any(expected in p.message for p in err.value.problems), err.value.problems
    assert all(p.where for p in err.value.problems)


def test_every_problem_is_reported_with_its_location(tmp_path: Path) -> None:
    exc = tmp_path / "exclude.txt"
    exc.write_text("good # fine\nno_reason\nbad(  # broken\n")
    settings = make_settings(tmp_path, {"exclude_file": str(exc),
                                        "exclude": [{"regex": "x", "reason": ""}]})
    with pytest.raises(UsageError) as err:
        tempest.select(settings, tempest.read_lists(settings))
    wheres = [p.where for p in err.value.problems]
    assert f"{exc}:2" in wheres and f"{exc}:3" in wheres
    assert any(w.endswith("exclude[0]") and "p.yaml" in w for w in wheres)


def test_negative_tempest_concurrency_env_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as err:
        make_settings(tmp_path, env={"TEMPEST_CONCURRENCY": "0"})
    assert err.value.exit_code == EXIT_USAGE


# -- running helpers -----------------------------------------------------------------------

def test_stestr_argv_is_a_list_with_env_and_lists(tmp_path: Path) -> None:
    co = tempest.Checkout(dir=tmp_path, stestr="/venv/bin/stestr", user="")
    sel = tempest.Selection("smoke", "test", (tempest.Pass("smoke", ("x",)),),
                            concurrency=3, test_timeout=160)
    argv = tempest.stestr_argv(co, sel.passes[0], sel, tmp_path / "i", tmp_path / "e", True)
    assert argv == ["env", "OS_TEST_TIMEOUT=160", "/venv/bin/stestr", "run", "--subunit",
                    "--concurrency", "3", "--include-list", str(tmp_path / "i"),
                    "--exclude-list", str(tmp_path / "e"), "--combine"]


def test_rerun_regexes_select_exactly_the_failures() -> None:
    failures = [IDS[1], "setUpClass (tempest.api.volume.test_volumes.VolumesTestJSON)"]
    regexes = tempest.rerun_regexes(failures)
    matched = [i for i in IDS if any(re.search(rx, i) for rx in regexes)]
    assert short(matched) == ["test_reboot_hard", "test_volume_create", "test_volume_migrate",
                              "test_volume_slow_smoke"]


def test_flaky_split() -> None:
    cls = "setUpClass (a.B)"
    flaky, still = tempest._flaky(["a.B.t1", "c.D.t2", cls, "e.F.t3"],
                                  {"a.B.t1": "success", "c.D.t2": "fail", "a.B.t4": "skip"})
    assert flaky == ["a.B.t1", cls] and still == ["c.D.t2", "e.F.t3"]


def _stream(n: int) -> bytes:
    buf = io.BytesIO()
    out = subunit.StreamResultToBytes(buf)
    for i in range(n):
        out.status(test_id=f"t.T.test_{i}", test_status="inprogress")
        out.status(test_id=f"t.T.test_{i}", file_name="stdout", file_bytes=b"x" * 100,
                   mime_type="text/plain", eof=True)
        out.status(test_id=f"t.T.test_{i}", test_status="success")
    return buf.getvalue()


def _statuses(data: bytes) -> list[tuple[str | None, str | None]]:
    got: list[tuple[str | None, str | None]] = []

    class Collect(testtools.StreamResult):
        def status(self, test_id=None, test_status=None, **kw):  # type: ignore[no-untyped-def]
            got.append((test_id, test_status or kw.get("file_name")))

    subunit.ByteStreamToStreamResult(io.BytesIO(data), non_subunit_name="stdout").run(Collect())
    return got


@pytest.mark.parametrize("cut", [1, 7, 40, 150])
def test_trim_partial_keeps_whole_packets(tmp_path: Path, cut: int) -> None:
    data = b"noise before " + _stream(5)
    path = tmp_path / "s.subunit"
    path.write_bytes(data[:-cut])
    kept = tempest.trim_partial(path)
    trimmed = path.read_bytes()
    assert kept == len(trimmed) < len(data)
    statuses = _statuses(trimmed)
    assert ("t.T.test_0", "success") in statuses
    assert not any(s == "Parser Error" for _, s in statuses)


def test_trim_partial_leaves_a_complete_stream_alone(tmp_path: Path) -> None:
    data = _stream(3)
    path = tmp_path / "s.subunit"
    path.write_bytes(data)
    assert tempest.trim_partial(path) == len(data)
    assert path.read_bytes() == data


@pytest.mark.parametrize(("cpus", "expected"), [(1, 1), (2, 2), (4, 4), (8, 8), (32, 32)])
def test_default_concurrency_is_every_cpu_not_devstack_gates_half(tmp_path: Path, cpus: int,
                                                                   expected: int) -> None:
    settings = make_settings(tmp_path)
    assert tempest.concurrency(settings, cpus) == expected
    assert tempest.select(settings, cpus=cpus).concurrency == expected
