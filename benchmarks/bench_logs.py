"""Benchmark: ``dsvm logs collect`` (redact + gzip + index) vs devstack-gate's copy + gzip -9.

Generates a fake node log tree under ``benchmarks/.cache/`` (default 1 GB in 2,000 files:
oslo-style service logs, apache access logs, configs, a few big files; secrets seeded in
every form), then times, in the same run and alternately:

* baseline: ``cp -a`` of the tree, then ``find logs -type f -exec gzip -9 {} +``
  (devstack-gate's cleanup_host copy followed by its ``gzip -9`` pass, serial);
* dsvm: ``dsvm logs collect --root TREE --dest OUT`` (redaction, gzip on logs.jobs workers,
  index.html per dir, manifest.json).

Prints medians, the ratio, and the peak memory of each process tree (sum of RSS of the
process and its descendants, sampled every 20 ms). Usage:

    .venv/bin/python benchmarks/bench_logs.py            # 1 GB, 2000 files, 3 runs each
    .venv/bin/python benchmarks/bench_logs.py --quick    # 60 MB, 200 files, 1 run each
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dsvm import proc  # noqa: E402

CACHE = REPO / "benchmarks" / ".cache"
SECRETS = ["Adm1n-S3cret-bench", "DbPw-bench-9d2e", "Rabb1t-bench-4a7b", "Svc-bench-0c3d",
           "AcmeSan-bench-55e1"]
SERVICES = ["n-api", "n-cpu", "n-sch", "n-cond", "c-api", "c-vol", "c-sch", "c-bak", "key",
            "g-api", "q-svc", "q-agt", "q-dhcp", "q-l3", "q-meta", "placement-api", "etcd"]
DIRS = ["var/log/apache2", "var/log/libvirt/qemu", "var/log/rabbitmq", "var/log/mysql",
        "var/log/openvswitch", "var/log/ceph", "var/log/bench/cinder", "var/log/bench/nova",
        "var/log/bench/neutron", "var/log/bench/acme"]


def line_pool(rng: random.Random, n: int) -> list[str]:
    """Realistic log lines; about 1 in 40 holds a secret in one of the forms logs hold."""
    s = SECRETS
    secret_forms = [
        "DEBUG oslo_messaging._drivers.impl_rabbit [-] Connecting to "
        f"rabbit://stackrabbit:{s[2]}@10.0.0.2:5672/",
        'DEBUG keystoneauth.session [-] REQ: curl -g -i -X GET http://10.0.0.2/identity '
        '-H "X-Auth-Token: gAAAAABm{r:08x}{r:08x}"',
        f"DEBUG oslo_db.sqlalchemy [-] connection = mysql+pymysql://root:{s[1]}@127.0.0.1/nova",
        "DEBUG {svc}.api [-] Request headers: {{'Authorization': 'Bearer eyJ{r:08x}.x.y'}}",
        f'DEBUG acme.client [-] body: {{{{"password": "{s[4]}", "user": "admin"}}}}',
        f"+ functions-common:iniset:12 : iniset /etc/nova/nova.conf keystone_authtoken "
        f"password {s[3]}",
    ]
    plain = [
        "INFO {svc}.manager [req-{r:08x}-aaaa-bbbb admin admin] [instance: {r:08x}-1c2d] "
        "Took {f:.2f} seconds to spawn the instance on the hypervisor.",
        "DEBUG oslo_concurrency.lockutils [req-{r:08x}] Lock \"compute_resources\" acquired "
        "by \"nova.compute.resource_tracker.ResourceTracker._update_available_resource\" :: "
        "waited 0.000s inner /usr/local/lib/python3.10/dist-packages/oslo_concurrency/"
        "lockutils.py:{n}",
        "DEBUG {svc}.wsgi [req-{r:08x}] 10.0.0.{n} \"GET /v2.1/servers/detail HTTP/1.1\" "
        "status: 200 len: {n} microversion: 2.1 time: {f:.6f}",
        "WARNING keystonemiddleware.auth_token [-] Using token validation for {r:08x}",
        "DEBUG oslo_service.service [-] database.connection = **** log_opt_values",
        "ERROR {svc}.volume.manager [req-{r:08x}] Failed to attach volume {r:08x}: "
        "Stderr: 'iscsiadm: No session found.'",
        "10.0.0.{n} - - [01/May/2024:12:00:00 +0000] \"POST /identity/v3/auth/tokens "
        "HTTP/1.1\" 201 {n} \"-\" \"python-keystoneclient\"",
        "DEBUG {svc}.agent.linux.utils [-] Running command: ['sudo', 'ip', 'netns', 'exec', "
        "'qrouter-{r:08x}', 'ip', '-o', 'link', 'show'] execute {n}",
    ]
    out = []
    for i in range(n):
        fmt = rng.choice(secret_forms) if rng.random() < 0.025 else rng.choice(plain)
        stamp = f"2024-05-01 12:{i // 3600 % 60:02d}:{i // 60 % 60:02d}.{i % 1000:03d}"
        out.append(f"{stamp} {rng.randint(1000, 9999)} " + fmt.format(
            svc=rng.choice(SERVICES), r=rng.getrandbits(32), n=rng.randint(1, 99999),
            f=rng.random() * 10) + "\n")
    return out


def generate(total_mb: int, files: int) -> Path:
    """Build (once) a tree of ``files`` files totalling ``total_mb`` MB; return its root."""
    root = CACHE / f"logtree-{total_mb}mb-{files}"
    if (root / ".complete").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(42)
    pool = "".join(line_pool(rng, 200_000)).encode()  # ~40 MB of distinct lines
    # Sizes: a few large service logs, a long tail of small ones (weights ~ lognormal).
    weights = [rng.lognormvariate(0, 1.6) for _ in range(files)]
    scale = total_mb * (1 << 20) / sum(weights)
    for i, w in enumerate(weights):
        size = max(200, int(w * scale))
        rel = (f"opt/stack/new/screen-logs/screen-{SERVICES[i]}.log" if i < len(SERVICES)
               else f"{DIRS[i % len(DIRS)]}/sub{i % 7}/{SERVICES[i % len(SERVICES)]}-{i}.log")
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        start = rng.randrange(0, len(pool) - 1)
        with open(path, "wb") as fh:
            left = size
            while left > 0:
                piece = pool[start:start + left]
                fh.write(piece)
                left -= len(piece)
                start = 0
    conf = root / "opt/stack/new/devstack/local.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(f"[[local|localrc]]\nADMIN_PASSWORD={SECRETS[0]}\n"
                    f"DATABASE_PASSWORD={SECRETS[1]}\nRABBIT_PASSWORD={SECRETS[2]}\n"
                    f"SERVICE_PASSWORD={SECRETS[3]}\n[[post-config|$CINDER_CONF]]\n[acme]\n"
                    f"san_password = {SECRETS[4]}\n")
    (root / ".complete").write_text("ok\n")
    return root


class PeakRss:
    """Samples the summed RSS of a process tree (the process and all its descendants)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._root: int | None = None

    def watch(self, pid: int) -> None:
        self._root = pid

    def start(self) -> PeakRss:
        self._thread.start()
        return self

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak

    def _loop(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.wait(0.02):
            if self._root is None:
                continue
            parents: dict[int, int] = {}
            rss: dict[int, int] = {}
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry}/stat") as fh:
                        fields = fh.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                parents[int(entry)] = int(fields[1])
                rss[int(entry)] = int(fields[21]) * page
            tree = {self._root}
            changed = True
            while changed:
                changed = False
                for pid, ppid in parents.items():
                    if ppid in tree and pid not in tree:
                        tree.add(pid)
                        changed = True
            self.peak = max(self.peak, sum(rss.get(p, 0) for p in tree))


CPU: list[float] = []  # CPU seconds (user + sys) of each timed command's process tree


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, int]:
    """Run argv (through a thin Popen, to watch its process tree); return (seconds, peak)."""
    import resource
    import subprocess  # the benchmark measures a tree of processes; dsvm code uses proc.py

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    sampler = PeakRss().start()
    start = time.perf_counter()
    child = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    sampler.watch(child.pid)
    _, err = child.communicate()
    seconds = time.perf_counter() - start
    peak = sampler.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    if child.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {err.decode()[-2000:]}")
    return seconds, peak


def run_baseline(tree: Path, work: Path) -> tuple[float, int]:
    out = work / "baseline-logs"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    s1, m1 = timed(["cp", "-a", str(tree), str(out)], work)
    s2, m2 = timed(["find", str(out), "-type", "f", "-exec", "gzip", "-9", "{}", "+"], work)
    CPU[-2:] = [CPU[-2] + CPU[-1]]
    return time.perf_counter() - start, max(m1, m2)


def run_dsvm(tree: Path, work: Path, profile: Path) -> tuple[float, int]:
    out = work / "dsvm-logs"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(work / "dsvm-logs.1", ignore_errors=True)
    env = {**os.environ, "WORKSPACE": str(work), "NO_COLOR": "1"}
    return timed([str(REPO / ".venv/bin/dsvm"), "--profile", str(profile), "logs", "collect",
                  "--root", str(tree), "--dest", str(out), "--workspace", str(work)], work, env)


def check_redacted(work: Path) -> int:
    """Count seeded secrets left in dsvm's output (must be 0)."""
    import gzip

    leaks = 0
    for path in (work / "dsvm-logs").rglob("*.gz"):
        data = gzip.decompress(path.read_bytes())
        leaks += sum(data.count(s.encode()) for s in SECRETS)
    return leaks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="60 MB, 200 files, 1 run")
    parser.add_argument("--mb", type=int, help="tree size in MB (default 1024)")
    parser.add_argument("--files", type=int, help="file count (default 2000)")
    parser.add_argument("--runs", type=int, help="runs of each (default 3)")
    parser.add_argument("--level", type=int, default=6, help="dsvm's logs.gzip_level")
    parser.add_argument("--engine", choices=("auto", "isal", "zlib"), default="auto",
                        help="dsvm's logs.gzip_engine (auto: ISA-L when installed)")
    args = parser.parse_args()
    mb = args.mb or (60 if args.quick else 1024)
    files = args.files or (200 if args.quick else 2000)
    runs = args.runs or (1 if args.quick else 3)
    for tool in ("cp", "find", "gzip"):
        if proc.which(tool) is None:
            raise SystemExit(f"{tool} not found")
    t0 = time.perf_counter()
    tree = generate(mb, files)
    print(f"tree: {tree} ({mb} MB, {files} files; ready in {time.perf_counter() - t0:.1f}s)")
    work = CACHE / "work"
    work.mkdir(parents=True, exist_ok=True)
    profile = work / "bench.yaml"
    profile.write_text(f"extends: base\nlogs:\n  snapshots: false\n  gzip_level: {args.level}\n"
                       f"  gzip_engine: {args.engine}\n"
                       "  sources:\n    - {src: /var/log/bench, dest: bench}\n")
    base_t, base_m, dsvm_t, dsvm_m, base_c, dsvm_c = [], [], [], [], [], []
    for i in range(runs):
        s, m = run_baseline(tree, work)
        base_t.append(s)
        base_m.append(m)
        base_c.append(CPU[-1])
        s, m = run_dsvm(tree, work, profile)
        dsvm_t.append(s)
        dsvm_m.append(m)
        dsvm_c.append(CPU[-1])
        print(f"run {i + 1}/{runs}: baseline {base_t[-1]:.1f}s ({base_m[-1] >> 20} MB), "
              f"dsvm {dsvm_t[-1]:.1f}s ({dsvm_m[-1] >> 20} MB)", flush=True)
    leaks = check_redacted(work)
    size = lambda d: sum(p.stat().st_size for p in (work / d).rglob("*") if p.is_file())  # noqa: E731
    b, d = statistics.median(base_t), statistics.median(dsvm_t)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\ncpus: {os.cpu_count()}, load average at the end: {load}")
    print(f"baseline (cp -a + find -exec gzip -9, serial): median {b:.1f}s, "
          f"CPU {statistics.median(base_c):.1f}s, peak tree RSS {max(base_m) >> 20} MB, "
          f"output {size('baseline-logs') >> 20} MB")
    from dsvm.logs.store import gzip_engine, isal_level

    engine = gzip_engine(args.engine)
    how = f"igzip {isal_level(args.level)}" if engine == "isal" else f"zlib {args.level}"
    print(f"dsvm logs collect (redact + {how} + index): median {d:.1f}s, "
          f"CPU {statistics.median(dsvm_c):.1f}s, peak tree RSS {max(dsvm_m) >> 20} MB, "
          f"output {size('dsvm-logs') >> 20} MB")
    print(f"ratio baseline/dsvm: {b / d:.2f}x; seeded secrets left in dsvm output: {leaks}")
    return 0 if leaks == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
