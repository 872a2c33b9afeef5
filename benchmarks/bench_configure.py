"""Benchmark: putting a vendor's Cinder backend into an existing cinder.conf, and rendering local.conf.

(a) ``dsvm configure --apply-cinder`` (one process, every option of the backend);
(b) the baseline a vendor hook script uses: one ``crudini --set`` per option, same edits;
(c) ``localconf.render`` in process (no baseline: devstack-gate's bash is not runnable here).

Data (a 4,000-line devstack-like cinder.conf and a profile with an N-option backend) is
generated under ``benchmarks/.cache/``. Prints the median of each and the ratio b/a.

    .venv/bin/python benchmarks/bench_configure.py [--quick] [--options N] [--runs R]
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
CACHE = ROOT / "benchmarks" / ".cache" / "configure"
sys.path.insert(0, str(ROOT))


def make_data(n_options: int) -> tuple[Path, Path, list[tuple[str, str, str]]]:
    """Write the cinder.conf template and the profile; return them and the edits."""
    CACHE.mkdir(parents=True, exist_ok=True)
    lines = ["[DEFAULT]", "debug = True", "enabled_backends = lvmdriver-1",
             "default_volume_type = lvmdriver-1"]
    for i in range(1, 40):
        lines += ["", f"[section{i:02d}]"] + [f"opt{j:03d} = value {i}-{j}" for j in range(100)]
    lines += ["", "[lvmdriver-1]", "volume_backend_name = lvmdriver-1",
              "volume_driver = cinder.volume.drivers.lvm.LVMVolumeDriver"]
    conf = CACHE / "cinder.conf.template"
    conf.write_text("\n".join(lines) + "\n")
    options = {f"sanco_opt_{k:02d}": f"v{k}" for k in range(n_options - 4)}
    options.update({"san_ip": "192.0.2.20", "san_login": "ci", "san_password": "Fleet2024",
                    "sanco_pool": "tempest"})
    prof = CACHE / "bench-sanco.yaml"
    prof.write_text("extends: base\ncinder:\n  backends:\n    - name: sanco-iscsi\n"
                    "      volume_driver: cinder.volume.drivers.sanco.iscsi.SanCoISCSIDriver\n"
                    "      options:\n" + "".join(f"        {k}: {v}\n" for k, v in options.items()))
    edits = [("DEFAULT", "enabled_backends", "sanco-iscsi"),
             ("DEFAULT", "default_volume_type", "sanco-iscsi"),
             ("sanco-iscsi", "volume_backend_name", "sanco-iscsi"),
             ("sanco-iscsi", "volume_driver",
              "cinder.volume.drivers.sanco.iscsi.SanCoISCSIDriver")]
    edits += [("sanco-iscsi", k, v) for k, v in options.items()]
    return conf, prof, edits


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 runs, 10 options (smoke test)")
    parser.add_argument("--options", type=int, default=30, help="options in the backend")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    runs, n = (2, 10) if args.quick else (args.runs, args.options)
    template, prof, edits = make_data(n)
    dsvm = [sys.executable, "-m", "dsvm"]
    crudini = shutil.which("crudini") or str(Path(sys.executable).parent / "crudini")
    env = {**os.environ, "DSVM_PROFILE_PATH": str(CACHE), "NO_COLOR": "1"}
    work_a, work_b = CACHE / "a.conf", CACHE / "b.conf"

    def run_a() -> None:
        subprocess.run([*dsvm, "--profile", str(prof), "configure", "--apply-cinder",
                        str(work_a)], check=True, env=env, stdout=subprocess.DEVNULL, cwd=ROOT)

    def run_b() -> None:
        for section, option, value in edits:
            subprocess.run([crudini, "--set", str(work_b), section, option, value], check=True)

    from dsvm import profile
    from dsvm.devstack import localconf
    settings = profile.resolve(str(prof), env={})

    results: dict[str, list[float]] = {"a": [], "b": [], "c": []}
    for _ in range(runs):
        shutil.copy(template, work_a)
        shutil.copy(template, work_b)
        results["a"].append(timed(run_a))
        results["b"].append(timed(run_b))
        results["c"].append(timed(lambda: localconf.render(settings)))
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"cinder.conf: {len(template.read_text().splitlines())} lines; backend edits: "
          f"{len(edits)}; runs: {runs} (2-core machine, shared with other jobs: figures "
          "are under load)")
    print(f"(a) dsvm configure --apply-cinder, 1 process : {med['a'] * 1000:8.1f} ms")
    print(f"(b) crudini --set x {len(edits)} (baseline)        : {med['b'] * 1000:8.1f} ms")
    print(f"(c) localconf.render in process             : {med['c'] * 1000:8.1f} ms")
    print(f"ratio b/a: {med['b'] / med['a']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
