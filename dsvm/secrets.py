"""What counts as a secret, and the one mask that hides secret values wherever text is shown.

Two kinds of knowledge live here:

* **Which options are secret** (ground truth): the oslo.config options the services of a job
  mark ``secret=True``, from ``dsvm/data/secret_options.json`` (generated from the services'
  own packages by ``scripts/gen_secret_options.py``, provenance inside). ``SecretOptions``
  answers "is ``[section] name`` secret?"; devstack's local.conf/openrc variables follow
  devstack's naming (``*_PASSWORD``, ``SERVICE_TOKEN``). ``is_secret_name`` is the looser
  name heuristic used to *display* settings and local.conf lines masked.
* **Masking literal values**: ``refusal`` says why a value is too short or too common to be
  masked wherever it appears (``8192``, ``service``, ``true``); ``literal_spans`` finds the
  others where they stand as whole tokens; ``redact`` is the mask for text (the console, phase
  logs, ``.stackenv``), ``dsvm.logs.redact`` the streamed one for collected files — both on
  ``literal_spans``.

Imports nothing heavy; the table is read once, on first use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

MASK = "****"
TABLE = Path(__file__).resolve().parent / "data" / "secret_options.json"

# Option/variable names whose values are secret (case-insensitive substring match), for
# masking settings and local.conf lines when they are *shown*. Collected logs use the table.
_SECRET_NAME = re.compile(r"pass(word|wd)?($|_)|secret|token|private_key|api_key|apikey|"
                          r"credential", re.IGNORECASE)
# devstack's local.conf / openrc secrets: ADMIN_PASSWORD, SERVICE_TOKEN, OS_PASSWORD ...
_SHELL_SECRET = re.compile(r"(?:^|_)(?:PASSWORD|PASSWD|PASS|TOKEN|SECRET|SECRET_KEY)$")


def is_secret_name(name: str, extra: Iterable[str] = ()) -> bool:
    """True when an option or variable called ``name`` looks like it holds a secret."""
    extra_set = {e.lower() for e in extra}
    return name.lower() in extra_set or bool(_SECRET_NAME.search(name))


def is_shell_secret(name: str) -> bool:
    """True for devstack's secret variables (``ADMIN_PASSWORD``, ``SERVICE_TOKEN``, ...)."""
    return name.isupper() and bool(_SHELL_SECRET.search(name))


# -- ground truth: oslo.config's secret=True options --------------------------------------

# Names of options the table does not know that hold a secret (see holds_secret).
SECRET_ENDINGS = ("password", "passwd", "secret", "secret_key", "secret_access_key", "api_key",
                  "apikey", "adminpass")
TOKEN_NAMES = frozenset({"token", "auth_token", "admin_token", "access_token", "refresh_token",
                         "id_token", "os_token", "os_auth_token", "service_token",
                         "subject_token", "x_auth_token", "api_token", "bearer_token"})


@dataclass(frozen=True)
class SecretOptions:
    """Option name -> groups where it is secret / explicitly not secret (lower-case names).

    ``is_secret(section, name)``: the table's answer for that group when it names it; a name
    secret in some group is secret in any group the table does not know (keystoneauth's
    ``password`` in ``[keystone_authtoken]``, a cinder backend's ``san_password`` in
    ``[lvmdriver-1]``) but not where upstream defines it as plain (keystone's
    ``[auth] password`` lists auth plugins). ``extra`` names are secret anywhere.
    """

    secret: Mapping[str, frozenset[str]] = field(default_factory=dict)
    not_secret: Mapping[str, frozenset[str]] = field(default_factory=dict)
    extra: frozenset[str] = frozenset()
    plain: frozenset[str] = frozenset()  # never secret, though named like it (max_token_size)

    def is_secret(self, section: str | None, name: str) -> bool:
        key = name.strip().lower().replace("-", "_")
        if key in self.extra:
            return True
        groups = self.secret.get(key)
        if groups is None:
            return False
        group = (section or "").strip().lower()
        return group in groups or group not in self.not_secret.get(key, frozenset())

    def holds_secret(self, section: str | None, name: str) -> bool:
        """Whether option ``name`` of ``[section]`` holds a secret: the table's answer for
        the options it knows (secret upstream, or plain though named like a secret); for the
        others (an out-of-tree driver's) a name ending in password/secret/api_key, or a
        token's name."""
        key = name.strip().lower().replace("-", "_")
        if key in self.names:
            return self.is_secret(section, key)
        if key in self.plain:
            return False
        return key.endswith(SECRET_ENDINGS) or key in TOKEN_NAMES

    def with_extra(self, names: Iterable[str]) -> SecretOptions:
        """This table plus ``names`` declared secret by the profile (vendor options)."""
        more = frozenset(n.strip().lower().replace("-", "_") for n in names if n)
        return SecretOptions(self.secret, self.not_secret, self.extra | more, self.plain - more)

    @cached_property
    def names(self) -> frozenset[str]:
        """Every name secret in some group (or declared)."""
        return frozenset(self.secret) | self.extra


@lru_cache(maxsize=1)
def table() -> dict[str, Any]:
    """The generated table as stored (see scripts/gen_secret_options.py)."""
    data: dict[str, Any] = json.loads(TABLE.read_text(encoding="utf-8"))
    return data


@lru_cache(maxsize=1)
def secret_options() -> SecretOptions:
    """The table of the release dsvm was generated against."""
    data = table()
    return SecretOptions(
        {n: frozenset(g) for n, g in data["secret"].items()},
        {n: frozenset(g) for n, g in data["not_secret"].items()},
        plain=frozenset(data.get("plain_lookalikes", {})))


# -- literal values: which may be masked everywhere, and where they stand -----------------

MIN_LITERAL = 6
# Words that fill every OpenStack log: a "secret" equal to one of them would mask the log.
COMMON_WORDS = frozenset("""
password passwd secret service services admin administrator default defaults member reader
public internal private guest stack devstack tempest localhost openstack keystone nova cinder
glance neutron placement swift heat horizon rabbit rabbitmq mysql postgres postgresql memcache
memcached volume volumes image images compute network networks project projects domain user
users token tokens noauth keystoneauth changeme example
""".split())
_EMPTY = frozenset({"none", "null", "true", "false", "yes", "no", "on", "off", "<none>", "-",
                    "''", '""', "[]", "{}"})
_NUMBER = re.compile(r"[0-9.:_/-]+")
WORD = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_SPACE = frozenset(b" \t\n\r\"'=(")


def refusal(value: str) -> str:
    """'' when ``value`` may be masked wherever it stands as a whole token, else why not."""
    v = value.strip()
    if not v:
        return "empty"
    if "\n" in v:
        return "spans several lines"
    if v.lower() in _EMPTY:
        return "a boolean or null"
    if v.startswith(("$", "***")) or v == MASK:
        return "a variable reference or already masked"
    if _NUMBER.fullmatch(v) and len(v) < 16:
        return "a number"
    if v.lower() in COMMON_WORDS:
        return "a common word"
    if len(v) < MIN_LITERAL:
        return f"shorter than {MIN_LITERAL} characters"
    return ""


def usable(values: Iterable[str]) -> tuple[str, ...]:
    """The values (each line of a multi-line one, stripped) that ``refusal`` accepts."""
    keep: set[str] = set()
    for value in values:
        for part in str(value).splitlines():
            part = part.strip()
            if not refusal(part):
                keep.add(part)
    return tuple(sorted(keep, key=lambda v: (-len(v), v)))


def literal_spans(data: bytes, literals: Sequence[bytes]) -> list[tuple[int, int]]:
    """Byte ranges of ``data`` where a literal stands as a whole token (not inside a longer
    word: ``8192`` stays in ``81920``); ``-p<value>`` (mysql's password flag) counts."""
    found: list[tuple[int, int]] = []
    n = len(data)
    for lit in literals:
        size = len(lit)
        i = data.find(lit)
        while i >= 0:
            if whole_token(data, i, i + size, n):
                found.append((i, i + size))
            i = data.find(lit, i + 1)
    return found


def whole_token(data: bytes, i: int, end: int, n: int) -> bool:
    """Whether ``data[i:end]`` (of ``n`` bytes) is not inside a longer word."""
    return (end >= n or data[end] not in WORD) and (
        i == 0 or data[i - 1] not in WORD
        or (data[i - 2:i] == b"-p" and (i < 3 or data[i - 3] in _SPACE)))


def merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, overlapping or touching spans merged (sorts ``spans`` in place)."""
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def replace(data: bytes, spans: list[tuple[int, int]]) -> bytes:
    """``data`` with each (merged, sorted) span replaced by the mask."""
    parts = []
    pos = 0
    for start, end in spans:
        parts.append(data[pos:start])
        parts.append(MASK_BYTES)
        pos = end
    parts.append(data[pos:])
    return b"".join(parts)


MASK_BYTES = MASK.encode()


def redact(text: str, values: Iterable[str]) -> str:
    """``text`` with every usable secret value masked where it stands as a whole token."""
    return redact_literals(text, literals(values))


def literals(values: Iterable[str]) -> list[bytes]:
    """The usable secret values, encoded once for ``redact_literals`` over many texts."""
    return [v.encode() for v in usable(values)]


def redact_literals(text: str, literals: Sequence[bytes]) -> str:
    """``redact`` with the values already chosen by ``literals``."""
    if not literals or not text:
        return text
    data = text.encode("utf-8", "surrogateescape")
    spans = literal_spans(data, literals)
    if not spans:
        return text
    return replace(data, merge(spans)).decode("utf-8", "surrogateescape")


# -- settings trees -----------------------------------------------------------------------

def mask_tree(value: Any, extra: Iterable[str] = (), _key: str = "") -> Any:
    """Return a copy of ``value`` with every secret-named mapping entry masked."""
    extra = list(extra)
    if isinstance(value, dict):
        secret_opts = [str(s) for s in value.get("secret_options", []) or []] \
            if isinstance(value.get("secret_options"), list) else []
        out = {}
        for k, v in value.items():
            if isinstance(v, dict | list):
                out[k] = mask_tree(v, extra + secret_opts, str(k))
            elif v not in (None, "") and is_secret_name(str(k), extra + secret_opts):
                out[k] = MASK
            else:
                out[k] = v
        return out
    if isinstance(value, list):
        return [mask_tree(v, extra, _key) for v in value]
    return value


def secret_values(value: Any, extra: Iterable[str] = ()) -> set[str]:
    """Every literal secret value found in ``value`` (for redacting logs and output)."""
    extra = list(extra)
    found: set[str] = set()
    if isinstance(value, dict):
        secret_opts = [str(s) for s in value.get("secret_options", []) or []] \
            if isinstance(value.get("secret_options"), list) else []
        for k, v in value.items():
            if isinstance(v, dict | list):
                found |= secret_values(v, extra + secret_opts)
            elif v not in (None, "") and is_secret_name(str(k), extra + secret_opts):
                found.add(str(v))
    elif isinstance(value, list):
        for v in value:
            found |= secret_values(v, extra)
    return found
