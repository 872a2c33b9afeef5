"""Benchmark: ``dsvm logs collect`` (redact + gzip + index) vs devstack-gate's copy + gzip -9.

Generates issue 18's node tree under ``benchmarks/.cache/`` (default 1 GB: three 100 MB service
logs, 1,600 qemu logs, per-service etc/ with real option names and 1,200-rule policy.yaml
files, a 60 MB Tempest log with HTTP request logging, other service and apache logs; secrets
seeded in every form), then times, in the same run and alternately:

* baseline: ``cp -a`` of the tree, then ``find logs -type f -exec gzip -9 {} +``
  (devstack-gate's cleanup_host copy followed by its ``gzip -9`` pass, serial);
* floor: ``cp -a``, then ``gzip -1`` on two processes (what copying and compressing cost);
* dsvm: ``dsvm logs collect --root TREE --dest OUT`` (redaction, gzip on logs.jobs workers,
  index.html per dir, manifest.json).

Prints medians, the ratios, the peak memory of each process tree (sum of RSS of the process
and its descendants, sampled every 20 ms), redaction's own cost in ms/MB, the seeded secrets
left (must be 0) and anything non-secret that was masked (must be nothing). Usage:

    .venv/bin/python benchmarks/bench_logs.py            # 1 GB, 1,600 qemu logs, 3 runs
    .venv/bin/python benchmarks/bench_logs.py --quick    # 60 MB, 100 qemu logs, 1 run
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
           "AcmeSan-bench-55e1", "MemcacheKey-bench-77f0"]
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


def _fill(path: Path, size: int, pool: bytes, rng: random.Random) -> None:
    """Write ``size`` bytes of ``pool`` (from a random line start) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    start = pool.find(b"\n", rng.randrange(0, len(pool) - 1)) + 1
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            piece = pool[start:start + left]
            fh.write(piece)
            left -= len(piece)
            start = 0


LOOKALIKES = {  # real plain options whose names look secret, with values logs quote a lot
    "DEFAULT": {"max_token_size": "8192", "service_token_roles": "service",
                "auth_strategy": "keystone"},
    "token": {"expiration": "1800", "cache_time": "1800"},
    "libvirt": {"rbd_secret_uuid": "457eb676-33da-42ec-9a8c-9293d545c337"},
    "keystone_authtoken": {"auth_type": "password", "token_cache_time": "300",
                           "service_token_roles_required": "true"},
    "auth": {"methods": "external,password,token",
             "password": "keystone.auth.plugins.password.Password"},
}


def service_conf(svc: str) -> str:
    s = SECRETS
    lines = [f"[DEFAULT]\ntransport_url = rabbit://stackrabbit:{s[2]}@10.0.0.2:5672/\n"
             f"debug = True\n[database]\nconnection = mysql+pymysql://root:{s[1]}@127.0.0.1/"
             f"{svc}?charset=utf8\n[keystone_authtoken]\nusername = {svc}\n"
             f"password = {s[3]}\nmemcache_secret_key = {s[5]}\n"]
    for section, opts in LOOKALIKES.items():
        lines.append(f"[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in opts.items()))
    return "".join(lines)


def policy_yaml(svc: str, rules: int) -> str:
    words = ["change_password", "revoke_token", "get_credential", "create_secret",
             "update_password", "list_tokens", "os-admin-password", "validate_token"]
    return "".join(f'"{svc}:{words[i % len(words)]}_{i}": "rule:admin_required or '
                   f'project_id:%(project_id)s"\n' for i in range(rules))


def generate(total_mb: int, files: int) -> Path:
    """Build (once) issue 18's node tree scaled to ``total_mb``: three service logs of 10% each
    (100 MB at 1 GB), ``files`` qemu logs, per-service etc/ with real config option names
    (secret and not) and 1,200-rule policy.yaml files, a 6% Tempest log with HTTP request
    logging, the rest in other service and apache logs; secrets seeded in every form."""
    root = CACHE / f"logtree-i18-{total_mb}mb-{files}"
    if (root / ".complete").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(42)
    pool = "".join(line_pool(rng, 200_000)).encode()  # ~40 MB of distinct lines
    tempest = "".join(tempest_pool(rng, 60_000)).encode()
    mb = 1 << 20
    for svc in ("n-cpu", "c-vol", "n-api"):
        _fill(root / f"opt/stack/new/screen-logs/screen-{svc}.log", total_mb * mb // 10, pool,
              rng)
    _fill(root / "opt/stack/new/tempest/tempest.log", total_mb * mb * 6 // 100, tempest, rng)
    for i in range(files):
        _fill(root / f"var/log/libvirt/qemu/instance-{i:08x}.log", 8 * 1024, pool, rng)
    for svc in ("nova", "cinder", "keystone", "glance", "neutron", "placement"):
        etc = root / "etc" / svc
        etc.mkdir(parents=True, exist_ok=True)
        (etc / f"{svc}.conf").write_text(service_conf(svc))
        (etc / "policy.yaml").write_text(policy_yaml(svc, 1200))
        (etc / "api-paste.ini").write_text("[composite:main]\nuse = egg:Paste#urlmap\n")
    others = [svc for svc in SERVICES if svc not in ("n-cpu", "c-vol", "n-api")]
    used = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    rest = max(0, total_mb * mb - used)
    for svc in others:
        _fill(root / f"opt/stack/new/screen-logs/screen-{svc}.log", rest * 9 // 10
              // len(others), pool, rng)
    for i in range(20):
        _fill(root / f"var/log/bench/apache/access-{i}.log", rest // 10 // 20, pool, rng)
    conf = root / "opt/stack/new/devstack/local.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(f"[[local|localrc]]\nADMIN_PASSWORD={SECRETS[0]}\n"
                    f"DATABASE_PASSWORD={SECRETS[1]}\nRABBIT_PASSWORD={SECRETS[2]}\n"
                    f"SERVICE_PASSWORD={SECRETS[3]}\n[[post-config|$CINDER_CONF]]\n[acme]\n"
                    f"san_password = {SECRETS[4]}\n")
    (root / ".complete").write_text("ok\n")
    return root


def tempest_pool(rng: random.Random, n: int) -> list[str]:
    """Tempest's log with HTTP request logging: requests, headers and bodies."""
    s = SECRETS
    forms = [
        "INFO tempest.lib.common.rest_client [req-{r:08x}] Request (ServersTest:test_{n}): "
        "200 GET http://10.0.0.2/compute/v2.1/servers/{r:08x} 0.{n}s",
        "DEBUG tempest.lib.common.rest_client [req-{r:08x}] Request - Headers: "
        "{{'Content-Type': 'application/json', 'Accept': 'application/json', "
        "'X-Auth-Token': '<omitted>'}}",
        "DEBUG tempest.lib.common.rest_client [req-{r:08x}] Response - Headers: "
        "{{'date': 'Wed, 01 May 2024', 'content-length': '{n}', 'x-subject-token': "
        "'gAAAAABm{r:08x}{r:08x}', 'status': '201'}}",
        "        Body: {{\"server\": {{\"id\": \"{r:08x}\", \"adminPass\": "
        "\"Pw{r:08x}\", \"links\": []}}}}",
        "        Body: {{\"token\": {{\"methods\": [\"password\"], \"expires_at\": "
        "\"2024-05-01T13:00:00Z\", \"max_token_size\": 8192}}}}",
        f"DEBUG tempest [-] auth.admin_password = {s[0]} (from tempest.conf)",
    ]
    out = []
    for i in range(n):
        stamp = f"2024-05-01 12:{i // 3600 % 60:02d}:{i // 60 % 60:02d}.{i % 1000:03d}"
        out.append(f"{stamp} {rng.randint(1000, 9999)} " + rng.choice(forms).format(
            r=rng.getrandbits(32), n=rng.randint(1, 9999)) + "\n")
    return out


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


def run_baseline(tree: Path, work: Path, level: int = 9, parallel: int = 1,
                 name: str = "baseline-logs") -> tuple[float, int]:
    """``cp -a`` then gzip every file: devstack-gate's ``gzip -9`` serially, or the floor
    (``gzip -1`` on ``parallel`` processes)."""
    out = work / name
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    s1, m1 = timed(["cp", "-a", str(tree), str(out)], work)
    if parallel == 1:
        argv = ["find", str(out), "-type", "f", "-exec", "gzip", f"-{level}", "{}", "+"]
    else:
        argv = ["sh", "-c", f'find "$1" -type f -print0 | xargs -0 -P{parallel} -n 64 '
                f"gzip -{level}", "sh", str(out)]
    s2, m2 = timed(argv, work)
    CPU[-2:] = [CPU[-2] + CPU[-1]]
    return time.perf_counter() - start, max(m1, m2)


def run_dsvm(tree: Path, work: Path, profile: Path) -> tuple[float, int]:
    out = work / "dsvm-logs"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(work / "dsvm-logs.1", ignore_errors=True)
    env = {**os.environ, "WORKSPACE": str(work), "NO_COLOR": "1"}
    return timed([str(REPO / ".venv/bin/dsvm"), "--profile", str(profile), "logs", "collect",
                  "--root", str(tree), "--dest", str(out), "--workspace", str(work)], work, env)


def read_stored(path: Path) -> bytes:
    import gzip

    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def check_redacted(work: Path) -> int:
    """Count seeded secrets left in dsvm's output (must be 0)."""
    leaks = 0
    for path in (work / "dsvm-logs").rglob("*.gz"):
        data = read_stored(path)
        leaks += sum(data.count(s.encode()) for s in SECRETS)
    return leaks


def check_precision(tree: Path, work: Path) -> list[str]:
    """What was masked that is no secret (must be nothing): each policy.yaml and the plain
    options of each service config unchanged, no quoted number or word lost in a big log."""
    out = work / "dsvm-logs"
    wrong = []
    for svc in ("nova", "cinder", "keystone", "glance", "neutron", "placement"):
        policy = read_stored(out / f"etc/{svc}/policy.yaml.txt.gz")
        if policy != (tree / f"etc/{svc}/policy.yaml").read_bytes():
            wrong.append(f"etc/{svc}/policy.yaml changed")
        conf = read_stored(out / f"etc/{svc}/{svc}.conf.txt.gz").decode()
        for opts in LOOKALIKES.values():
            wrong += [f"etc/{svc}/{svc}.conf: {k} masked" for k, v in opts.items()
                      if f"{k} = {v}\n" not in conf]
    import re

    src = (tree / "opt/stack/new/tempest/tempest.log").read_bytes()
    got = read_stored(out / "tempest.txt.gz")
    for word in (b"8192", b"service", b"1800", b"password", b"token"):
        # as a whole word: "8192" inside a token's hex digits goes with the token
        rx = re.compile(rb"(?<![A-Za-z0-9_])" + word + rb"(?![A-Za-z0-9_])")
        before, after = len(rx.findall(src)), len(rx.findall(got))
        if before != after:
            wrong.append(f"tempest.txt: {word.decode()!r} {before} -> {after}")
    return wrong


def redaction_cost(tree: Path) -> tuple[float, int]:
    """CPU milliseconds per MB of redaction alone (one process, files in the store's
    chunks), and the MB redacted."""
    from dsvm.logs.redact import CHUNK, ConfigScan, Redactor, is_config

    redactor = Redactor.of(SECRETS)
    spent, total = 0.0, 0
    for path in sorted(p for p in tree.rglob("*") if p.is_file() and p.name != ".complete"):
        data = path.read_bytes()
        scan = ConfigScan(redactor.options, str(path)) if is_config(path.name) else None
        pos = 0
        while pos < len(data):
            cut = data.rfind(b"\n", pos, pos + CHUNK) + 1 or min(len(data), pos + CHUNK)
            t = time.process_time()  # CPU time: what the shared machine's load leaves alone
            redactor.redact(data[pos:cut], scan)
            spent += time.process_time() - t
            pos = cut
        total += len(data)
    return spent * 1000 / (total / (1 << 20)), total >> 20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="60 MB, 100 qemu logs, 1 run")
    parser.add_argument("--mb", type=int, help="tree size in MB (default 1024)")
    parser.add_argument("--files", type=int, help="qemu log count (default 1600)")
    parser.add_argument("--runs", type=int, help="runs of each (default 3)")
    parser.add_argument("--level", type=int, default=6, help="dsvm's logs.gzip_level")
    parser.add_argument("--engine", choices=("auto", "isal", "zlib"), default="auto",
                        help="dsvm's logs.gzip_engine (auto: ISA-L when installed)")
    args = parser.parse_args()
    mb = args.mb or (60 if args.quick else 1024)
    files = args.files or (100 if args.quick else 1600)
    runs = args.runs or (1 if args.quick else 3)
    for tool in ("cp", "find", "gzip", "xargs"):
        if proc.which(tool) is None:
            raise SystemExit(f"{tool} not found")
    t0 = time.perf_counter()
    tree = generate(mb, files)
    count = sum(1 for p in tree.rglob("*") if p.is_file())
    print(f"tree: {tree} ({mb} MB, {count} files; ready in {time.perf_counter() - t0:.1f}s)")
    work = CACHE / "work"
    work.mkdir(parents=True, exist_ok=True)
    profile = work / "bench.yaml"
    profile.write_text(f"extends: base\nprojects: [openstack/nova, openstack/cinder, "
                       f"openstack/keystone, openstack/glance, openstack/neutron, "
                       f"openstack/placement]\nlogs:\n  snapshots: false\n"
                       f"  gzip_level: {args.level}\n  gzip_engine: {args.engine}\n"
                       "  sources:\n    - {src: /var/log/bench, dest: bench}\n")
    times: dict[str, list[float]] = {"baseline": [], "floor": [], "dsvm": []}
    peaks: dict[str, list[int]] = {k: [] for k in times}
    cpus: dict[str, list[float]] = {k: [] for k in times}
    for i in range(runs):
        for name, run in (("baseline", lambda: run_baseline(tree, work)),
                          ("floor", lambda: run_baseline(tree, work, 1, 2, "floor-logs")),
                          ("dsvm", lambda: run_dsvm(tree, work, profile))):
            s, m = run()
            times[name].append(s)
            peaks[name].append(m)
            cpus[name].append(CPU[-1])
        print(f"run {i + 1}/{runs}: " + ", ".join(
            f"{k} {v[-1]:.1f}s ({peaks[k][-1] >> 20} MB)" for k, v in times.items()),
            flush=True)
    leaks = check_redacted(work)
    wrong = check_precision(tree, work)
    cost, redacted_mb = redaction_cost(tree)
    size = lambda d: sum(p.stat().st_size for p in (work / d).rglob("*") if p.is_file())  # noqa: E731
    med = {k: statistics.median(v) for k, v in times.items()}
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\ncpus: {os.cpu_count()}, load average at the end: {load}")
    from dsvm.logs.redact import ENGINE
    from dsvm.logs.store import gzip_engine, isal_level

    engine = gzip_engine(args.engine)
    how = f"igzip {isal_level(args.level)}" if engine == "isal" else f"zlib {args.level}"
    for name, label, out in (
            ("baseline", "cp -a + find -exec gzip -9 (devstack-gate, serial)", "baseline-logs"),
            ("floor", "cp -a + gzip -1 on 2 processes (the floor)", "floor-logs"),
            ("dsvm", f"dsvm logs collect (redact on {ENGINE} + {how} + index)", "dsvm-logs")):
        print(f"{label}: median {med[name]:.1f}s, CPU {statistics.median(cpus[name]):.1f}s, "
              f"peak tree RSS {max(peaks[name]) >> 20} MB, output {size(out) >> 20} MB")
    print(f"ratio baseline/dsvm: {med['baseline'] / med['dsvm']:.2f}x (goal >= 2); "
          f"dsvm/floor: {med['dsvm'] / med['floor']:.2f}x (goal <= 1.5)")
    print(f"redaction alone: {cost:.1f} ms of CPU per MB over {redacted_mb} MB (goal <= 10)")
    print(f"seeded secrets left in dsvm output: {leaks}; non-secrets masked: "
          + ("; ".join(wrong) if wrong else "none"))
    return 0 if leaks == 0 and not wrong else 1


if __name__ == "__main__":
    raise SystemExit(main())
