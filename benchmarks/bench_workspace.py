"""Benchmark: dsvm's workspace phase vs the per-project shell flow it replaces.

World (generated once under benchmarks/.cache/workspace-<size>/, reused afterwards): N projects
of realistic shape (thousands of commits and files each) in an upstream ("GIT_BASE"), an
/opt/git-style node cache holding a non-bare clone of each, and a Zuul merger with a change
merged on 3 of them (``refs/zuul/master/Z…``).

Measured in the same run, median of R repetitions each, wall clock and CPU time (user + system
of the command and everything it started):
  (a) cold: empty $BASE/new           dsvm workspace  vs  baseline
  (b) warm: re-run on the workspace the same tool's previous run left (steady state of a reused
      node: each tool's tree is first made by a cold run and re-run once, untimed), with a
      previous job's leftovers: untracked files, a change to a tracked file, a stale index.lock
      dsvm workspace  vs  baseline  vs  the git floor
Baseline: what devstack-gate's setup_project / gerrit-git-prep did per project, sequentially:
``git clone file://<cache>`` when there is no repo, ``remote set-url``, ``remote update``,
``remote prune``, the ``git branch -a`` branch test, ``fetch`` of the Zuul ref from ZUUL_URL,
checkout (FETCH_HEAD, else the branch after a second ``git branch -a`` test, else master),
``reset --hard``, ``clean -xfdq`` (spec zuul-cloner.md 4.3).
Floor (warm only): the two git commands dsvm runs per reused project (``checkout --force
--detach <sha>``, ``clean -xfdq``) with the commits known beforehand, as many projects at a
time as dsvm's ``git.jobs`` (``xargs -P``), no Python: what no tool can go below.

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
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.gitrepos import fast_history, git, isolated_git_env  # noqa: E402

CHANGED = 3
JOBS = 8  # dsvm's git.jobs default; the floor runs as many projects at a time
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

# The floor: per project, the two git commands dsvm runs on a reused repo (dsvm/git.py
# Git.checkout and Git.clean), JOBS projects at a time. The stale index.lock goes first, in one
# process (dsvm unlinks it in-process).
FLOOR = r"""
dest=$1; shift
rm -f "$dest"/*/.git/index.lock
printf '%s\n' "$@" | xargs -P JOBS -n 2 sh -c \
  'cd "$0" && git checkout --quiet --force --detach "$1" -- && exec git clean -x -f -d -q'
""".replace("JOBS", str(JOBS))


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


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, bytes]:
    """Run argv; return (wall seconds, CPU seconds of it and all it started, stdout)."""
    before = os.times()
    t0 = time.monotonic()
    done = subprocess.run(argv, env=env, check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL)
    took = time.monotonic() - t0
    after = os.times()
    cpu = (after.children_user - before.children_user
           + after.children_system - before.children_system)
    return took, cpu, done.stdout


def run_dsvm(root: Path, names: list[str], dest: Path, env: dict[str, str]) -> tuple[float, float]:
    profile = dest.parent / "bench-profile.yaml"
    profile.write_text("projects:\n" + "".join(f"  - {n}\n" for n in names) +
                       f"git:\n  base: {root / 'upstream'}\n  cache: {root / 'cache'}\n"
                       f"paths:\n  base: {dest.parent}\n")
    took, cpu, out = timed([str(ROOT / ".venv/bin/dsvm"), "--profile", str(profile),
                            "--no-color", "workspace", "--json"], env)
    PHASE_SECONDS.append(json.loads(out)["seconds"])
    return took, cpu


def run_baseline(root: Path, names: list[str], dest: Path,
                 env: dict[str, str]) -> tuple[float, float]:
    took, cpu, _ = timed(["bash", "-c", BASELINE, "baseline", str(root / "cache"),
                          str(root / "upstream"), str(dest), str(root / "merger"),
                          f"refs/zuul/master/{ZUUL_ID}", "master", "master", *names], env)
    return took, cpu


def run_floor(root: Path, names: list[str], dest: Path,
              env: dict[str, str]) -> tuple[float, float]:
    """The git floor on a reused workspace; the first call makes it with dsvm (untimed by the
    caller) and records the commits it must stay at."""
    if not dest.is_dir() or not FLOOR_HEADS:
        dest.mkdir(parents=True, exist_ok=True)
        run_dsvm(root, names, dest, env)
        PHASE_SECONDS.pop()
        FLOOR_HEADS.update(heads(dest))
    pairs = [x for short, sha in FLOOR_HEADS.items() for x in (str(dest / short), sha)]
    took, cpu, _ = timed(["sh", "-c", FLOOR, "floor", str(dest), *pairs], env)
    return took, cpu


FLOOR_HEADS: dict[str, str] = {}  # the floor's repos and the commit each is checked out at


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


Runner = Callable[[Path, list[str], Path, dict[str, str]], tuple[float, float]]


def measure(root: Path, names: list[str], work: Path, env: dict[str, str],
            reps: int, kinds: tuple[str, ...] = ("cold", "warm")) -> dict[str, list[float]]:
    """Alternate the tools inside each repetition so all see the same load; return wall times
    ("dsvm cold", ...), CPU times ("cpu dsvm cold", ...) and the phase's own ("phase cold")."""
    runs: dict[str, Runner] = {"dsvm": run_dsvm, "baseline": run_baseline, "floor": run_floor}
    tools = {"cold": ("dsvm", "baseline"), "warm": ("dsvm", "baseline", "floor")}
    times: dict[str, list[float]] = {}
    trash = work / "trash"  # emptied once all runs are measured
    trash.mkdir(parents=True, exist_ok=True)
    if "warm" in kinds:  # each tool's own re-run workspace: made cold, re-run once, untimed
        for name in tools["warm"]:
            dest = work / name / "new"
            dest.mkdir(parents=True)
            for _ in range(2 if name != "floor" else 1):
                runs[name](root, names, dest, env)
            if name == "dsvm":
                del PHASE_SECONDS[-2:]
    for rep in range(reps):
        for kind in kinds:
            for name in tools[kind]:
                if kind == "cold":
                    # Set the last tree aside rather than delete it: deleting 80,000 files
                    # (and the discards it sends a virtual disk) would still be running
                    # when the next timed run starts writing its own.
                    dest = work / f"{name}-cold" / "new"
                    if dest.parent.exists():
                        dest.parent.rename(trash / f"{name}-{rep}-{time.monotonic_ns()}")
                    dest.mkdir(parents=True)
                else:
                    dest = work / name / "new"
                    dirty(dest)
                os.sync()  # earlier runs' writeback must not land on this one's clock
                took, cpu = runs[name](root, names, dest, env)
                times.setdefault(f"{name} {kind}", []).append(took)
                times.setdefault(f"cpu {name} {kind}", []).append(cpu)
                if name == "dsvm":
                    times.setdefault(f"phase {kind}", []).append(PHASE_SECONDS[-1])
            times.setdefault(f"load {kind}", []).append(os.getloadavg()[0])
        print(f"  rep {rep + 1}: " + "  ".join(
            f"{k} {v[-1]:5.2f}{'' if k.startswith('load') else 's'}"
            for k, v in times.items() if not k.startswith("cpu")), flush=True)
        print("         CPU: " + "  ".join(f"{k[4:]} {v[-1]:5.2f}s" for k, v in times.items()
                                        if k.startswith("cpu")), flush=True)
    return times


def report(times: dict[str, list[float]], kind: str, goal: float) -> None:
    """Medians of one case, the ratios of the medians, and the per-repetition ratios."""
    med = {k: statistics.median(v) for k, v in times.items() if k.endswith(f" {kind}")}
    d, b, p = med[f"dsvm {kind}"], med[f"baseline {kind}"], med[f"phase {kind}"]
    cd, cb = med[f"cpu dsvm {kind}"], med[f"cpu baseline {kind}"]
    loads = times[f"load {kind}"]
    print(f"{kind} (load {min(loads):.1f}-{max(loads):.1f}): dsvm median {d:.2f}s (CPU {cd:.2f}s),"
          f" baseline {b:.2f}s (CPU {cb:.2f}s): baseline/dsvm {b / d:.1f}x wall, {cb / cd:.1f}x "
          f"CPU (goal >= {goal}x); the phase alone (inside `dsvm run`, no interpreter "
          f"start-up) {p:.2f}s, {b / p:.1f}x")
    per_rep = [x / y for x, y in zip(times[f"baseline {kind}"], times[f"dsvm {kind}"],
                                     strict=True)]
    print(f"  per repetition baseline/dsvm: {' '.join(f'{r:.1f}x' for r in per_rep)}")
    if f"floor {kind}" in med:
        f, cf = med[f"floor {kind}"], med[f"cpu floor {kind}"]
        print(f"  floor median {f:.2f}s (CPU {cf:.2f}s): dsvm/floor {d / f:.2f}x wall, "
              f"{cd / cf:.2f}x CPU (goal <= 1.3x); phase/floor {p / f:.2f}x; baseline/floor "
              f"{b / f:.1f}x")
        per_rep = [x / y for x, y in zip(times[f"dsvm {kind}"], times[f"floor {kind}"],
                                         strict=True)]
        print(f"  per repetition dsvm/floor: {' '.join(f'{r:.2f}x' for r in per_rep)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="6 small projects, 3 repetitions")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--only", choices=("cold", "warm"),
                        help="measure one case (warm: on trees made by an untimed cold run and re-run)")
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
    checked = work / ("dsvm/new" if "warm" in kinds else "dsvm-cold/new")
    same = heads(checked) == heads(work / checked.parent.name.replace("dsvm", "baseline")
                                   / "new")
    if "warm" in kinds:
        same = same and heads(work / "floor/new") == heads(checked)
    dirty_left = unclean(checked)
    for kind, goal in (("cold", 3), ("warm", 5)):
        if kind in kinds:
            report(times, kind, goal)
    print(f"same commits checked out by all: {'yes' if same else 'NO'}")
    print(f"dsvm's reused workspace left clean: "
          f"{'yes' if not dirty_left else 'NO: ' + ', '.join(dirty_left)}")
    sys.stdout.flush()
    shutil.rmtree(work, ignore_errors=True)  # 80,000 files a tree: after the figures
    return 1 if not same or dirty_left else 0


if __name__ == "__main__":
    sys.exit(main())
