"""Benchmark: ``dsvm prepare-node`` caching N repos from a loopback ``git daemon`` upstream.

World (generated once under benchmarks/.cache/prepare_node/, reused afterwards): N projects
(150 commits of 40 files, a stable branch and a tag each), packed as a server keeps them,
served by a ``git daemon`` on 127.0.0.1 that this script starts and stops.

Measured in the same run, dsvm and the baseline alternating inside each repetition, medians:
  first run: empty cache       dsvm prepare-node  vs  a sequential ``git clone --mirror`` loop
  re-run, nothing changed      dsvm prepare-node  vs  ``git remote update`` in each mirror
dsvm runs as an operator runs it (``--skip users --skip images --skip pip-cache``, default
``--jobs`` 4), a whole process: interpreter start-up included. Also timed, as the floor of
any re-run that asks the upstream once per repo: ``git ls-remote`` of every repo, 4 at a
time (git daemon listens with a backlog of 5: more at once and connections wait for SYN
retransmits).

    .venv/bin/python benchmarks/bench_prepare_node.py            # 30 repos, 5 repetitions
    .venv/bin/python benchmarks/bench_prepare_node.py --quick    # 6 repos, 2 repetitions
    .venv/bin/python benchmarks/bench_prepare_node.py --compare /tmp/old-checkout  # + its dsvm
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures import gitdaemon  # noqa: E402
from tests.fixtures.gitrepos import git, isolated_git_env, make_repo  # noqa: E402

CACHE = ROOT / "benchmarks/.cache/prepare_node"


def build_upstream(n: int) -> tuple[Path, list[str]]:
    """N packed bare repos under one directory (a marker file says the set is complete)."""
    up = CACHE / f"daemon-upstream-{n}"
    names = [f"openstack/project{i:02d}" for i in range(n)]
    if (up / "complete").exists():
        return up, names
    shutil.rmtree(up, ignore_errors=True)
    for name in names:
        repo = make_repo(up, name, commits=150, nfiles=40, branches=("stable/a",),
                         tags=("1.0",))
        git(repo, "repack", "-a", "-d", "-q")  # a server holds packs, not loose objects
        git(repo, "prune-packed")
    (up / "complete").write_text("ok\n")
    return up, names


def baseline_first(url: str, names: list[str], dest: Path, env: dict[str, str]) -> None:
    for name in names:
        subprocess.run(["git", "clone", "-q", "--mirror", f"{url}/{name}",
                        str(dest / f"{name}.git")], check=True, env=env)


def baseline_rerun(url: str, names: list[str], dest: Path, env: dict[str, str]) -> None:
    for name in names:
        subprocess.run(["git", "remote", "update"], cwd=dest / f"{name}.git", check=True,
                       env=env, stdout=subprocess.DEVNULL)


def ls_remote_floor(url: str, names: list[str], _dest: Path, env: dict[str, str]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def one(name: str) -> None:
        subprocess.run(["git", "ls-remote", "--symref", f"{url}/{name}"], check=True, env=env,
                       stdout=subprocess.DEVNULL)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, names))


def dsvm(url: str, names: list[str], dest: Path, env: dict[str, str]) -> None:
    """``dsvm prepare-node`` of the checkout on ``env``'s PYTHONPATH into the cache ``dest``."""
    profile = dest.parent / "bench-profile.yaml"
    profile.write_text("projects: [" + ", ".join(names) + "]\n"
                       f"git: {{base: '{url}'}}\nnode: {{stackrc_projects: false}}\n")
    argv = [str(ROOT / ".venv/bin/dsvm"), "--no-color", "--profile", str(profile),
            "prepare-node", "--git-cache", str(dest), "--root", str(dest.parent / "root"),
            "--skip", "users", "--skip", "images", "--skip", "pip-cache", "--json"]
    res = subprocess.run(argv, cwd=dest.parent, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise SystemExit(f"dsvm failed:\n{res.stderr}")


def timed(fn, *args) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="6 repos, 2 repetitions")
    ap.add_argument("--repos", type=int, default=30)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--compare", type=Path, metavar="CHECKOUT",
                    help="also time the dsvm of another checkout (e.g. before a change)")
    args = ap.parse_args()
    n, reps = (6, 2) if args.quick else (args.repos, args.reps)
    home = CACHE / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "ZUUL_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # byte code as an install has it
    env["PYTHONPYCACHEPREFIX"] = str(CACHE / "pycache")
    env["PYTHONPATH"] = str(ROOT)  # the dsvm of this checkout
    env.update(isolated_git_env(home))
    os.environ.update(isolated_git_env(home))
    up, names = build_upstream(n)
    daemon = gitdaemon.start(up, env=env)
    other = {**env, "PYTHONPATH": str(args.compare.resolve())} if args.compare else None
    kinds = ("base first", "dsvm first", *(("other first",) if other else ()), "base rerun",
             "dsvm rerun", *(("other rerun",) if other else ()), "floor")
    times: dict[str, list[float]] = {k: [] for k in kinds}
    load_before = _load()
    try:
        for rep in range(reps):
            work = CACHE / f"run-{rep}"
            shutil.rmtree(work, ignore_errors=True)
            (work / "base").mkdir(parents=True)
            (work / "dsvm").mkdir(parents=True)
            (work / "other").mkdir(parents=True)
            times["base first"].append(timed(baseline_first, daemon.url, names,
                                             work / "base/git", env))
            times["dsvm first"].append(timed(dsvm, daemon.url, names, work / "dsvm/git", env))
            if other:
                times["other first"].append(timed(dsvm, daemon.url, names, work / "other/git",
                                                  other))
            times["base rerun"].append(timed(baseline_rerun, daemon.url, names,
                                             work / "base/git", env))
            times["dsvm rerun"].append(timed(dsvm, daemon.url, names, work / "dsvm/git", env))
            if other:
                times["other rerun"].append(timed(dsvm, daemon.url, names, work / "other/git",
                                                  other))
            times["floor"].append(timed(ls_remote_floor, daemon.url, names, work, env))
            shutil.rmtree(work, ignore_errors=True)
            print(f"  rep {rep + 1}: " + "  ".join(f"{k} {v[-1]:5.2f}s"
                                                   for k, v in times.items())
                  + f"  (load {_load()})", flush=True)
    finally:
        daemon.stop()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{n} repos (150 commits, 40 files, 2 branches, 1 tag each) from git daemon on "
          f"loopback, {reps} repetition(s), {os.cpu_count()} CPUs, load average "
          f"{load_before} before, {_load()} after; medians:")
    print(f"  first run : sequential git clone --mirror {med['base first']:.2f}s   "
          f"dsvm prepare-node {med['dsvm first']:.2f}s   "
          f"speed-up {med['base first'] / med['dsvm first']:.2f}x")
    print(f"  re-run    : git remote update in each     {med['base rerun']:.2f}s   "
          f"dsvm prepare-node {med['dsvm rerun']:.2f}s   "
          f"speed-up {med['base rerun'] / med['dsvm rerun']:.2f}x")
    for run, base in (("first", "base first"), ("rerun", "base rerun")):
        if other:
            print(f"  {args.compare} {run}: {med['other ' + run]:.2f}s   speed-up "
                  f"{med[base] / med['other ' + run]:.2f}x")
    print(f"  floor     : git ls-remote of each, 4 at a time {med['floor']:.2f}s "
          f"({med['base rerun'] / med['floor']:.2f}x the baseline)")


if __name__ == "__main__":
    main()
