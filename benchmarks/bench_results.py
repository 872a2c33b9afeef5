"""Benchmark: dsvm results (summary + HTML + JUnit + SQLite store, one process) vs the upstream
tools doing the same job (subunit2junitxml, subunit2sql, os-testr's subunit2html).

    .venv/bin/python benchmarks/bench_results.py [--quick] [--tests N] [--repeat R]

Generates a Tempest-shaped stream with attachments under benchmarks/.cache/, builds the
upstream tools' venv there once (or reuses $DSVM_TEST_CACHE's, as the tests do), and prints
medians and ratios. Every tool writes a fresh output each round; databases start empty.
"""

from __future__ import annotations

import argparse
import os
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

DSVM_ALL = """
import sys, time
from pathlib import Path
from dsvm.results import db, html, junit, stream, summary
src, out = sys.argv[1], Path(sys.argv[2])
t0 = time.perf_counter()
run = stream.read(src)
t1 = time.perf_counter()
(out / "summary.txt").write_text(summary.render_text(summary.summarize(run)))
(out / "junit.xml").write_text(junit.render(run))
(out / "report.html").write_text(html.render(run))
t2 = time.perf_counter()
engine = db.connect(f"sqlite:///{out}/results.db")
with db.transaction(engine) as conn:  # schema creation, timed apart from the store
    db.ensure_schema(conn)
t3 = time.perf_counter()
stored = db.store(engine, run)
t4 = time.perf_counter()
print(f"{t1 - t0} {t2 - t1} {t4 - t3} {stored.results} {t3 - t2}")
"""


def timed(argv: list[str], **kw) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    res = subprocess.run(argv, capture_output=True, **kw)
    return time.perf_counter() - start, res


def one_round(src: Path, work: Path, up: Path, i: int) -> dict[str, float]:
    out = work / f"dsvm-{i}"
    out.mkdir(parents=True)
    wall, res = timed([sys.executable, "-c", DSVM_ALL, str(src), str(out)], check=True)
    parse_s, render_s, store_s, n, schema_s = res.stdout.split()
    figures = {"dsvm (1 process, all 4)": wall, "dsvm store only": float(store_s),
               "dsvm parse only": float(parse_s), "dsvm render 3 outputs": float(render_s),
               "dsvm create schema": float(schema_s),
               "store results/s": int(n) / float(store_s)}
    t, _ = timed([str(up / "subunit2junitxml"), "-o", str(work / f"up-{i}.xml")],
                 stdin=src.open("rb"))
    figures["subunit2junitxml"] = t
    dbfile = work / f"up-{i}.db"
    subprocess.run([str(up / "subunit2sql-db-manage"), "--database-connection",
                    f"sqlite:///{dbfile}", "upgrade", "head"], check=True, capture_output=True)
    t, res = timed([str(up / "subunit2sql"), "--database-connection", f"sqlite:///{dbfile}",
                    str(src)])
    if res.returncode:
        raise SystemExit(f"subunit2sql failed: {res.stderr.decode()[-500:]}")
    figures["subunit2sql (schema pre-created)"] = t
    t, _ = timed([str(up / "subunit2html"), str(src), str(work / f"up-{i}.html")], check=True)
    figures["subunit2html (os-testr)"] = t
    figures["baseline sum"] = (figures["subunit2junitxml"] + figures["subunit2html (os-testr)"]
                               + figures["subunit2sql (schema pre-created)"])
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="200 tests, 1 round (smoke test)")
    ap.add_argument("--tests", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n, repeat = (200, 1) if args.quick else (args.tests, max(3, args.repeat))
    CACHE.mkdir(parents=True, exist_ok=True)
    src = CACHE / f"tempest-{n}.subunit"
    if not src.exists():
        synthetic_stream(src, n, workers=4, fail_every=25, skip_every=10, log_bytes=1500)
    up = upstream_venv(Path(os.environ.get("DSVM_TEST_CACHE") or CACHE))
    work = CACHE / f"run-{os.getpid()}"
    rounds = [one_round(src, work, up, i) for i in range(repeat)]
    print(f"stream: {n} Tempest-shaped tests, {src.stat().st_size / 1e6:.1f} MB "
          f"(tracebacks, skip reasons, pythonlogging attachments); {repeat} rounds; "
          f"{os.cpu_count()} CPUs, measured while other work ran on the machine")
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    for key, value in med.items():
        unit = "/s" if key.endswith("/s") else " s"
        print(f"  {key:<36} median {value:10.3f}{unit}")
    speedup = med["baseline sum"] / med["dsvm (1 process, all 4)"]
    print(f"  speed-up vs baseline sum: {speedup:.1f}x (goal >= 3x)")
    print(f"  SQLite store throughput: {med['store results/s']:.0f} results/s (goal >= 10,000)")
    subprocess.run(["rm", "-rf", "--", str(work)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
