"""The stack phase against the executable fake devstack, run as a real unprivileged user."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dsvm import phase, profile
from dsvm.devstack import stack
from dsvm.errors import BudgetExpiredError, InfraError, UsageError
from tests.fixtures import devstack as fake
from tests.fixtures.devstack import grandchildren, prepare

stack_user = fake.stack_user  # the session fixture

PASSWORD = "s3cr3t-admin-pw"


def _ctx(tmp_path: Path, user: str, budget: float | None = None, **options: object):
    env = {"HOME": os.environ["HOME"], "PATH": os.environ["PATH"], "LANG": "C.UTF-8"}
    opts = {"paths.base": str(tmp_path / "base"), "devstack.user": user,
            "paths.workspace": str(tmp_path / "ws"), **options}
    settings = profile.resolve("base", env, options=opts)
    (tmp_path / "ws").mkdir(exist_ok=True)
    return phase.context(settings, env, workspace=tmp_path / "ws", budget_seconds=budget)


def test_success_runs_as_stack_user_and_parses_markers(tmp_path: Path, stack_user: str) -> None:
    prepare(tmp_path / "base", stack_user)
    ctx = _ctx(tmp_path, stack_user, budget=120)
    result = stack.run_phase(ctx)
    out = result.outputs
    assert result.exit_code == 0
    assert [p["name"] for p in out["phases"]] == [
        "Installing package prerequisites", "Installing OpenStack project source",
        "stack install", "Starting Keystone", "Starting Cinder", "Configuring Tempest",
        "stack test-config"]
    assert set(out["component_timing"]) == {"run_process", "git_timed", "Unaccounted time"}
    assert out["total_runtime"] is not None and out["completed_seconds"] is not None
    assert out["stackenv"]["STACK_USER"] == stack_user
    assert "****" in out["stackenv"]["BASE_SQL_CONN"]
    assert out["tempest_conf"] and Path(out["tempest_conf"]).is_file()
    log = Path(out["log"]).read_text()
    assert "The password: ****" in log
    for path in (Path(out["log"]), ctx.phase_log("stack")):
        assert PASSWORD not in path.read_text()
    assert all(line[:4].isdigit() and " | " in line for line in log.splitlines())
    assert (tmp_path / "base/new/logs/c-vol.log").is_file()


def test_password_known_only_from_the_banner_is_masked(tmp_path: Path, stack_user: str) -> None:
    # The password reaches local.conf indirectly: only the banner pattern can catch it.
    devstack = prepare(tmp_path / "base", stack_user, admin_password="$OTHER_VALUE",
                       extra="OTHER_VALUE=hidden-elsewhere-42\n")
    ctx = _ctx(tmp_path, stack_user, budget=120)
    result = stack.run_phase(ctx)
    assert "ADMIN_PASSWORD=$OTHER_VALUE" in (devstack / "local.conf").read_text()
    log = Path(result.outputs["log"]).read_text()
    assert "The password: ****" in log
    assert "hidden-elsewhere-42" not in log.split("The password:")[1].splitlines()[0]


def test_failure_names_phase_first_error_and_last_lines(tmp_path: Path, stack_user: str) -> None:
    prepare(tmp_path / "base", stack_user, mode="fail:cinder")
    with pytest.raises(stack.StackFailedError) as err:
        stack.run_phase(_ctx(tmp_path, stack_user, budget=120))
    exc = err.value
    assert exc.exit_code == 3
    assert exc.outputs["failed_phase"] == "Starting Cinder"
    assert "[ERROR] ./stack.sh" in exc.outputs["first_error"]
    assert "fake failure in phase cinder" in exc.outputs["first_error"]
    assert exc.outputs["last_lines"][-1] == "Error on exit"
    assert exc.details["phase"] == "Starting Cinder"
    assert (tmp_path / "base/new/logs/error.log").is_file()


def test_budget_expiry_kills_the_whole_tree(tmp_path: Path, stack_user: str) -> None:
    prepare(tmp_path / "base", stack_user, mode="hang:keystone")
    dest = tmp_path / "base" / "new"
    start = time.monotonic()
    with pytest.raises(stack.StackTimedOutError) as err:
        stack.run_phase(_ctx(tmp_path, stack_user, budget=3))
    assert err.value.exit_code == 124
    assert time.monotonic() - start < 15
    assert (dest / "fake-grandchild.pid").is_file()  # the grandchild did start
    assert grandchildren(dest) == []
    assert err.value.outputs["failed_phase"] == "Starting Keystone"


def test_tests_reservation_shortens_stack(tmp_path: Path, stack_user: str) -> None:
    prepare(tmp_path / "base", stack_user)
    ctx = _ctx(tmp_path, stack_user, budget=60, **{"timeout.tests_minutes": 2})
    with pytest.raises(BudgetExpiredError, match="no time left to run stack.sh"):
        stack.run_phase(ctx)


def test_root_user_is_refused_before_starting(tmp_path: Path, stack_user: str) -> None:
    prepare(tmp_path / "base", stack_user)
    with pytest.raises(UsageError, match="refuses to run as root") as err:
        stack.run_phase(_ctx(tmp_path, "root", budget=60))
    assert err.value.exit_code == 2
    assert "runuser" in (err.value.hint or "")
    assert not (tmp_path / "base/new/devstack/.stackenv").exists()


def test_missing_user_and_missing_stack_sh(tmp_path: Path, stack_user: str) -> None:
    devstack = prepare(tmp_path / "base", stack_user)
    with pytest.raises(InfraError, match="does not exist") as err:
        stack.run_phase(_ctx(tmp_path, "no-such-stack-user", budget=60))
    assert "useradd" in (err.value.hint or "")
    (devstack / "stack.sh").unlink()
    with pytest.raises(InfraError, match="no stack.sh") as err:
        stack.run_phase(_ctx(tmp_path, stack_user, budget=60))
    assert err.value.exit_code == 3 and "dsvm workspace" in (err.value.hint or "")


def test_missing_local_conf_is_bad_input(tmp_path: Path, stack_user: str) -> None:
    devstack = prepare(tmp_path / "base", stack_user)
    (devstack / "local.conf").unlink()
    with pytest.raises(UsageError, match="no local.conf"):
        stack.run_phase(_ctx(tmp_path, stack_user, budget=60))


@pytest.mark.skipif(os.geteuid() != 0, reason="proves stack.sh's own root refusal")
def test_fake_stack_sh_refuses_root(tmp_path: Path, stack_user: str) -> None:
    devstack = prepare(tmp_path / "base", stack_user)
    done = subprocess.run([str(devstack / "stack.sh")], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 1 and "not root." in done.stdout


def test_cli_stack_exit_codes(tmp_path: Path, stack_user: str) -> None:
    prepare(tmp_path / "base", stack_user, mode="fail:install")
    env = {**os.environ, "BASE": str(tmp_path / "base"), "WORKSPACE": str(tmp_path / "ws"),
           "BUILD_TIMEOUT": "120000", "DEVSTACK_GATE_TIMEOUT_BUFFER": "0"}
    (tmp_path / "ws").mkdir()
    cmd = [sys.executable, "-m", "dsvm", "--no-color", "stack", "--user", stack_user]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 3, done.stderr
    assert "Installing OpenStack project source" in done.stderr + done.stdout
    done = subprocess.run([*cmd[:-1], "root"], env=env, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 2 and "refuses to run as root" in done.stderr


def test_a_silent_stack_sh_gets_a_heartbeat_line_each_minute_in_a_plain_log(
        tmp_path: Path, stack_user: str) -> None:
    import io
    import re

    from dsvm import console

    # A "minute" of 0.3 s; stack.sh then hangs silently in Starting Keystone until the budget
    # (3 s) kills it: more than three such minutes without a line of its own.
    prepare(tmp_path / "base", stack_user, mode="hang:keystone")
    ctx = _ctx(tmp_path, stack_user, budget=3)
    out = io.StringIO()
    ctx.ui = console.Ui(plain=True, stream=out, err_stream=io.StringIO(), heartbeat_seconds=0.3)
    with pytest.raises(stack.StackTimedOutError):
        stack.run_phase(ctx)
    lines = out.getvalue().splitlines()
    hanging = lines.index("stack.sh: Starting Keystone")
    beats = [ln for ln in lines[hanging:] if ln.startswith("... stack.sh: still running")]
    assert len(beats) >= 3, lines
    assert all(re.fullmatch(r"\.\.\. stack\.sh: still running after \d+s, "
                            r"last devstack phase: Starting Keystone", ln) for ln in beats)
