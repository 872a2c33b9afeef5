"""The vendor's Cinder backends: profile ``cinder.backends`` → devstack localrc, cinder.conf, tempest.conf.

One backend becomes (spec/devstack.md §4): a ``TYPE:NAME`` entry of
``CINDER_ENABLED_BACKENDS``; a ``[NAME]`` section of ``[[post-config|$CINDER_CONF]]`` with
``volume_backend_name = NAME`` (devstack does not write it for a vendor type), the driver and
its options; ``[DEFAULT] enabled_backends``/``default_volume_type``; and the Tempest
``[volume]``/``[volume-feature-enabled]`` options in ``[[test-config|$TEMPEST_CONFIG]]``.
``apply_text()`` applies the same cinder.conf options to an existing file with the ini editor.
Everything here is pure; writing files is ``configure.py``'s job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dsvm import secrets
from dsvm.devstack.blocks import Blocks, check_section, check_value, locate
from dsvm.errors import Problem, closest

if TYPE_CHECKING:
    from dsvm.profile import Settings

CINDER_SPEC = "$CINDER_CONF"
TEMPEST_SPEC = "$TEMPEST_CONFIG"
KEYS = ("name", "volume_driver", "type", "options", "secret_options", "volume_type",
        "storage_protocol", "vendor_name", "inventory", "cleanup", "array")
_TYPE = re.compile(r"^[A-Za-z0-9_]+$")
_LVM_DRIVER = "cinder.volume.drivers.lvm.LVMVolumeDriver"


@dataclass(frozen=True)
class Backend:
    """One validated backend: devstack type and name, driver, options, which are secret."""

    name: str
    type: str
    volume_driver: str
    options: tuple[tuple[str, str], ...] = ()
    secret_options: frozenset[str] = frozenset()
    storage_protocol: str = ""
    vendor_name: str = ""
    where: str = ""  # profile file:line of the entry

    def is_secret(self, option: str) -> bool:
        return option in self.secret_options or secrets.is_secret_name(option)

    @property
    def entry(self) -> str:
        """The CINDER_ENABLED_BACKENDS entry."""
        return f"{self.type}:{self.name}"


@dataclass(frozen=True)
class Edit:
    """One cinder.conf option the backends set."""

    section: str
    option: str
    value: str
    origin: str
    secret: bool = False


def driver_type(volume_driver: str) -> str:
    """The devstack TYPE for a driver: ``lvm`` for LVM, else the driver's package name.

    ``cinder.volume.drivers.pure.PureISCSIDriver`` → ``pure`` (spec/devstack.md §4.4's example);
    a TYPE without a ``lib/cinder_backends`` file only adds the name and a volume type.
    """
    if volume_driver == _LVM_DRIVER:
        return "lvm"
    parts = volume_driver.split(".")
    if volume_driver.startswith("cinder.volume.drivers.") and len(parts) > 4:
        candidate = parts[3]
    else:
        candidate = parts[0]
    return candidate if _TYPE.match(candidate) else "vendor"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, list | tuple):
        return ",".join(_text(v) for v in value)
    return str(value)


def _parse_one(settings: Settings, i: int, raw: Any) -> tuple[Backend | None, list[Problem]]:
    where = locate(settings, ["cinder", "backends", i])
    if not isinstance(raw, dict):
        return None, [Problem(where, "a backend must be a mapping with name and volume_driver")]
    problems: list[Problem] = []
    for key in raw:
        if key not in KEYS:
            near = closest(str(key), list(KEYS))
            problems.append(Problem(locate(settings, ["cinder", "backends", i, key]),
                                    f"unknown backend key '{key}'",
                                    hint=(f"did you mean '{near}'? " if near else "")
                                    + "allowed: " + ", ".join(KEYS)))
    name = _text(raw.get("name") or "")
    if not name:
        problems.append(Problem(where, "backend without a name"))
    elif check_section(name, where) or re.search(r"[,:]", name):
        problems.append(Problem(locate(settings, ["cinder", "backends", i, "name"]),
                                f"backend name '{name}' cannot be a cinder.conf section",
                                hint="letters, digits, '-', '_' and '.'; no ']', ',', ':' "
                                     "or spaces"))
    driver = _text(raw.get("volume_driver") or "")
    if not driver:
        problems.append(Problem(where, f"backend '{name or i}' has no volume_driver",
                                hint="e.g. volume_driver: cinder.volume.drivers.acme.AcmeDriver"))
    btype = _text(raw.get("type") or driver_type(driver))
    if not _TYPE.match(btype):
        problems.append(Problem(locate(settings, ["cinder", "backends", i, "type"]),
                                f"backend type '{btype}' must be letters, digits and '_'"))
    vtype = _text(raw.get("volume_type") or name)
    if vtype != name:
        problems.append(Problem(
            locate(settings, ["cinder", "backends", i, "volume_type"]),
            f"volume_type '{vtype}' differs from the backend name '{name}'",
            hint="devstack creates one volume type per backend, named after it "
                 "(devstack.md §4.1); drop volume_type or make it equal to name"))
    secret_opts = raw.get("secret_options") or []
    if not isinstance(secret_opts, list):
        problems.append(Problem(where, "secret_options must be a list of option names"))
        secret_opts = []
    options, opt_problems = _options(settings, i, name, raw.get("options") or {},
                                     frozenset(str(s) for s in secret_opts))
    problems += opt_problems
    if problems:
        return None, problems
    return Backend(name, btype, driver, options, frozenset(str(s) for s in secret_opts),
                   _text(raw.get("storage_protocol") or ""), _text(raw.get("vendor_name") or ""),
                   where), []


def _options(settings: Settings, i: int, name: str, raw: Any, secret_opts: frozenset[str]
             ) -> tuple[tuple[tuple[str, str], ...], list[Problem]]:
    path: list[str | int] = ["cinder", "backends", i, "options"]
    if not isinstance(raw, dict):
        return (), [Problem(locate(settings, path), "options must map option names to values")]
    problems: list[Problem] = []
    out = []
    for opt, value in raw.items():
        where = locate(settings, [*path, opt])
        problems += check_section(str(opt), where)
        if value is None or isinstance(value, dict):
            problems.append(Problem(where, f"[{name}] {opt}: give a plain value"))
            continue
        text = _text(value)
        secret = str(opt) in secret_opts or secrets.is_secret_name(str(opt))
        problems += check_value(text, where, f"[{name}] {opt}", secret=secret)
        out.append((str(opt), text))
    return tuple(out), problems


def backends(settings: Settings) -> tuple[list[Backend], list[Problem]]:
    """Return the profile's validated backends and every problem found (with file:line)."""
    raw = settings.cinder.backends  # a list of mappings: the profile's schema checked it
    found: list[Backend] = []
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for i, entry in enumerate(raw):
        name = _text(entry.get("name") or "") if isinstance(entry, dict) else ""
        if name and name in seen:
            where = locate(settings, ["cinder", "backends", i, "name"])
            problems.append(Problem(where, f"duplicate backend name '{name}'",
                                    hint=f"first defined at {seen[name]}"))
            continue
        if name:
            seen[name] = locate(settings, ["cinder", "backends", i, "name"])
        backend, errs = _parse_one(settings, i, entry)
        problems += errs
        if backend is not None:
            found.append(backend)
    for flag, value in settings.cinder.tempest_features.items():
        where = locate(settings, ["cinder", "tempest_features", flag])
        problems += check_section(str(flag), where)
        problems += check_value(_text(value), where, f"tempest_features {flag}", secret=False)
    default = settings.cinder.default_volume_type
    if default and found and default not in seen:
        problems.append(Problem(locate(settings, ["cinder", "default_volume_type"]),
                                f"default_volume_type '{default}' is not a backend",
                                hint="one of: " + ", ".join(seen)))
    return found, problems


def default_volume_type(settings: Settings, found: list[Backend]) -> str:
    """The default volume type: cinder.default_volume_type, else the first backend's name."""
    return settings.cinder.default_volume_type or (found[0].name if found else "")


def localrc(found: list[Backend]) -> list[tuple[str, str, str]]:
    """localrc assignments (name, value, origin): CINDER_ENABLED_BACKENDS when there are backends."""
    if not found:
        return []
    return [("CINDER_ENABLED_BACKENDS", ",".join(b.entry for b in found), found[0].where)]


def cinder_edits(settings: Settings, found: list[Backend]) -> list[Edit]:
    """The cinder.conf options of the backends, in file order."""
    if not found:
        return []
    origin = locate(settings, ["cinder", "backends"])
    edits = [Edit("DEFAULT", "enabled_backends", ",".join(b.name for b in found), origin)]
    default = default_volume_type(settings, found)
    dorigin = locate(settings, ["cinder", "default_volume_type"]) \
        if settings.cinder.default_volume_type else found[0].where
    edits.append(Edit("DEFAULT", "default_volume_type", default, dorigin))
    for b in found:
        edits.append(Edit(b.name, "volume_backend_name", b.name, b.where))
        edits.append(Edit(b.name, "volume_driver", b.volume_driver, b.where))
        for opt, value in b.options:
            where = locate(settings, ["cinder", "backends", found.index(b), "options", opt])
            edits.append(Edit(b.name, opt, value, where, b.is_secret(opt)))
    return edits


def tempest_edits(settings: Settings, found: list[Backend]) -> list[Edit]:
    """tempest.conf options: backend_names, multi_backend, protocol, vendor, feature flags."""
    if not found:
        return []
    origin = locate(settings, ["cinder", "backends"])
    edits = [Edit("volume", "backend_names", ",".join(b.name for b in found), origin)]
    protocol = next((b for b in found if b.storage_protocol), None)
    if protocol:
        edits.append(Edit("volume", "storage_protocol", protocol.storage_protocol,
                          protocol.where))
    vendor = next((b for b in found if b.vendor_name), None)
    if vendor:
        edits.append(Edit("volume", "vendor_name", vendor.vendor_name, vendor.where))
    edits.append(Edit("volume-feature-enabled", "multi_backend", _text(len(found) > 1), origin))
    for flag, value in settings.cinder.tempest_features.items():
        edits.append(Edit("volume-feature-enabled", str(flag), _text(value),
                          locate(settings, ["cinder", "tempest_features", flag])))
    return edits


def add_blocks(settings: Settings, found: list[Backend], blocks: Blocks) -> None:
    """Add the post-config ($CINDER_CONF) and test-config ($TEMPEST_CONFIG) blocks."""
    for phase, spec, edits in (("post-config", CINDER_SPEC, cinder_edits(settings, found)),
                               ("test-config", TEMPEST_SPEC, tempest_edits(settings, found))):
        for e in edits:
            blocks.set(phase, spec, e.section, e.option, [e.value], e.origin, e.secret)


def apply_text(text: str, edits: Iterable[Edit]) -> str:
    """Return cinder.conf ``text`` with every edit applied as devstack's iniset would."""
    from dsvm.devstack import ini

    # iniset puts a new option at the top of its section; devstack's merge feeds a section's
    # options in reverse so they land in local.conf order (devstack.md §2.4 item 8).
    by_section: dict[str, list[Edit]] = {}
    for e in edits:
        by_section.setdefault(e.section, []).append(e)
    for section, group in by_section.items():
        for e in reversed(group):
            text = ini.set_option(text, section, e.option, e.value)
    return text
