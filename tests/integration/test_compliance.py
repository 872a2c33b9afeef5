"""Compliance end to end: the CLI on job directories, inventory and cleanup hooks as real
programs against a real "array" directory, the array lock on real PostgreSQL / MariaDB and
files, and log signatures in real results databases (URLs from .ci/services.sh)."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from dsvm import cli, proc
from dsvm.compliance import checks, inventory, phase, signatures
from dsvm.compliance.evidence import JobDir
from dsvm.compliance.lock import ArrayLock
from dsvm.errors import InfraError
from dsvm.results import db, stream
from tests.fixtures.compliance_jobs import LEAKED, JobSpec, build_job, subunit_stream

SERVERS = {"postgresql": "DSVM_TEST_POSTGRES_URL", "mysql": "DSVM_TEST_MYSQL_URL"}

# A vendor-style inventory and cleanup: the array is a directory of sparse files.
INVENTORY = """\
import json, os, sys
array = sys.argv[1]
print(json.dumps({"objects": [{"name": n, "size": os.stat(os.path.join(array, n)).st_size,
                               "kind": "volume"} for n in sorted(os.listdir(array))]}))
"""
CLEANUP = """\
import os, sys
array = sys.argv[1]
for name in sys.argv[2:]:
    os.unlink(os.path.join(array, name))
    print("deleted", name)
"""


def server_url(kind: str) -> str:
    url = os.environ.get(SERVERS[kind])
    if not url:
        pytest.skip(f"{SERVERS[kind]} is not set (.ci/services.sh sets it)")
    return url


PROFILE = """\
description: SanCo FlashFleet driver CI
cinder:
  backends:
    - name: sanco-iscsi
      volume_driver: cinder.volume.drivers.sanco.iscsi.SanCoISCSIDriver
      storage_protocol: iSCSI
      vendor_name: SanCo
"""


def run_cli(*argv: str) -> int:
    return cli.main(list(argv))


def profile_file(tmp_path: Path) -> str:
    path = tmp_path / "sanco.yaml"
    path.write_text(PROFILE)
    return str(path)


# -- dsvm compliance ------------------------------------------------------------------------
def test_cli_json_on_a_compliant_job(tmp_path, capsys) -> None:
    root = build_job(tmp_path / "job")
    code = run_cli("--profile", profile_file(tmp_path), "compliance", "--json", "--db",
                   f"sqlite:///{tmp_path}/r.db", str(root))
    data = json.loads(capsys.readouterr().out)
    assert code == 0, data
    assert data["status"] == "pass"
    assert {c["id"]: c["status"] for c in data["checks"]}["backends"] == "pass"
    assert data["backends"][0]["status"] == "exercised"
    assert data["backends"][0]["evidence"][0]["where"] == "logs/etc/cinder/cinder.conf.txt:3"


def test_cli_fails_a_job_with_lvm_beside_the_vendor_backend(tmp_path, capsys) -> None:
    root = build_job(tmp_path / "job", JobSpec(lvm=True))
    code = run_cli("--no-color", "--profile", profile_file(tmp_path), "compliance", "--db",
                   f"sqlite:///{tmp_path}/r.db", str(root))
    out = capsys.readouterr()
    assert code == 1
    text = out.out + out.err
    assert "FAIL backends" in text and "runs the LVM driver" in text
    assert "cinder.conf.txt" in text and "LVMVolumeDriver" in text


def test_cli_exit_2_for_a_directory_that_is_not_a_job(tmp_path, capsys) -> None:
    (tmp_path / "logs").mkdir()
    code = run_cli("--no-color", "compliance", str(tmp_path))
    err = capsys.readouterr().err
    assert code == 2 and "not a dsvm job directory" in err


def test_cli_exit_2_naming_the_recorded_profile_it_cannot_load(tmp_path, capsys) -> None:
    root = build_job(tmp_path / "job")  # its state.json says profile 'sanco'
    code = run_cli("--no-color", "compliance", str(root))
    err = capsys.readouterr().err
    assert code == 2 and "the job's profile 'sanco'" in err and "--profile" in err


def test_results_comment_prints_the_block_gerrit_shows(tmp_path, capsys, monkeypatch) -> None:
    from tests.unit.test_compliance import gerrit_parse

    root = build_job(tmp_path / "job", JobSpec(verdict="FAILURE", failing_test=True))
    monkeypatch.setenv("JOB_NAME", "dsvm-tempest-sanco")
    monkeypatch.setenv("ZUUL_VOTING", "0")
    code = run_cli("--profile", profile_file(tmp_path), "results", "comment", str(root))
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("Build failed (check pipeline).\n\n- dsvm-tempest-sanco "
                          "https://logs.example.org/42/4242/3/ : FAILURE in 40m 00s "
                          "(non-voting)\n")
    parsed = gerrit_parse("SanCo CI", out)
    assert parsed["status"] == "failed" and parsed["results"][0]["job"] == "dsvm-tempest-sanco"
    assert "* tempest.api.volume.test_volumes_actions.VolumesActionsTest.test_volume_upload" \
        in out and "`recheck` or `run-SanCo CI`" in out


def test_results_comment_exit_2_without_a_summary(tmp_path, capsys) -> None:
    root = build_job(tmp_path / "job")
    (root / "logs/dsvm/summary.json").unlink()
    code = run_cli("--no-color", "--profile", profile_file(tmp_path), "results", "comment",
                   str(root))
    assert code == 2 and "no summary.json" in capsys.readouterr().err


# -- inventory hooks, leaks and cleanup -----------------------------------------------------
def _job(tmp_path: Path, spec: JobSpec, hooks: list[inventory.Hooks], db_url: str) -> phase.Job:
    root = build_job(tmp_path / "job", spec)
    return phase.Job(root, "/opt/stack", tmp_path / "node",
                     checks.Policy(("sanco-iscsi",), has_inventory=True), tuple(hooks), db_url,
                     {"job_name": "dsvm-tempest-sanco"})


def _array(tmp_path: Path, *names: str) -> Path:
    array = tmp_path / "array"
    array.mkdir(exist_ok=True)
    for name in names:
        with (array / name).open("wb") as fh:
            fh.truncate(1 << 30)  # sparse, as the driver keeps them
    return array


def _hooks(tmp_path: Path, array: Path, inventory_src: str = INVENTORY,
           backend: str = "sanco-iscsi") -> inventory.Hooks:
    inv, clean = tmp_path / f"inventory-{backend}.py", tmp_path / f"cleanup-{backend}.py"
    inv.write_text(inventory_src)
    clean.write_text(CLEANUP)
    return inventory.Hooks(backend, str(array), (sys.executable, str(inv), str(array)),
                           (sys.executable, str(clean), str(array)))


def test_leak_found_cleaned_and_a_preexisting_object_left_alone(tmp_path) -> None:
    array = _array(tmp_path, "volume-from-last-week")
    hooks = _hooks(tmp_path, array)
    job = _job(tmp_path, JobSpec(leak=True), [hooks], f"sqlite:///{tmp_path}/r.db")
    runner = proc.Runner(tmp_path / "compliance.log")
    warnings: list[str] = []
    phase.take_inventory(job, "before", runner, warnings.append)
    # the job's Cinder made three volumes; the leak switch kept one; a stranger made one
    _array(tmp_path, f"volume-{LEAKED}", "volume-0c0c0c0c-1111-4222-8333-444455556666")
    phase.take_inventory(job, "after", runner, warnings.append)
    assert warnings == []
    assert sorted(os.listdir(array)) == ["volume-0c0c0c0c-1111-4222-8333-444455556666",
                                         "volume-from-last-week"]
    report = phase.evaluate(job, live=False)
    leaks = {c.id: c for c in report.checks}["leaks"]
    assert leaks.status == "fail"
    text = "\n".join(leaks.evidence)
    assert f"volume-{LEAKED} ({1 << 30} bytes), created by VolumesActionsTest:" \
           "test_volume_upload" in text and "; cleaned" in text
    assert "another job on the array?): left alone" in text
    assert report.as_json()["leaks"][0]["test"] == "VolumesActionsTest:test_volume_upload"


@pytest.mark.parametrize("bad", ["exit", "not-json"])
def test_a_bad_inventory_hook_is_a_warning_and_nothing_is_cleaned(tmp_path, bad) -> None:
    array = _array(tmp_path)
    good = _hooks(tmp_path, array)
    job = _job(tmp_path, JobSpec(leak=True), [good], f"sqlite:///{tmp_path}/r.db")
    runner = proc.Runner(tmp_path / "compliance.log")
    warnings: list[str] = []
    phase.take_inventory(job, "before", runner, warnings.append)
    assert warnings == []
    _array(tmp_path, f"volume-{LEAKED}")
    src = "import sys; sys.exit(3)\n" if bad == "exit" else "print('volume-1 1G')\n"
    broken = _hooks(tmp_path, array, src)  # the same hook now fails
    job = phase.Job(**{**job.__dict__, "hooks": (broken,)})
    phase.take_inventory(job, "after", runner, warnings.append)
    (warning,) = warnings
    assert "cinder.backends[sanco-iscsi].inventory" in warning and "nothing is cleaned" in warning
    assert ("exited 3" if bad == "exit" else "printed no JSON") in warning
    assert os.listdir(array) == [f"volume-{LEAKED}"]  # nothing cleaned
    report = phase.evaluate(job, live=False)
    leaks = {c.id: c for c in report.checks}["leaks"]
    assert leaks.status == "n.a." and "inventory" in leaks.evidence[0]
    # the verdict of every other check is what it was
    assert {c.id: c.status for c in report.checks if c.id != "leaks"} == {
        c.id: c.status for c in checks.grade(JobDir.open(job.root), job.policy).checks
        if c.id != "leaks"}


# -- the array lock -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["file", "postgresql", "mysql"])
def test_the_array_lock_excludes_a_second_holder_until_released(tmp_path, kind) -> None:
    url = f"sqlite:///{tmp_path}/results.db" if kind == "file" else server_url(kind)
    name = f"array-{os.getpid()}-{kind}"
    with ArrayLock(name, url, timeout=5) as held:
        assert held.kind == kind
        # another process (another node) cannot take it meanwhile
        code = _other_process_lock(name, url, timeout=1)
        assert code == "busy"
        # a different array is a different lock
        assert _other_process_lock(name + "-other", url, timeout=1) == "taken"
    assert _other_process_lock(name, url, timeout=5) == "taken"


def _other_process_lock(name: str, url: str, timeout: float) -> str:
    import subprocess

    src = ("import sys\nfrom dsvm.compliance.lock import ArrayLock\nfrom dsvm.errors import "
           "InfraError\ntry:\n    with ArrayLock(sys.argv[1], sys.argv[2], float(sys.argv[3])):"
           "\n        print('taken')\nexcept InfraError:\n    print('busy')\n")
    out = subprocess.run([sys.executable, "-c", src, name, url, str(timeout)],
                         capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_a_held_lock_times_out_with_infra_error(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/results.db"
    with ArrayLock("a1", url, timeout=5), pytest.raises(InfraError, match="still held"):
        with ArrayLock("a1", url, timeout=0.3):
            pass


def test_two_jobs_on_one_array_in_parallel_never_clean_each_others(tmp_path) -> None:
    url = server_url("postgresql")
    array = _array(tmp_path, "volume-preexisting")
    b_ids = ("1b1b1b1b-1111-4222-8333-444455556666", "2b2b2b2b-1111-4222-8333-444455556666")
    b_leak = "3b3b3b3b-1111-4222-8333-444455556666"
    specs = {"a": JobSpec(leak=True),
             "b": JobSpec(leak=True, volumes=b_ids, leaked_id=b_leak)}
    jobs = {}
    for name, spec in specs.items():
        root = build_job(tmp_path / name, spec)
        jobs[name] = phase.Job(root, "/opt/stack", tmp_path / "node",
                               checks.Policy(("sanco-iscsi",), has_inventory=True),
                               (_hooks(tmp_path / name, array),), url,
                               {"job_name": f"job-{name}"})
    runners = {n: proc.Runner(tmp_path / f"{n}.log") for n in jobs}
    for name, job in jobs.items():
        phase.take_inventory(job, "before", runners[name], pytest.fail)
    # both jobs' leaked volumes are on the array at once
    _array(tmp_path, f"volume-{LEAKED}", f"volume-{b_leak}")
    errors: list[BaseException] = []

    def after(name: str) -> None:
        try:
            phase.take_inventory(jobs[name], "after", runners[name], pytest.fail)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=after, args=(n,)) for n in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    record = {n: json.loads((j.root / ".dsvm/compliance/inventory-sanco-iscsi-after.json")
                            .read_text()) for n, j in jobs.items()}
    assert record["a"]["cleaned"] == {f"volume-{LEAKED}": "cleaned"}
    assert record["b"]["cleaned"] == {f"volume-{b_leak}": "cleaned"}
    # each saw the other's object and left it alone (or it was already gone)
    assert {o["name"] for o in record["a"]["foreign"]} <= {f"volume-{b_leak}"}
    assert sorted(os.listdir(array)) == ["volume-preexisting"]


# -- log signatures in the results database -------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def results_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/results.db"
        return
    url = server_url(request.param)
    engine = sa.create_engine(db.normalize_url(url))
    with engine.begin() as conn:
        db.metadata.drop_all(conn)
    yield url
    with engine.begin() as conn:
        db.metadata.drop_all(conn)
    engine.dispose()


def _store_run(engine, root: Path, job_name: str, spec: JobSpec) -> str:
    run = stream.parse_bytes(subunit_stream(spec), "s")
    return db.store(engine, run, meta={"job_name": job_name}).uuid


def test_a_failed_run_reports_the_trace_that_is_new_since_the_last_passing_run(
        tmp_path, results_url) -> None:
    engine = db.connect(results_url)
    key = {"job_name": "dsvm-tempest-sanco"}
    passing = build_job(tmp_path / "pass")
    good = _store_run(engine, passing, "dsvm-tempest-sanco", JobSpec())
    assert signatures.store(engine, good, signatures.extract(JobDir.open(passing))) == 1
    time.sleep(1.1)  # run_at orders the runs (MySQL DATETIME keeps whole seconds)
    spec = JobSpec(failing_test=True, verdict="FAILURE", extra_trace="Failed to delete volume")
    failing = build_job(tmp_path / "fail", spec)
    bad = _store_run(engine, failing, "dsvm-tempest-sanco", spec)
    # another job's passing run is not a baseline for this one
    _store_run(engine, passing, "other-job", JobSpec())
    base = signatures.baseline(engine, key, exclude_uuid=bad)
    assert base is not None and base.uuid == good
    job = phase.Job(failing, "/opt/stack", tmp_path, checks.Policy(("sanco-iscsi",)), (),
                    results_url, key)
    report = phase.evaluate(job, live=False, run_uuid=bad, failed=True)
    assert report.baseline and report.baseline.uuid == good
    (first, *rest) = report.new_signatures
    assert first.service == "c-vol" and "Failed to delete volume" in first.first.text
    assert first.first.where.startswith("logs/screen-c-vol.txt.gz:")
    assert all(s.service == "c-vol" for s in rest)
    assert "Failed to delete volume" in phase.markdown(report)
    facts = {c.id: c for c in report.checks}["history"]
    assert facts.status == "pass" and "2 run(s), 1 successful" in facts.evidence[0]
    engine.dispose()


def test_the_signature_table_is_added_to_a_database_already_at_head(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    engine = db.connect(url)
    with engine.begin() as conn:  # a database subunit2sql made: its tables, no dsvm ones
        db.metadata.create_all(conn, tables=[t for t in db.metadata.sorted_tables
                                             if t.name not in {x.name for x in db.DSVM_TABLES}])
        conn.execute(db.alembic_version.insert().values(version_num=db.HEAD))
    run = stream.parse_bytes(subunit_stream(JobSpec()), "s")
    uuid = db.store(engine, run, meta={"job_name": "j"}).uuid
    with engine.connect() as conn:
        assert sa.inspect(conn).has_table("dsvm_log_signatures")
    root = build_job(tmp_path / "job")
    assert signatures.store(engine, uuid, signatures.extract(JobDir.open(root))) == 1
    engine.dispose()
