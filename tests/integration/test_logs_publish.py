"""dsvm logs publish against a real sshd + rsync on 127.0.0.1 with a throwaway key."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from dsvm import phase, proc, profile
from dsvm.errors import BudgetExpiredError, UsageError
from dsvm.logs import publish
from dsvm.logs.phase import run_phase
from tests.fixtures import fakenode

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
pytestmark = pytest.mark.skipif(not (os.path.exists(SSHD) and shutil.which("rsync")),
                                reason="needs openssh-server and rsync")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sshd(tmp_path: Path):
    """A private sshd on 127.0.0.1:<high port> accepting only a key made for this test."""
    d = tmp_path / "sshd"
    d.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host")],
                   check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "client")],
                   check=True)
    shutil.copy(d / "client.pub", d / "authorized_keys")
    port = free_port()
    user = os.environ.get("USER") or __import__("pwd").getpwuid(os.getuid()).pw_name
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host'}\nPidFile {d / 'pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin yes\n"
        f"AllowUsers {user}\nSubsystem sftp internal-sftp\n")
    # sshd running as root insists on its privilege separation directory.
    made_run = not os.path.isdir("/run/sshd") and os.geteuid() == 0
    if made_run:
        os.makedirs("/run/sshd", mode=0o755)
    server = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")],
                              stderr=open(d / "sshd.log", "wb"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if server.poll() is not None:
                pytest.fail((d / "sshd.log").read_text())
            time.sleep(0.05)
    yield {"host": "127.0.0.1", "port": port, "user": user, "key": str(d / "client"),
           "known_hosts": str(d / "known_hosts"), "dir": d}
    server.terminate()
    server.wait(timeout=10)
    if made_run:
        shutil.rmtree("/run/sshd", ignore_errors=True)


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def make_ctx(tmp_path: Path, server: dict, remote: Path, env: dict[str, str], extra: str = ""):
    prof = tmp_path / "pub.yaml"
    prof.write_text(
        "extends: base\nlogs:\n  sources:\n    - {src: /var/log/acme, dest: acme}\n"
        "  publish:\n"
        f"    host: {server['host']}\n    port: {server['port']}\n    user: {server['user']}\n"
        f"    key: {server['key']}\n    known_hosts: {server['known_hosts']}\n"
        f"    path: {remote}\n    url: https://logs.example.org/ci\n" + extra)
    settings = profile.resolve(str(prof), env)
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    return phase.context(settings, {**env, "WORKSPACE": str(ws)}, workspace=ws)


ZUUL = {"ZUUL_CHANGE": "123456", "ZUUL_PATCHSET": "3", "ZUUL_PIPELINE": "check",
        "JOB_NAME": "dsvm-tempest-acme", "ZUUL_UUID": "0123456789abcdef"}


@pytest.mark.slow
def test_collect_and_publish_arrives_complete(tmp_path: Path, sshd: dict) -> None:
    node = fakenode.build(tmp_path / "node", large_lines=2000)
    remote = tmp_path / "server" / "logs"
    env = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], **ZUUL}
    ctx = make_ctx(tmp_path, sshd, remote, env)
    result = run_phase(ctx, root=node.root)  # publish: configured in the profile
    log_path = "56/123456/3/check/dsvm-tempest-acme/0123456"
    assert result.outputs["url"] == f"https://logs.example.org/ci/{log_path}/"
    arrived = remote / log_path
    assert digest(arrived) == digest(ctx.logs_dir)
    assert (arrived / "screen-n-cpu.txt.gz").is_file() and (arrived / "index.html").is_file()


@pytest.mark.slow
def test_interrupted_publish_rerun_completes(tmp_path: Path, sshd: dict) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "big.bin").write_bytes(os.urandom(3 << 20))
    (logs / "small.txt").write_text("hello\n")
    remote = tmp_path / "server"
    conf = {"host": sshd["host"], "port": sshd["port"], "user": sshd["user"],
            "key": sshd["key"], "known_hosts": sshd["known_hosts"], "path": str(remote),
            "attempts": 1}
    runner = proc.Runner(tmp_path / "publish.log")
    slow = publish.target({**conf, "bwlimit_kbps": 300}, {}, "job/1")
    with pytest.raises(BudgetExpiredError):
        publish.publish(slow, logs, runner, timeout=3)
    partial = sum(p.stat().st_size for p in (remote / "job/1").rglob("*") if p.is_file()) \
        if (remote / "job/1").exists() else 0
    assert partial < (3 << 20) + 6  # interrupted midway: not everything arrived
    publish.publish(publish.target(conf, {}, "job/1"), logs, runner, timeout=60)
    assert digest(remote / "job/1") == digest(logs)


def test_unreachable_server_fails_with_a_hint(tmp_path: Path, sshd: dict) -> None:
    conf = {"host": "127.0.0.1", "port": free_port(), "user": sshd["user"], "key": sshd["key"],
            "known_hosts": sshd["known_hosts"], "path": str(tmp_path / "x"), "attempts": 2}
    (tmp_path / "logs").mkdir()
    with pytest.raises(proc.CommandFailed) as err:
        publish.publish(publish.target(conf, {}, "a/b"), tmp_path / "logs",
                        proc.Runner(tmp_path / "p.log"), timeout=60)
    assert "2 attempts" in err.value.details["result"] and err.value.hint


@pytest.mark.parametrize("env, expected", [
    ({"LOG_PATH": "/periodic/acme/job/abc/"}, "periodic/acme/job/abc"),
    (ZUUL, "56/123456/3/check/dsvm-tempest-acme/0123456"),
    ({"ZUUL_PROJECT": "openstack/cinder", "ZUUL_PIPELINE": "periodic", "JOB_NAME": "j",
      "ZUUL_UUID": "feedbeefcafe"}, "periodic/openstack/cinder/j/feedbee"),
])
def test_log_path(env: dict[str, str], expected: str) -> None:
    assert publish.log_path(env) == expected


@pytest.mark.parametrize("env", [
    {"LOG_PATH": "a/../../etc"}, {"LOG_PATH": "a/$(reboot)"}, {"ZUUL_CHANGE": "1"},
    {**ZUUL, "JOB_NAME": "x;rm -rf /"},
])
def test_bad_log_path_refused(env: dict[str, str]) -> None:
    with pytest.raises(UsageError):
        publish.log_path(env)


def test_argv_is_a_list_with_the_path_after_double_dash(tmp_path: Path) -> None:
    t = publish.target({"host": "logs.example.org", "user": "ci", "path": "/srv/logs",
                        "key": "/etc/dsvm/key"}, {"LOG_PATH": "a/b"})
    argv = publish.argv(t, tmp_path)
    assert argv[-3:] == ["--", f"{tmp_path}/", "ci@logs.example.org:/srv/logs/a/b/"]
    assert "--partial" in argv and "-s" in argv
    with pytest.raises(UsageError) as err:
        publish.target({"host": "bad host", "path": "rel", "key": "/a b"}, {"LOG_PATH": "x"})
    assert len(err.value.problems) == 3
