"""devstack-gate's feature matrix (``features.yaml`` + ``test_matrix.py``) as data and one pure function.

``enabled_services()`` turns the typed ``DEVSTACK_GATE_*`` values and a branch into the sorted
service list devstack-gate wrote as ``ENABLED_SERVICES`` (spec/devstack-gate.md §4.4, primary
role), from a ``Grid``: ``BUILTIN`` (devstack-gate's own features.yaml, as the data below), or
a vendor's own file in the same format (``DEVSTACK_GATE_FEATURE_MATRIX``) parsed by ``parse()``.
Nothing here reads the environment or a file: ``load()`` reads the one file, when asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dsvm.errors import Problem, ProfileError

ALLOWED = ("master", "wallaby", "victoria", "ussuri", "train", "stein", "rocky", "queens",
           "pike", "ocata", "newton", "mitaka", "liberty", "kilo")

_CORE = ("glance", "nova", "placement", "swift", "cinder", "keystone")
DEFAULT_FEATURES: dict[str, tuple[str, ...]] = {
    **{b: ("default",) + _CORE for b in ("master", "wallaby", "victoria", "ussuri")},
    **{b: ("default", "ceilometer") + _CORE
       for b in ("train", "stein", "rocky", "queens", "pike", "ocata")},
    **{b: ("default", "ceilometer", "glance", "nova", "swift", "cinder", "keystone")
       for b in ("newton", "mitaka", "liberty", "kilo")},
}

_CEILOMETER = ("ceilometer-acompute", "ceilometer-acentral", "ceilometer-collector",
               "ceilometer-api", "ceilometer-alarm-notifier", "ceilometer-alarm-evaluator",
               "ceilometer-anotification")
_C_ALL = ("c-api", "c-vol", "c-sch", "c-bak")
_OLD_NOVA = ("rocky", "queens", "pike", "ocata")


@dataclass(frozen=True)
class Feature:
    """A feature of the primary role: services added/removed, plus per-branch deltas."""

    add: tuple[str, ...] = ()
    rm: tuple[str, ...] = ()
    branch_add: Mapping[str, tuple[str, ...]] | None = None
    branch_rm: Mapping[str, tuple[str, ...]] | None = None


PRIMARY: dict[str, Feature] = {
    "default": Feature(("mysql", "rabbit", "dstat", "etcd3")),
    "ceilometer": Feature(_CEILOMETER),
    "glance": Feature(("g-api", "g-reg")),
    "keystone": Feature(("key",)),
    "horizon": Feature(("horizon",)),
    "nova": Feature(("n-api", "n-cond", "n-cpu", "n-novnc", "n-sch", "n-api-meta"),
                    branch_add={b: ("n-cauth", "n-net") for b in _OLD_NOVA}),
    "nova-cells": Feature(("n-cell",)),
    "placement": Feature(("placement-api",)),
    "neutron": Feature(("q-svc", "q-agt", "q-dhcp", "q-l3", "q-meta", "q-metering"), ("n-net",)),
    "neutron-adv": Feature((), ("n-net",), branch_add={"mitaka": ("q-lbaas",),
                                                       "liberty": ("q-lbaas",),
                                                       "kilo": ("q-vpn",)}),
    "neutron-dvr": Feature(),
    "swift": Feature(("s-proxy", "s-account", "s-container", "s-object")),
    "cinder": Feature(_C_ALL),
    "cinder-mn-grenade": Feature((), ("c-vol", "c-bak")),
    "cinder-mn-grenade-sub-volschbak": Feature((), ("c-vol", "c-sch", "c-bak")),
    "cinder-mn-grenade-sub-bak": Feature((), ("c-bak",)),
    "heat": Feature(("heat", "h-api", "h-api-cfn", "h-api-cw", "h-eng")),
    "trove": Feature(("trove", "tr-api", "tr-tmgr", "tr-cond")),
    "ironic": Feature(("ir-api", "ir-cond"), ("cinder",) + _C_ALL),
    "ironic-inspector": Feature(("ironic-inspector", "ironic-inspector-dhcp")),
    "sahara": Feature(("sahara",)),
    "marconi": Feature(("marconi-server",)),
    "zaqar": Feature(("zaqar-server",)),
    "tempest": Feature(("tempest",)),
    "postgresql": Feature(("postgresql",), ("mysql",)),
    "zeromq": Feature(("zeromq",), ("rabbit",)),
    "qpid": Feature(("qpid",), ("rabbit",)),
    "ceph": Feature(("ceph",)),
    "tlsproxy": Feature(("tls-proxy",),
                        branch_rm={b: ("tls-proxy",) for b in ("liberty", "mitaka", "newton")}),
}


@dataclass(frozen=True)
class Config:
    """A config (``DEVSTACK_GATE_<X>`` truthy): features and services it adds or removes."""

    features: tuple[str, ...] = ()
    rm_features: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    rm_services: tuple[str, ...] = ()


CONFIGS: dict[str, Config] = {
    "neutron": Config(("neutron", "neutron-adv")),
    "postgres": Config(("postgresql",)),
    "grenade": Config((), ("trove", "sahara", "neutron-adv", "horizon"), (), ("c-bak", "etcd3")),
    "tempest": Config(("tempest",)),
    "cells": Config(("nova-cells",)),
    **{name: Config((name,)) for name in ("trove", "marconi", "zaqar", "sahara", "ironic",
                                          "qpid", "zeromq", "ceph", "heat", "swift",
                                          "keystone", "horizon", "tlsproxy")},
    "ironic_inspector": Config(("ironic-inspector",)),
    "cinder_mn_grenade": Config(("cinder-mn-grenade",)),
    "cinder_mn_grenade_sub_volschbak": Config(("cinder-mn-grenade-sub-volschbak",)),
    "cinder_mn_grenade_sub_bak": Config(("cinder-mn-grenade-sub-bak",)),
    "neutron_dvr": Config(("neutron-dvr",)),
}


@dataclass(frozen=True)
class Grid:
    """A whole feature matrix: branches, default features, configs, the primary role's features."""

    allowed: tuple[str, ...]
    defaults: Mapping[str, tuple[str, ...]]  # branch (and "no_services") → features
    configs: Mapping[str, Config]
    primary: Mapping[str, Feature]
    trunk: str = "master"
    source: str = "devstack-gate's features.yaml (built in)"
    extra_configs: tuple[str, ...] = field(default=())  # configs beyond devstack-gate's own


BUILTIN = Grid(ALLOWED, {**DEFAULT_FEATURES, "no_services": ("default",)}, CONFIGS, PRIMARY)
# DEVSTACK_GATE_FEATURE_MATRIX values naming devstack-gate's own file: BUILTIN is that file.
BUILTIN_PATHS = ("roles/test-matrix/files/features.yaml", "features.yaml")


def normalize_branch(branch: str, grid: Grid = BUILTIN) -> tuple[str, str]:
    """Return (matrix branch, why) for a git branch, as test_matrix.py normalised it.

    Branches the matrix does not know (``stable/2024.1``, typos) map to its trunk (``master``)
    where devstack-gate exited 1: every release after wallaby uses master's feature set.
    """
    trunk = grid.trunk
    b = branch or trunk
    if b.startswith(("feature/", "bug/")):
        return trunk, f"{b} counts as {trunk}"
    if b.startswith("stable/"):
        b = b[len("stable/"):]
    elif b.startswith("proposed/"):
        rest = b[len("proposed/"):]
        b = next((a for a in grid.allowed if rest.startswith(a)), trunk)
    if b in grid.allowed and b in grid.defaults:
        return b, f"branch {branch or trunk}"
    return trunk, f"{branch} is newer than the matrix: {trunk}'s features"


def configs_from(gate: Mapping[str, Any], grid: Grid = BUILTIN) -> list[str]:
    """The matrix configs present: every grid config whose DEVSTACK_GATE_<X> is truthy."""
    present = []
    for name in grid.configs:
        value = gate.get("DEVSTACK_GATE_" + name.upper())
        if name != "default" and value not in (None, False, "", 0, "0", "false", "False",
                                               "FALSE"):
            present.append(name)
    return present


def enabled_services(configs: list[str], branch: str, no_services: bool = False,
                     grid: Grid = BUILTIN) -> list[str]:
    """Return the sorted ENABLED_SERVICES of the primary role (test_matrix.py's algorithm)."""
    features = list(grid.defaults["no_services" if no_services else branch])
    for c in configs:
        features += [f for f in grid.configs[c].features if f not in features]
    removed = {f for c in configs for f in grid.configs[c].rm_features}
    features = [f for f in features if f not in removed]
    services: set[str] = set()
    for f in features:
        spec = grid.primary[f]
        services |= set(spec.add) | set((spec.branch_add or {}).get(branch, ()))
    for f in features:
        spec = grid.primary[f]
        services -= set(spec.rm) | set((spec.branch_rm or {}).get(branch, ()))
    for c in configs:
        services |= set(grid.configs[c].services)
    for c in configs:
        services -= set(grid.configs[c].rm_services)
    return sorted(services)


# --------------------------------------------------------------------------------------------
# A vendor's own features.yaml (devstack-gate's format; the subnode role is not read: dsvm
# runs a single node).

def load(path: str, base: str) -> Grid:
    """Read and parse the matrix file ``path`` (relative to ``$BASE/new/devstack-gate``, as
    devstack-gate resolved it); raise ProfileError (exit 2) naming the file and the problem."""
    target = Path(path) if Path(path).is_absolute() else Path(base) / "new" / "devstack-gate" / path
    where = f"env DEVSTACK_GATE_FEATURE_MATRIX={path}"
    try:
        text = target.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{where}: cannot read {target}: {exc.strerror}",
                           hint="give an absolute path, or one relative to "
                                "$BASE/new/devstack-gate, of a features.yaml") from exc
    return parse(text, str(target))


def _mapping(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _names(value: Any, where: str, problems: list[Problem]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(Problem(where, "must be a list of names"))
        return ()
    return tuple(value)


def parse(text: str, source: str) -> Grid:
    """A Grid from features.yaml text; raise ProfileError listing every problem found."""
    problems: list[Problem] = []
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{source}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: a feature matrix is a mapping with config, branches "
                           "and primary", hint="see devstack-gate's "
                                               "roles/test-matrix/files/features.yaml")
    config, branches, primary = (_mapping(data, key) for key in ("config", "branches",
                                                                  "primary"))
    for key, value in (("config", config), ("branches", branches), ("primary", primary)):
        if not value:
            problems.append(Problem(f"{source}: {key}", f"'{key}' is missing or empty"))
    defaults_raw = _mapping(config, "default")
    defaults = {str(b): _names(f, f"{source}: config.default.{b}", problems)
                for b, f in defaults_raw.items()}
    configs = {str(name): Config(_names(c.get("features"), f"{source}: config.{name}.features",
                                        problems),
                                 _names(c.get("rm-features"),
                                        f"{source}: config.{name}.rm-features", problems),
                                 _names(c.get("services"), f"{source}: config.{name}.services",
                                        problems),
                                 _names(c.get("rm-services"),
                                        f"{source}: config.{name}.rm-services", problems))
               for name, c in config.items() if name != "default" and isinstance(c, dict)}
    features = {str(name): _feature(spec, f"{source}: primary.{name}", problems)
                for name, spec in primary.items()}
    allowed = _names(branches.get("allowed"), f"{source}: branches.allowed", problems)
    trunk = str(branches.get("default") or "master")
    named = {f for fs in defaults.values() for f in fs} | {
        f for c in configs.values() for f in c.features}
    for missing in sorted(named - set(features)):
        problems.append(Problem(f"{source}: primary", f"feature '{missing}' is used but has "
                                "no primary entry", hint=f"add primary.{missing}.base"))
    if trunk not in defaults:
        problems.append(Problem(f"{source}: config.default",
                                f"no default features for the trunk branch '{trunk}'"))
    defaults.setdefault("no_services", ("default",))
    if problems:
        raise ProfileError(f"the feature matrix {source} has {len(problems)} problem"
                           f"{'s' if len(problems) > 1 else ''}", problems=problems,
                           hint="it must have devstack-gate's features.yaml format")
    return Grid(allowed, defaults, configs, features, trunk, source,
                tuple(sorted(set(configs) - set(CONFIGS))))


def _feature(spec: Any, where: str, problems: list[Problem]) -> Feature:
    if not isinstance(spec, dict) or not isinstance(spec.get("base", {}), dict):
        problems.append(Problem(where, "a feature is {base: {services, rm-services}, "
                                       "<branch>: {...}}"))
        return Feature()
    base = spec.get("base") or {}
    adds: dict[str, tuple[str, ...]] = {}
    rms: dict[str, tuple[str, ...]] = {}
    for branch, delta in spec.items():
        if branch == "base" or not isinstance(delta, dict):
            continue
        adds[str(branch)] = _names(delta.get("services"), f"{where}.{branch}.services",
                                   problems)
        rms[str(branch)] = _names(delta.get("rm-services"), f"{where}.{branch}.rm-services",
                                  problems)
    return Feature(_names(base.get("services"), f"{where}.base.services", problems),
                   _names(base.get("rm-services"), f"{where}.base.rm-services", problems),
                   adds or None, rms or None)
