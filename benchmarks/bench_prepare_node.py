"""Benchmark: caching N repositories from a local upstream, dsvm vs the old sequential script.

Baseline = what ``cache_git_repos.py`` did (spec/node-prep.md §2.2): for each project in turn,
remove it, ``git clone <GIT_BASE>/<project>``, then ``git branch -a`` and ``git reset --hard``.
Its re-run does exactly the same again. dsvm = ``dsvm prepare-node --skip users,images,...``
with its default parallelism; its re-run is the idempotent one (nothing changed upstream).
Data is generated under benchmarks/.cache/ (gitignored). Prints medians and ratios.

    .venv/bin/python benchmarks/bench_prepare_node.py            # 30 repos, 3 rounds
    .venv/bin/python benchmarks/bench_prepare_node.py --quick    # 6 repos, 1 round (smoke)
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.fixtures.gitrepos import make_repo  # noqa: E402

CACHE = HERE / ".cache" / "prepare_node"


def build_upstream(n: int, commits: int, nfiles: int) -> tuple[Path, list[str]]:
    up = CACHE / f"upstream-{n}-{commits}-{nfiles}"
    names = [f"openstack/project{i:02d}" for i in range(n)]
    if not (up / names[-1]).is_dir():
        shutil.rmtree(up, ignore_errors=True)
        for name in names:
            make_repo(up, name, commits=commits, nfiles=nfiles, branches=("stable/a",),
                      tags=("1.0",))
    return up, names


def baseline(up: Path, names: list[str], dest: Path) -> None:
    for name in names:
        path = dest / name
        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "clone", "-q", f"file://{up}/{name}", str(path)], check=True)
        subprocess.run(["git", "branch", "-a"], cwd=path, check=True, capture_output=True)
        subprocess.run(["git", "reset", "-q", "--hard", "HEAD"], cwd=path, check=True)


def dsvm(up: Path, names: list[str], dest: Path, profile: Path) -> None:
    profile.write_text("projects: [" + ", ".join(names) + "]\n"
                       f"git: {{base: 'file://{up}'}}\nnode: {{stackrc_projects: false}}\n")
    argv = [sys.executable, "-m", "dsvm", "--no-color", "--profile", str(profile),
            "prepare-node", "--git-cache", str(dest), "--root", str(dest.parent / "root"),
            "--skip", "users", "--skip", "images", "--skip", "pip-cache", "--json"]
    res = subprocess.run(argv, cwd=dest.parent, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"dsvm failed:\n{res.stderr}")


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="6 repos, 1 round")
    ap.add_argument("--repos", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    n, rounds = (6, 1) if args.quick else (args.repos, args.rounds)
    os.environ.setdefault("GIT_CONFIG_NOSYSTEM", "1")
    up, names = build_upstream(n, commits=150, nfiles=40)
    results: dict[str, list[float]] = {k: [] for k in ("base1", "base2", "dsvm1", "dsvm2")}
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())  # other users of the machine
    for r in range(rounds):
        work = CACHE / f"run-{r}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        results["base1"].append(timed(baseline, up, names, work / "base"))
        results["base2"].append(timed(baseline, up, names, work / "base"))
        results["dsvm1"].append(timed(dsvm, up, names, work / "git", work / "p.yaml"))
        results["dsvm2"].append(timed(dsvm, up, names, work / "git", work / "p.yaml"))
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"{n} repos (150 commits, 40 files, 2 branches, 1 tag each), {rounds} round(s), "
          f"{os.cpu_count()} CPUs, load average {load_before} before, "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} after; medians:")
    print(f"  first run : baseline sequential clone {med['base1']:.2f}s   "
          f"dsvm prepare-node {med['dsvm1']:.2f}s   speed-up {med['base1'] / med['dsvm1']:.2f}x")
    print(f"  re-run    : baseline re-clone         {med['base2']:.2f}s   "
          f"dsvm prepare-node {med['dsvm2']:.2f}s   speed-up {med['base2'] / med['dsvm2']:.2f}x")


if __name__ == "__main__":
    main()
