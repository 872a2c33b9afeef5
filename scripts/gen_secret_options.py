#!/usr/bin/env python3
"""Regenerate dsvm/data/secret_options.json: every oslo.config option marked ``secret=True``
by the services a devstack job runs, with the groups where it is (and is not) secret.

Ground truth is what oslo-config-generator reads: the ``oslo.config.opts`` entry points of
the installed packages. The script builds a throwaway venv, installs the packages named below
at the versions of one OpenStack release (their libraries held to that release's
upper-constraints file), calls every entry point and writes the table with its provenance:

    python3 scripts/gen_secret_options.py \
        --constraints ../shared/data/upper-constraints-2026.1.txt [--venv /tmp/ocvenv]

``--venv`` reuses (or creates there) the venv instead of a temporary one. The output is
sorted, so a re-run on the same versions gives the same file.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess  # a build script, not dsvm: dsvm's commands go through dsvm/proc.py
import sys
import tempfile
from pathlib import Path

RELEASE = "2026.1"
# The services' own releases of 2026.1 (not in upper-constraints: they are what it constrains).
SERVICES = ["nova==33.0.2", "cinder==28.0.0", "keystone==29.1.0", "glance==32.0.0",
            "neutron==28.0.2", "openstack-placement==15.0.0"]
# Libraries whose options the services register (versions come from upper-constraints).
LIBRARIES = ["keystonemiddleware", "oslo.messaging", "oslo.db", "oslo.cache", "oslo.log",
             "oslo.policy", "oslo.middleware", "oslo.concurrency", "castellan", "glance_store",
             "os-brick", "keystoneauth1", "oslo.limit", "oslo.service", "oslo.reports",
             "python-swiftclient", "oslo.vmware", "tempest==47.0.0"]
# Options upstream leaves plain although they hold a credential: secret here too, with why
# (kept in the file's "overrides", so the correction is visible and can be dropped upstream).
OVERRIDES = {
    "memcache_password": "keystonemiddleware 12.0.0 does not mark its SASL memcache_password "
                         "secret=True; oslo.cache marks the same option secret",
    "pure_api_token": "cinder's Pure Storage driver: the array's REST API token",
    "kioxia_token": "cinder's KumoScale driver: the provisioner's bearer token",
    "ssl_client_key_password": "the password of a TLS client key",
}
OUT = Path(__file__).resolve().parent.parent / "dsvm" / "data" / "secret_options.json"

# Run inside the venv, once per namespace (options register on one global CONF, so two
# namespaces of different packages in one process can clash): print what it registers.
NAMESPACES = r"""
import json, sys
from importlib import metadata
json.dump(sorted({ep.name for ep in metadata.entry_points(group="oslo.config.opts")}),
          sys.stdout)
"""
PROBE = r"""
import json, sys
from importlib import metadata
rows, failed, dists = [], [], {}
for ep in metadata.entry_points(group="oslo.config.opts"):
    if ep.name != sys.argv[1]:
        continue
    dist = ep.dist.name if ep.dist else "?"
    dists[dist] = ep.dist.version if ep.dist else "?"
    try:
        listed = ep.load()()
    except Exception as exc:  # an optional dependency missing: recorded, not fatal
        failed.append({"namespace": ep.name, "package": dist, "error": repr(exc)[:200]})
        continue
    for group, opts in listed:
        gname = getattr(group, "name", group) or "DEFAULT"
        for opt in opts:
            rows.append([ep.name, dist, str(gname), opt.name, bool(opt.secret)])
            for old in getattr(opt, "deprecated_opts", None) or []:
                if old.name:
                    rows.append([ep.name, dist, str(old.group or gname), old.name,
                                 bool(opt.secret)])
json.dump({"rows": rows, "failed": failed, "dists": dists}, sys.stdout)
"""


def probe(python: Path) -> dict[str, object]:
    """Every namespace's options, each probed in its own process (two at a time)."""
    from concurrent.futures import ThreadPoolExecutor

    names = json.loads(subprocess.run([str(python), "-c", NAMESPACES], check=True,
                                      capture_output=True, text=True).stdout)

    def one(name: str) -> dict[str, list[object]]:
        done = subprocess.run([str(python), "-c", PROBE, name], check=True,
                              capture_output=True, text=True)
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    merged: dict[str, object] = {"rows": [], "failed": [], "dists": {}}
    with ThreadPoolExecutor(2) as pool:
        for part in pool.map(one, names):
            merged["rows"] += part["rows"]  # type: ignore[operator]
            merged["failed"] += part["failed"]  # type: ignore[operator]
            merged["dists"].update(part["dists"])  # type: ignore[attr-defined]
    return merged


def build_venv(venv: Path, constraints: Path) -> None:
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-c", str(constraints),
                    *SERVICES, *LIBRARIES], check=True)


def table(probe: dict[str, object], constraints: Path) -> dict[str, object]:
    """The stored shape: name -> groups where secret / not secret (names secret somewhere)."""
    rows = probe["rows"]
    assert isinstance(rows, list)
    secret: dict[str, set[str]] = {}
    plain: dict[str, set[str]] = {}
    where: dict[str, set[str]] = {}
    for _namespace, dist, group, name, is_secret in rows:
        name = name.replace("-", "_")
        (secret if is_secret else plain).setdefault(name, set()).add(group.lower())
        if is_secret:
            where.setdefault(name, set()).add(dist)
    # Plain options whose names look secret: the precision tests' ground truth for "not
    # masked" (max_token_size, service_token_roles, rbd_secret_uuid, ...).
    looks = re.compile(r"pass|secret|token|key|credential|auth", re.IGNORECASE)
    lookalike = {n: sorted(g) for n, g in sorted(plain.items())
                 if n not in secret and looks.search(n)}
    for name in OVERRIDES:
        secret.setdefault(name, set()).update(plain.pop(name, set()))
        lookalike.pop(name, None)
    return {
        "about": "oslo.config options with secret=True of the services a devstack job runs "
                 "(group names lower-cased; DEFAULT is 'default'). Generated by "
                 "scripts/gen_secret_options.py; do not edit by hand.",
        "release": RELEASE,
        "constraints": constraints.name,
        "packages": dict(sorted(probe["dists"].items())),  # type: ignore[union-attr]
        "failed_namespaces": probe["failed"],
        "overrides": OVERRIDES,
        "secret": {n: sorted(g) for n, g in sorted(secret.items())},
        "not_secret": {n: sorted(plain[n] - secret[n]) for n in sorted(secret)
                       if plain.get(n, set()) - secret[n]},
        "defined_by": {n: sorted(d) for n, d in sorted(where.items())},
        "plain_lookalikes": lookalike,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--constraints", type=Path, required=True,
                        help=f"upper-constraints file of {RELEASE}")
    parser.add_argument("--venv", type=Path, help="venv to (re)use instead of a temporary one")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--no-install", action="store_true",
                        help="the venv already holds the packages")
    parser.add_argument("--probe-cache", type=Path,
                        help="reuse (or write) the raw probe output here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        venv = args.venv or Path(tmp) / "venv"
        if not args.no_install:
            build_venv(venv, args.constraints)
        if args.probe_cache and args.probe_cache.exists():
            raw = json.loads(args.probe_cache.read_text())
        else:
            raw = probe(venv / "bin" / "python")
            if args.probe_cache:
                args.probe_cache.write_text(json.dumps(raw))
        data = table(raw, args.constraints)
    args.out.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    print(f"{args.out}: {len(data['secret'])} secret option names "  # type: ignore[arg-type]
          f"from {len(data['packages'])} packages")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
