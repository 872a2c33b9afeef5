"""Node snapshots for the logs: df, free, ps, pip freeze, dpkg -l, the systemd journal.

Each command's output is written, raw, to a staging directory through ``proc`` (argv lists,
timeouts that kill the process group); the staged files are then collected like any other
source, so they are redacted and compressed by the same code path. A missing program or a
failing command costs one line in the manifest, never the collection.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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


def take(runner: proc.Runner, staging: Path, timeout: float = 120.0) -> list[Snapshot]:
    """Run every snapshot command and the journal export into ``staging``."""
    staging.mkdir(parents=True, exist_ok=True)
    taken = [_run(runner, staging, name, list(argv), timeout) for name, argv in COMMANDS]
    if proc.which("journalctl") and proc.which("systemctl"):
        taken.extend(_journal(runner, staging, timeout))
    return taken


def _run(runner: proc.Runner, staging: Path, name: str, argv: list[str],
         timeout: float) -> Snapshot:
    shown = "command: " + " ".join(argv)
    if proc.which(argv[0]) is None:
        return Snapshot(name, None, shown, f"{argv[0]} not installed")
    path = staging / name
    with open(path, "wb") as fh:
        result = runner.run_bytes(argv, desc=f"snapshot {name}", out=fh.write, timeout=timeout)
    if result.timed_out or result.exit_code != 0:
        why = "timed out" if result.timed_out else f"exit {result.exit_code}"
        return Snapshot(name, path, shown, f"{why} (partial output kept)")
    return Snapshot(name, path, shown)


def _journal(runner: proc.Runner, staging: Path, timeout: float) -> list[Snapshot]:
    """``screen-<svc>.txt`` per devstack@ unit (journalctl -o short-precise), and syslog.txt."""
    listing = runner.run(["systemctl", "list-units", "--all", "--no-legend", "--plain",
                          "devstack@*"], desc="list devstack units", check=False,
                         timeout=30, stream=False)
    out = []
    for line in listing.stdout.splitlines():
        m = _UNIT.match(line.strip())
        if m:
            out.append(_run(runner, staging, f"screen-{m.group(2)}.txt",
                            ["journalctl", "-o", "short-precise", "--no-pager", "-u",
                             m.group(1) + ".service"], timeout))
    out.append(_run(runner, staging, "syslog.txt",
                    ["journalctl", "-t", "kernel", "-t", "sudo", "-o", "short-precise",
                     "--no-pager", "-b"], timeout))
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
