"""Node snapshots for the logs: df, free, ps, pip freeze, dpkg -l, the systemd journal.

Each command's output is written, raw, to a staging directory through ``proc`` (argv lists,
timeouts that kill the process group); the staged files are then collected like any other
source, so they are redacted and compressed by the same code path. A missing program or a
failing command costs one line in the manifest, never the collection. The commands run
concurrently on threads (``start``), so the phase pays for the slowest one (``pip freeze``,
~2 s), not their sum, and can collect the node's files meanwhile.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from dsvm import proc
from dsvm.secrets import MASK, is_secret_name

# (stored name, argv) — devstack-gate's cleanup_host snapshots (spec §7.1).
COMMANDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("df.txt", ("df", "-h")),
    ("free.txt", ("free", "-m")),
    ("ps.txt", ("ps", "-eo", "user,pid,ppid,lwp,%cpu,%mem,size,rss,cmd")),
    ("pip3-freeze.txt", ("python3", "-m", "pip", "freeze")),
    ("dpkg-l.txt", ("dpkg", "-l")),
    ("rpm-qa.txt", ("rpm", "-qa")),
    ("iptables.txt", ("iptables-save",)),
)
_UNIT = re.compile(r"^(devstack@([A-Za-z0-9_.@-]+))\.service\b")


@dataclass(frozen=True)
class Snapshot:
    """One staged snapshot file, or why there is none."""

    name: str
    path: Path | None
    shown: str
    note: str = ""


WORKERS = 4  # threads: the commands mostly wait (pip's imports, dpkg's database)


class Pending:
    """Snapshots being taken; ``wait`` returns them (in COMMANDS order, then the journal)."""

    def __init__(self, items: list[Snapshot | Future[Snapshot]],
                 pool: ThreadPoolExecutor) -> None:
        self._items = items
        self._pool = pool

    @property
    def count(self) -> int:
        """How many snapshots there will be (missing programs included)."""
        return len(self._items)

    def wait(self) -> list[Snapshot]:
        """Block until every command has finished (each is bounded by its timeout)."""
        try:
            return [item.result() if isinstance(item, Future) else item
                    for item in self._items]
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        """Cancel what has not started and wait for what has (used on errors)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def start(runner: proc.Runner, staging: Path, timeout: float = 120.0,
          workers: int = WORKERS) -> Pending:
    """Start every snapshot command and the journal export into ``staging``, concurrently.

    A program not on PATH is noted at once, without a thread. Listing the devstack units is
    quick and done here, so ``count`` is known before anything finishes.
    """
    staging.mkdir(parents=True, exist_ok=True)
    jobs = [(name, list(argv)) for name, argv in COMMANDS]
    if proc.which("journalctl") and proc.which("systemctl"):
        jobs += _journal_jobs(runner)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dsvm-snapshot")
    items: dict[str, Snapshot | Future[Snapshot]] = {}
    # pip freeze first: it is the slowest by far, so it must not wait for a free thread
    for name, argv in sorted(jobs, key=lambda job: job[1][:3] != ["python3", "-m", "pip"]):
        if proc.which(argv[0]) is None:
            items[name] = Snapshot(name, None, "command: " + " ".join(argv),
                                   f"{argv[0]} not installed")
        else:
            items[name] = pool.submit(_run, runner, staging, name, argv, timeout)
    return Pending([items[name] for name, _ in jobs], pool)


def take(runner: proc.Runner, staging: Path, timeout: float = 120.0) -> list[Snapshot]:
    """Run every snapshot command and the journal export into ``staging``; wait for all."""
    return start(runner, staging, timeout).wait()


def _run(runner: proc.Runner, staging: Path, name: str, argv: list[str],
         timeout: float) -> Snapshot:
    shown = "command: " + " ".join(argv)
    path = staging / name
    with open(path, "wb") as fh:
        def out(data: bytes) -> None:
            fh.write(data)

        result = runner.run_bytes(argv, desc=f"snapshot {name}", out=out, timeout=timeout)
    if result.timed_out or result.exit_code != 0:
        why = "timed out" if result.timed_out else f"exit {result.exit_code}"
        return Snapshot(name, path, shown, f"{why} (partial output kept)")
    return Snapshot(name, path, shown)


def _journal_jobs(runner: proc.Runner) -> list[tuple[str, list[str]]]:
    """``screen-<svc>.txt`` per devstack@ unit (journalctl -o short-precise), and syslog.txt."""
    listing = runner.run(["systemctl", "list-units", "--all", "--no-legend", "--plain",
                          "devstack@*"], desc="list devstack units", check=False,
                         timeout=30, stream=False)
    out = []
    for line in listing.stdout.splitlines():
        m = _UNIT.match(line.strip())
        if m:
            out.append((f"screen-{m.group(2)}.txt",
                        ["journalctl", "-o", "short-precise", "--no-pager", "-u",
                         m.group(1) + ".service"]))
    out.append(("syslog.txt", ["journalctl", "-t", "kernel", "-t", "sudo", "-o",
                               "short-precise", "--no-pager", "-b"]))
    return out


def write_env(env: Mapping[str, str], path: Path, extra_names: tuple[str, ...] = ()) -> Path:
    """The job's environment, sorted, secret-named values masked (redaction runs on top)."""
    lines = []
    for name in sorted(env):
        value = env[name]
        if is_secret_name(name, extra_names) and value:
            value = MASK
        lines.append(f"{name}={value}".replace("\n", "\\n"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="replace")
    return path
