"""``dsvm run`` end to end against real services: the fake stack.sh starts the test cloud
(Keystone, Cinder with the SanCo FlashFleet driver from the vendor profile's cinder.backends,
RabbitMQ) and writes tempest.conf as lib/tempest would; real Tempest 47 with
cinder-tempest-plugin runs the vendor profile's selection from <checkout>/.tox/tempest;
results, the database and the logs (real service logs and configs, redacted) follow.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures import cloud as cloudfix
from tests.fixtures import devstack as fake
from tests.fixtures.cloud import CACHE, MINICLOUD, private_tmp, run_minicloud

pytestmark = [pytest.mark.cloud, pytest.mark.slow]
stack_user = fake.stack_user  # the session fixtures
cloud_venvs = cloudfix.cloud_venvs

ADMIN_PW = "AdminPw4Cloud"
SERVICE_PW = "ServicePw4Cloud"
RABBIT_PW = "RabbitPw4Cloud"
ARRAY_PW = "FleetArrayPw77"
DATABASE_PW = "DbPw4CloudJob"
CUT = " ".join((r"^tempest\.api\.volume\.admin\.test_(qos|volume_pools|backends_capabilities)\.",
                r"^tempest\.api\.volume\.test_volumes_snapshots\.",
                r"^cinder_tempest_plugin\.api\.volume\.test_volume_(revert|unicode)\."))


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


class CloudJob:
    """A job directory whose devstack is the fake stack.sh starting the test cloud."""

    def __init__(self, root: Path, user: str, dbs: cloudfix.Databases, *,
                 extra: str = "") -> None:
        self.root, self.base, self.ws = root, root / "base", root / "ws"
        self.user = user
        self.ws.mkdir(parents=True)
        cache = root / "cache"
        (cache / "openstack").mkdir(parents=True)
        import shutil

        shutil.copytree(fake.TREE, cache / "openstack/devstack", symlinks=True)
        shutil.copytree(cloudfix.tempest_source(), cache / "openstack/tempest", symlinks=True)
        for name in ("openstack/devstack", "openstack/tempest"):
            _git(cache / name, "init", "-q", "-b", "master")
            _git(cache / name, "add", "-A")
            _git(cache / name, "commit", "-q", "-m", f"{name} initial")
        self.profile = root / "job.yaml"
        self.profile.write_text(f"""\
extends: sanco-flashfleet
projects: [openstack/devstack, openstack/tempest]
git:
  base: file://{cache}
  cache: {cache}
paths:
  base: {self.base}
devstack:
  user: {user}
  localrc:
    DEST: {self.base}/new
    LOGFILE: $BASE/new/logs/devstacklog.txt
    SCREEN_LOGDIR: {self.base}/new/screen-logs
    ADMIN_PASSWORD: {ADMIN_PW}
    SERVICE_PASSWORD: {SERVICE_PW}
    RABBIT_PASSWORD: {RABBIT_PW}
    DATABASE_USER: {dbs.user}
    DATABASE_PASSWORD: {dbs.password}
    MINICLOUD_DB_PREFIX: {dbs.prefix}
    MINICLOUD_DB_PORT: {dbs.port}
    DSVM_MINICLOUD: {MINICLOUD}
    DSVM_TEST_CACHE: {CACHE}
tempest:
  user: ""
  concurrency: 2
  # The vendor selection (254 tests) takes most of an hour on 2 shared cores: the job runs a
  # cut of it that touches every part of the driver (pools, capabilities, QoS, snapshots,
  # clones, revert), through the same profile and exclusions.
  selection: regex
  regex: '{CUT}'
timeout:
  logs_minutes: 3
report:
  ci_name: SanCo CI
  recheck: recheck-sanco
  contact: ci@sanco.example
{extra}""")

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ZUUL_", "DEVSTACK_GATE_", "BUILD_"))}
        env.update({"WORKSPACE": str(self.ws), "BASE": str(self.base), "ZUUL_BRANCH": "master",
                    "ZUUL_PROJECT": "openstack/devstack", "ZUUL_CHANGE": "4242",
                    "ZUUL_PATCHSET": "1", "ZUUL_PIPELINE": "check", "LOG_PATH": "42/4242/1",
                    "BUILD_TIMEOUT": "5400000", "DEVSTACK_GATE_TIMEOUT_BUFFER": "1",
                    "FLASHFLEET_ARRAY_DIR": f"{self.base}/new/data/flashfleet",
                    "FLASHFLEET_PASSWORD": ARRAY_PW,
                    "DSVM_RESULTS_DB": f"sqlite:///{self.root}/results.db"})
        env.update(extra)
        return env

    def run(self, *args: str, timeout: float = 3000,
            **env: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "dsvm", "--no-color", "--profile", str(self.profile),
                "run", *args]
        return subprocess.run(argv, env=self.env(**env), cwd=self.ws, capture_output=True,
                              text=True, timeout=timeout, check=False)

    @property
    def cloud_dir(self) -> Path:
        return self.base / "new" / "minicloud"

    def stop_cloud(self) -> None:
        if (self.cloud_dir / "cloud.json").exists():
            run_minicloud("stop", "--dir", str(self.cloud_dir), user=self.user, check=False)

    def state(self) -> dict:
        return json.loads((self.ws / ".dsvm/state.json").read_text())

    def logfile(self, rel: str) -> str:
        return gzip.decompress((self.ws / "logs" / f"{rel}.gz").read_bytes()).decode(
            errors="replace")


@pytest.fixture(scope="module")
def green_job(stack_user: str, cloud_venvs: dict) -> tuple[CloudJob, subprocess.CompletedProcess[str], float]:
    """One whole job with the vendor profile, on a cut of its selection (shared by the tests)."""
    with private_tmp(stack_user, prefix="dsvm-cloud-job-") as root, \
            cloudfix.mariadb(DATABASE_PW) as dbs:
        fake.chown_tree(root, stack_user)
        job = CloudJob(root, stack_user, dbs)
        started = time.monotonic()
        try:
            done = job.run()
            yield job, done, time.monotonic() - started
        finally:
            job.stop_cloud()


def test_the_job_runs_green_against_real_services(green_job) -> None:
    job, done, seconds = green_job
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    phases = job.state()["phases"]
    assert {p: phases[p]["status"] for p in ("workspace", "configure", "stack", "tempest",
                                            "results", "logs")} == dict.fromkeys(
        ("workspace", "configure", "stack", "tempest", "results", "logs"), "ok")
    counts = phases["tempest"]["outputs"]["counts"]
    print(f"\ncloud job: {seconds:.0f} s; tempest counts {counts}")
    assert counts["passed"] >= 15 and counts["failed"] == 0 and counts["crashed"] == 0
    # The environment that ran the tests: devstack's .tox/tempest, with the plugin.
    tempest_log = (job.ws / ".dsvm" / "tempest.log").read_text()
    assert "# Tempest environment .tox/tempest: imports tempest 47.0.0" in tempest_log
    stream = Path(phases["tempest"]["outputs"]["subunit"]).read_bytes()
    assert b"cinder_tempest_plugin.api.volume.test_volume_revert" in stream
    assert b"cinder_tempest_plugin.api.volume.test_volume_unicode" in stream


def test_the_logs_hold_the_real_services_redacted(green_job) -> None:
    job, done, _ = green_job
    manifest = json.loads((job.ws / "logs/manifest.json").read_text())
    stored = {f["path"] for f in manifest["files"]}
    for name in ("screen-c-api.txt", "screen-c-sch.txt", "screen-c-vol.txt", "screen-c-bak.txt",
                 "screen-key.txt", "screen-rabbitmq.txt", "etc/cinder/cinder.conf.txt",
                 "etc/cinder/api-paste.ini.txt", "etc/keystone/keystone.conf.txt",
                 "tempest_conf.txt", "tempest.txt"):
        assert f"{name}.gz" in stored, sorted(stored)
    assert any(p.startswith("rabbitmq/") for p in stored), sorted(stored)
    cinder_conf = job.logfile("etc/cinder/cinder.conf.txt")
    assert "volume_driver = sanco_flashfleet.driver.FlashFleetDriver" in cinder_conf
    assert "FlashFleetDriver" in job.logfile("screen-c-vol.txt")
    everything = "".join(job.logfile(p[:-3]) for p in stored if p.endswith(".txt.gz"))
    for secret in (ADMIN_PW, SERVICE_PW, RABBIT_PW, ARRAY_PW, DATABASE_PW):
        assert secret not in everything, secret
    # Nothing else masked: the driver's non-secret options are there as written.
    assert "san_login = ci" in cinder_conf and "flashfleet_pool = tempest" in cinder_conf
