"""End-to-end ``dsvm run``: real git repos in a cache, the fake devstack run as an unprivileged
user, a real stestr suite standing in for Tempest, real signals and the process table.

Repo, suite and profile builders live in ``tests/fixtures/job_builders.py`` (the job
benchmark uses them too).
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures import devstack as fake
from tests.fixtures.devstack import grandchildren
from tests.fixtures.job_builders import make_cache, write_profile

stack_user = fake.stack_user  # the session fixture


GREEN = 0


class Job:
    """One job directory: cache, profile, workspace; runs ``dsvm run`` as a process."""

    def __init__(self, root: Path, user: str, *, failing: int = 0, profile_extra: str = "",
                 extra_projects: int = 0, tests: int = 50) -> None:
        self.root, self.base, self.ws = root, root / "base", root / "ws"
        self.ws.mkdir(parents=True)
        self.projects = make_cache(root / "cache", failing=failing, tests=tests,
                                   extra_projects=extra_projects)
        self.profile = write_profile(root / "job.yaml", self.base, root / "cache", user,
                                     self.projects, profile_extra)
        fake.grant_traverse(root)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ZUUL_", "DEVSTACK_GATE_", "BUILD_"))}
        env.update({"WORKSPACE": str(self.ws), "BASE": str(self.base), "ZUUL_BRANCH": "master",
                    "ZUUL_PROJECT": "openstack/devstack", "ZUUL_CHANGE": "12345",
                    "ZUUL_PATCHSET": "3", "ZUUL_PIPELINE": "check", "LOG_PATH": "45/12345/3",
                    "BUILD_TIMEOUT": "600000", "DEVSTACK_GATE_TIMEOUT_BUFFER": "1",
                    "DSVM_RESULTS_DB": f"sqlite:///{self.root}/results.db"})
        env.update(extra)
        return env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "dsvm", "--no-color", "--profile", str(self.profile),
                "run", *args]

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), env=self.env(**env), cwd=self.ws,
                              capture_output=True, text=True, timeout=240, check=False)

    def state(self) -> dict:
        return json.loads((self.ws / ".dsvm/state.json").read_text())

    def status(self) -> dict[str, str]:
        return {k: v["status"] for k, v in self.state()["phases"].items()}


def _assert_logs_attempted(job: Job) -> None:
    assert job.status()["logs"] == "ok"


@pytest.mark.slow
def test_success_end_to_end(tmp_path: Path, stack_user: str) -> None:
    job = Job(tmp_path, stack_user)
    done = job.run()
    assert done.returncode == GREEN, done.stdout + done.stderr
    status = job.status()
    assert [status[p] for p in ("workspace", "configure", "stack", "tempest", "results")] \
        == ["ok"] * 5
    _assert_logs_attempted(job)
    assert job.state()["phases"]["results"]["outputs"]["counts"]["success"] == 50
    md = (job.ws / "summary.md").read_text()
    assert "change 12345 patchset 3" in md and "recheck-acme" in md
    assert "https://logs.example.org/ci/45/12345/3/" in md
    # The summary was collected with the logs (so it is published with them), not only
    # copied in after the logs phase.
    manifest = json.loads((job.ws / "logs/manifest.json").read_text())
    collected = {f["path"]: f["source"] for f in manifest["files"]}
    assert collected["summary.md.gz"].endswith(".dsvm/summary.md")
    assert collected["dsvm/summary.json.gz"].endswith(".dsvm/summary.json")
    published = gzip.decompress((job.ws / "logs/summary.md.gz").read_bytes()).decode()
    assert "SUCCESS" in published and "https://logs.example.org/ci/45/12345/3/" in published
    tail = done.stdout.strip().splitlines()
    assert tail[-1].startswith(f"dsvm run: exit {GREEN}")
    assert "s3cr3tAdminPw" not in done.stdout + done.stderr
    assert "s3cr3tAdminPw" not in (job.ws / ".dsvm/stack.sh.log").read_text()


@pytest.mark.slow
def test_stack_failure_is_infrastructure_and_logs_still_run(tmp_path: Path,
                                                            stack_user: str) -> None:
    job = Job(tmp_path, stack_user)
    done = job.run(FAKE_STACK="fail:cinder")
    assert done.returncode == 3, done.stdout + done.stderr
    status = job.status()
    assert status["stack"] == "failed" and status["tempest"] == "skipped"
    _assert_logs_attempted(job)
    out = done.stdout
    assert "ERROR: stack failed: stack.sh failed with exit 1 in 'Starting Cinder'" in out
    assert "fake failure in phase cinder" in out
    summary = json.loads((job.ws / ".dsvm/summary.json").read_text())
    assert summary["failure"]["kind"] == "infrastructure"
    assert summary["failure"]["devstack_phase"] == "Starting Cinder"
    assert "FAILURE (infrastructure failure in stack)" in (job.ws / "summary.md").read_text()


@pytest.mark.slow
def test_tests_failing_exit_1(tmp_path: Path, stack_user: str) -> None:
    job = Job(tmp_path, stack_user, failing=3, tests=10)
    done = job.run()
    assert done.returncode == 1, done.stdout + done.stderr
    status = job.status()
    assert status["tempest"] == "failed" and status["results"] == "failed"
    _assert_logs_attempted(job)
    assert json.loads((job.ws / ".dsvm/summary.json").read_text())["failure"]["phase"] \
        == "tempest"


@pytest.mark.slow
def test_budget_expiry_during_stack(tmp_path: Path, stack_user: str) -> None:
    job = Job(tmp_path, stack_user)
    start = time.monotonic()
    done = job.run(FAKE_STACK="hang:keystone", BUILD_TIMEOUT="25000",
                   DEVSTACK_GATE_TIMEOUT_BUFFER="0")
    assert done.returncode == 124, done.stdout + done.stderr
    assert time.monotonic() - start < 120
    assert (job.base / "new/fake-grandchild.pid").is_file()
    assert grandchildren(job.base / "new") == []
    status = job.status()
    assert status["stack"] == "timed out" and status["tempest"] == "skipped"
    _assert_logs_attempted(job)


@pytest.mark.slow
def test_sigterm_mid_stack(tmp_path: Path, stack_user: str) -> None:
    job = Job(tmp_path, stack_user)
    child = subprocess.Popen(job.argv(), env=job.env(FAKE_STACK="hang:install"), cwd=job.ws,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = job.ws / ".dsvm/stack.sh.log"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if log.is_file() and "hanging in phase install" in log.read_text():
            break
        assert child.poll() is None, child.communicate()[0]
        time.sleep(0.2)
    child.send_signal(signal.SIGTERM)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 143, out
    assert grandchildren(job.base / "new") == []
    assert job.status()["stack"] == "interrupted"
    _assert_logs_attempted(job)
    assert out.strip().splitlines()[-1] == "dsvm run: exit 143 (terminated)"


@pytest.mark.slow
def test_from_tempest_reuses_the_state_file(tmp_path: Path, stack_user: str) -> None:
    job = Job(tmp_path, stack_user, tests=10)
    first = job.run("--to", "stack")
    assert first.returncode == 0, first.stdout + first.stderr
    stack_started = job.state()["phases"]["stack"]["started"]
    again = job.run("--from", "tempest")
    assert again.returncode == GREEN, again.stdout + again.stderr
    state = job.state()
    assert state["phases"]["stack"]["started"] == stack_started  # not re-run
    assert state["phases"]["tempest"]["status"] == "ok"
    assert state["plan"] == {"from": "tempest", "to": "logs"}
    assert "has not succeeded" not in again.stderr


@pytest.mark.slow
def test_hooks_run_in_order_with_the_documented_environment(tmp_path: Path,
                                                            stack_user: str) -> None:
    job = Job(tmp_path, stack_user, tests=5, profile_extra="""\
hooks:
  post_test:
    - [bash, -c, 'echo "post-argv $REMAINING_TIME" >> "$WORKSPACE/hooks.txt"']
""")
    local_conf = job.base / "new/devstack/local.conf"
    stackenv = job.base / "new/devstack/.stackenv"
    env = {
        "BASH_FUNC_pre_test_hook%%": '() {  echo "pre BASE=$BASE PWD=$PWD '
                                     f'local.conf=$(test -e {local_conf} && echo yes || echo no)'
                                     '" >> "$WORKSPACE/hooks.txt"\n}',
        "BASH_FUNC_post_test_hook%%": '() {  echo "post REMAINING_TIME=$REMAINING_TIME '
                                      f'$(head -1 {stackenv} | cut -d" " -f3-)'
                                      '" >> "$WORKSPACE/hooks.txt"\n}',
    }
    done = job.run("--to", "tempest", **env)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = (job.ws / "hooks.txt").read_text().splitlines()
    assert lines[0] == f"pre BASE={job.base} PWD={job.ws} local.conf=no"
    assert lines[1].startswith("post REMAINING_TIME=") and lines[1].endswith("stack.sh completed")
    assert int(lines[1].split("=")[1].split()[0]) in range(0, 10)
    assert lines[2].startswith("post-argv ")
    assert len(lines) == 3
    assert [k for k in job.state()["phases"]] == [
        "workspace", "pre_test_hook", "configure", "stack", "tempest", "post_test_hook"]


def test_plan_changes_nothing_and_masks(tmp_path: Path, stack_user: str) -> None:
    job = Job(tmp_path, stack_user, tests=1)
    done = job.run("--plan", "--json", **{"BASH_FUNC_gate_hook%%": "() {  true\n}"})
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["budget"]["source"] == "BUILD_TIMEOUT" and data["budget"]["run_seconds"] == 540
    steps = {s["name"]: s for s in data["steps"]}
    assert steps["gate_hook"]["selected"] and not steps["stack"]["selected"]
    assert steps["configure"]["inputs"]["devstack.localrc"]["value"]["ADMIN_PASSWORD"] == "****"
    assert "s3cr3tAdminPw" not in done.stdout
    assert not (job.ws / ".dsvm").exists() and not job.base.exists()


@pytest.mark.parametrize(("env", "profile_user", "needle"), [
    ({"BUILD_TIMEOUT": "60000"}, None, "time budget too small"),
    ({}, "root", "refuses to run as root"),
])
def test_bad_input_exits_2_before_starting(tmp_path: Path, stack_user: str, env: dict[str, str],
                                           profile_user: str | None, needle: str) -> None:
    job = Job(tmp_path, profile_user or stack_user, tests=1)
    done = job.run(**env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert needle in done.stderr
    assert not (job.ws / ".dsvm/state.json").exists()


def test_plan_shows_what_each_phase_would_do(tmp_path: Path, stack_user: str) -> None:
    job = Job(tmp_path, stack_user, tests=1)
    done = job.run("--plan", "--json", ZUUL_PROJECT="openstack/devstack; $(id)")
    assert done.returncode == 2, done.stdout  # untrusted input refused at plan time
    assert "ZUUL_PROJECT" in done.stderr
    done = job.run("--plan", "--json")
    assert done.returncode == 0, done.stderr
    phases = json.loads(done.stdout)["phases"]
    names = {p["name"] for p in phases["workspace"]["projects"]}
    assert set(job.projects) <= names
    assert all(p["commit"] is None or len(p["commit"]) == 40
               for p in phases["workspace"]["projects"])
    assert "s3cr3tAdminPw" not in phases["configure"]["local_conf"]
    assert "ADMIN_PASSWORD=****" in phases["configure"]["local_conf"]
    assert phases["tempest"]["passes"]
    assert not (job.ws / ".dsvm").exists() and not job.base.exists()


def test_json_run_prints_only_json_on_stdout(tmp_path: Path, stack_user: str) -> None:
    # A Jenkins step piping `dsvm run --json` into a tool must get JSON alone; the console
    # (tables, progress, the final verdict) goes to stderr.
    job = Job(tmp_path, stack_user)
    done = job.run("--to", "workspace", "--json")
    assert done.returncode == GREEN, done.stdout + done.stderr
    data = json.loads(done.stdout)
    phases = {p["name"]: p for p in data["phases"]}
    assert phases["workspace"]["status"] == "ok" and phases["configure"]["status"] == "skipped"
    assert "dsvm run: exit 0" in done.stderr
