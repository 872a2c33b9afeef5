"""The shipped Zuul job's playbooks (zuul/playbooks/dsvm) under a real ``ansible-playbook``
against localhost: the ``zuul`` variable as extra vars, trees built as the executor leaves
them, through a finished ``dsvm run`` with the fake stack.sh, to the artifacts in
``zuul-output`` and what ``zuul_return`` hands back. And ``ansible-lint`` on them."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import devstack as fake
from tests.fixtures.job_builders import make_cache, write_profile
from tests.fixtures.zuulv3 import Executor

stack_user = fake.stack_user  # the session fixture
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PLAYBOOKS = ROOT / "zuul/playbooks/dsvm"
SECRET = "Arr4yS3cr3tDoNotLog"


@pytest.fixture
def job_root() -> Iterator[Path]:
    """A temporary directory the stack user can traverse, outside /tmp/pytest-of-<user>: a
    pytest session starting meanwhile (other suites on the machine) puts that one back to 0700,
    and stack.sh would then be 'Permission denied' mid-job."""
    root = Path(tempfile.mkdtemp(prefix="dsvm-zuul-job-"))
    root.chmod(0o711)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _tool(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed (pip install -e '.[test]'; .ci/run does)")
    return path


def _ansible(playbook: str, extra: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ZUUL_", "DEVSTACK_GATE_", "BUILD_", "ANSIBLE_"))}
    env.update({"ANSIBLE_LIBRARY": str(ROOT / "tests/fixtures/ansible/library"),
                "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
                "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-tmp"),
                "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0",
                "ZUUL_JOBDIR": str(tmp_path / "jobdir"), "PATH": f"{BIN}:{env['PATH']}"})
    return subprocess.run([str(_tool("ansible-playbook")), "-i", "localhost,", "-c", "local",
                           "-e", f"ansible_python_interpreter={sys.executable}",
                           "-e", f"@{extra}", str(PLAYBOOKS / playbook)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          check=False)


def _texts(root: Path) -> str:
    out = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if data[:2] == b"\037\213":
                data = gzip.decompress(data)
            out.append(data.decode(errors="replace"))
    return "\n".join(out)


@pytest.mark.slow
def test_playbooks_run_the_job_to_the_end_and_return_the_artifacts(job_root: Path,
                                                                   stack_user: str) -> None:
    tmp_path = job_root
    base, ws, output = tmp_path / "base", tmp_path / "ws", tmp_path / "zuul-output/logs"
    projects = make_cache(tmp_path / "cache", tests=5)
    executor = Executor(home=tmp_path / "home", upstream=tmp_path / "upstream")
    commits = {name: executor.adopt(name, tmp_path / "cache" / name,
                                    change=4242 if name == "openstack/devstack" else None)
               for name in projects}
    profile = write_profile(tmp_path / "job.yaml", base, tmp_path / "cache", stack_user,
                            projects)
    # The array password comes from the Zuul secret, through the environment, into the profile.
    profile.write_text(profile.read_text().replace("ADMIN_PASSWORD: s3cr3tAdminPw",
                                                   "ADMIN_PASSWORD: ${DSVM_SAN_PASSWORD}"))
    fake.grant_traverse(tmp_path)
    extra = tmp_path / "extra-vars.json"
    extra.write_text(json.dumps({
        "zuul": executor.variable("openstack/devstack", timeout=600),
        "dsvm_install": False, "dsvm_venv": str(BIN.parent), "dsvm_profile": str(profile),
        "dsvm_vars_file": str(tmp_path / "zuul-vars.json"), "dsvm_workspace": str(ws),
        "dsvm_src_root": str(executor.home), "dsvm_base": str(base),
        "dsvm_output": str(output), "dsvm_array": {"san_password": SECRET},
        "dsvm_env": {"DEVSTACK_GATE_TIMEOUT_BUFFER": "1",
                     "DSVM_RESULTS_DB": f"sqlite:///{tmp_path}/results.db"}}))
    logs = ""
    for playbook in ("pre.yaml", "run.yaml", "post.yaml"):
        done = _ansible(playbook, extra, tmp_path)
        logs += done.stdout + done.stderr
        assert done.returncode == 0, f"{playbook}:\n{done.stdout}\n{done.stderr}"
    state = json.loads((ws / ".dsvm/state.json").read_text())
    assert {k: v["status"] for k, v in state["phases"].items()} == {
        p: "ok" for p in ("workspace", "configure", "stack", "tempest", "results", "logs")}
    rows = {r["name"]: r for r in state["phases"]["workspace"]["outputs"]["projects"]}
    assert {n: (r["source"], r["commit"]) for n, r in rows.items()} == \
        {n: ("zuul", c) for n, c in commits.items()}
    # What fetch-output collects, and what zuul_return handed to Zuul.
    assert "<html" in (output / "testr_results.html").read_text().lower()
    assert "<testsuite" in (output / "junit.xml").read_text()
    summary = (output / "summary.md").read_text()
    assert "change 4242 patchset 1 of openstack/devstack (check)" in summary
    assert (output / "manifest.json").is_file()
    returned = json.loads((tmp_path / "jobdir/work/results.json").read_text())
    assert [a["url"] for a in returned["zuul"]["artifacts"]] == \
        ["testr_results.html", "summary.md", "junit.xml"]
    # The results database knows the build by the resolved job (no ZUUL_* was set).
    import sqlite3

    with sqlite3.connect(tmp_path / "results.db") as db:
        meta = dict(db.execute("SELECT key, value FROM run_metadata").fetchall())
    assert (meta["zuul_change"], meta["zuul_patchset"], meta["zuul_pipeline"],
            meta["job_name"], meta["zuul_uuid"]) == ("4242", "1", "check", "dsvm-tempest-acme",
                                                     executor.build)
    # The secret reached devstack and no log: not Ansible's, not dsvm's, not the published tree.
    assert SECRET in (base / "new/devstack/local.conf").read_text()
    assert SECRET not in logs
    assert SECRET not in _texts(output) and SECRET not in _texts(ws / "logs")


def test_the_shipped_zuul_side_is_ansible_lint_clean() -> None:
    lint = _tool("ansible-lint")
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "NO_COLOR": "1"}
    done = subprocess.run([str(lint), "--offline", "playbooks"], cwd=ROOT / "zuul", env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 failure(s), 0 warning(s)" in done.stdout + done.stderr


def test_the_job_definition_names_the_playbooks_and_a_secret() -> None:
    import yaml

    config = yaml.safe_load((ROOT / "zuul/zuul.d/dsvm-jobs.yaml").read_text())
    jobs = {item["job"]["name"]: item["job"] for item in config if "job" in item}
    base = jobs["dsvm-tempest-base"]
    for key in ("pre-run", "run", "post-run"):
        assert (ROOT / "zuul" / base[key]).is_file()
    assert base["timeout"] > 0 and base["post-timeout"] > 0
    assert {"openstack/devstack", "openstack/tempest"} <= set(base["required-projects"])
    vendor = jobs["dsvm-tempest-acme"]
    assert vendor["parent"] == "dsvm-tempest-base"
    secret = vendor["secrets"][0]
    assert secret["name"] == "dsvm_array"
    assert any(item.get("secret", {}).get("name") == secret["secret"] for item in config)
    assert shutil.which("true")
