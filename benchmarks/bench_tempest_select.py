"""Benchmark: Tempest selection and the stestr invocation, dsvm vs stestr, in the same run.

1. Selection: a 2,000-test Tempest-shaped suite (generated under benchmarks/.cache), tox's
   full regex plus 200 exclude entries. dsvm: ``select()`` + ``filter_ids()`` over the id
   list; baseline: ``stestr list REGEX --exclude-list FILE`` (what `tempest run --list-tests`
   does). Both must pick the same ids.
2. Invocation overhead: the same selection run by dsvm's phase (in process, and through the
   ``dsvm tempest`` CLI) vs ``stestr run --subunit`` called directly.

    .venv/bin/python benchmarks/bench_tempest_select.py [--quick]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dsvm import phase, profile, tempest  # noqa: E402
from dsvm.console import Ui  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache" / "tempest_select"
BIN = Path(sys.executable).parent
AREAS = ["compute", "volume", "network", "image", "identity", "object_storage"]
ATTRS = ["smoke", "slow", "negative", "volume", "compute", "network"]


def generate(n_tests: int = 2000, per_class: int = 10) -> tuple[Path, list[str]]:
    """Write a Tempest-shaped suite of n_tests (api and scenario) and return (dir, ids)."""
    suite = CACHE / "suite"
    marker = suite / f".generated-{n_tests}"
    rng = random.Random(47)
    if not marker.exists():
        shutil.rmtree(suite, ignore_errors=True)
        (suite / "tempest").mkdir(parents=True)
        (suite / ".stestr.conf").write_text("[DEFAULT]\ntest_path=./tempest\ntop_dir=./\n"
                                            "group_regex=([^\\.]*\\.)*\n")
        (suite / "tempest" / "__init__.py").write_text("")
        for c in range(n_tests // per_class):
            kind = "scenario" if c % 15 == 0 else "api"
            area = AREAS[c % len(AREAS)]
            pkg = suite / "tempest" / kind / area
            pkg.mkdir(parents=True, exist_ok=True)
            for init in (pkg / "__init__.py", pkg.parent / "__init__.py"):
                init.touch()
            lines = ["import testtools", "from testtools.testcase import attr", "",
                     f"class Test{c}(testtools.testcase.WithAttributes, testtools.TestCase):"]
            for t in range(per_class):
                tags = sorted(rng.sample(ATTRS, rng.choice([0, 0, 1, 2])))
                uuid = f"{c:08x}-{t:04x}-4000-8000-{rng.getrandbits(48):012x}"
                lines += [f"    @attr({', '.join(repr(a) for a in ['id-' + uuid, *tags])})",
                          f"    def test_{area}_{c}_{t}(self):", "        pass", ""]
            (pkg / f"test_mod_{c}.py").write_text("\n".join(lines))
        subprocess.run([str(BIN / "stestr"), "init"], cwd=suite, check=True,
                       stdout=subprocess.DEVNULL)
        marker.touch()
    out = subprocess.run([str(BIN / "stestr"), "list"], cwd=suite, check=True,
                         capture_output=True, text=True).stdout
    return suite, [ln for ln in out.split("\n") if ln.strip()]


def exclusions(ids: list[str], n: int = 200) -> list[dict[str, str]]:
    """n exclude entries shaped like a vendor's list: method names and a few classes."""
    rng = random.Random(7)
    picked = rng.sample(ids, n)
    out = []
    for i, test_id in enumerate(picked):
        cls, method = test_id.split("[")[0].rsplit(".", 1)
        regex = re.escape(cls) + r"\." if i % 20 == 0 else method + r"\b"
        out.append({"regex": regex, "reason": f"vendor bug {1000 + i}"})
    return out


def settings_for(suite: Path, excl: list[dict[str, str]], selection: str = "regex"):  # type: ignore[no-untyped-def]
    import yaml

    path = CACHE / "profile.yaml"
    path.write_text(yaml.safe_dump({"tempest": {"selection": selection, "regex": tempest.API,
                                                "exclude": excl, "dir": str(suite),
                                                "user": "", "concurrency": 2,
                                                # the suite's own `tempest` imports here
                                                "stestr": str(BIN / "stestr")}}))
    env = {"HOME": str(CACHE), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return profile.resolve(str(path), env), env


def median_time(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_selection(suite: Path, ids: list[str], excl: list[dict[str, str]],
                    repeat: int) -> None:
    settings, _ = settings_for(suite, excl)
    exclude_file = CACHE / "exclude.txt"
    sel = tempest.select(settings, cpus=2)
    exclude_file.write_text(tempest.exclude_list_text(sel.exclude))
    argv = [str(BIN / "stestr"), "list", tempest.API, "--exclude-list", str(exclude_file)]

    def baseline() -> set[str]:
        out = subprocess.run(argv, cwd=suite, check=True, capture_output=True, text=True)
        return {ln for ln in out.stdout.split("\n") if ln.strip()}

    def dsvm() -> set[str]:
        return set(tempest.filter_ids(ids, tempest.select(settings, cpus=2)).ids)

    assert dsvm() == baseline(), "dsvm and stestr disagree on the selection"
    t_dsvm = median_time(dsvm, max(repeat * 10, 20))
    t_base = median_time(baseline, repeat)
    print(f"selection of {len(ids)} ids, full regex + {len(excl)} exclusions "
          f"({len(dsvm())} selected):")
    print(f"  dsvm select+filter_ids  median {t_dsvm * 1000:8.2f} ms")
    print(f"  stestr list (baseline)  median {t_base * 1000:8.2f} ms")
    print(f"  ratio: dsvm is {t_base / t_dsvm:.0f}x faster (goal >= 5x)")


def bench_invocation(suite: Path, excl: list[dict[str, str]], repeat: int) -> None:
    settings, env = settings_for(suite, excl)
    sel = tempest.select(settings, cpus=2)
    include = CACHE / "include.txt"
    include.write_text(tempest.include_list_text(sel.passes[0]))
    exclude = CACHE / "exclude.txt"
    exclude.write_text(tempest.exclude_list_text(sel.exclude))
    direct_argv = [str(BIN / "stestr"), "run", "--subunit", "--concurrency", "2",
                   "--include-list", str(include), "--exclude-list", str(exclude)]
    ws = CACHE / "ws"
    ws.mkdir(exist_ok=True)

    def direct() -> None:
        with open(CACHE / "direct.subunit", "wb") as fh:
            subprocess.run(direct_argv, cwd=suite, check=True, stdout=fh, env={**os.environ})

    def in_process() -> None:
        ctx = phase.context(settings, env, workspace=ws)
        ctx.ui = Ui(plain=True, stream=io.StringIO(), err_stream=io.StringIO())
        result = tempest.run_phase(ctx)
        assert result.outputs["counts"]["passed"] > 1000, result.outputs["counts"]

    cli_argv = [str(BIN / "dsvm"), "--profile", str(CACHE / "profile.yaml"), "tempest",
                "--workspace", str(ws)]

    def via_cli() -> None:
        subprocess.run(cli_argv, check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, **env, "NO_COLOR": "1"})

    cases = [("stestr run --subunit (baseline)", direct),
             ("dsvm run_phase (in process)", in_process), ("dsvm tempest (CLI)", via_cli)]
    times: dict[str, list[float]] = {name: [] for name, _ in cases}
    for rep in range(repeat):  # interleaved, rotating order: load drifts over minutes
        for name, fn in cases[rep % 3:] + cases[:rep % 3]:
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    rows = [(name, statistics.median(times[name])) for name, _ in cases]
    base = rows[0][1]
    print("stestr invocation, same selection, 2 workers:")
    for name, t in rows:
        extra = "" if t is base else f"  ({t - base:+.2f} s vs stestr)"
        print(f"  {name:32s} median {t:6.2f} s{extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions (smoke test)")
    args = parser.parse_args()
    repeat = 2 if args.quick else 5
    CACHE.mkdir(parents=True, exist_ok=True)
    suite, ids = generate()
    excl = exclusions(ids)
    print(f"(2 cores, load average {os.getloadavg()[0]:.1f}: figures measured under load)")
    bench_selection(suite, ids, excl, repeat)
    bench_invocation(suite, excl, repeat)


if __name__ == "__main__":
    main()
