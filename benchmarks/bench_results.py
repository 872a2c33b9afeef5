"""Benchmark: each ``dsvm results`` command against the single upstream tool it replaces, as
a user runs them (a fresh process each, start-up included), on a 2,000-test Tempest-shaped
stream with attachments (issue 19's rows):

* ``dsvm results junit``  vs ``subunit2junitxml`` (python-subunit)       goal >= 1.5x
* ``dsvm results html``   vs ``subunit2html`` (os-testr)                  goal >= 1.5x
* ``dsvm results store``  vs ``subunit2sql`` into SQLite                  goal >= 75x

Both sides of a row alternate within each round; the figures are medians over the rounds, and
the ratio is baseline median / dsvm median. Both stores write into a copy of the same empty
database, created at subunit2sql's head by ``subunit2sql-db-manage upgrade head``. Peak RSS of
every process is measured by GNU time; ``summary``, ``history`` and ``compare`` are measured for
memory too (issue 19: no command above 200 MB).

    .venv/bin/python benchmarks/bench_results.py [--quick] [--tests N] [--repeat R]

The stream is generated under benchmarks/.cache/; the upstream tools' venv is built there once
(or reused from $DSVM_TEST_CACHE, as the tests do).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.results_streams import synthetic_stream  # noqa: E402
from tests.fixtures.results_upstream import upstream_venv  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache"
GOALS = {"junit": 1.5, "html": 1.5, "store": 75.0}
DSVM = [sys.executable, "-m", "dsvm", "--no-color", "results"]
TIME = "/usr/bin/time"  # GNU time (Debian package ``time``), for the peak RSS


def measure(argv: list[str], stdin: Path | None = None, ok: tuple[int, ...] = (0,)
            ) -> tuple[float, float, float]:
    """(wall seconds, peak RSS in MB, CPU seconds) of one process run to completion.

    The RSS comes from GNU time, whose small process forks the command: a child this Python
    process spawns would inherit its high-water mark (vfork, then exec, keeps the larger)."""
    rss_file = CACHE / "rss.txt"
    with open(stdin or os.devnull, "rb") as src:
        start = time.perf_counter()
        done = subprocess.run([TIME, "-f", "%M %U %S", "-o", str(rss_file), *argv], stdin=src,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        wall = time.perf_counter() - start
    if done.returncode not in ok:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n"
                         f"{done.stderr.decode()[-2000:]}")
    rss, user, system = rss_file.read_text().split()[-3:]
    return wall, int(rss) / 1024, float(user) + float(system)  # RSS in kilobytes


def one_round(src: Path, work: Path, up: Path, empty_db: Path, i: int
              ) -> dict[str, tuple[float, float, float]]:
    out = work / f"round-{i}"
    out.mkdir(parents=True)
    shutil.copy(empty_db, out / "dsvm.db")
    shutil.copy(empty_db, out / "up.db")
    dsvm_db, up_db = f"sqlite:///{out}/dsvm.db", f"sqlite:///{out}/up.db"
    # subunit2junitxml exits 1 when the stream has failures (the stream has some), as dsvm
    # results junit does not: a report was written either way.
    pairs = {
        "junit": ([*DSVM, "junit", str(src), "-o", str(out / "dsvm.xml")], None, (0,),
                  [str(up / "subunit2junitxml"), "-o", str(out / "up.xml")], src, (0, 1)),
        "html": ([*DSVM, "html", str(src), "-o", str(out / "dsvm.html")], None, (0,),
                 [str(up / "subunit2html"), str(src), str(out / "up.html")], None, (0,)),
        "store": ([*DSVM, "store", str(src), "--db", dsvm_db], None, (0,),
                  [str(up / "subunit2sql"), "--database-connection", up_db, str(src)], None,
                  (0,)),
    }
    figures: dict[str, tuple[float, float, float]] = {}
    for name, (ours, ours_in, ours_ok, theirs, theirs_in, theirs_ok) in pairs.items():
        first, second = ((ours, ours_in, ours_ok, "dsvm"), (theirs, theirs_in, theirs_ok, "up"))
        if i % 2:  # alternate which side goes first
            first, second = second, first
        for argv, stdin, ok, side in (first, second):
            figures[f"{name} {side}"] = measure(argv, stdin, ok)
    # the floor under every Python tool here: an interpreter start, and SQLAlchemy's import
    # (under the store: dsvm writes the subunit2sql schema with SQLAlchemy)
    figures["python start-up"] = measure([sys.executable, "-c", "pass"])
    figures["import sqlalchemy"] = measure([sys.executable, "-c", "import sqlalchemy"])
    figures["summary dsvm"] = measure([*DSVM, "summary", str(src), "--json"], ok=(1,))
    figures["history dsvm"] = measure([*DSVM, "history", "--db", dsvm_db, "--json"])
    shutil.copy(out / "dsvm.db", out / "two.db")
    measure([*DSVM, "store", str(src), "--db", f"sqlite:///{out}/two.db"])
    figures["compare dsvm"] = measure([*DSVM, "compare", "last~1", "last", "--db",
                                       f"sqlite:///{out}/two.db", "--json"])
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="200 tests, 1 round (smoke test)")
    ap.add_argument("--tests", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if not os.access(TIME, os.X_OK):
        raise SystemExit(f"{TIME} is missing: apt-get install time (it measures the peak RSS)")
    n, repeat = (200, 1) if args.quick else (args.tests, max(3, args.repeat))
    CACHE.mkdir(parents=True, exist_ok=True)
    src = CACHE / f"tempest-{n}.subunit"
    if not src.exists():
        synthetic_stream(src, n, workers=4, fail_every=25, skip_every=10, log_bytes=1500)
    up = upstream_venv(Path(os.environ.get("DSVM_TEST_CACHE") or CACHE))
    work = CACHE / f"run-{os.getpid()}"
    work.mkdir(parents=True)
    empty_db = work / "empty.db"
    subprocess.run([str(up / "subunit2sql-db-manage"), "--database-connection",
                    f"sqlite:///{empty_db}", "upgrade", "head"], check=True, capture_output=True)
    rounds = []
    for i in range(repeat):
        rounds.append(one_round(src, work, up, empty_db, i))
        print(f"round {i + 1}/{repeat}: " + ", ".join(
            f"{k} {v[0]:.2f}s" for k, v in rounds[-1].items() if k.split()[0] in GOALS),
            flush=True)
    load = os.getloadavg()
    print(f"\nstream: {n} Tempest-shaped tests, {src.stat().st_size / 1e6:.1f} MB (tracebacks, "
          f"skip reasons, pythonlogging attachments); {repeat} rounds; {os.cpu_count()} CPUs, "
          f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    med = {k: statistics.median(r[k][0] for r in rounds) for k in rounds[0]}
    peak = {k: max(r[k][1] for r in rounds) for k in rounds[0]}
    cpu = {k: statistics.median(r[k][2] for r in rounds) for k in rounds[0]}
    print(f"{'command':<10}{'dsvm s':>9}{'upstream s':>12}{'ratio':>9}{'goal':>8}"
          f"{'dsvm MB':>10}{'upstream MB':>13}{'dsvm cpu s':>12}{'upstream cpu s':>16}")
    for name, goal in GOALS.items():
        ours, theirs = med[f"{name} dsvm"], med[f"{name} up"]
        print(f"{name:<10}{ours:>9.3f}{theirs:>12.3f}{theirs / ours:>8.1f}x{goal:>7.1f}x"
              f"{peak[f'{name} dsvm']:>10.0f}{peak[f'{name} up']:>13.0f}"
              f"{cpu[f'{name} dsvm']:>12.3f}{cpu[f'{name} up']:>16.3f}")
    for name in ("summary", "history", "compare"):
        print(f"{name:<10}{med[f'{name} dsvm']:>9.3f}{'-':>12}{'':>9}{'':>8}"
              f"{peak[f'{name} dsvm']:>10.0f}{'':>13}{cpu[f'{name} dsvm']:>12.3f}")
    for name in ("python start-up", "import sqlalchemy"):
        print(f"{name:<19}{med[name]:>9.3f} s wall, {cpu[name]:.3f} s cpu (the floor)")
    print("(medians; peak RSS: the largest of the rounds; goal: every command under 200 MB)")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
