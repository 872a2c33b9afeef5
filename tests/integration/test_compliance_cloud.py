"""Compliance on the real cloud: Keystone and Cinder from PyPI (scripts/minicloud, the
session's ``cloud`` fixture) with the FlashFleet vendor driver and its misbehave switches.

Each "job" here makes real volumes through cinder-api, inventories the real array with
FlashFleet's own inventory CLI under the array lock, has its logs laid out by ``dsvm logs
collect`` (real redaction) and is graded. Tempest's part of such a job runs in
test_cloud_job.py; the test results here are a small recorded stream, so the checks under
test are the backend proof, the leaks and the new log signatures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dsvm import proc
from dsvm.compliance import checks, inventory, phase, signatures
from dsvm.compliance.evidence import JobDir
from dsvm.results import db, html, stream
from tests.fixtures import cloud as cloudfix
from tests.fixtures import devstack as fake
from tests.fixtures.cloud import MINICLOUD, Cloud
from tests.fixtures.compliance_jobs import JobSpec, subunit_stream

pytestmark = [pytest.mark.cloud, pytest.mark.slow]
stack_user = fake.stack_user  # the session fixtures
cloud_venvs = cloudfix.cloud_venvs
cloud = cloudfix.cloud

BACKEND = "sanco-flashfleet"
JOB = "dsvm-tempest-flashfleet"
CLEANUP = """\
import sys
from pathlib import Path
array = Path(sys.argv[1])
for name in sys.argv[2:]:
    for found in array.glob(f"pools/*/{name}.*"):
        found.unlink()
"""


def _volumes(cloud: Cloud, n: int, name: str) -> list[tuple[str, str]]:
    """Create ``n`` volumes and delete them; (id, status after create) of each."""
    made = []
    for i in range(n):
        vol = cloud.volume_api("POST", "volumes", {"volume": {"size": 1,
                                                              "name": f"{name}-{i}"}})
        vid = vol["volume"]["id"]
        made.append((vid, cloud.wait_volume(vid, "available", "error")))
    for vid, _ in made:
        cloud.volume_api("DELETE", f"volumes/{vid}")
        cloud.wait_volume(vid, "deleted", "error_deleting")
    return made


def _job(cloud: Cloud, tmp: Path, name: str, db_url: str, n: int = 2, failed: bool = False,
         **switches: object) -> tuple[phase.Job, str, list[tuple[str, str]]]:
    """One job: inventory, volumes made (with ``switches`` on), inventory and cleanup,
    results stored, logs collected. Returns the Job, its stored run uuid and the volumes."""
    ws = tmp / name
    (ws / ".dsvm").mkdir(parents=True)
    cleanup = tmp / "cleanup.py"
    cleanup.write_text(CLEANUP)
    hooks = inventory.Hooks(BACKEND, str(cloud.array),
                            (sys.executable, str(MINICLOUD), "inventory", str(cloud.array)),
                            (sys.executable, str(cleanup), str(cloud.array)))
    # the node as dsvm run sees it while the job runs: $BASE/new/screen-logs, /etc/cinder
    node = tmp / f"{name}-node"
    (node / "opt/stack/new").mkdir(parents=True)
    (node / "etc").mkdir()
    (node / "opt/stack/new/screen-logs").symlink_to(cloud.dir / "logs")
    (node / "etc/cinder").symlink_to(cloud.dir / "etc/cinder")
    job = phase.Job(ws, "/opt/stack", node,
                    checks.Policy((BACKEND,), has_inventory=True), (hooks,), db_url,
                    {"job_name": JOB})
    runner = proc.Runner(ws / ".dsvm" / "compliance.log")
    warnings: list[str] = []
    phase.take_inventory(job, "before", runner, warnings.append)
    cloud.switches(**switches)
    try:
        made = _volumes(cloud, n, f"{name}-vol")
    finally:
        cloud.switches()
    phase.take_inventory(job, "after", runner, warnings.append)
    assert warnings == []
    results = ws / ".dsvm" / "results"
    results.mkdir()
    data = subunit_stream(JobSpec(failing_test=failed))
    (results / "testrepository.subunit").write_bytes(data)
    run = stream.parse_bytes(data, "tempest")
    (results / "report.html").write_text(html.render(run))
    engine = db.connect(db_url)
    uuid = db.store(engine, run, meta={"job_name": JOB}).uuid
    engine.dispose()
    (ws / ".dsvm" / "state.json").write_text(json.dumps({
        "version": 1, "profile": "sanco-flashfleet", "started": "2026-12-04T19:00:00+00:00",
        "finished": "2026-12-04T19:40:00+00:00", "phases": {"results": {
            "status": "ok", "outputs": {"subunit": str(results / "testrepository.subunit"),
                                        "html": str(results / "report.html")}}}}))
    _collect(cloud, ws)
    return job, uuid, made


def _collect(cloud: Cloud, ws: Path) -> None:
    """dsvm's logs phase on the cloud's files (devstack's names, under the cloud's dir)."""
    profile = ws / "collect.yaml"
    profile.write_text(f"""\
logs:
  defaults: false
  snapshots: false
  sources:
    - {{src: {cloud.dir}/logs, dest: "."}}
    - {{src: {cloud.dir}/etc/cinder, dest: etc/cinder, rename: config}}
    - {{src: {cloud.tempest_conf}, dest: tempest_conf.txt, rename: file}}
""")
    done = subprocess.run([sys.executable, "-m", "dsvm", "--no-color", "--profile", str(profile),
                           "logs", "collect", "--workspace", str(ws)], cwd=ws,
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "WORKSPACE": str(ws)})
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def results_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('results')}/results.db"


@pytest.fixture(scope="module")
def passing(cloud: Cloud, results_db: str, tmp_path_factory: pytest.TempPathFactory):
    job, uuid, made = _job(cloud, tmp_path_factory.mktemp("passing"), "job", results_db)
    engine = db.connect(results_db)
    signatures.store(engine, uuid, signatures.extract(JobDir.open(job.root)))
    engine.dispose()
    return job, uuid, made


def test_the_vendor_backend_is_proven_exercised_from_the_real_logs(passing) -> None:
    job, _, made = passing
    report = phase.evaluate(job, live=False)
    got = {c.id: c for c in report.checks}
    for cid in ("backends", "cinder-conf", "cinder-logs", "leaks", "history"):
        assert got[cid].status == "pass", "\n".join(phase.lines(report))
    (verdict,) = report.backends
    assert verdict.status == "exercised" and verdict.stats["vendor_name"] == "SanCo"
    assert {vid for vid, _ in made} <= set(verdict.created)
    texts = "\n".join(f"{line.where}: {line.text}" for line in verdict.evidence)
    assert "logs/etc/cinder/cinder.conf.txt.gz:" in texts
    assert "volume_driver = sanco_flashfleet.driver.FlashFleetDriver" in texts
    assert "Starting volume driver FlashFleetDriver" in texts
    assert "logs/screen-c-vol.txt.gz:" in texts and "created successfully" in texts


def test_the_leak_switch_leaves_a_leak_that_is_found_and_cleaned(cloud: Cloud, results_db,
                                                                passing, tmp_path) -> None:
    sys.path.insert(0, str(MINICLOUD.parent / "flashfleet"))
    from sanco_flashfleet.array import Array  # the driver's own array API

    Array(cloud.array).create("tempest", "volume-from-an-earlier-job", 1)
    job, _, made = _job(cloud, tmp_path, "leaky", results_db, n=1, leak_on_delete=True)
    report = phase.evaluate(job, live=False)
    leaks = {c.id: c for c in report.checks}["leaks"]
    assert leaks.status == "fail"
    (leak,) = [x for f in report.findings for x in f.leaks]
    assert leak.name == f"volume-{made[0][0]}" and leak.size == 1 << 30
    assert "; cleaned" in "\n".join(leaks.evidence)
    names = {o["name"] for o in cloud.inventory()["objects"]}
    assert leak.name not in names
    assert "volume-from-an-earlier-job" in names  # it existed before the job: left alone


def test_a_new_trace_in_c_vol_is_reported_against_the_last_passing_run(
        cloud: Cloud, results_db, passing, tmp_path) -> None:
    _, good, _ = passing
    job, bad, made = _job(cloud, tmp_path, "failing", results_db, n=1, failed=True,
                          fail_create=1)
    assert made[0][1] == "error"  # the switch failed the create
    report = phase.evaluate(job, live=False, run_uuid=bad, failed=True)
    assert report.baseline is not None and report.baseline.uuid == good
    new = [s for s in report.new_signatures if s.service == "c-vol"]
    assert new, "\n".join(phase.lines(report))
    assert new[0].first.where.startswith("logs/screen-c-vol.txt.gz:")
    assert " ERROR " in new[0].first.text
    assert "new in the logs since the last passing run" in "\n".join(phase.lines(report))


def test_lvm_enabled_beside_the_vendor_backend_is_a_violation_with_its_proof(
        stack_user: str, cloud_venvs: dict, results_db: str, tmp_path: Path) -> None:
    """A second cloud whose cinder.conf also enables devstack's LVM backend (edited between
    configure and start, as a local.conf post-config would): c-vol starts the LVM driver,
    which cannot initialise on this node, and compliance says so with the lines."""
    from dsvm.devstack import ini
    from tests.fixtures.cloud import private_tmp, run_minicloud

    with private_tmp(stack_user, prefix="dsvm-cloud-lvm-") as root, cloudfix.mariadb() as dbs:
        d = root / "minicloud"
        run_minicloud("configure", "--dir", str(d), "--keystone-db", dbs.url("keystone"),
                      "--cinder-db", dbs.url("cinder"), user=stack_user)
        conf = d / "etc/cinder/cinder.conf"
        ini.iniset(conf, "DEFAULT", "enabled_backends", f"lvmdriver-1,{BACKEND}")
        ini.iniset(conf, "lvmdriver-1", "volume_backend_name", "lvmdriver-1")
        ini.iniset(conf, "lvmdriver-1", "volume_driver",
                   "cinder.volume.drivers.lvm.LVMVolumeDriver")
        ini.iniset(conf, "lvmdriver-1", "volume_group", "stack-volumes-lvmdriver-1")
        try:
            started = run_minicloud("start", "--dir", str(d), user=stack_user, check=False)
            lvm_cloud = Cloud(dir=d, user=stack_user, tempest_conf=root / "tempest.conf")
            if started.returncode == 0:
                _volumes(lvm_cloud, 1, "lvm-beside")
            ws = tmp_path / "job"
            (ws / ".dsvm").mkdir(parents=True)
            (ws / ".dsvm" / "state.json").write_text(json.dumps(
                {"version": 1, "profile": "x", "started": "2026-12-04T19:00:00+00:00"}))
            _collect(lvm_cloud, ws)
        finally:
            run_minicloud("stop", "--dir", str(d), user=stack_user, check=False)
        jd = JobDir.open(ws)
        report = checks.grade(jd, checks.Policy((BACKEND,)))
        assert {c.id: c for c in report.checks}["backends"].status == "fail"
        lvm = next(v for v in report.backends if v.name == "lvmdriver-1")
        assert lvm.is_lvm and "LVM driver" in (lvm.violation or "")
        proof = "\n".join(f"{line.where}: {line.text}" for line in lvm.evidence)
        assert "enabled_backends = lvmdriver-1,sanco-flashfleet" in proof
        assert "volume_driver = cinder.volume.drivers.lvm.LVMVolumeDriver" in proof
        assert "logs/etc/cinder/cinder.conf.txt.gz:" in proof
        assert "Starting volume driver LVMVolumeDriver" in proof, proof
        assert lvm.status == "configured-but-unused"
        vendor = next(v for v in report.backends if v.name == BACKEND)
        assert vendor.violation is None
