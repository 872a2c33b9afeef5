"""The gate job's own overhead: everything ``dsvm run`` does outside stack.sh and the tests.

Setup (under benchmarks/.cache/job): a git cache of 40 projects (the fake devstack, a 50-test
stestr suite as openstack/tempest, 38 fillers), a profile, the fake stack.sh told to finish at
once, run as an unprivileged user (created with useradd when running as root).

Measured in the same run, median of N runs each:
* dsvm: ``dsvm run`` end to end; overhead = wall time − stack.sh's own seconds − the tempest
  phase (stestr running the tests). The per-phase split comes from the state file.
* baseline = the sum of three shell baselines doing the same work the way devstack-gate did:
  workspace (per project: rsync from the cache, ``git remote set-url``, ``checkout``,
  ``reset --hard``, ``clean -xfdq``), results (``subunit2csv`` + ``subunit-stats`` on
  the stream) and logs (``cp -a`` of the log tree, then ``find -exec gzip -9``).

    .venv/bin/python benchmarks/bench_job.py [--quick] [--runs N]
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

from tests.fixtures import devstack as fake  # noqa: E402
from tests.fixtures.job_builders import make_cache, write_profile  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache" / "job"
PROJECTS = 40
BASELINE_WS = r"""
cache=$1; dest=$2; shift 2
mkdir -p "$dest"
for p in "$@"; do
  short=${p##*/}
  rsync -a "$cache/$p/" "$dest/$short/"
  cd "$dest/$short"
  git remote add origin "file://$cache/$p" 2>/dev/null || git remote set-url origin "file://$cache/$p"
  git checkout -q master
  git reset -q --hard master
  git clean -x -f -d -q
done
"""


def stack_user() -> str:
    import pwd

    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name
    try:
        pwd.getpwnam(fake.STACK_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
                        "/nonexistent", "--shell", "/bin/bash", fake.STACK_USER], check=True)
    return fake.STACK_USER


def setup(user: str) -> tuple[Path, list[str]]:
    if CACHE.exists():
        shutil.rmtree(CACHE)
    CACHE.mkdir(parents=True)
    names = make_cache(CACHE / "cache", tests=50, extra_projects=PROJECTS - 2)
    fake.grant_traverse(CACHE)
    return CACHE, names


def env_for(work: Path, base: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZUUL_", "DEVSTACK_GATE_"))}
    env.update({"WORKSPACE": str(work), "BASE": str(base), "ZUUL_BRANCH": "master",
                "ZUUL_PROJECT": "openstack/devstack", "BUILD_TIMEOUT": "1800000",
                "DEVSTACK_GATE_TIMEOUT_BUFFER": "1",
                "DSVM_RESULTS_DB": f"sqlite:///{work}/results.db"})
    env.pop("VIRTUAL_ENV", None)
    return env


def run_dsvm(root: Path, user: str, names: list[str], n: int) -> dict[str, float]:
    run_dir = root / f"run{n}"
    base, work = run_dir / "base", run_dir / "ws"
    work.mkdir(parents=True)
    profile = write_profile(run_dir / "job.yaml", base, root / "cache", user, names)
    rss = run_dir / "rss.txt"  # GNU time: the peak RSS of dsvm and of any process it waited for
    t0 = time.monotonic()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss), sys.executable, "-m",
                           "dsvm", "--no-color", "--profile", str(profile), "run"],
                          env=env_for(work, base), cwd=work, capture_output=True,
                          text=True, check=False)
    wall = time.monotonic() - t0
    if done.returncode != 0:
        sys.exit(f"dsvm run failed (exit {done.returncode}):\n{done.stdout[-3000:]}"
                 f"{done.stderr[-2000:]}")
    phases = json.loads((work / ".dsvm/state.json").read_text())["phases"]
    out = {name: float(p["seconds"]) for name, p in phases.items() if p["status"] != "skipped"}
    out["stack.sh"] = float(phases["stack"]["outputs"]["seconds"])
    out["wall"] = wall
    out["overhead"] = wall - out["stack.sh"] - out["tempest"]
    out["peak MB"] = int(rss.read_text().split()[-1]) / 1024
    return out


def run_baseline(root: Path, names: list[str], n: int) -> dict[str, float]:
    ref = root / "run0"  # the artefacts of a dsvm run: its stream and its log tree
    out_dir = root / f"baseline{n}"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir()
    t0 = time.monotonic()
    subprocess.run(["bash", "-c", BASELINE_WS, "ws", str(root / "cache"), str(out_dir / "new"),
                    *names], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t1 = time.monotonic()
    stream = ref / "ws/.dsvm/results/testrepository.subunit"
    bindir = Path(sys.executable).parent
    with open(stream, "rb") as src, open(out_dir / "results.csv", "wb") as dst:
        subprocess.run([str(bindir / "subunit2csv")], stdin=src, stdout=dst, check=True)
    with open(stream, "rb") as src:
        subprocess.run([str(bindir / "subunit-stats")], stdin=src, stdout=subprocess.DEVNULL,
                       check=False)
    t2 = time.monotonic()
    logs = out_dir / "logs"
    logs.mkdir()
    for tree in (ref / "base/new/logs", ref / "ws/.dsvm"):
        subprocess.run(["cp", "-a", str(tree), str(logs / tree.name)], check=True)
    subprocess.run(["find", str(logs), "-type", "f", "-exec", "gzip", "-9", "-f", "{}", "+"],
                   check=True)
    t3 = time.monotonic()
    return {"workspace": t1 - t0, "results": t2 - t1, "logs": t3 - t2, "total": t3 - t0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run of each (smoke test)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs = 1 if args.quick else max(5, args.runs)
    user = stack_user()
    root, names = setup(user)
    dsvm_runs, base_runs = [], []
    for n in range(runs):
        dsvm_runs.append(run_dsvm(root, user, names, n))
        base_runs.append(run_baseline(root, names, n))
        print(f"run {n + 1}/{runs}: dsvm wall {dsvm_runs[-1]['wall']:.2f}s overhead "
              f"{dsvm_runs[-1]['overhead']:.2f}s; baseline {base_runs[-1]['total']:.2f}s",
              flush=True)
    med = {k: statistics.median(r[k] for r in dsvm_runs) for k in dsvm_runs[0]}
    bmed = {k: statistics.median(r[k] for r in base_runs) for k in base_runs[0]}
    print(f"\n{PROJECTS}-project workspace, 50-test suite, stack.sh instant; median of {runs} "
          f"(2 cores, measured while other engineers ran their suites: figures are under load)")
    print(f"{'step':<16}{'dsvm s':>10}{'baseline s':>12}{'ratio':>8}")
    for name in ("workspace", "configure", "stack", "stack.sh", "tempest", "results", "logs"):
        b = bmed.get(name)
        ratio = f"{med[name] / b:7.2f}x" if b else ""
        print(f"{name:<16}{med.get(name, 0):>10.2f}{(f'{b:.2f}' if b else '-'):>12}{ratio:>8}")
    print(f"{'job wall':<16}{med['wall']:>10.2f}")
    print(f"{'job overhead':<16}{med['overhead']:>10.2f}{bmed['total']:>12.2f}"
          f"{med['overhead'] / bmed['total']:>7.2f}x   (goal: under 10 s)")
    print(f"{'peak RSS':<16}{max(r['peak MB'] for r in dsvm_runs):>10.0f} MB  (largest process "
          "of any run; goal: under 200 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
