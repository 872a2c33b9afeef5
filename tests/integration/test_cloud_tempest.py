"""Tempest as a node has it: real Tempest 47 + cinder-tempest-plugin in the layouts a node
can have (devstack's <checkout>/.tox/tempest, only on PATH, only in $BASE/new/data/venv),
chosen by dsvm, listed as root without a tempest user and as a user with one, and run
against the test cloud: real passes, a real failure from the driver's fail switch, and
--rerun-failed calling it flaky."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import cloud as cloudfix
from tests.fixtures import devstack as fake
from tests.fixtures.cloud import Cloud, private_tmp

pytestmark = [pytest.mark.cloud, pytest.mark.slow]
stack_user = fake.stack_user  # the session fixtures
cloud_venvs = cloudfix.cloud_venvs
cloud = cloudfix.cloud

PLUGIN_API = "cinder_tempest_plugin.api.volume"


@pytest.fixture(scope="module")
def node(stack_user: str) -> Path:
    """A node-like root (outside pytest's temp root) the stack user can read."""
    with private_tmp(stack_user, prefix="dsvm-tempest-node-") as root:
        yield root


def checkout(root: Path, user: str, tempest_conf: Path | None = None) -> Path:
    """A Tempest source checkout (its sdist tree) as $BASE/new/tempest would hold it."""
    tree = root / "new" / "tempest"
    shutil.copytree(cloudfix.tempest_source(), tree, symlinks=True)
    if tempest_conf is not None:
        shutil.copy(tempest_conf, tree / "etc" / "tempest.conf")
    fake.chown_tree(root, user)
    return tree


def dsvm(*args: str, root: Path, path: str = "/usr/sbin:/usr/bin:/sbin:/bin",
         **env: str) -> subprocess.CompletedProcess[str]:
    ws = root / "ws"
    ws.mkdir(exist_ok=True)
    full = {"PATH": path, "HOME": os.environ["HOME"], "BASE": str(root), "NO_COLOR": "1",
            "WORKSPACE": str(ws), **env}
    return subprocess.run([sys.executable, "-m", "dsvm", "--no-color", *args, "--workspace",
                           str(ws)], env=full, capture_output=True, text=True, timeout=900,
                          check=False)


def tempest_log(root: Path) -> str:
    return (root / "ws" / ".dsvm" / "tempest.log").read_text()


def test_tox_tempest_is_chosen_and_lists_as_root_without_a_tempest_user(
        tmp_path: Path, stack_user: str, cloud_venvs: dict) -> None:
    with private_tmp(stack_user) as root:
        tree = checkout(root, stack_user)
        (tree / ".tox").mkdir()
        (tree / ".tox" / "tempest").symlink_to(cloud_venvs["tempest"])
        done = dsvm("--profile", "sanco-flashfleet", "tempest", "--list", root=root)
        assert done.returncode == 0, done.stderr
        ids = done.stdout.split()
        assert any(i.startswith("tempest.api.volume.") for i in ids)
        assert any(i.startswith(PLUGIN_API) for i in ids)
        assert not any(i.startswith(("tempest.api.compute", "tempest.scenario")) for i in ids)
        assert "tempest.user 'tempest' does not exist; listing as the current user" \
            in done.stderr
        assert "# Tempest environment .tox/tempest: imports tempest 47.0.0" in tempest_log(root)


def test_listing_as_a_tempest_user_that_exists(stack_user: str, cloud_venvs: dict) -> None:
    with private_tmp(stack_user) as root:
        tree = checkout(root, stack_user)
        (tree / ".tox").mkdir()
        (tree / ".tox" / "tempest").symlink_to(cloud_venvs["tempest"])
        fake.chown_tree(root, stack_user)
        done = dsvm("--profile", "sanco-flashfleet", "tempest", "--list", "--user", stack_user,
                    root=root)
        assert done.returncode == 0, done.stderr
        assert "does not exist" not in done.stderr
        assert (tree / ".stestr").owner() == stack_user  # stestr init ran as that user


def test_tempest_only_on_path(stack_user: str, cloud_venvs: dict) -> None:
    with private_tmp(stack_user) as root:
        checkout(root, stack_user)
        done = dsvm("--profile", "sanco-flashfleet", "tempest", "--list", "--user", "",
                    root=root, path=f"{cloud_venvs['tempest']}/bin:/usr/bin:/bin")
        assert done.returncode == 0, done.stderr
        assert any(i.startswith(PLUGIN_API) for i in done.stdout.split())
        log = tempest_log(root)
        assert "# Tempest environment PATH: imports tempest 47.0.0 (not: .tox/tempest: no " \
            in log and "$DEST/data/venv: no " in log


def venv_without_plugin(tempest_venv: Path, dest: Path) -> Path:
    """A venv at ``dest`` with Tempest but not cinder-tempest-plugin (devstack's global venv
    has no plugins): the Tempest venv's packages linked in, the plugin's left out."""
    subprocess.run(["/usr/bin/python3" if Path("/usr/bin/python3").is_file() else sys.executable,
                    "-m", "venv", "--without-pip", str(dest)], check=True)
    src = next((tempest_venv / "lib").glob("python3*/site-packages"))
    site = next((dest / "lib").glob("python3*/site-packages"))
    for entry in src.iterdir():
        if not entry.name.startswith("cinder_tempest_plugin") and not (site / entry.name).exists():
            (site / entry.name).symlink_to(entry)
    stestr = (tempest_venv / "bin" / "stestr").read_text().split("\n", 1)[1]
    (dest / "bin" / "stestr").write_text(f"#!{dest}/bin/python\n{stestr}")
    (dest / "bin" / "stestr").chmod(0o755)
    return dest


def test_only_in_the_global_venv_and_a_missing_plugin_is_exit_2(stack_user: str,
                                                               cloud_venvs: dict) -> None:
    with private_tmp(stack_user) as root:
        checkout(root, stack_user)
        venv_without_plugin(cloud_venvs["tempest"], root / "new" / "data" / "venv")
        fake.chown_tree(root, stack_user)
        done = dsvm("--profile", "sanco-flashfleet", "tempest", "--list", "--user", "",
                    root=root)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "names plugin tests (cinder_tempest_plugin) the Tempest environment does not " \
               "have" in done.stderr
        assert "$DEST/data/venv: imports tempest 47.0.0" in done.stderr
        done = dsvm("--profile", "sanco-flashfleet", "tempest", "--list", "--user", "",
                    "--regex", r"^tempest\.api\.volume\.test_volumes_get", root=root)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() and all(
            i.startswith("tempest.api.volume.test_volumes_get") for i in done.stdout.split())


def test_a_selection_matching_nothing_here_is_exit_2_naming_the_regex(
        stack_user: str, cloud_venvs: dict) -> None:
    with private_tmp(stack_user) as root:
        tree = checkout(root, stack_user)
        (tree / ".tox").mkdir()
        (tree / ".tox" / "tempest").symlink_to(cloud_venvs["tempest"])
        done = dsvm("tempest", "--list", "--user", "", "--regex", r"^tempest\.api\.nothing_here",
                    root=root)
        assert done.returncode == 2
        assert "matches no test" in done.stderr and "nothing_here" in done.stderr


# Creates a group and its volumes in the test itself: a refused create fails this one test.
GROUP_TEST = (r"^tempest\.api\.volume\.admin\.test_groups\.GroupsTest\."
              r"test_group_create_show_list_delete\[")
ADMIN = r"^tempest\.api\.volume\.admin\."


def test_real_passes_a_real_failure_and_a_flaky_rerun(stack_user: str, cloud: Cloud,
                                                     cloud_venvs: dict) -> None:
    with private_tmp(stack_user) as root:
        tree = checkout(root, stack_user, cloud.tempest_conf)
        (tree / ".tox").mkdir()
        (tree / ".tox" / "tempest").symlink_to(cloud_venvs["tempest"])
        base = ("--profile", "sanco-flashfleet", "tempest", "--user", "", "--serial")
        done = dsvm(*base, "--regex", GROUP_TEST, root=root)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        assert "1 passed" in done.stdout
        # The array refuses the next create: the volume goes to error, the test fails with
        # Tempest's real traceback; re-run, the switch is spent and the test passes: flaky.
        cloud.switches(fail_create=1)
        try:
            done = dsvm(*base, "--regex", GROUP_TEST, root=root)
            assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
            assert "FAIL tempest.api.volume.admin.test_groups.GroupsTest" in done.stdout + done.stderr
            stream = (root / "ws/.dsvm/tempest/testrepository.subunit").read_bytes()
            assert b"VolumeResourceBuildErrorException" in stream or b"error" in stream
            done = dsvm(*base, "--rerun-failed", root=root)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
            assert "flaky (failed, then passed on re-run): tempest.api.volume.admin.test_groups" \
                in done.stdout + done.stderr
        finally:
            cloud.switches()


def test_budget_expiry_and_ctrl_c_keep_the_partial_real_stream(stack_user: str, cloud: Cloud,
                                                              cloud_venvs: dict) -> None:
    import signal
    import time

    with private_tmp(stack_user) as root:
        tree = checkout(root, stack_user, cloud.tempest_conf)
        (tree / ".tox").mkdir()
        (tree / ".tox" / "tempest").symlink_to(cloud_venvs["tempest"])
        stream = root / "ws/.dsvm/tempest/testrepository.subunit"
        # The admin API tests take minutes serially: the budget runs out mid-run.
        try:
            done = dsvm("--profile", "sanco-flashfleet", "tempest", "--user", "", "--serial",
                        "--regex", ADMIN, "--timeout", "90", root=root)
            assert done.returncode == 124, done.stdout[-2000:] + done.stderr[-2000:]
            assert "time budget ran out during Tempest" in done.stdout + done.stderr
            assert stream.stat().st_size > 0
            kept = stream.read_bytes()
            assert b"tempest.api.volume.admin." in kept
            ws = root / "ws"
            child = subprocess.Popen(
                [sys.executable, "-m", "dsvm", "--no-color", "--profile", "sanco-flashfleet",
                 "tempest", "--user", "", "--serial", "--regex", ADMIN, "--workspace", str(ws)],
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": os.environ["HOME"], "BASE": str(root),
                     "NO_COLOR": "1", "WORKSPACE": str(ws)},
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and (not stream.exists()
                                                   or stream.stat().st_size == 0):
                time.sleep(1)  # stestr has started reporting tests
            time.sleep(5)
            child.send_signal(signal.SIGINT)
            out, _ = child.communicate(timeout=120)
            assert child.returncode == 130, out[-3000:]
            assert stream.stat().st_size > 0
        finally:
            cloud.switches()


def test_a_dead_or_missing_cloud_is_exit_3_naming_the_endpoint(stack_user: str,
                                                              cloud_venvs: dict) -> None:
    import socket

    with private_tmp(stack_user) as root:
        tree = checkout(root, stack_user)
        (tree / ".tox").mkdir()
        (tree / ".tox" / "tempest").symlink_to(cloud_venvs["tempest"])
        args = ("tempest", "--user", "", "--regex", r"^tempest\.api\.volume\.test_volumes_get")
        (tree / "etc" / "tempest.conf").unlink(missing_ok=True)
        done = dsvm(*args, root=root)
        assert done.returncode == 3 and f"no tempest.conf at {tree}/etc/tempest.conf" \
            in done.stderr, done.stderr
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = s.getsockname()[1]
        (tree / "etc" / "tempest.conf").write_text(
            f"[identity]\nuri_v3 = http://127.0.0.1:{dead}/v3\n")
        done = dsvm(*args, root=root)
        assert done.returncode == 3, done.stderr
        assert f"does not answer: http://127.0.0.1:{dead}/v3" in done.stderr
