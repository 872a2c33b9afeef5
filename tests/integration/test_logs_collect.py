"""dsvm logs collect on a realistic fake node: layout, redaction, bad input, rotation, CLI."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dsvm import phase, profile
from dsvm.logs.phase import run_phase
from dsvm.secrets import MASK
from tests.fixtures import fakenode

REPO = Path(__file__).resolve().parents[2]


def write_profile(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "vendor.yaml"
    path.write_text(
        "extends: base\n"
        "projects: [openstack/nova, openstack/cinder, openstack/glance, openstack/keystone,"
        " openstack/neutron]\n"
        "logs:\n  sources:\n    - {src: /var/log/acme, dest: acme}\n" + extra)
    return path


def collect(tmp_path: Path, node: fakenode.FakeNode, extra: str = "", **options: object):
    settings = profile.resolve(str(write_profile(tmp_path, extra)), {"PATH": os.environ["PATH"]})
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    ctx = phase.context(settings, {"PATH": os.environ["PATH"], "WORKSPACE": str(ws)},
                        workspace=ws)
    result = run_phase(ctx, root=node.root, **options)  # type: ignore[arg-type]
    return ctx, result


def read_stored(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("collect")
    node = fakenode.build(tmp / "node")
    ctx, result = collect(tmp, node)
    return node, ctx, result, json.loads((ctx.logs_dir / "manifest.json").read_text())


def test_layout_and_names(collected) -> None:
    _, ctx, result, _ = collected
    logs = ctx.logs_dir
    expected = ["screen-n-cpu.txt.gz", "screen-c-vol.txt.gz", "devstacklog.txt.gz",
                "devstacklog.summary.txt.gz", "local.conf.txt.gz", "localrc.txt.gz",
                "verify_tempest_conf.txt.gz", "tempest_conf.txt.gz", "tempest.txt.gz",
                "syslog.txt.gz", "kern_log.txt.gz", "dstat-csv_log.txt.gz",
                "etc/nova/nova.conf.txt.gz", "etc/nova/rootwrap.d/nova.filters.txt.gz",
                "etc/cinder/cinder.conf.txt.gz", "apache/keystone.txt.gz",
                "apache/access.txt.2.gz", "rabbitmq/rabbit@node.txt.gz", "mysql/error.txt.gz",
                "libvirt/qemu/instance-00000001.txt.gz", "status/n-cpu.failure.txt.gz",
                "acme/driver.txt.gz", "job-environment.txt.gz", "manifest.json", "index.html",
                "etc/nova/index.html"]
    missing = [name for name in expected if not (logs / name).is_file()]
    assert missing == []
    # screen-logs are collected once, under the short link name (devstack-gate's layout)
    assert not list(logs.glob("screen-*.2024-*"))
    assert result.outputs["logs_dir"] == str(logs)
    assert result.exit_code == 0


def test_every_seeded_secret_is_gone(collected) -> None:
    node, ctx, result, manifest = collected
    leaks = []
    for path in ctx.logs_dir.rglob("*"):
        if path.is_file():
            data = read_stored(path)
            leaks += [(str(path), v) for v in [*node.secrets.values(), *fakenode.KEY_BODY]
                      if v.encode() in data]
            assert b"SHADOWHASH" not in data, path
    assert leaks == []
    assert result.outputs["redactions"] == manifest["totals"]["redactions"] > 1000
    assert manifest["totals"]["redactions"] == sum(f["redactions"] for f in manifest["files"])


def test_nothing_else_changed(collected) -> None:
    """Each stored text file equals its source except where a marker replaced a secret."""
    node, ctx, _, manifest = collected
    allowed = {v.encode() for v in node.secrets.values()}
    key_body = ("\n" + "\n".join(fakenode.KEY_BODY) + "\n").encode()
    compared = 0
    for entry in manifest["files"]:
        if not entry["source"].startswith("/") or entry["path"] == "job-environment.txt.gz":
            continue
        original = node.path(entry["source"]).read_bytes()
        if original[:2] == b"\x1f\x8b":
            original = gzip.decompress(original)
        stored = read_stored(ctx.logs_dir / entry["path"])
        # a marker already in the source (oslo.config logs secret options as ****) stays
        removed = [r for r in _removed(original, stored) if r != MASK.encode()]
        assert len(removed) == entry["redactions"], entry["path"]
        assert all(r in allowed or r == key_body for r in removed), (entry["path"], removed)
        compared += 1
    assert compared >= 35


def _removed(original: bytes, stored: bytes) -> list[bytes]:
    """The texts that markers replaced, asserting everything around them is unchanged."""
    parts = stored.split(MASK.encode())
    assert original.startswith(parts[0])
    pos, removed = len(parts[0]), []
    for part in parts[1:]:
        nxt = original.find(part, pos + 1) if part else len(original)
        if part and part == parts[-1]:
            nxt = len(original) - len(part)
            assert original.endswith(part)
        assert nxt > pos
        removed.append(original[pos:nxt])
        pos = nxt + len(part)
    assert pos == len(original)
    return removed


def test_binary_files_kept_as_they_are(collected) -> None:
    node, ctx, _, _ = collected
    assert (ctx.logs_dir / "etc/nova/ssl/cert.der.txt").read_bytes() == \
        node.path("etc/nova/ssl/cert.der").read_bytes()


def test_refusals_are_listed_with_reasons(collected) -> None:
    _, ctx, result, manifest = collected
    reasons = {s["source"]: s["reason"] for s in manifest["skipped"]}
    assert "outside --root" in reasons["/var/log/apache2/shadow.log"]
    assert "outside the collected sources" in reasons["/var/log/rabbitmq/escape.log"]
    assert "broken symlink" in reasons["/var/log/libvirt/dangling.log"]
    assert "not a regular file" in reasons["/var/log/mysql/slow.fifo"]
    assert not (ctx.logs_dir / "apache/shadow.txt.gz").exists()
    assert "/var/log/httpd" in manifest["missing"]
    assert len(result.outputs["problems"]) == len(manifest["skipped"])


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to drop the DAC override capability")
def test_unreadable_file_reported(tmp_path: Path) -> None:
    """The real CLI without CAP_DAC_OVERRIDE: the chmod-000 log is listed, collection completes."""
    node = fakenode.build(tmp_path / "node", large_lines=100)
    ws = tmp_path / "ws"
    ws.mkdir()
    env = {**os.environ, "WORKSPACE": str(ws)}
    proc = subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--",
                           sys.executable, "-m", "dsvm", "--profile", str(write_profile(tmp_path)),
                           "logs", "collect", "--root", str(node.root), "--json"],
                          cwd=ws, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [p for p in out["problems"] if "unreadable.log" in p] == [
        "/var/log/mysql/unreadable.log: unreadable: Permission denied"]
    assert "unreadable.log" in proc.stderr  # said on the console too
    assert (ws / "logs/screen-n-cpu.txt.gz").is_file()


def test_rotation_and_job_outputs(tmp_path: Path) -> None:
    node = fakenode.build(tmp_path / "node", large_lines=50)
    ws = tmp_path / "ws"
    old = ws / "logs"
    old.mkdir(parents=True)
    (old / "from-previous-job.txt").write_text("old\n")
    report = old / "report.html"  # a results report that was written into the old logs dir
    report.write_text(f"<p>{node.secrets['admin']}</p>")
    (ws / ".dsvm").mkdir()
    (ws / ".dsvm/stack.log").write_text(f"stack.sh ADMIN_PASSWORD={node.secrets['admin']}\n")
    (ws / ".dsvm/state.json").write_text(json.dumps({"phases": {
        "results": {"outputs": {"html": str(report)}},
        "configure": {"outputs": {"local_conf": str(node.path(
            "opt/stack/new/devstack/local.conf"))}}}}))
    ctx, result = collect(tmp_path, node)
    logs = ctx.logs_dir
    assert (ws / "logs.1/from-previous-job.txt").read_text() == "old\n"
    assert not (logs / "from-previous-job.txt").exists()
    assert b"****" in read_stored(logs / "testr_results.html.gz")
    assert read_stored(logs / "dsvm/stack.txt.gz") == b"stack.sh ADMIN_PASSWORD=****\n"
    assert (logs / "dsvm/state.json.gz").is_file()
    assert (logs / "local.conf.txt.gz").is_file()
    # a second collection rotates again: logs.1 -> logs.2
    collect(tmp_path, node)
    assert (ws / "logs.2/from-previous-job.txt").is_file()


def test_size_budget_truncates_the_largest(tmp_path: Path) -> None:
    node = fakenode.build(tmp_path / "node", large_lines=30000)
    _, result = collect(tmp_path, node, "  size_budget_mb: 1\n  compression: none\n")
    manifest = json.loads(Path(result.outputs["manifest"]).read_text())
    cut = [f for f in manifest["files"] if f["truncated"]]
    assert [f["path"] for f in cut] == ["screen-n-cpu.txt"]
    text = (Path(result.outputs["logs_dir"]) / "screen-n-cpu.txt").read_text()
    assert "bytes cut by dsvm" in text
    total = sum(f["stored"] for f in manifest["files"])
    assert total <= (1 << 20) + 4096
    # only a source that was already gzipped stays gzipped with compression: none
    assert [p.name for p in Path(result.outputs["logs_dir"]).rglob("*.gz")] == ["access.txt.2.gz"]


def test_file_growing_while_read_is_a_consistent_prefix(tmp_path: Path) -> None:
    node = fakenode.build(tmp_path / "node", large_lines=20000)
    grow = node.path("var/log/acme/driver.log")
    grow.write_text("start\n" * 200000)
    stop = threading.Event()

    def writer() -> None:
        with open(grow, "a") as fh:
            while not stop.is_set():
                fh.write("appended line\n" * 100)
                fh.flush()
                time.sleep(0.001)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        ctx, _ = collect(tmp_path, node, "  jobs: 1\n")
    finally:
        stop.set()
        thread.join()
    stored = read_stored(ctx.logs_dir / "acme/driver.txt.gz")
    assert grow.read_bytes().startswith(stored)
    assert len(stored) >= 6 * 200000


def test_cli_json_and_help(tmp_path: Path) -> None:
    node = fakenode.build(tmp_path / "node", large_lines=50)
    dest = tmp_path / "out"
    env = {**os.environ, "WORKSPACE": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "dsvm", "--profile",
                           str(write_profile(tmp_path)), "logs", "collect", "--root",
                           str(node.root), "--dest", str(dest), "--json", "--jobs", "2"],
                          env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["logs_dir"] == str(dest) and out["files"] > 30 and out["url"] == ""
    for secret in node.secrets.values():
        assert secret not in proc.stdout + proc.stderr
    helptext = subprocess.run([sys.executable, "-m", "dsvm", "logs", "--help"],
                              capture_output=True, text=True, cwd=REPO).stdout
    assert "example:" in helptext and "--root" in helptext


def test_snapshots_run_concurrently_and_missing_programs_cost_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dsvm import proc
    from dsvm.logs import snapshot

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("df", "free", "ps", "python3", "dpkg"):  # no rpm, iptables-save, journalctl
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\n/bin/sleep 1\necho {name} output\n")
        script.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    start = time.monotonic()
    taken = snapshot.take(proc.Runner(), tmp_path / "staging", timeout=30)
    elapsed = time.monotonic() - start
    assert [s.name for s in taken] == [name for name, _ in snapshot.COMMANDS]
    assert elapsed < 4.0  # five 1 s commands, one after another, would take 5 s
    by_name = {s.name: s for s in taken}
    assert by_name["rpm-qa.txt"].path is None and "not installed" in by_name["rpm-qa.txt"].note
    assert by_name["pip3-freeze.txt"].path.read_text() == "python3 output\n"
    assert by_name["df.txt"].note == ""


def test_late_tasks_are_stored_with_the_others(tmp_path: Path) -> None:
    from dsvm.logs import collect
    from dsvm.logs.redact import Redactor
    from dsvm.logs.store import Task

    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        (src / f"f{i}.log").write_text(f"file {i} password=pw-{i}-value\n")
    inventory = collect.inspect([], root=None, base="/opt/stack",
                                extra=[fakenode_source(src)])
    the_plan = collect.plan(inventory, tmp_path / "logs")
    events: list[str] = []

    def late_tasks() -> list[Task]:
        events.append("tasks")
        (tmp_path / "snap.txt").write_text("late line: password=late-pw-value\n")
        return [Task(str(tmp_path / "snap.txt"), "command: snap", str(tmp_path / "logs/snap.txt.gz"),
                     "snap.txt.gz", "redact", True)]

    stored = collect.apply(the_plan, Redactor(), jobs=2,
                           late=collect.Late(lambda: events.append("start"), late_tasks))
    assert events == ["start", "tasks"]
    assert sorted(s.rel for s in stored) == sorted([t.rel for t in the_plan.tasks]
                                                   + ["snap.txt.gz"])
    text = gzip.decompress((tmp_path / "logs/snap.txt.gz").read_bytes()).decode()
    assert text == "late line: password=****\n"


def fakenode_source(path: Path):
    from dsvm.logs.sources import Source

    return Source(str(path), "src", "log", why="test")
