"""Benchmark: 300 ini edits on a 4,000-line nova.conf-like file.

(a) ``dsvm ini apply`` (one process), (b) 300 ``dsvm ini set/add-literal/del`` calls,
(c) the baseline: 300 ``crudini`` calls (--set / --set --list / --del), all in the same run,
median of N rounds each. Data is generated under benchmarks/.cache/ini/. Byte-code caches for both
tools go to benchmarks/.cache/ini/pycache (this environment sets PYTHONDONTWRITEBYTECODE, which
would otherwise make every start recompile — unfair to both, and not how an install runs).

    /work/main/.venv/bin/python benchmarks/bench_ini.py [--quick] [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".cache" / "ini"
BIN = Path(sys.executable).parent


def make_conf(lines: int, seed: int = 4) -> str:
    """A nova.conf-like file: ~60 sections, comments, blank lines, long values."""
    rnd = random.Random(seed)
    out: list[str] = []
    sec = 0
    while len(out) < lines:
        out.append(f"[section_{sec}]" if sec else "[DEFAULT]")
        for k in range(rnd.randint(20, 90)):
            if rnd.random() < 0.3:
                out.append(f"# option_{k} = commented default {rnd.random():.6f}")
            out.append(f"option_{k} = value-{rnd.randint(0, 10**6)}")
        out.append("")
        sec += 1
    return "\n".join(out[:lines]) + "\n"


def make_edits(n: int, sections: int, seed: int = 7) -> list[tuple[str, str, str, str]]:
    """(kind, section, option, value): set-replace, set-new, add-literal and del, mixed."""
    rnd = random.Random(seed)
    edits = []
    for i in range(n):
        sec = "DEFAULT" if rnd.random() < 0.2 else f"section_{rnd.randrange(1, sections)}"
        r = rnd.random()
        if r < 0.45:
            edits.append(("set", sec, f"option_{rnd.randrange(20)}", f"new value {i}"))
        elif r < 0.7:
            edits.append(("set", sec, f"vendor_opt_{i}", f"http://198.51.100.{i % 250}/v3&x={i}"))
        elif r < 0.85:
            edits.append(("add-literal", sec, "multi_item", f"item:{i}"))
        else:
            edits.append(("del", sec, f"option_{rnd.randrange(20, 40)}", ""))
    return edits


def dsvm_argv(kind: str, path: str, sec: str, opt: str, val: str) -> list[str]:
    args = [str(BIN / "dsvm"), "ini", kind, path, sec, opt]
    return args + ([val] if kind != "del" else [])


def crudini_argv(kind: str, path: str, sec: str, opt: str, val: str) -> list[str]:
    crudini = str(BIN / "crudini")
    if kind == "set":
        return [crudini, "--set", path, sec, opt, val]
    if kind == "add-literal":
        return [crudini, "--set", "--list", "--list-sep=,", path, sec, opt, val]
    return [crudini, "--del", path, sec, opt]


def batch_text(edits: list[tuple[str, str, str, str]]) -> str:
    import shlex

    return "".join(" ".join(shlex.quote(w) for w in (k, s, o, *([v] if k != "del" else [])))
                   + "\n" for k, s, o, v in edits)


def timed(fn, *args: object) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


FAILED: dict[str, int] = {}


def run_calls(argvs: list[list[str]], env: dict[str, str], check: bool = True) -> None:
    """Run each argv; crudini (iniparse) crashes deleting an option twice, so it is unchecked."""
    for argv in argvs:
        done = subprocess.run(argv, check=check, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        if done.returncode:
            FAILED[Path(argv[0]).name] = FAILED.get(Path(argv[0]).name, 0) + 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke test: 30 edits, 3 rounds")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--edits", type=int, default=300)
    ap.add_argument("--lines", type=int, default=4000)
    opts = ap.parse_args()
    rounds, n = (3, 30) if opts.quick else (opts.rounds, opts.edits)
    CACHE.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(CACHE / "pycache")
    base = make_conf(opts.lines)
    sections = base.count("\n[")
    edits = make_edits(n, sections)
    (CACHE / "nova.conf").write_text(base)
    (CACHE / "edits.txt").write_text(batch_text(edits))
    work = CACHE / "work"
    work.mkdir(exist_ok=True)

    def fresh(name: str) -> str:
        path = work / name
        shutil.copyfile(CACHE / "nova.conf", path)
        return str(path)

    # warm the byte-code caches once (not timed)
    run_calls([dsvm_argv("set", fresh("warm.conf"), "DEFAULT", "x", "1"),
               crudini_argv("set", fresh("warm.conf"), "DEFAULT", "x", "1")], env)
    times: dict[str, list[float]] = {"a": [], "b": [], "c": []}
    for _ in range(rounds):
        pa, pb, pc = fresh("a.conf"), fresh("b.conf"), fresh("c.conf")
        batch = [str(BIN / "dsvm"), "ini", "apply", pa, str(CACHE / "edits.txt")]
        times["a"].append(timed(run_calls, [batch], env))
        times["b"].append(timed(run_calls, [dsvm_argv(e[0], pb, *e[1:]) for e in edits], env))
        times["c"].append(timed(run_calls, [crudini_argv(e[0], pc, *e[1:]) for e in edits], env,
                                False))
    same = (work / "a.conf").read_bytes() == (work / "b.conf").read_bytes()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"file: {opts.lines} lines, {sections} sections; {n} edits "
          f"(set/new/add-literal/del mixed); {rounds} rounds; medians; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"(a) dsvm ini apply, one process : {med['a']:8.3f} s")
    print(f"(b) {n} x dsvm ini              : {med['b']:8.3f} s  ({med['b'] / n * 1000:.1f} ms/call)")
    print(f"(c) {n} x crudini (baseline)    : {med['c']:8.3f} s  ({med['c'] / n * 1000:.1f} ms/call)")
    print(f"ratios: c/a = {med['c'] / med['a']:.1f}x (goal >= 30x); "
          f"c/b = {med['c'] / med['b']:.2f}x (goal >= 1.0)")
    print(f"(a) and (b) produce identical files: {same}; failed calls: {FAILED or 'none'} "
          "(crudini --del of an option already deleted exits 1 with a KeyError)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
