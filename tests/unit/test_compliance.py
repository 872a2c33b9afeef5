"""Compliance on real job directories (files as the logs phase lays them out, real subunit)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from dsvm.compliance import backends, checks, comment, inventory, signatures
from dsvm.compliance.evidence import JobDir, Line
from dsvm.errors import UsageError
from tests.fixtures.compliance_jobs import LEAKED, VOL_A, JobSpec, build_job

POLICY = checks.Policy(declared=("sanco-iscsi",), secret_options=frozenset({"sanco_api_key"}))


def grade(tmp_path, spec: JobSpec | None = None, policy: checks.Policy = POLICY,
          **kwargs) -> checks.Report:
    job = JobDir.open(build_job(tmp_path / "job", spec))
    return checks.grade(job, policy, **kwargs)


def by_id(report: checks.Report) -> dict[str, checks.Check]:
    return {c.id: c for c in report.checks}


def test_compliant_job_passes_every_check_with_its_evidence(tmp_path) -> None:
    report = grade(tmp_path)
    got = by_id(report)
    assert {k: c.status for k, c in got.items()} == {
        "backends": "pass", "volume-tests": "pass", "plugin-tests": "pass", "skips": "pass",
        "cinder-conf": "pass", "cinder-logs": "pass", "testr-results": "pass",
        "tempest-log": "pass", "command-trace": "pass", "utc-timestamps": "pass",
        "tested-commit": "pass", "leaks": "n.a.", "history": "n.a."}
    assert report.status == "pass"
    (verdict,) = report.backends
    assert verdict.status == backends.EXERCISED and verdict.violation is None
    proof = "\n".join(got["backends"].evidence)
    # file:line of the config and of the c-vol lines (the log is gzipped, lines still count)
    assert re.search(r"logs/etc/cinder/cinder.conf.txt:3: enabled_backends = sanco-iscsi",
                     proof)
    assert re.search(r"logs/screen-c-vol.txt.gz:\d+: .*Starting volume driver "
                     r"SanCoISCSIDriver", proof)
    assert re.search(r"screen-c-vol.txt.gz:\d+: .*created successfully", proof)
    assert "Received volume service update from  node-1@sanco-iscsi" in proof
    assert verdict.stats == {"vendor_name": "SanCo", "storage_protocol": "iSCSI",
                             "driver_version": "1.0.0"}
    assert len(verdict.created) == 2 and verdict.deleted == 2
    skips = got["skips"].evidence
    assert any("test_backup_create_attached_volume" in e and "Nova is not available" in e
               for e in skips)
    assert "2 tempest.api.volume" not in got["volume-tests"].evidence[0]
    assert got["volume-tests"].evidence[0].startswith("4 tempest.api.volume.* tests")


def test_lvm_beside_the_vendor_backend_is_a_violation_with_its_proof_lines(tmp_path) -> None:
    report = grade(tmp_path, JobSpec(lvm=True))
    got = by_id(report)
    assert got["backends"].status == "fail" and report.status == "fail"
    lvm = next(v for v in report.backends if v.name == "lvmdriver-1")
    assert lvm.is_lvm and "LVM driver" in (lvm.violation or "")
    wheres = [line.where for line in lvm.evidence]
    assert "logs/etc/cinder/cinder.conf.txt:3" in wheres  # enabled_backends
    assert any(w.startswith("logs/etc/cinder/cinder.conf.txt:") and
               "LVMVolumeDriver" in line.text for w, line in zip(wheres, lvm.evidence,
                                                                  strict=True))
    assert any("Starting volume driver LVMVolumeDriver" in line.text for line in lvm.evidence)
    vendor = next(v for v in report.backends if v.name == "sanco-iscsi")
    assert vendor.status == backends.EXERCISED and vendor.violation is None


def test_a_reference_job_may_run_lvm(tmp_path) -> None:
    policy = checks.Policy(declared=("sanco-iscsi",), reference_job=True)
    report = grade(tmp_path, JobSpec(lvm=True), policy)
    assert by_id(report)["backends"].status == "pass"


def test_a_declared_backend_missing_from_cinder_conf_is_not_configured(tmp_path) -> None:
    policy = checks.Policy(declared=("sanco-iscsi", "sanco-fc"))
    report = grade(tmp_path, None, policy)
    fc = next(v for v in report.backends if v.name == "sanco-fc")
    assert fc.status == backends.NOT_CONFIGURED and fc.violation
    assert by_id(report)["backends"].status == "fail"


def test_an_undeclared_vendor_backend_is_a_violation(tmp_path) -> None:
    report = grade(tmp_path, None, checks.Policy(declared=()))
    (verdict,) = report.backends
    assert "not declared" in (verdict.violation or "")


def test_missing_cinder_tempest_plugin_fails_the_plugin_check(tmp_path) -> None:
    got = by_id(grade(tmp_path, JobSpec(plugin=False)))
    assert got["plugin-tests"].status == "fail"
    assert "cinder-tempest-plugin" in " ".join(got["plugin-tests"].evidence)
    assert got["volume-tests"].status == "pass"


def test_a_skip_without_reason_fails(tmp_path) -> None:
    got = by_id(grade(tmp_path, JobSpec(skip_without_reason=True)))
    assert got["skips"].status == "fail"
    assert any("(no reason given)" in e for e in got["skips"].evidence)


def test_an_unredacted_cinder_conf_fails_without_showing_the_secret(tmp_path) -> None:
    got = by_id(grade(tmp_path, JobSpec(secret_unmasked=True)))
    assert got["cinder-conf"].status == "fail"
    text = "\n".join(got["cinder-conf"].evidence)
    assert "san_password is not redacted" in text and "Fleet2024" not in text
    assert re.search(r"cinder.conf.txt:\d+: \[sanco-iscsi\] san_password", text)


def test_unpublished_files_fail(tmp_path) -> None:
    got = by_id(grade(tmp_path, JobSpec(published=False)))
    assert got["testr-results"].status == "fail"
    assert got["cinder-logs"].status == "fail"
    assert "missing: logs/screen-c-api.txt" in got["cinder-logs"].evidence


def test_the_wrong_commit_fails(tmp_path) -> None:
    got = by_id(grade(tmp_path, JobSpec(checked_out_ref="master")))
    assert got["tested-commit"].status == "fail"
    assert "Zuul's ref was refs/zuul/master/Zab12" in got["tested-commit"].evidence


def test_history_past_two_weeks_fails_and_recent_success_passes() -> None:
    now = datetime(2026, 12, 4, tzinfo=UTC)
    old = checks.HistoryFacts(now - timedelta(days=15), 3, 0, "db")
    assert checks.check_history(old, "", now).status == "fail"
    assert "14-day limit" in checks.check_history(old, "", now).evidence[-1]
    fresh = checks.HistoryFacts(now - timedelta(days=2), 5, 2, "db")
    assert checks.check_history(fresh, "", now).status == "pass"
    assert checks.check_history(None, "no DB", now).status == "n.a."


def test_not_a_job_directory_is_exit_2(tmp_path) -> None:
    with pytest.raises(UsageError) as err:
        JobDir.open(tmp_path)
    assert err.value.exit_code == 2 and "not a dsvm job directory" in err.value.message


# -- log signatures ---------------------------------------------------------------------------
@pytest.mark.parametrize(("raw", "expected"), [
    ("Volume 6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f not found", "Volume <uuid> not found"),
    ("connect to 10.0.0.12:5672 failed after 3 tries", "connect to <ip> failed after <n> "
                                                        "tries"),
    ("at 2026-12-04T19:20:00Z: timeout 30.5s", "at <ts>: timeout <n>s"),
    ("object at 0x7f3a2b1c4d50 gone", "object at <addr> gone"),
    ("sha1 9f86d081884c7d659a2feaa0c55ad015a0b1c2d3 mismatch", "sha1 <hex> mismatch"),
    ("project 9f86d081884c7d659a2feaa0c55ad015 gone", "project <uuid> gone"),
    ("peer fe80::1ff:fe23:4567:890a down", "peer <ip> down"),
    ("the cafe is closed", "the cafe is closed"),
])
def test_normalise(raw: str, expected: str) -> None:
    assert signatures.normalise(raw) == expected


def test_signatures_of_a_service_log_are_deduplicated_with_first_occurrence() -> None:
    lines = [Line("logs/screen-c-vol.txt", i + 1, t) for i, t in enumerate([
        "2026-12-04 19:10:00.001 4102 INFO cinder.volume.manager [-] fine",
        "2026-12-04 19:10:01.002 4102 ERROR cinder.volume.manager [req-aaaaaaaa-1111-4222-"
        "8333-444455556666 - -] Failed volume 6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f",
        "2026-12-04 19:10:02.003 4103 ERROR cinder.volume.manager [req-bbbbbbbb-1111-4222-"
        "8333-444455556666 - -] Failed volume 7a2b3c4d-5e6f-4a1b-9c2d-3e4f5a6b7c8d",
        "2014-01-01 10:00:00.000 4103 TRACE cinder.volume.manager Traceback (most recent "
        "call last):",
    ])]
    sigs = signatures.of_lines("c-vol", lines)
    assert [s.text for s in sigs] == [
        "ERROR cinder.volume.manager Failed volume <uuid>",
        "ERROR cinder.volume.manager Traceback (most recent call last):"]
    assert sigs[0].count == 2 and sigs[0].first.where == "logs/screen-c-vol.txt:2"
    assert signatures.new_since(sigs, {sigs[0].digest}) == [sigs[1]]


def test_a_new_trace_is_found_against_the_baseline_job(tmp_path) -> None:
    old = signatures.extract(JobDir.open(build_job(tmp_path / "old")))
    new = signatures.extract(JobDir.open(build_job(tmp_path / "new", JobSpec(
        extra_trace="Failed to delete volume"))))
    fresh = signatures.new_since(new, {s.digest for s in old})
    assert {s.service for s in fresh} == {"c-vol"}
    first = fresh[0]
    assert "Failed to delete volume" in first.first.text
    assert first.first.where.startswith("logs/screen-c-vol.txt.gz:")
    # the RPC error of both runs (other ids, same signature) is not new
    assert not any("ConnectionResetError" in s.text for s in fresh)


# -- inventory and leaks ----------------------------------------------------------------------
def test_inventory_output_that_is_not_json_names_the_hook() -> None:
    with pytest.raises(inventory.HookError, match="flashfleet-inventory printed no JSON"):
        inventory.parse("volume-1 1G\n", "flashfleet-inventory")
    with pytest.raises(inventory.HookError, match="neither a list"):
        inventory.parse('{"volumes": []}', "flashfleet-inventory")
    objs = inventory.parse('{"objects": [{"name": "volume-x", "size": 1073741824, '
                           '"kind": "volume", "pool": "tempest"}, "snap-y"]}', "h")
    assert objs[0].size == 1 << 30 and objs[0].extra == {"pool": "tempest"}
    assert objs[1].name == "snap-y"
    # FlashFleet's own inventory (scripts/minicloud): GiB, pools, allocation
    ff = inventory.parse(json.dumps({"array": "ff-1", "pools": [{"name": "tempest"}],
                                     "objects": [{"name": f"volume-{VOL_A}", "pool": "tempest",
                                                  "kind": "volume", "size_gb": 1,
                                                  "allocated_bytes": 0}]}), "h")
    assert ff[0].size == 1 << 30 and ff[0].extra["pool"] == "tempest"


def test_leaks_are_this_jobs_objects_with_the_test_that_made_them(tmp_path) -> None:
    job = JobDir.open(build_job(tmp_path / "job", JobSpec(leak=True)))
    verdicts, _ = backends.decide(job, ["sanco-iscsi"])
    created = backends.created_ids(verdicts)
    assert LEAKED in created
    obj = lambda n: inventory.ArrayObject(n, 1 << 30, "volume")  # noqa: E731
    before = inventory.Snapshot("sanco-iscsi", "a", "t0", (obj("volume-preexisting"),))
    after = inventory.Snapshot("sanco-iscsi", "a", "t1", (
        obj("volume-preexisting"), obj(f"volume-{LEAKED}"),
        obj("volume-0b0b0b0b-1111-4222-8333-444455556666")))
    log = job.lines(job.find("tempest_log"))
    found = inventory.find_leaks(before, after, created, log)
    (leak,) = found.leaks
    assert leak.name == f"volume-{LEAKED}" and leak.size == 1 << 30
    assert leak.test == "VolumesActionsTest:test_volume_upload"
    assert leak.evidence and leak.evidence.where.startswith("logs/tempest.txt:")
    assert [o.name for o in found.foreign] == ["volume-0b0b0b0b-1111-4222-8333-444455556666"]
    assert inventory.cleanup_names(found, before) == [f"volume-{LEAKED}"]
    # an object that existed before is never cleaned, whatever the findings say
    forged = inventory.Findings("sanco-iscsi", (inventory.Leak(
        "sanco-iscsi", "volume-preexisting", None, "", VOL_A, None, None),), ())
    assert inventory.cleanup_names(forged, before) == []


def test_a_failed_inventory_gives_no_leaks_and_a_warning() -> None:
    before = inventory.Snapshot("b", "a", "t0", error="hook exited 3")
    after = inventory.Snapshot("b", "a", "t1", (inventory.ArrayObject("volume-x"),))
    found = inventory.find_leaks(before, after, {"x"})
    assert found.leaks == () and found.warning == "hook exited 3"


# -- the Gerrit comment block, read with the zuul-results-summary plugin's rules ---------------
# The plugin's JavaScript (GerritCodeReview/plugins_zuul-results-summary,
# zuul-results-summary.js) translated to Python's syntax; an independent oracle.
AUTHOR_RE = re.compile(r"^(?P<author>.* CI|Zuul)")
STATUS_PIPELINE_RE = re.compile(r"^Build (?P<status>\w+) \((?P<pipeline>[\w]+) pipeline\)\.",
                                re.MULTILINE)
STATUS_RE = re.compile(r"^Build (?P<status>\w+)\.", re.MULTILINE)
RESULT_RE = re.compile(r"^- (?P<job>[^ ]+) (?:(?P<link>https?://[^ ]+)|(?P<implicit_link>build/"
                       r"[0-9a-f]+)) : ((ERROR (?P<errormsg>.*?) in (?P<errtime>.*))|"
                       r"(?P<result>[^ ]+)( in (?P<time>.*))?)")


def gerrit_parse(author: str, message: str) -> dict | None:
    if not AUTHOR_RE.match(author):
        return None
    m = STATUS_PIPELINE_RE.search(message) or STATUS_RE.search(message)
    if m is None:
        return None
    groups = m.groupdict()
    results = [r.groupdict() for line in message.split("\n") if (r := RESULT_RE.match(line))]
    return {"status": groups["status"], "pipeline": groups.get("pipeline") or "unknown",
            "succeeded": groups["status"] == "succeeded", "results": results}


def test_the_comment_block_parses_as_gerrits_ci_summary() -> None:
    text = comment.block(job="dsvm-tempest-sanco", url="https://logs.example.org/42/4242/3/",
                         result="FAILURE", seconds=3723, pipeline="check", voting=False,
                         failures=[comment.Failure("tempest.api.volume.test_x.T.test_y",
                                                   "bug 2001")],
                         recheck=comment.recheck_hints("recheck, run-SanCo CI"))
    # Gerrit shows the message after its "Patch Set N:" header
    parsed = gerrit_parse("SanCo CI", "Patch Set 3: Verified-1\n\n" + text)
    assert parsed is not None
    assert parsed["status"] == "failed" and parsed["pipeline"] == "check"
    (job,) = parsed["results"]
    assert job["job"] == "dsvm-tempest-sanco"
    assert job["link"] == "https://logs.example.org/42/4242/3/"
    assert job["result"] == "FAILURE" and job["time"] == "1h 02m 03s (non-voting)"
    assert "* tempest.api.volume.test_x.T.test_y (known: bug 2001)" in text
    assert "`recheck` or `run-SanCo CI`" in text
    assert comment.problems(text, "SanCo CI") == []


def test_a_succeeded_block_without_pipeline_and_the_rules_it_can_break() -> None:
    text = comment.block(job="dsvm-tempest-sanco", url="https://ci.example.org/job/7/",
                         result="SUCCESS", seconds=64)
    parsed = gerrit_parse("SanCo CI", text)
    assert parsed and parsed["succeeded"] and parsed["pipeline"] == "unknown"
    assert parsed["results"][0]["time"] == "1m 04s"
    # Jenkins Gerrit-Trigger's advice does not show up in the summary
    assert gerrit_parse("SanCo CI", "Build Successful\n\n* dsvm http://x/1 : SUCCESS") is None
    no_url = comment.block(job="j", url="", result="SUCCESS", seconds=5)
    assert gerrit_parse("SanCo CI", no_url)["results"] == []
    assert any("no log URL" in p for p in comment.problems(no_url, "SanCo CI"))
    assert any("' CI'" in p for p in comment.problems(text, "sanco-bot"))


@pytest.mark.parametrize(("seconds", "shown"), [(0, "0s"), (45, "45s"), (64, "1m 04s"),
                                                (3600, "1h 00m 00s"), (3723.4, "1h 02m 03s")])
def test_duration_is_zuuls(seconds: float, shown: str) -> None:
    assert comment.duration(seconds) == shown


def test_the_creating_test_is_found_by_request_id_in_an_interleaved_log() -> None:
    req_a = "req-aaaaaaaa-1111-4222-8333-444455556666"
    req_b = "req-bbbbbbbb-1111-4222-8333-444455556666"
    text = [
        f"2026-12-04 19:26:40.563 101 INFO tempest.lib.common.rest_client [{req_a} {req_a} ] "
        "Request (VolumesGetTest:test_volume_create_get_delete): 202 POST http://h/v3/volumes",
        f"2026-12-04 19:26:40.564 101 DEBUG tempest.lib.common.rest_client [{req_a} {req_a} ] "
        "Request - Headers: {}",
        # another worker's request lands between ours and our response body
        f"2026-12-04 19:26:40.565 102 INFO tempest.lib.common.rest_client [{req_b} {req_b} ] "
        "Request (VolumesListTestJSON:test_volume_list): 200 GET http://h/v3/volumes",
        f"2026-12-04 19:26:40.566 101 DEBUG tempest.lib.common.rest_client [{req_a} {req_a} ] "
        "Response - Headers: {}",
        f'        Body: b\'{{"volume": {{"id": "{VOL_A}"}}}}\'',
    ]
    lines = [Line("logs/tempest.txt", i, t) for i, t in enumerate(text, 1)]
    test, line = inventory.creating_test(VOL_A, lines)
    assert test == "VolumesGetTest:test_volume_create_get_delete"
    assert line is not None and line.where == "logs/tempest.txt:1"
    assert inventory.creating_test(LEAKED, lines) == (None, None)


def test_inventory_hooks_must_be_argument_lists() -> None:
    hooks = inventory.hooks_of([
        {"name": "sanco-iscsi", "inventory": ["ff-inventory", "/srv/ff"],
         "options": {"san_ip": "192.0.2.20"}},
        {"name": "no-hook"}])
    assert hooks == [inventory.Hooks("sanco-iscsi", "192.0.2.20", ("ff-inventory", "/srv/ff"))]
    with pytest.raises(UsageError) as err:
        inventory.hooks_of([{"name": "b", "inventory": "ff-inventory /srv/ff | jq"}])
    assert err.value.problems[0].where == "cinder.backends[0].inventory"


def test_a_live_job_reads_the_nodes_files_through_the_logs_source_table(tmp_path) -> None:
    from tests.fixtures.compliance_jobs import c_sch_log, c_vol_log, cinder_conf

    node, spec = tmp_path / "node", JobSpec()
    (node / "opt/stack/new/minicloud/etc/cinder").mkdir(parents=True)
    (node / "opt/stack/new/minicloud/etc/cinder/cinder.conf").write_text(cinder_conf(spec))
    (node / "opt/stack/new/screen-logs").mkdir(parents=True)
    (node / "opt/stack/new/screen-logs/screen-c-vol.log").write_text(c_vol_log(spec))
    (node / "opt/stack/new/screen-logs/screen-c-sch.log").write_text(c_sch_log(spec))
    ws = tmp_path / "ws"
    (ws / ".dsvm").mkdir(parents=True)
    (ws / ".dsvm/state.json").write_text("{}")
    sources = (("/etc/cinder", "etc/cinder"), ("$BASE/new/minicloud/etc/cinder", "etc/cinder"),
               ("$BASE/new/screen-logs", ""))
    live = JobDir(ws, node_root=node, live=True, sources=sources)
    (verdict,), problems = backends.decide(live, ["sanco-iscsi"])
    assert problems == [] and verdict.status == backends.EXERCISED
    assert verdict.evidence[0].where.endswith("opt/stack/new/minicloud/etc/cinder/"
                                              "cinder.conf:3")
    # the same directory read after the job (not live) never looks at the node
    (after,), problems = backends.decide(JobDir(ws, node_root=node, sources=sources),
                                         ["sanco-iscsi"])
    assert after.status == backends.NOT_CONFIGURED and problems
