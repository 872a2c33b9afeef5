"""devstack-gate's feature matrix (``features.yaml`` + ``test_matrix.py``) as data and one pure function.

``enabled_services()`` turns the typed ``DEVSTACK_GATE_*`` values and a branch into the sorted
service list devstack-gate wrote as ``ENABLED_SERVICES`` (spec/devstack-gate.md §4.4, primary
role). It never reads the environment or a file: the grid below is the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


def normalize_branch(branch: str) -> tuple[str, str]:
    """Return (matrix branch, why) for a git branch, as test_matrix.py normalised it.

    Branches devstack-gate did not know (``stable/2024.1``, typos) map to ``master`` where
    devstack-gate exited 1: every release after wallaby uses master's feature set.
    """
    b = branch or "master"
    if b.startswith(("feature/", "bug/")):
        return "master", f"{b} counts as master"
    if b.startswith("stable/"):
        b = b[len("stable/"):]
    elif b.startswith("proposed/"):
        rest = b[len("proposed/"):]
        b = next((a for a in ALLOWED if rest.startswith(a)), "master")
    if b in ALLOWED:
        return b, f"branch {branch or 'master'}"
    return "master", f"{branch} is newer than devstack-gate's matrix: master's features"


def configs_from(gate: Mapping[str, Any]) -> list[str]:
    """The matrix configs present: every grid config whose DEVSTACK_GATE_<X> is truthy."""
    present = []
    for name in CONFIGS:
        value = gate.get("DEVSTACK_GATE_" + name.upper())
        if value not in (None, False, "", 0, "0", "false", "False", "FALSE"):
            present.append(name)
    return present


def enabled_services(configs: list[str], branch: str, no_services: bool = False) -> list[str]:
    """Return the sorted ENABLED_SERVICES of the primary role (test_matrix.py's algorithm)."""
    features = list(("default",) if no_services else DEFAULT_FEATURES[branch])
    for c in configs:
        features += [f for f in CONFIGS[c].features if f not in features]
    removed = {f for c in configs for f in CONFIGS[c].rm_features}
    features = [f for f in features if f not in removed]
    services: set[str] = set()
    for f in features:
        spec = PRIMARY[f]
        services |= set(spec.add) | set((spec.branch_add or {}).get(branch, ()))
    for f in features:
        spec = PRIMARY[f]
        services -= set(spec.rm) | set((spec.branch_rm or {}).get(branch, ()))
    for c in configs:
        services |= set(CONFIGS[c].services)
    for c in configs:
        services -= set(CONFIGS[c].rm_services)
    return sorted(services)
