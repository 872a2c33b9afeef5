"""``dsvm run`` ends with compliance: the array inventoried around the job by the profile's
hook, the comment block at the top of summary.md, the compliance section in summary.md,
summary.json, the HTML report and the console; the job's own verdict unchanged."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.integration.test_job import Job, stack_user  # noqa: F401 - the session fixture

INVENTORY = """\
import json, os, sys
print(json.dumps([{"name": n, "size": 1} for n in sorted(os.listdir(sys.argv[1]))]))
"""


@pytest.mark.slow
def test_run_ends_with_compliance_and_the_comment_block(tmp_path: Path,
                                                        stack_user: str) -> None:  # noqa: F811
    array = tmp_path / "array"
    array.mkdir()
    (array / "volume-preexisting").write_bytes(b"")
    hook = tmp_path / "inventory.py"
    hook.write_text(INVENTORY)
    extra = f"""\
cinder:
  backends:
    - name: sanco-iscsi
      volume_driver: cinder.volume.drivers.sanco.iscsi.SanCoISCSIDriver
      inventory: [{sys.executable}, {hook}, {array}]
"""
    job = Job(tmp_path / "job", stack_user, profile_extra=extra)
    done = job.run(JOB_NAME="dsvm-tempest-sanco")
    assert done.returncode == 0, done.stdout + done.stderr  # compliance never changes it
    md = (job.ws / "summary.md").read_text()
    first = md.splitlines()[:3]
    assert first == ["Build succeeded (check pipeline).", "",
                     "- dsvm-tempest-sanco https://logs.example.org/ci/45/12345/3/ : SUCCESS "
                     f"in {first[2].rsplit(' in ', 1)[1]}"]
    assert "`recheck-acme`" in md and "### Vendor compliance: FAIL" in md
    data = json.loads((job.ws / ".dsvm/summary.json").read_text())
    checks = {c["id"]: c for c in data["compliance"]["checks"]}
    # the fake devstack configures no Cinder: the proof is missing, and says where it looked
    assert checks["backends"]["status"] == "fail"
    assert "no cinder.conf" in " ".join(checks["backends"]["evidence"])
    assert checks["leaks"]["status"] == "pass"  # inventories before and after, nothing new
    for when in ("before", "after"):
        snap = json.loads((job.ws / f".dsvm/compliance/inventory-sanco-iscsi-{when}.json")
                          .read_text())["snapshot"]
        assert [o["name"] for o in snap["objects"]] == ["volume-preexisting"]
    html = (job.ws / ".dsvm/results/report.html").read_text()
    assert '"compliance":{"status":"fail"' in html
    assert "compliance: FAIL" in done.stdout
