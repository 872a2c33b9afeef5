"""proc.Runner: argv stays literal, process groups die on timeout, retries, logs, secrets."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from dsvm import proc
from dsvm.errors import BudgetExpiredError

PY = sys.executable

HOSTILE = [
    "$(touch /tmp/dsvm-pwned)",
    "master; rm -rf /",
    "`id`",
    "refs/zuul/master/Z1\nrm -rf ~",
    "a'b\"c",
    "--upload-pack=touch /tmp/x",
    "*",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_untrusted_value_reaches_the_command_as_one_literal_argument(value: str, tmp_path):
    out = tmp_path / "argv.txt"
    code = "import sys, pathlib; pathlib.Path(sys.argv[1]).write_text(repr(sys.argv[2:]))"
    proc.Runner().run([PY, "-c", code, str(out), value, "after"], desc="echo argv",
                      cwd=tmp_path)
    assert out.read_text() == repr([value, "after"])
    assert not Path("/tmp/dsvm-pwned").exists()


def test_zuul_env_value_stays_literal_in_environment(tmp_path):
    env = dict(os.environ, ZUUL_BRANCH="$(echo hacked);`id`")
    result = proc.Runner().run([PY, "-c", "import os; print(os.environ['ZUUL_BRANCH'])"],
                               desc="print env", env=env)
    assert result.stdout == "$(echo hacked);`id`\n"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _spawns_grandchild(pidfile: Path, *, close_pipes: bool = False) -> str:
    """Python code: start a grandchild that sleeps, record its pid, then sleep (both 300 s)."""
    return (
        "import os, subprocess, sys, time, pathlib;"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']);"
        f"pathlib.Path({str(pidfile)!r}).write_text(str(p.pid));"
        + ("os.close(1); os.close(2);" if close_pipes else "")
        + "time.sleep(300)"
    )


def _assert_dies(pidfile: Path) -> None:
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _pid_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(grandchild), "grandchild survived the timeout"


# Every way into the one engine: streamed lines, a record logged at the end, raw bytes.
ENTRIES = {
    "run": lambda runner, argv: runner.run(argv, desc="sleeper", timeout=1.5),
    "run, logged at the end": lambda runner, argv: runner.run(argv, desc="sleeper",
                                                              timeout=1.5, stream=False),
    "run, stderr apart": lambda runner, argv: runner.run(argv, desc="sleeper", timeout=1.5,
                                                         merge_stderr=False),
    "run_bytes": lambda runner, argv: runner.run_bytes(argv, desc="sleeper",
                                                       out=lambda chunk: None, timeout=1.5),
}


@pytest.mark.parametrize("entry", sorted(ENTRIES))
@pytest.mark.parametrize("close_pipes", [False, True], ids=["pipes open", "pipes closed"])
def test_timeout_kills_the_whole_process_group_grandchildren_included(entry, close_pipes,
                                                                      tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    log = tmp_path / "t.log"
    start = time.monotonic()
    if entry == "run_bytes":
        result = ENTRIES[entry](proc.Runner(log=log),
                                [PY, "-c", _spawns_grandchild(pidfile, close_pipes=close_pipes)])
        assert result.timed_out
    else:
        with pytest.raises(BudgetExpiredError) as info:
            ENTRIES[entry](proc.Runner(log=log),
                           [PY, "-c", _spawns_grandchild(pidfile, close_pipes=close_pipes)])
        assert info.value.exit_code == 124
    assert time.monotonic() - start < 15
    _assert_dies(pidfile)
    assert "# timeout after 1.5s: killing process group" in log.read_text()


def test_grandchild_left_behind_after_normal_exit_is_reaped(tmp_path):
    pidfile = tmp_path / "bg.pid"
    code = (
        "import subprocess, sys, pathlib;"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']);"
        f"pathlib.Path({str(pidfile)!r}).write_text(str(p.pid))"
    )
    proc.Runner().run([PY, "-c", code], desc="leaves a child")
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(pid)


def test_retry_with_backoff_until_success(tmp_path):
    counter = tmp_path / "n"
    code = (
        "import pathlib, sys;"
        f"p = pathlib.Path({str(counter)!r});"
        "n = int(p.read_text()) if p.exists() else 0; p.write_text(str(n + 1));"
        "print('attempt', n + 1); sys.exit(0 if n >= 2 else 1)"
    )
    result = proc.Runner().run([PY, "-c", code], desc="flaky", attempts=3, backoff=0.01)
    assert result.ok and result.attempts == 3
    assert counter.read_text() == "3"


def test_failure_after_retries_carries_argv_exit_code_and_tail(tmp_path):
    log = tmp_path / "phase.log"
    code = "import sys; print('fatal: could not read from remote'); sys.exit(128)"
    with pytest.raises(proc.CommandFailed) as info:
        proc.Runner(log=log).run([PY, "-c", code], desc="fetch nova", attempts=2,
                                 backoff=0.01)
    err = info.value
    assert err.exit_code == 3
    assert err.result.exit_code == 128 and err.result.attempts == 2
    assert "could not read from remote" in err.details["result"]
    assert err.log_path == str(log)
    assert "fatal: could not read from remote" in log.read_text()


def test_retry_if_false_stops_at_first_failure(tmp_path):
    with pytest.raises(proc.CommandFailed) as info:
        proc.Runner().run([PY, "-c", "import sys; print(\"couldn't find remote ref\"); "
                           "sys.exit(1)"], desc="fetch", attempts=3, backoff=0.01,
                          retry_if=lambda result: False)
    assert info.value.result.attempts == 1


def test_output_streams_line_by_line_to_log_and_echo(tmp_path):
    seen: list[tuple[float, str]] = []
    code = "import time\nfor i in range(3):\n    print('line', i, flush=True); time.sleep(0.3)"
    proc.Runner(log=tmp_path / "x.log", echo=lambda s: seen.append((time.monotonic(), s))).run(
        [PY, "-c", code], desc="stream")
    assert [s for _, s in seen] == ["line 0", "line 1", "line 2"]
    assert seen[2][0] - seen[0][0] > 0.4  # delivered as produced, not at the end
    assert "line 2" in (tmp_path / "x.log").read_text()


def test_secret_is_revealed_to_the_command_but_masked_everywhere_else(tmp_path):
    log = tmp_path / "s.log"
    secret = proc.Secret("hunter2pass")
    result = proc.Runner(log=log, secrets=[secret.reveal()]).run(
        [PY, "-c", "import sys; print('got', sys.argv[1])", secret], desc="secret")
    assert "hunter2pass" not in result.argv and "****" in result.argv
    assert result.stdout == "got hunter2pass\n"  # captured for the caller
    assert "hunter2pass" not in log.read_text()
    assert "got ****" in log.read_text()
    assert "hunter2pass" not in repr(secret)


def test_check_false_returns_the_failed_result(tmp_path):
    r = proc.Runner().run([PY, "-c", "import sys; sys.exit(3)"], desc="x", check=False)
    assert r.exit_code == 3 and not r.ok


def test_missing_program_is_a_usage_error():
    with pytest.raises(proc.CommandNotFound) as info:
        proc.Runner().run(["dsvm-no-such-program"], desc="x")
    assert info.value.exit_code == 2


def test_clean_env_drops_inherited_git_variables():
    env = proc.clean_env({"GIT_DIR": "/elsewhere", "GIT_WORK_TREE": "/x", "PATH": "/bin",
                          "GIT_CONFIG_GLOBAL": "/g"})
    assert "GIT_DIR" not in env and "GIT_WORK_TREE" not in env
    assert env["GIT_CONFIG_GLOBAL"] == "/g"
    assert "ext" not in env["GIT_ALLOW_PROTOCOL"].split(":")


def test_as_user_wraps_for_another_user_only():
    import pwd

    me = pwd.getpwuid(os.geteuid()).pw_name
    assert proc.as_user(me, ["id"]) == ["id"]
    assert proc.as_user(None, ["id"]) == ["id"]
    wrapped = proc.as_user("stack", ["./stack.sh"])
    assert wrapped[-1] == "./stack.sh" and "stack" in wrapped
    assert wrapped[0] in ("runuser", "sudo")


def test_display_argv_quotes_for_humans():
    assert proc.display_argv(["git", "fetch", "a b", proc.Secret("pw")]) == \
        "git fetch 'a b' ****"


def test_run_bytes_hands_stdout_over_raw_and_logs_stderr(tmp_path):
    log = tmp_path / "b.log"
    chunks: list[bytes] = []
    code = ("import sys; sys.stdout.buffer.write(bytes(range(256))); sys.stdout.flush();"
            "print('on stderr', file=sys.stderr)")
    result = proc.Runner(log=log).run_bytes([PY, "-c", code], desc="bytes", out=chunks.append)
    assert b"".join(chunks) == bytes(range(256))
    assert result.ok and result.stdout == "" and result.tail == ("on stderr",)
    assert "on stderr" in log.read_text()


def test_stderr_apart_is_logged_but_not_in_stdout(tmp_path):
    log = tmp_path / "e.log"
    code = "import sys; print('out'); print('err', file=sys.stderr); print('tail', end='')"
    result = proc.Runner(log=log).run([PY, "-c", code], desc="two pipes", merge_stderr=False)
    assert result.stdout == "out\ntail"
    assert set(result.tail) == {"out", "err", "tail"}
    assert {"out", "err", "tail"} <= set(log.read_text().splitlines())


def test_a_record_logged_at_the_end_stays_in_one_piece_beside_parallel_commands(tmp_path):
    import threading

    log = tmp_path / "p.log"
    runner = proc.Runner(log=log)
    code = ("import sys, time; "
            "[print(sys.argv[1], i, flush=True) or time.sleep(0.02) for i in range(5)]")
    threads = [threading.Thread(target=runner.run, args=([PY, "-c", code, name],),
                                kwargs={"desc": name, "stream": False}) for name in "abc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = log.read_text().splitlines()
    for name in "abc":
        at = next(i for i, ln in enumerate(lines) if ln.startswith("$ ") and ln.endswith(name))
        assert lines[at + 1:at + 6] == [f"{name} {i}" for i in range(5)]
        assert lines[at + 6].startswith("# exit 0 in ")


def test_a_grandchild_holding_stdout_does_not_hold_the_command(tmp_path):
    pidfile = tmp_path / "bg.pid"
    code = (
        "import subprocess, sys, pathlib;"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']);"
        f"pathlib.Path({str(pidfile)!r}).write_text(str(p.pid)); print('leader done')"
    )
    start = time.monotonic()
    result = proc.Runner().run([PY, "-c", code], desc="leaves a child holding stdout")
    assert time.monotonic() - start < 5
    assert result.stdout == "leader done\n"
    _assert_dies(pidfile)
