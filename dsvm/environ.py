"""devstack-gate / Zuul environment compatibility: environment variables → typed settings.

Every variable of ``spec/devstack-gate.md`` §3 is listed here with its type and default.
``resolve()`` reads them once: the typed values of all of them become the frozen ``Gate`` view
(``Settings.gate``, which local.conf rendering reads most of), and the variables that map onto
a profile key become ``Override``s with an ``env VAR`` origin, applied by ``profile.resolve``
between the profile and the options (defaults < profile < env < options). devstack-gate's
Tempest selection table is resolved here too, into ``tempest.selection``, so ``dsvm profile
show`` prints what the run will select and why. Booleans accept devstack-gate's ``1``/``0``
as well as ``true``/``false``; unknown ``DEVSTACK_GATE_*`` names warn with the closest known
name. Pure: reads only the mapping it is given.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from dsvm.errors import Problem, closest


@dataclass(frozen=True)
class Var:
    """One environment variable: type (bool/int/str/list), default, settings key, meaning."""

    type: str
    default: Any = None
    key: str | None = None
    help: str = ""
    convert: Callable[[Any], Any] | None = None  # value → settings value


def _minutes_from_ms(value: int) -> int:
    return value // 60000


VARS: dict[str, Var] = {
    # §3.1 job identity, checkout, projects
    "WORKSPACE": Var("str", "", "paths.workspace", "job directory"),
    "BASE": Var("str", "/opt/stack", "paths.base", "install root (devstack-gate forced "
                "/opt/stack; dsvm honours the caller's value)"),
    "PROJECTS": Var("list", [], None, "extra space-separated org/name projects"),
    "DEVSTACK_GATE_PROJECTS_OVERRIDE": Var("list", [], None, "the exact project list"),
    "DEVSTACK_PROJECT_FROM_GIT": Var("str", "", None, "LIBS_FROM_GIT libraries"),
    "GIT_BASE": Var("str", "https://opendev.org", "git.base", "clone base URL"),
    "DSVM_GIT_CACHE": Var("str", "/opt/git", "git.cache", "the node's repo cache"),
    "GIT_BRANCH": Var("str", "master", None, "trunk branch name"),
    "ZUUL_URL": Var("str", "", "git.zuul_url", "Zuul git server"),
    "OVERRIDE_ZUUL_BRANCH": Var("str", "", None, "branch for all projects"),
    "BRANCH_OVERRIDE": Var("str", "", None, "job-template convention: → OVERRIDE_ZUUL_BRANCH "
                           "unless 'default'"),
    # §3.2 time budget
    "BUILD_TIMEOUT": Var("int", None, "timeout.job_minutes", "the whole job's budget in "
                         "milliseconds (Jenkins build-timeout)", _minutes_from_ms),
    "DEVSTACK_GATE_TIMEOUT_BUFFER": Var("int", 10, "timeout.buffer_minutes",
                                        "minutes reserved for cleanup/upload"),
    "DEVSTACK_GATE_TIMEOUT": Var("int", None, None, "the phases' budget in minutes (pre-2016 "
                                 "input)"),
    # §3.3 hooks
    "DEVSTACK_GATE_SETTINGS": Var("str", "", None, "bash file sourced after workspace setup"),
    "GRENADE_PLUGINRC": Var("str", "", None, "appended to grenade's pluginrc"),
    # §3.4 services and pass-through
    "DEVSTACK_GATE_FEATURE_MATRIX": Var("str", "", None, "feature matrix file (a vendor's "
                                        "features.yaml; read by devstack/configure.py)"),
    "OVERRIDE_ENABLED_SERVICES": Var("str", "", None, "ENABLED_SERVICES verbatim"),
    "ENABLED_SERVICES": Var("str", "", None, "appended to the matrix result"),
    "DEVSTACK_GATE_NO_SERVICES": Var("bool", False, None, "feature base only"),
    "KEEP_LOCALRC": Var("str", "", None, "keep a pre-populated local.conf"),
    "DEVSTACK_LOCAL_CONFIG": Var("str", "", None, "raw text appended to localrc"),
    "DEVSTACK_SUBNODE_CONFIG": Var("str", "", None, "raw text for subnodes"),
    "DEVSTACK_LOCALCONF": Var("str", "", None, "local.conf fragment merged last"),
    "DEVSTACK_GATE_USE_PYTHON3": Var("str", "", None, "USE_PYTHON3 value"),
    # §3.5 local.conf knobs
    "DEVSTACK_GATE_VIRT_DRIVER": Var("str", "libvirt", None, "VIRT_DRIVER"),
    "DEVSTACK_GATE_LIBVIRT_TYPE": Var("str", "qemu", None, "LIBVIRT_TYPE"),
    "DEVSTACK_GATE_CONFIGDRIVE": Var("bool", False, None, "FORCE_CONFIG_DRIVE"),
    "DEVSTACK_CINDER_VOLUME_CLEAR": Var("str", "none", None, "CINDER_VOLUME_CLEAR"),
    "DEVSTACK_GATE_CEPH": Var("bool", False, None, "ceph cinder backend"),
    "DEVSTACK_GATE_INSTALL_TESTONLY": Var("bool", False, None, "INSTALL_TESTONLY_PACKAGES"),
    "DEVSTACK_GATE_TEMPEST_HEAT_SLOW": Var("bool", False, None, "heat slow tests"),
    "DEVSTACK_GATE_TEMPEST_LARGE_OPS": Var("int", 0, None, "large-ops number"),
    "CEILOMETER_NOTIFICATION_TOPICS": Var("str", "", None, "ceilometer topics"),
    "DEVSTACK_GATE_TEMPEST_DISABLE_TENANT_ISOLATION": Var("bool", False, None,
                                                          "no tenant isolation (serial)"),
    "DEVSTACK_GATE_TEMPEST": Var("bool", False, "tempest.enabled", "run Tempest"),
    # §3.6 matrix feature flags
    "DEVSTACK_GATE_NEUTRON": Var("bool", None, None, "neutron (default by branch)"),
    "DEVSTACK_GATE_NEUTRON_DVR": Var("bool", False, None, "neutron DVR"),
    "DEVSTACK_GATE_POSTGRES": Var("bool", False, None, "postgresql instead of mysql"),
    "DEVSTACK_GATE_GRENADE": Var("str", "", None, "grenade mode"),
    "DEVSTACK_GATE_CELLS": Var("bool", False, None, "nova cells"),
    "DEVSTACK_GATE_ZEROMQ": Var("bool", False, None, "zeromq"),
    "DEVSTACK_GATE_QPID": Var("bool", False, None, "qpid"),
    "DEVSTACK_GATE_IRONIC": Var("bool", False, None, "ironic"),
    "DEVSTACK_GATE_IRONIC_INSPECTOR": Var("bool", False, None, "ironic inspector"),
    "DEVSTACK_GATE_HEAT": Var("bool", False, None, "heat"),
    "DEVSTACK_GATE_HORIZON": Var("bool", False, None, "horizon"),
    "DEVSTACK_GATE_SAHARA": Var("bool", False, None, "sahara"),
    "DEVSTACK_GATE_TROVE": Var("bool", False, None, "trove"),
    "DEVSTACK_GATE_MARCONI": Var("bool", False, None, "marconi"),
    "DEVSTACK_GATE_ZAQAR": Var("bool", False, None, "zaqar"),
    "DEVSTACK_GATE_TLSPROXY": Var("bool", False, None, "tls-proxy"),
    "DEVSTACK_GATE_SWIFT": Var("bool", False, None, "swift"),
    "DEVSTACK_GATE_KEYSTONE": Var("bool", False, None, "keystone"),
    "DEVSTACK_GATE_CINDER_MN_GRENADE": Var("bool", False, None, "multinode grenade cinder"),
    "DEVSTACK_GATE_CINDER_MN_GRENADE_SUB_VOLSCHBAK": Var("bool", False, None, ""),
    "DEVSTACK_GATE_CINDER_MN_GRENADE_SUB_BAK": Var("bool", False, None, ""),
    # §3.7 networking
    "DEVSTACK_GATE_TOPOLOGY": Var("str", "aio", None, "aio or multinode"),
    "DEVSTACK_GATE_NET_OVERLAY": Var("bool", None, None, "br-ex overlay"),
    "DEVSTACK_GATE_FIXED_RANGE": Var("str", "10.1.0.0/20", None, "FIXED_RANGE"),
    "DEVSTACK_GATE_IPV4_ADDRS_SAFE_TO_USE": Var("str", "", None, "IPV4_ADDRS_SAFE_TO_USE"),
    "DEVSTACK_GATE_FLOATING_RANGE": Var("str", "172.24.5.0/24", None, "FLOATING_RANGE"),
    "DEVSTACK_GATE_PUBLIC_NETWORK_GATEWAY": Var("str", "172.24.5.1", None, "gateway"),
    "DEVSTACK_GATE_FLOATING_HOST_PREFIX": Var("str", "172.24.4", None, "overlay prefix"),
    "DEVSTACK_GATE_FLOATING_HOST_MASK": Var("int", 23, None, "overlay mask"),
    "DEVSTACK_GATE_NETCONSOLE": Var("str", "", None, "netconsole target"),
    # §3.8 virt-driver specific
    "DEVSTACK_GATE_IRONIC_DRIVER": Var("str", "pxe_ipmitool", None, "IRONIC_DEPLOY_DRIVER"),
    "DEVSTACK_GATE_IRONIC_BUILD_RAMDISK": Var("bool", True, None, "build deploy ramdisk"),
    "DEVSTACK_GATE_TEMPEST_BAREMETAL_BUILD_TIMEOUT": Var("int", 600, None, "BUILD_TIMEOUT"),
    "DEVSTACK_GATE_OS_TEST_TIMEOUT": Var("int", None, None, "OS_TEST_TIMEOUT default"),
    "TEMPEST_OS_TEST_TIMEOUT": Var("int", None, "tempest.test_timeout", "per-test timeout"),
    "DEVSTACK_GATE_XENAPI_DOM0_IP": Var("str", "", None, "xenapi"),
    "DEVSTACK_GATE_XENAPI_DOMU_IP": Var("str", "", None, "xenapi"),
    "DEVSTACK_GATE_XENAPI_PASSWORD": Var("str", "", None, "xenapi (secret)"),
    # §3.9 grenade
    "GRENADE_BASE_BRANCH": Var("str", "", None, "grenade base"),
    # §3.10 tempest selection
    "DEVSTACK_GATE_TEMPEST_NOTESTS": Var("bool", False, None, "configure tempest, no tests"),
    "DEVSTACK_GATE_TEMPEST_REGEX": Var("str", "", "tempest.regex", "custom selection regex"),
    "DEVSTACK_GATE_TEMPEST_ALL_PLUGINS": Var("bool", False, None, "all plugins"),
    "DEVSTACK_GATE_TEMPEST_ALL": Var("bool", False, None, "all tests"),
    "DEVSTACK_GATE_TEMPEST_FULL": Var("bool", False, None, "full"),
    "DEVSTACK_GATE_SMOKE_SERIAL": Var("bool", False, None, "smoke, serially"),
    "DEVSTACK_GATE_TEMPEST_SCENARIOS": Var("bool", False, None, "scenario tests"),
    "TEMPEST_CONCURRENCY": Var("int", None, "tempest.concurrency", "stestr workers"),
    # §3.11 misc
    "DEVSTACK_GATE_UNSTACK": Var("bool", False, None, "unstack.sh after stack.sh"),
    "DEVSTACK_GATE_REMOVE_STACK_SUDO": Var("bool", True, None, "drop stack's sudo after stack"),
    "PROCESS_STACKVIZ": Var("bool", True, None, "stackviz"),
    # Zuul identity (parsed in detail by zuul.py)
    "LOG_PATH": Var("str", "", None, "Zuul's log path"),
    "DSVM_RESULTS_DB": Var("str", "", "results.db", "results DB URL"),
}

# §3.12: exported without effect in the latest tree: accepted silently.
IGNORED = {"DEVSTACK_GATE_MQ_DRIVER", "DEVSTACK_GATE_NOVA_API_METADATA_SPLIT",
           "DEVSTACK_GATE_REQS_INTEGRATION", "DEVSTACK_GATE_CLEAN_LOGS",
           "DEVSTACK_GATE_TEMPEST_STRESS_ARGS"}

# §3.13: removed variables; harmless to ignore, but say so.
REMOVED = {
    "DEVSTACK_GATE_EXERCISES": "removed 2018-07 (ran exercise.sh)",
    "DEVSTACK_GATE_TEMPEST_STRESS": "removed 2017-03",
    "DEVSTACK_GATE_CEILOMETER_BACKEND": "removed 2017-10",
    "DEVSTACK_GATE_ZAQAR_BACKEND": "removed 2015-09",
    "DEVSTACK_CINDER_SECURE_DELETE": "removed 2017-06",
    "DEVSTACK_GATE_KEYSTONE_V3": "removed 2015-05",
    "DEVSTACK_GATE_ENABLE_HTTPD_MOD_WSGI_SERVICES": "removed 2015-05",
    "DEVSTACK_GATE_NOVA_REPLACE_V2_ENDPOINT_WITH_V21_API": "removed 2015-05",
    "DEVSTACK_GATE_TEMPEST_TESTR_FULL": "obsolete selector",
    "DEVSTACK_GATE_TEMPEST_COVERAGE": "obsolete selector",
    "DEVSTACK_GATE_TEMPEST_NOVA_V3": "obsolete selector",
    "DEVSTACK_GATE_TEMPEST_NOVA_V3_API": "obsolete selector",
    "DEVSTACK_GATE_TEMPEST_ALLOW_TENANT_ISOLATION": "obsolete selector",
    "DEVSTACK_GATE_USE_APACHE": "obsolete selector",
    "DEVSTACK_GATE_SELECT_MIRROR": "obsolete selector",
    "DEVSTACK_GATE_NEUTRON_UNSTABLE": "obsolete selector",
    "DEVSTACK_GATE_GRENADE_FORWARD": "obsolete selector",
    "DEVSTACK_GATE_GRENADE_ROLLING": "obsolete selector",
    "DEVSTACK_GATE_GRENADE_PARTIAL_NCPU": "obsolete selector",
    "DEVSTACK_GATE_QUANTUM": "obsolete selector",
    "DEVSTACK_GATE_CINDER": "obsolete selector",
    "DEVSTACK_GATE_SAVANNA": "obsolete selector",
    "DEVSTACK_GATE_TESTR_ARTIFACT_TARGET": "obsolete selector",
    "REQUIREMENTS_MODE": "removed 2015-11",
}

# Known devstack-gate features dsvm does not implement and that would change what is tested if
# silently ignored: a job setting them must not turn green without them (exit 2).
UNSUPPORTED = {
    "DEVSTACK_GATE_GRENADE": ("grenade upgrade jobs are not supported by dsvm",
                              "keep this job on devstack-gate, or drop the variable"),
    "DEVSTACK_GATE_SETTINGS": ("dsvm does not source bash settings files",
                               "export the file's variables in the job, or move them into "
                               "the profile"),
}


def unsupported(env: Mapping[str, str]) -> list[Problem]:
    """Problems for variables that ask for a feature dsvm lacks (ignoring them is unsafe)."""
    out = []
    for name, (why, hint) in UNSUPPORTED.items():
        if env.get(name):
            out.append(Problem(f"env {name}", f"{name}={env[name]!r}: {why}", hint=hint))
    topology = env.get("DEVSTACK_GATE_TOPOLOGY", "aio")
    if topology not in ("", "aio"):
        out.append(Problem("env DEVSTACK_GATE_TOPOLOGY",
                           f"DEVSTACK_GATE_TOPOLOGY={topology!r}: multinode jobs are not "
                           "supported by dsvm (single node only)",
                           hint="unset it (aio) or keep this job on devstack-gate"))
    return out


TRUE = {"1", "true", "True", "TRUE", "yes", "Yes", "YES", "on"}
FALSE = {"0", "false", "False", "FALSE", "no", "No", "NO", "off", ""}


def parse_value(name: str, var: Var, raw: str) -> tuple[Any, str | None]:
    """Return (typed value, error message or None) for one variable."""
    if var.type == "bool":
        if raw in TRUE:
            return True, None
        if raw in FALSE:
            return False, None
        return var.default, f"{name}={raw!r} is not a boolean (use 1 or 0)"
    if var.type == "int":
        if raw.strip() == "":
            return var.default, None
        try:
            return int(raw.strip()), None
        except ValueError:
            return var.default, f"{name}={raw!r} is not an integer"
    if var.type == "list":
        return raw.split(), None
    return raw, None


def warnings_for(env: Mapping[str, str]) -> list[str]:
    """Warnings for unknown, removed or ignored devstack-gate variables in ``env``."""
    out = []
    for name in sorted(env):
        if not name.startswith("DEVSTACK_GATE_") or name in VARS or name in IGNORED:
            continue
        if name in REMOVED:
            out.append(f"{name} is {REMOVED[name]}; dsvm ignores it")
            continue
        near = closest(name, [v for v in VARS if v.startswith("DEVSTACK_GATE_")])
        vendor_matrix = env.get("DEVSTACK_GATE_FEATURE_MATRIX")
        out.append(f"unknown variable {name} is ignored"
                   + (f" unless {vendor_matrix} has config "
                      f"'{name.removeprefix('DEVSTACK_GATE_').lower()}'" if vendor_matrix else "")
                   + (f" (did you mean {near}?)" if near else ""))
    return out


_OVERRIDE_BRANCH = re.compile(r"^OVERRIDE_([A-Z0-9_]+)_PROJECT_BRANCH$")
_OVERRIDE_GIT_BASE = re.compile(r"^OVERRIDE_([A-Z0-9_]+)_GIT_BASE$")


def project_overrides(env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Return ({UC: branch} from OVERRIDE_<UC>_PROJECT_BRANCH, {UC: url} from _GIT_BASE)."""
    branches, bases = {}, {}
    for name, value in env.items():
        if m := _OVERRIDE_BRANCH.match(name):
            if m.group(1) != "ZUUL" and value:
                branches[m.group(1)] = value
        elif (m := _OVERRIDE_GIT_BASE.match(name)) and value:
            bases[m.group(1)] = value
    return branches, bases


def uc_name(project: str) -> str:
    """devstack-gate's <UC> form of a project: short name, upper case, '-' and '.' → '_'."""
    short = project.rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9]", "_", short).upper()


@dataclass(frozen=True, eq=False)
class Gate(Mapping[str, Any]):
    """The typed devstack-gate environment: every VARS name → its value, frozen.

    A variable that is not set has its default; ``origin()`` says which it is.
    """

    data: Mapping[str, Any] = field(default_factory=dict)
    given: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", MappingProxyType(dict(self.data)))

    def __getitem__(self, name: str) -> Any:
        return self.data[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def origin(self, name: str) -> str:
        """``env NAME`` when the job set the variable, else ``default``."""
        return f"env {name}" if name in self.given else "default"

    def with_values(self, **values: Any) -> Gate:
        """A copy with some values replaced (as if the job had set them)."""
        return Gate({**self.data, **values}, self.given | set(values))


@dataclass(frozen=True)
class Override:
    """A settings key the environment sets: its value, origin (``env VAR``) and why."""

    key: str
    value: Any
    origin: str
    why: str = ""


@dataclass(frozen=True)
class Resolved:
    """What the environment says: the Gate view, the keys it overrides, its problems."""

    gate: Gate
    overrides: tuple[Override, ...]
    problems: tuple[Problem, ...]


# devstack-gate's Tempest selection, first match wins (spec/devstack-gate.md §6.1, §6.2):
# (variable, dsvm selection, what devstack-gate ran). NOTESTS stopped before the table.
TEMPEST_SELECTION: tuple[tuple[str, str, str], ...] = (
    ("DEVSTACK_GATE_TEMPEST_NOTESTS", "none", "Tempest configured, no test run"),
    ("DEVSTACK_GATE_TEMPEST_REGEX", "regex", "tox -eall -- REGEX"),
    ("DEVSTACK_GATE_TEMPEST_ALL_PLUGINS", "all", "tox -eall-plugin"),
    ("DEVSTACK_GATE_TEMPEST_ALL", "all", "tox -eall -- 'tempest'"),
    ("DEVSTACK_GATE_TEMPEST_DISABLE_TENANT_ISOLATION", "full-serial", "tox -efull-serial"),
    ("DEVSTACK_GATE_TEMPEST_FULL", "full", "tox -efull"),
    ("DEVSTACK_GATE_SMOKE_SERIAL", "smoke-serial", "tox -esmoke-serial"),
    ("DEVSTACK_GATE_TEMPEST_SCENARIOS", "scenario", "tox -escenario"),
)


def tempest_selection(gate: Gate) -> Override | None:
    """The ``tempest.selection`` devstack-gate's variables ask for, or None (profile decides)."""
    for var, chosen, tox in TEMPEST_SELECTION:
        value = gate.get(var)
        if value:
            shown = value if var.endswith("REGEX") else 1
            return Override("tempest.selection", chosen, f"env {var}",
                            f"{var}={shown} (devstack-gate: {tox})")
    return None


def resolve(env: Mapping[str, str], current: Mapping[str, Any]) -> Resolved:
    """Read the environment once: the Gate view and the settings keys it overrides.

    ``current`` holds the values resolved so far (defaults and profile), for the overrides
    computed from them (DEVSTACK_GATE_TIMEOUT plus the buffer).
    """
    problems = unsupported(env)
    values: dict[str, Any] = {}
    overrides: list[Override] = []
    for name, var in VARS.items():
        raw = env.get(name)
        if raw is None:
            values[name] = var.default
            continue
        value, err = parse_value(name, var, raw)
        if err:
            problems.append(Problem(f"env {name}", err,
                                    hint="devstack-gate variables take 1/0 for flags"
                                    if var.type == "bool" else f"{name} is a whole number: {var.help}"))
            values[name] = var.default
            continue
        values[name] = value
        if var.key and value is not None and not (var.type == "str" and value == ""):
            overrides.append(Override(var.key, var.convert(value) if var.convert else value,
                                      f"env {name}"))
    given = frozenset(n for n in VARS if n in env)
    # Pre-2016 jobs give DEVSTACK_GATE_TIMEOUT (minutes) without BUILD_TIMEOUT: honour it.
    if env.get("BUILD_TIMEOUT") is None and values.get("DEVSTACK_GATE_TIMEOUT"):
        buffer = next((o.value for o in overrides if o.key == "timeout.buffer_minutes"),
                      current.get("timeout.buffer_minutes"))
        overrides.append(Override("timeout.job_minutes",
                                  values["DEVSTACK_GATE_TIMEOUT"] + int(buffer or 0),
                                  "env DEVSTACK_GATE_TIMEOUT (+ buffer)"))
    # Job-template convention (spec §3.1): BRANCH_OVERRIDE → OVERRIDE_ZUUL_BRANCH.
    if values.get("BRANCH_OVERRIDE") and values["BRANCH_OVERRIDE"] != "default" \
            and not values.get("OVERRIDE_ZUUL_BRANCH"):
        values["OVERRIDE_ZUUL_BRANCH"] = values["BRANCH_OVERRIDE"]
    if values.get("TEMPEST_CONCURRENCY") is not None and values["TEMPEST_CONCURRENCY"] < 1:
        problems.append(Problem("env TEMPEST_CONCURRENCY",
                                f"must be at least 1, got {values['TEMPEST_CONCURRENCY']}"))
    gate = Gate(values, given)
    selection = tempest_selection(gate)
    if selection is not None:
        overrides.append(selection)
    return Resolved(gate, tuple(overrides), tuple(problems))
