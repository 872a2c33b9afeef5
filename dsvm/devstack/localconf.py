"""devstack's ``local.conf`` as devstack-gate wrote it, plus the profile's settings: rendered, not written.

``render(settings)`` is pure: it turns ``settings.gate`` (the typed ``DEVSTACK_GATE_*``
environment), the ``devstack`` and ``cinder`` profile sections into a ``LocalConf``, every
line of which carries its origin (``env VAR``, ``profile file:line``, ``default``,
``devstack-gate``) and a masked form for display. Order of the ``[[local|localrc]]`` lines
(spec/devstack-gate.md §4.2; later lines win when devstack sources them):

1. devstack-gate's ``setup_localrc`` rows 1-19, in its order;
2. the Cinder backends' localrc lines (``CINDER_ENABLED_BACKENDS``);
3. the profile's ``devstack.localrc``, then ``enable_service``/``disable_service`` lines;
4. the profile's ``devstack.local_config``, then ``DEVSTACK_LOCAL_CONFIG``, verbatim.

Then ``[[post-config|…]]`` and ``[[test-config|…]]`` blocks (Cinder's, then the profile's),
and last ``DEVSTACK_LOCALCONF`` merged key by key, like ``dsconf merge_lc``. Bad input raises
``ProfileError`` (exit 2) listing every problem with its profile line. This module never
touches the disk, the clock or ``os.environ``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dsvm import secrets
from dsvm.devstack import cinder, matrix
from dsvm.devstack.blocks import (
    GATE,
    Blocks,
    Line,
    check_section,
    check_spec,
    check_value,
    locate,
    short_origin,
)
from dsvm.errors import Problem, ProfileError

if TYPE_CHECKING:
    from dsvm.jobfacts import Job
    from dsvm.profile import Settings

LOCALRC_HEADER = "[[local|localrc]]"
KEPT = "existing local.conf (KEEP_LOCALRC)"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ASSIGN = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_BARE_OK = re.compile(r"^[A-Za-z0-9_./:,@%+=${}\-]*$")
_VAR_REF = re.compile(r"^\$(?:[A-Za-z_][A-Za-z0-9_]*|\{[A-Za-z_][A-Za-z0-9_]*\})$")
_ALNUM = re.compile(r"^[A-Za-z0-9]*$")
GRENADE_RELEASES = ("kilo", "liberty", "mitaka", "newton", "ocata", "pike", "queens", "rocky",
                    "stein", "train", "ussuri", "victoria", "wallaby")


@dataclass(frozen=True)
class LocalConf:
    """A rendered local.conf: lines with origins; the Cinder backend names it enables."""

    lines: tuple[Line, ...]
    backends: tuple[str, ...] = ()

    def text(self) -> str:
        """The exact file content (LF line endings, final newline)."""
        return "".join(line.text + "\n" for line in self.lines)

    def masked(self) -> str:
        """The content with every secret value replaced by ****."""
        return "".join(line.display + "\n" for line in self.lines)

    @property
    def has_secrets(self) -> bool:
        return any(line.shown is not None for line in self.lines)


# --------------------------------------------------------------------------------------------
# devstack-gate's setup_localrc (spec §4.2), one function per group of rows.

@dataclass
class _Out:
    """The lines being built, plus problems found on the way."""

    settings: Settings
    lines: list[Line] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    secret_names: tuple[str, ...] = ()

    def origin(self, var: str) -> str:
        return f"env {var}" if var in self.settings.env else f"default {var}"

    def add(self, name: str, value: Any, origin: str, quote: bool = True) -> None:
        """Append ``name=value``; a value that is not a plain word is double-quoted.

        devstack-gate wrote values bare; plain words still are, so its lines stay byte for
        byte, but a value from the environment can no longer inject shell into localrc.
        """
        text_value = _str(value)
        if quote:
            text_value = _quote(text_value)
        shown = None
        if secrets.is_secret_name(name, self.secret_names) and text_value:
            shown = f"{name}={secrets.MASK}"
        self.lines.append(Line(f"{name}={text_value}", origin, shown))

    def raw(self, text: str, origin: str) -> None:
        for raw_line in text.split("\n"):
            shown = None
            m = _ASSIGN.match(raw_line)
            if m and secrets.is_secret_name(m.group(1), self.secret_names) and m.group(2):
                shown = raw_line[:m.start(2)] + secrets.MASK
            self.lines.append(Line(raw_line, origin, shown))


def _str(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, list | tuple):
        return ",".join(_str(v) for v in value)
    return "" if value is None else str(value)


def _quote(value: str) -> str:
    """Quote a profile value for a sourced bash file; ``$VAR`` still expands (devstack.md §2.7)."""
    if value.startswith('"') or _BARE_OK.match(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _neutron(gate: Mapping[str, Any], branch: str) -> bool:
    if gate.get("DEVSTACK_GATE_NEUTRON") is not None:
        return bool(gate["DEVSTACK_GATE_NEUTRON"])
    return not re.match(r"^stable/[a-n]", branch)


def grenade_old_branch(mode: str, base: str) -> str:
    """GRENADE_OLD_BRANCH for a grenade mode and base branch (spec §3.9); '' when none."""
    if mode.startswith("sideways-"):
        return base
    release = base[len("stable/"):] if base.startswith("stable/") else ""
    if release in GRENADE_RELEASES[1:] and mode == "pullup":
        return "stable/" + GRENADE_RELEASES[GRENADE_RELEASES.index(release) - 1]
    if release in GRENADE_RELEASES and mode == "forward":
        return base
    if release == "kilo" and mode == "pullup" or not release and mode == "pullup":
        return "stable/wallaby"
    return ""


def _branch(settings: Settings, job: Job) -> tuple[str, str]:
    """The job's branch (jobfacts' one ladder, for the job rather than a project)."""
    from dsvm import jobfacts

    return jobfacts.indicated_branch(None, jobfacts.branch_rules(settings, settings.env), job)


def _libs_from_git(out: _Out, job: Job) -> tuple[str, str]:
    """LIBS_FROM_GIT: DEVSTACK_PROJECT_FROM_GIT, else (Zuul v3) the required projects."""
    given = out.settings.gate.get("DEVSTACK_PROJECT_FROM_GIT") or ""
    if given or not job.libs_from_git():
        return given, out.origin("DEVSTACK_PROJECT_FROM_GIT")
    return ",".join(job.libs_from_git()), "zuul.projects (required) and zuul.project"


def _rows_network_head(out: _Out, gate: Mapping[str, Any], neutron: bool) -> None:
    if gate.get("DEVSTACK_GATE_USE_PYTHON3"):
        out.add("USE_PYTHON3", gate["DEVSTACK_GATE_USE_PYTHON3"],
                out.origin("DEVSTACK_GATE_USE_PYTHON3"))
    if gate.get("DEVSTACK_GATE_CEPH"):
        o = out.origin("DEVSTACK_GATE_CEPH")
        out.add("CINDER_ENABLED_BACKENDS", "ceph:ceph", o)
        out.add("TEMPEST_STORAGE_PROTOCOL", "ceph", o)
    if neutron:
        o = out.origin("DEVSTACK_GATE_NEUTRON")
        out.add("Q_USE_DEBUG_COMMAND", "True", o)
        out.add("NETWORK_GATEWAY", "10.1.0.1", o)
    if gate.get("DEVSTACK_GATE_NEUTRON_DVR"):
        multinode = gate.get("DEVSTACK_GATE_TOPOLOGY") == "multinode"
        out.add("Q_DVR_MODE", "dvr" if multinode else "dvr_snat",
                out.origin("DEVSTACK_GATE_NEUTRON_DVR"))


def _rows_always(out: _Out, gate: Mapping[str, Any], services: str, services_origin: str,
                 base: str, libs: tuple[str, str]) -> None:
    """Row 5: the block devstack-gate always wrote (BASE honoured instead of forced)."""
    base_o = out.origin("BASE")
    new = f"{base}/new"
    fixed = gate.get("DEVSTACK_GATE_FIXED_RANGE") or "10.1.0.0/20"
    rows: list[tuple[str, Any, str]] = [
        ("USE_SCREEN", "False", GATE), ("DEST", new, base_o), ("DATA_DIR", f"{base}/data", base_o),
        ("ACTIVE_TIMEOUT", 90, GATE), ("BOOT_TIMEOUT", 90, GATE),
        ("ASSOCIATE_TIMEOUT", 60, GATE), ("TERMINATE_TIMEOUT", 60, GATE),
        ("MYSQL_PASSWORD", "secretmysql", GATE), ("DATABASE_PASSWORD", "secretdatabase", GATE),
        ("RABBIT_PASSWORD", "secretrabbit", GATE), ("ADMIN_PASSWORD", "secretadmin", GATE),
        ("SERVICE_PASSWORD", "secretservice", GATE), ("SERVICE_TOKEN", "111222333444", GATE),
        ("SWIFT_HASH", "1234123412341234", GATE), ("ROOTSLEEP", 0, GATE),
        ("ERROR_ON_CLONE", "True", GATE), ("INSTALL_TEMPEST", "False", GATE),
        ("NOVNC_FROM_PACKAGE", "True", GATE), ("ENABLED_SERVICES", services, services_origin),
        ("SKIP_EXERCISES", "boot_from_volume,bundle,client-env,euca", GATE),
        ("SYSLOG", "False", GATE), ("SCREEN_LOGDIR", f"{new}/screen-logs", base_o),
        ("LOGFILE", f"{new}/devstacklog.txt", base_o), ("VERBOSE", "True", GATE),
        ("FIXED_RANGE", fixed, out.origin("DEVSTACK_GATE_FIXED_RANGE")),
        ("IPV4_ADDRS_SAFE_TO_USE", gate.get("DEVSTACK_GATE_IPV4_ADDRS_SAFE_TO_USE") or fixed,
         out.origin("DEVSTACK_GATE_IPV4_ADDRS_SAFE_TO_USE")),
        ("FLOATING_RANGE", gate.get("DEVSTACK_GATE_FLOATING_RANGE"),
         out.origin("DEVSTACK_GATE_FLOATING_RANGE")),
        ("PUBLIC_NETWORK_GATEWAY", gate.get("DEVSTACK_GATE_PUBLIC_NETWORK_GATEWAY"),
         out.origin("DEVSTACK_GATE_PUBLIC_NETWORK_GATEWAY")),
        ("FIXED_NETWORK_SIZE", 4096, GATE),
        ("VIRT_DRIVER", gate.get("DEVSTACK_GATE_VIRT_DRIVER"),
         out.origin("DEVSTACK_GATE_VIRT_DRIVER")),
        ("SWIFT_REPLICAS", 1, GATE), ("SWIFT_START_ALL_SERVICES", "False", GATE),
        ("LOG_COLOR", "False", GATE), ("UNDO_REQUIREMENTS", "False", GATE),
        ("CINDER_PERIODIC_INTERVAL", 10, GATE), ("export OS_NO_CACHE", "True", GATE),
        ("LIBS_FROM_GIT", *libs),
        ("EBTABLES_RACE_FIX", "True", GATE), ("DEBUG_LIBVIRT_COREDUMPS", "True", GATE),
    ]
    for name, value, origin in rows:
        out.add(name, value, origin)


def _rows_virt(out: _Out, gate: Mapping[str, Any], base: str) -> None:
    """Rows 6-11: bridge MTU, volume clear, heat slow, libvirt type, ironic, xenapi."""
    env = out.settings.env
    if gate.get("DEVSTACK_GATE_TOPOLOGY") == "multinode" and env.get("EXTERNAL_BRIDGE_MTU"):
        out.add("PUBLIC_BRIDGE_MTU", env["EXTERNAL_BRIDGE_MTU"], "env EXTERNAL_BRIDGE_MTU")
    out.add("CINDER_VOLUME_CLEAR", gate.get("DEVSTACK_CINDER_VOLUME_CLEAR") or "none",
            out.origin("DEVSTACK_CINDER_VOLUME_CLEAR"))
    if gate.get("DEVSTACK_GATE_TEMPEST_HEAT_SLOW"):
        o = out.origin("DEVSTACK_GATE_TEMPEST_HEAT_SLOW")
        out.add("HEAT_CREATE_TEST_IMAGE", "False", o)
        out.add("HEAT_FETCHED_TEST_IMAGE", "Fedora-i386-20-20131211.1-sda", o)
    virt = gate.get("DEVSTACK_GATE_VIRT_DRIVER")
    if virt == "libvirt" and gate.get("DEVSTACK_GATE_LIBVIRT_TYPE"):
        out.add("LIBVIRT_TYPE", gate["DEVSTACK_GATE_LIBVIRT_TYPE"],
                out.origin("DEVSTACK_GATE_LIBVIRT_TYPE"))
    if virt == "ironic":
        _rows_ironic(out, gate, base)
    if virt == "xenapi":
        _rows_xenapi(out, gate)


def _rows_ironic(out: _Out, gate: Mapping[str, Any], base: str) -> None:
    o = out.origin("DEVSTACK_GATE_VIRT_DRIVER")
    driver = gate.get("DEVSTACK_GATE_IRONIC_DRIVER") or "pxe_ipmitool"
    agent = driver.startswith("agent")
    rows: list[tuple[str, Any]] = [
        ("IRONIC_DEPLOY_DRIVER", driver), ("IRONIC_BAREMETAL_BASIC_OPS", "True"),
        ("IRONIC_VM_LOG_DIR", f"{base}/new/ironic-bm-logs"),
        ("DEFAULT_INSTANCE_TYPE", "baremetal"),
        ("BUILD_TIMEOUT", gate.get("DEVSTACK_GATE_TEMPEST_BAREMETAL_BUILD_TIMEOUT") or 600),
        ("IRONIC_CALLBACK_TIMEOUT", 600), ("Q_AGENT", "openvswitch"),
        ("Q_ML2_TENANT_NETWORK_TYPE", "vxlan"),
        ("IRONIC_BUILD_DEPLOY_RAMDISK", bool(gate.get("DEVSTACK_GATE_IRONIC_BUILD_RAMDISK"))),
    ]
    if agent:
        rows += [("SWIFT_ENABLE_TEMPURLS", "True"), ("SWIFT_TEMPURL_KEY", "secretkey"),
                 ("IRONIC_ENABLED_DRIVERS", "fake,agent_ipmitool"),
                 ("IRONIC_VM_EPHEMERAL_DISK", 0), ("IRONIC_VM_SPECS_RAM", 1024)]
    else:
        rows += [("IRONIC_ENABLED_DRIVERS", "fake,pxe_ipmitool"), ("IRONIC_VM_EPHEMERAL_DISK", 1)]
    for name, value in rows:
        out.add(name, value, o)


def _rows_xenapi(out: _Out, gate: Mapping[str, Any]) -> None:
    need = ("DEVSTACK_GATE_XENAPI_DOM0_IP", "DEVSTACK_GATE_XENAPI_DOMU_IP",
            "DEVSTACK_GATE_XENAPI_PASSWORD")
    missing = [n for n in need if not gate.get(n)]
    if missing:
        out.problems.append(Problem("env DEVSTACK_GATE_VIRT_DRIVER",
                                    "xenapi needs " + ", ".join(missing),
                                    hint="export them, as devstack-gate required"))
        return
    o = "env DEVSTACK_GATE_VIRT_DRIVER"
    dom0, domu = gate[need[0]], gate[need[1]]
    rows: list[tuple[str, Any]] = [
        ("SKIP_EXERCISES", "boot_from_volume,bundle,client-env,euca,volumes"),
        ("XENAPI_PASSWORD", gate[need[2]]), ("XENAPI_CONNECTION_URL", f"http://{dom0}"),
        ("VNCSERVER_PROXYCLIENT_ADDRESS", dom0), ("VIRT_DRIVER", "xenserver"),
        ("FLAT_NETWORK_BRIDGE", "vmnet"), ("PUBLIC_INTERFACE", "eth4"),
        ("VLAN_INTERFACE", "eth3"), ("FLAT_INTERFACE", "eth3"), ("HOST_IP", domu),
        ("SERVICE_HOST", domu),
        ("XEN_FIREWALL_DRIVER", "nova.virt.firewall.NoopFirewallDriver"),
        ("EXTRA_OPTS", '("xenapi_disable_agent=True")'),
        ("VOLUME_BACKING_DEVICE", "/dev/xvdb"), ("MULTI_HOST", 1),
    ]
    for name, value in rows:
        out.add(name, value, o, quote=name != "EXTRA_OPTS")  # a bash array, as devstack-gate


def _rows_tail(out: _Out, gate: Mapping[str, Any], tempest: bool, tempest_origin: str,
               grenade: bool, primary_ip: str) -> None:
    """Rows 12-19: Tempest, tenant isolation, grenade, large ops, config drive, topology."""
    if tempest:
        out.add("VOLUME_BACKING_FILE_SIZE", "24G", tempest_origin)
        out.add("TEMPEST_HTTP_IMAGE", "http://git.openstack.org/static/openstack.png",
                tempest_origin)
    if gate.get("DEVSTACK_GATE_TEMPEST_DISABLE_TENANT_ISOLATION"):
        out.add("TEMPEST_ALLOW_TENANT_ISOLATION", "False",
                out.origin("DEVSTACK_GATE_TEMPEST_DISABLE_TENANT_ISOLATION"))
    if grenade:
        o = out.origin("DEVSTACK_GATE_GRENADE")
        for name, value in (("GRENADE_PHASE", "target"), ("CEILOMETER_USE_MOD_WSGI", "False"),
                            ("GLANCE_STANDALONE", "False")):
            out.add(name, value, o)
    large = gate.get("DEVSTACK_GATE_TEMPEST_LARGE_OPS") or 0
    if large >= 1:
        o = out.origin("DEVSTACK_GATE_TEMPEST_LARGE_OPS")
        out.add("VIRT_DRIVER", "fake", o)
        out.add("TEMPEST_LARGE_OPS_NUMBER", 50 if large == 1 else large, o)
    out.add("FORCE_CONFIG_DRIVE", bool(gate.get("DEVSTACK_GATE_CONFIGDRIVE")),
            out.origin("DEVSTACK_GATE_CONFIGDRIVE"))
    if gate.get("CEILOMETER_NOTIFICATION_TOPICS"):
        out.add("CEILOMETER_NOTIFICATION_TOPICS", gate["CEILOMETER_NOTIFICATION_TOPICS"],
                out.origin("CEILOMETER_NOTIFICATION_TOPICS"))
    if gate.get("DEVSTACK_GATE_INSTALL_TESTONLY"):
        out.add("INSTALL_TESTONLY_PACKAGES", "True", out.origin("DEVSTACK_GATE_INSTALL_TESTONLY"))
    if (gate.get("DEVSTACK_GATE_TOPOLOGY") or "aio") != "aio":
        o = out.origin("DEVSTACK_GATE_TOPOLOGY")
        for name, value in (("NOVA_ALLOW_MOVE_TO_SAME_HOST", "False"),
                            ("LIVE_MIGRATION_AVAILABLE", "True"),
                            ("USE_BLOCK_MIGRATION_FOR_LIVE_MIGRATION", "True"),
                            ("SERVICE_HOST", primary_ip), ("HOST_IP", primary_ip)):
            out.add(name, value, o)


def _services(out: _Out, tempest: bool, neutron: bool, branch: str, branch_origin: str,
              grid: matrix.Grid = matrix.BUILTIN) -> tuple[str, str]:
    """ENABLED_SERVICES and its origin: OVERRIDE_ENABLED_SERVICES, or the matrix (+ENABLED_SERVICES)."""
    gate = out.settings.gate
    if gate.get("OVERRIDE_ENABLED_SERVICES"):
        return gate["OVERRIDE_ENABLED_SERVICES"], "env OVERRIDE_ENABLED_SERVICES"
    # A vendor's matrix may have configs of its own: their DEVSTACK_GATE_<X> come from the env.
    configs = matrix.configs_from({**out.settings.env, **gate, "DEVSTACK_GATE_TEMPEST": tempest,
                                   "DEVSTACK_GATE_NEUTRON": neutron}, grid)
    mbranch, why = matrix.normalize_branch(branch, grid)
    services = ",".join(matrix.enabled_services(configs, mbranch,
                                                bool(gate.get("DEVSTACK_GATE_NO_SERVICES")),
                                                grid))
    origin = f"feature matrix ({why}; {branch_origin})" if grid is matrix.BUILTIN else \
        f"feature matrix {grid.source} ({why}; {branch_origin})"
    if gate.get("ENABLED_SERVICES"):
        services += "," + gate["ENABLED_SERVICES"]
        origin += " + env ENABLED_SERVICES"
    return services, origin


def gate_lines(settings: Settings, primary_ip: str = "127.0.0.1", job: Job | None = None,
               grid: matrix.Grid = matrix.BUILTIN) -> tuple[list[Line], list[Problem]]:
    """Return devstack-gate's localrc lines (spec §4.2 rows 1-19) and any problems.

    ``job`` is the resolved job (``ctx.job``): its branch and, under Zuul v3, LIBS_FROM_GIT.
    """
    from dsvm.jobfacts import Job

    job = job or Job()
    gate = settings.gate
    out = _Out(settings, secret_names=settings.devstack.secrets)
    branch, branch_origin = _branch(settings, job)
    neutron = _neutron(gate, branch)  # the wrap decides from OVERRIDE_ZUUL_BRANCH, not grenade's
    mode = gate.get("DEVSTACK_GATE_GRENADE") or ""
    grenade = mode not in ("", "0", "false", "False", "FALSE")
    if grenade:
        if mode not in ("pullup", "forward") and not mode.startswith("sideways-"):
            out.problems.append(Problem("env DEVSTACK_GATE_GRENADE",
                                        f"unsupported upgrade mode: {mode}",
                                        hint="use pullup, forward or sideways-<x>"))
        old = grenade_old_branch(mode, branch)
        if old:
            branch, branch_origin = old, f"grenade {mode} from {branch}"
    tempest = settings.tempest.enabled or grenade
    tempest_origin = "grenade forces Tempest" if grenade and not settings.tempest.enabled \
        else _origin_of(settings, "tempest.enabled")
    services, services_origin = _services(out, tempest, neutron, branch, branch_origin, grid)
    base = settings.paths.base.rstrip("/") or "/"
    _rows_network_head(out, gate, neutron)
    _rows_always(out, gate, services, services_origin, base, _libs_from_git(out, job))
    _rows_virt(out, gate, base)
    _rows_tail(out, gate, tempest, tempest_origin, grenade, primary_ip)
    return out.lines, out.problems


def _origin_of(settings: Settings, dotted: str) -> str:
    """A settings key's origin for display: ``default <key>``, ``env VAR`` or file:line."""
    origin = settings.origin(dotted)
    return f"default {dotted}" if origin == "default" else short_origin(origin)



# --------------------------------------------------------------------------------------------
# The profile's own parts, validated against what devstack can carry (devstack.md §2.7).

def profile_blocks(settings: Settings, key: str, phase: str, blocks: Blocks) -> list[Problem]:
    """Merge ``devstack.post_config``/``test_config`` ({spec: {section: {opt: value}}}) into blocks."""
    data = settings.get(key) or {}
    name = key.split(".")[1]
    problems: list[Problem] = []
    if not isinstance(data, dict):
        return [Problem(locate(settings, ["devstack", name]), f"'{key}' must be a mapping "
                        "{file spec: {section: {option: value}}}")]
    extra = settings.devstack.secrets
    for spec, sections in data.items():
        where = locate(settings, ["devstack", name, spec])
        problems += check_spec(str(spec), where)
        if not isinstance(sections, dict):
            problems.append(Problem(where, f"{key}.{spec} must map sections to options"))
            continue
        for section, options in sections.items():
            swhere = locate(settings, ["devstack", name, spec, section])
            problems += check_section(str(section), swhere)
            if not isinstance(options, dict):
                problems.append(Problem(swhere, f"[{section}] must map options to values"))
                continue
            for opt, value in options.items():
                owhere = locate(settings, ["devstack", name, spec, section, opt])
                problems += check_section(str(opt), owhere)
                values = value if isinstance(value, list) else [value]
                secret = secrets.is_secret_name(str(opt), extra)
                texts = [_str(v) for v in values]
                for t in texts:
                    problems += check_value(t, owhere, f"[{section}] {opt}", secret=secret)
                blocks.set(phase, str(spec), str(section), str(opt), texts, owhere, secret)
    return problems


def _profile_localrc(settings: Settings, out: _Out) -> None:
    localrc = settings.devstack.localrc
    for name, value in localrc.items():
        where = locate(settings, ["devstack", "localrc", name])
        text = _str(value)
        if not _NAME.match(str(name)):
            out.problems.append(Problem(where, f"'{name}' is not a shell variable name"))
            continue
        if "\n" in text or "$(" in text or "`" in text:
            out.problems.append(Problem(where, f"{name}: newlines and command substitution "
                                        "are refused in localrc values"))
            continue
        out.add(str(name), text, where, quote=True)
    for svc_key, fn in (("devstack.enable_services", "enable_service"),
                        ("devstack.disable_services", "disable_service")):
        for i, svc in enumerate(settings.get(svc_key) or []):
            where = locate(settings, ["devstack", svc_key.split(".")[1], i])
            if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", str(svc)):
                out.problems.append(Problem(where, f"'{svc}' is not a service name"))
                continue
            out.lines.append(Line(f"{fn} {svc}", where))


def check_passwords(lines: Iterable[Line], secret_names: Iterable[str]) -> list[Problem]:
    """Secret localrc assignments must be alphanumeric (devstack only carries those safely)."""
    problems = []
    names = tuple(secret_names)
    for line in lines:
        m = _ASSIGN.match(line.text)
        if not m or not secrets.is_secret_name(m.group(1), names):
            continue
        value = m.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if _ALNUM.match(value) or _VAR_REF.match(value):
            continue
        problems.append(Problem(line.origin, f"{m.group(1)}: devstack only handles "
                                "alphanumeric passwords safely; this value has other characters",
                                hint=f"choose an alphanumeric value for {m.group(1)}"))
    return problems


# --------------------------------------------------------------------------------------------
# DEVSTACK_LOCALCONF: a local.conf fragment merged last (dsconf merge_lc).

def parse_fragment(text: str, origin: str, blocks: Blocks, secret_names: Iterable[str]
                   ) -> list[str]:
    """Merge a local.conf fragment's config blocks into ``blocks``; return its localrc lines."""
    localrc: list[str] = []
    phase = spec = section = ""
    names = tuple(secret_names)
    for raw in text.split("\n"):
        if raw.startswith("[[") and "|" in raw and "]]" in raw[2:]:
            fields = re.sub(r"[\[\]]", "", raw.split()[0]).split("|")
            phase, spec, section = fields[0], fields[1] if len(fields) > 1 else "", ""
            continue
        if phase == "local":
            if spec == "localrc":
                localrc.append(raw)
            continue
        if not phase:
            continue
        if raw.startswith("[") and "]" in raw[1:]:
            section = re.sub(r"[\[\]]", "", raw.split()[0])
        elif raw.strip() and not raw.lstrip().startswith("#") and not raw[0].isspace() \
                and section:
            name, _, value = raw.partition("=")
            name = name.rstrip()
            blocks.set(phase, spec, section, name, [value.strip()], origin,
                       secrets.is_secret_name(name, names))
    while localrc and localrc[-1] == "":
        localrc.pop()
    return localrc


# --------------------------------------------------------------------------------------------

def render(settings: Settings, *, primary_ip: str = "127.0.0.1", existing: str = "",
           job: Job | None = None, grid: matrix.Grid = matrix.BUILTIN) -> LocalConf:
    """Return the local.conf for ``settings``; raise ProfileError listing every problem.

    ``existing`` is a local.conf kept with ``KEEP_LOCALRC``: its localrc lines come first and
    its config blocks are merged under ours, as devstack-gate's appending ``dsconf`` did.
    ``job`` is the resolved job (``ctx.job``; none: no Zuul); ``grid`` the feature matrix
    (``DEVSTACK_GATE_FEATURE_MATRIX``; devstack-gate's own by default).
    """
    secret_names = settings.devstack.secrets
    blocks = Blocks()
    out = _Out(settings, secret_names=secret_names)
    if existing:
        out.raw("\n".join(parse_fragment(existing, KEPT, blocks, secret_names)), KEPT)
    lines, problems = gate_lines(settings, primary_ip, job, grid)
    out.lines += lines
    out.problems += problems
    backends, cinder_problems = cinder.backends(settings)
    out.problems += cinder_problems
    for name, value, origin in cinder.localrc(backends):
        out.add(name, value, origin)
    cinder.add_blocks(settings, backends, blocks)
    _profile_localrc(settings, out)
    local_config = settings.devstack.local_config
    if local_config:
        out.raw(local_config.rstrip("\n"), _origin_of(settings, "devstack.local_config"))
    passthrough = settings.gate.get("DEVSTACK_LOCAL_CONFIG") or ""
    if passthrough:
        out.raw(passthrough.rstrip("\n"), "env DEVSTACK_LOCAL_CONFIG")
    out.problems += profile_blocks(settings, "devstack.post_config", "post-config", blocks)
    out.problems += profile_blocks(settings, "devstack.test_config", "test-config", blocks)
    late = settings.gate.get("DEVSTACK_LOCALCONF") or ""
    if late:
        out.raw("\n".join(parse_fragment(late, "env DEVSTACK_LOCALCONF", blocks, secret_names)),
                "env DEVSTACK_LOCALCONF")
    out.problems += check_passwords(out.lines, secret_names)
    if out.problems:
        n = len(out.problems)
        raise ProfileError(f"local.conf cannot be rendered: {n} problem{'s' * (n > 1)}",
                           problems=out.problems,
                           hint="fix the profile lines or variables named above")
    header = Line(LOCALRC_HEADER, GATE)
    all_lines = [header, *out.lines, *blocks.lines()]
    literals = secrets.literals(settings.secret_values())
    masked = [_redact_line(line, literals) for line in all_lines]
    return LocalConf(tuple(masked), tuple(b.name for b in backends))


def _redact_line(line: Line, literals: Sequence[bytes]) -> Line:
    """Mask secret values that appear in lines not recognised as secret by name."""
    shown = secrets.redact_literals(line.display, literals)
    if shown != line.display:
        return Line(line.text, line.origin, shown)
    return line
