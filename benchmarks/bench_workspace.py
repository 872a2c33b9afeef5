"""Benchmark: dsvm's workspace phase vs the per-project shell flow it replaces.

World (generated once under benchmarks/.cache/workspace-<size>/, reused afterwards): N projects
of realistic shape (thousands of commits and files each) in an upstream ("GIT_BASE"), an
/opt/git-style node cache holding a non-bare clone of each, and a Zuul merger with a change
merged on 3 of them (``refs/zuul/master/Z…``).

Measured in the same run, median of R repetitions each:
  (a) cold: empty $BASE/new           dsvm workspace  vs  baseline
  (b) warm: re-run on the previous job's workspace (with leftovers: untracked files, a change
      to a tracked file, a stale index.lock)
Baseline: what devstack-gate's setup_project / gerrit-git-prep did per project, sequentially:
``git clone file://<cache>`` when there is no repo, ``remote set-url``, ``remote update``,
``remote prune``, the ``git branch -a`` branch test, ``fetch`` of the Zuul ref from ZUUL_URL,
checkout (FETCH_HEAD, else the branch after a second ``git branch -a`` test, else master),
``reset --hard``, ``clean -xfdq`` (spec zuul-cloner.md 4.3).

  .venv/bin/python benchmarks/bench_workspace.py            # 40 projects, 2000 commits/files
  .venv/bin/python benchmarks/bench_workspace.py --quick    # smoke test: 6 small projects
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.gitrepos import fast_history, git, isolated_git_env  # noqa: E402

CHANGED = 3
PHASE_SECONDS: list[float] = []  # the phase's own time, from each dsvm run's --json
ZUUL_ID = "Z" + "b" * 32

BASELINE = r"""
set -e
cache=$1; base=$2; dest=$3; zuul_url=$4; zuul_ref=$5; zuul_branch=$6; branch=$7; shift 7
mkdir -p "$dest"
for project in "$@"; do
  short=${project##*/}
  if [ ! -d "$dest/$short/.git" ]; then
    rm -rf "$dest/$short"
    git clone -q "file://$cache/$project" "$dest/$short"
  fi
  cd "$dest/$short"
  rm -f .git/index.lock
  git remote set-url origin "$base/$project"
  git remote update >/dev/null
  git remote prune origin >/dev/null
  ref=${zuul_ref/$zuul_branch/$branch}
  fallback=""  # spec zuul-cloner 4.3 step 8: git_has_branch is a `git branch -a` substring test
  git branch -a | grep -q "remotes/origin/$branch" || fallback=${zuul_ref/$branch/master}
  if git fetch -q "$zuul_url/$project" "$ref" 2>/dev/null ||
     { [ -n "$fallback" ] && git fetch -q "$zuul_url/$project" "$fallback" 2>/dev/null; }; then
    git checkout -q FETCH_HEAD
    git reset -q --hard FETCH_HEAD
  elif git branch -a | grep -q "remotes/origin/$branch"; then  # step 10, asked again
    git checkout -q "$branch"
    git reset -q --hard "remotes/origin/$branch"
  else
    git checkout -q master
    git reset -q --hard remotes/origin/master
  fi
  git clean -x -f -d -q
  cd - >/dev/null
done
"""


def build_world(root: Path, projects: int, commits: int, files: int) -> list[str]:
    """Generate upstream, cache and merger once (a marker file says it is complete)."""
    names = [f"openstack/project{n:02d}" for n in range(projects)]
    if (root / "complete").exists():
        return names
    if root.exists():
        shutil.rmtree(root)
    t0 = time.monotonic()
    for n, name in enumerate(names):
        fast_history(root / "upstream" / name, commits=commits, files=files,
                     branches={"stable/2024.1": 5}, seed=name)
        git(root, "clone", "--quiet", str(root / "upstream" / name), str(root / "cache" / name))
        print(f"\r  generated {n + 1}/{projects} projects", end="", flush=True)
    for name in names[:CHANGED]:
        merger = root / "merger" / name
        git(root, "clone", "--quiet", "--bare", str(root / "upstream" / name), str(merger))
        tip = git(merger, "rev-parse", "refs/heads/master")
        tree = git(merger, "rev-parse", f"{tip}^{{tree}}")
        change = git(merger, "commit-tree", tree, "-p", tip, "-m", "the change under test")
        git(merger, "update-ref", f"refs/zuul/master/{ZUUL_ID}", change)
    (root / "complete").write_text("ok\n")
    print(f"\r  generated {projects} projects in {time.monotonic() - t0:.0f}s")
    return names


def dirty(dest: Path) -> None:
    """Leave what a previous job leaves: untracked and changed files, a stale index.lock."""
    for repo in dest.iterdir():
        if (repo / ".git").is_dir():
            (repo / "leftover.pyc").write_text("x")
            (repo / "README.generated").write_text("x")
            (repo / ".git" / "index.lock").write_text("")
            tracked = next((repo / "pkg0").glob("*.py"), None)
            if tracked:
                tracked.write_text("# edited by the previous job\n")


def run_dsvm(root: Path, names: list[str], dest: Path, env: dict[str, str]) -> float:
    profile = root / "bench-profile.yaml"
    profile.write_text("projects:\n" + "".join(f"  - {n}\n" for n in names) +
                       f"git:\n  base: {root / 'upstream'}\n  cache: {root / 'cache'}\n"
                       f"paths:\n  base: {dest.parent}\n")
    t0 = time.monotonic()
    done = subprocess.run([str(ROOT / ".venv/bin/dsvm"), "--profile", str(profile),
                           "--no-color", "workspace", "--json"], env=env, check=True,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    took = time.monotonic() - t0
    PHASE_SECONDS.append(json.loads(done.stdout)["seconds"])
    return took


def run_baseline(root: Path, names: list[str], dest: Path, env: dict[str, str]) -> float:
    t0 = time.monotonic()
    subprocess.run(["bash", "-c", BASELINE, "baseline", str(root / "cache"),
                    str(root / "upstream"), str(dest), str(root / "merger"),
                    f"refs/zuul/master/{ZUUL_ID}", "master", "master", *names],
                   env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - t0


def settle_disk(limit: float = 120.0) -> None:
    """Flush, then wait (at most ``limit`` s) until the disk has been quiet for 10 s: a large
    delete just before the benchmark (a previous run's trees) keeps a virtual disk busy with
    writeback and discards for a while, and that would land on the first repetitions."""
    os.sync()
    start = time.monotonic()
    while time.monotonic() - start < limit:
        try:
            fields = Path("/proc/pressure/io").read_text().split("\n")[0].split()
        except OSError:
            return  # no pressure stall information: nothing to wait on
        if float(fields[1].split("=")[1]) < 1.0:  # "some avg10" below 1%
            break
        time.sleep(1)
    print(f"disk quiet after {time.monotonic() - start:.0f}s", flush=True)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def unclean(dest: Path) -> list[str]:
    """The repos under ``dest`` whose tree is not exactly HEAD (changes, untracked, ignored)."""
    return [p.name for p in sorted(dest.iterdir()) if (p / ".git").is_dir()
            and git(p, "status", "--porcelain", "--ignored")]


def heads(dest: Path) -> dict[str, str]:
    return {p.name: git(p, "rev-parse", "HEAD") for p in sorted(dest.iterdir())
            if (p / ".git").is_dir()}


def measure(root: Path, names: list[str], work: Path, env: dict[str, str],
            reps: int, kinds: tuple[str, ...] = ("cold", "warm")) -> dict[str, list[float]]:
    """Alternate dsvm and the baseline inside each repetition so both see the same load."""
    runs = {"dsvm": (run_dsvm, work / "dsvm/new"), "baseline": (run_baseline, work / "base/new")}
    times: dict[str, list[float]] = {f"{n} {k}": [] for n in (*runs, "phase") for k in kinds}
    trash = work / "trash"  # emptied once all runs are measured
    trash.mkdir(parents=True, exist_ok=True)
    for rep in range(reps):
        for kind in kinds:
            for name, (fn, dest) in runs.items():
                if kind == "warm" and not dest.is_dir():  # --only warm: one untimed cold run
                    dest.mkdir(parents=True)
                    fn(root, names, dest, env)
                if kind == "cold":
                    # Set the last tree aside rather than delete it: deleting 80,000 files
                    # (and the discards it sends a virtual disk) would still be running
                    # when the next timed run starts writing its own.
                    if dest.parent.exists():
                        dest.parent.rename(trash / f"{name}-{rep}-{time.monotonic_ns()}")
                    dest.mkdir(parents=True)
                else:
                    dirty(dest)
                os.sync()  # earlier runs' writeback must not land on this one's clock
                times[f"{name} {kind}"].append(fn(root, names, dest, env))
                if name == "dsvm":
                    times[f"phase {kind}"].append(PHASE_SECONDS[-1])
        print(f"  rep {rep + 1}: " + "  ".join(f"{k} {v[-1]:6.2f}s" for k, v in times.items())
              + f"  (load {_load()})", flush=True)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="6 small projects, 3 repetitions")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--only", choices=("cold", "warm"),
                        help="measure one case (warm: after one untimed cold run)")
    args = parser.parse_args()
    projects, commits, files, reps = (6, 200, 200, 3) if args.quick else (40, 2000, 2000, 5)
    reps = args.reps or reps
    cache_dir = ROOT / "benchmarks/.cache" / f"workspace-{projects}x{commits}"
    home = ROOT / "benchmarks/.cache/home"
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "ZUUL_"))}
    # Byte code as an install has it: this environment sets PYTHONDONTWRITEBYTECODE, which
    # would make every dsvm start recompile what changed since the last .pyc was written.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(ROOT / "benchmarks/.cache/workspace-pycache")
    env.update(isolated_git_env(home))
    os.environ.update(isolated_git_env(home))
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "dsvm")], env=env,
                   check=True, stdout=subprocess.DEVNULL)  # written once, not on rep 1's clock
    print(f"world: {projects} projects x {commits} commits x {files} files "
          f"(change on {CHANGED}); {reps} repetitions; {os.cpu_count()} CPUs")
    names = build_world(cache_dir, projects, commits, files)
    env.update({"ZUUL_PROJECT": names[0], "ZUUL_BRANCH": "master", "ZUUL_PIPELINE": "check",
                "ZUUL_REF": f"refs/zuul/master/{ZUUL_ID}", "ZUUL_URL": str(cache_dir / "merger"),
                "ZUUL_CHANGES": "^".join(f"{n}:master:refs/changes/1/{i}/1"
                                         for i, n in enumerate(names[:CHANGED]))})
    work = ROOT / "benchmarks/.cache/run"
    env["WORKSPACE"] = str(ROOT / "benchmarks/.cache/job")  # dsvm's phase log goes there
    print(f"load average before: {_load()}")
    kinds = (args.only,) if args.only else ("cold", "warm")
    shutil.rmtree(work, ignore_errors=True)
    settle_disk()
    times = measure(cache_dir, names, work, env, reps, kinds)
    print(f"load average after: {_load()}")
    same = heads(work / "dsvm/new") == heads(work / "base/new")
    dirty_left = unclean(work / "dsvm/new")
    shutil.rmtree(work, ignore_errors=True)
    for kind, goal in (("cold", 3), ("warm", 5)):
        if kind not in kinds:
            continue
        dm, bm = statistics.median(times[f"dsvm {kind}"]), statistics.median(times[f"baseline {kind}"])
        pm = statistics.median(times[f"phase {kind}"])
        print(f"{kind}: dsvm median {dm:.2f}s, baseline median {bm:.2f}s, "
              f"ratio {bm / dm:.1f}x (goal >= {goal}x); the phase alone (as inside "
              f"`dsvm run`, no interpreter start-up) {pm:.2f}s, {bm / pm:.1f}x")
    print(f"same commits checked out by both: {'yes' if same else 'NO'}")
    print(f"dsvm's reused workspace left clean: "
          f"{'yes' if not dirty_left else 'NO: ' + ', '.join(dirty_left)}")
    if not same or dirty_left:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
