"""What counts as a secret, and masking it: names (``*password*``, ``san_password``…), values.

Used wherever settings, local.conf lines, plans or logs are shown, so a secret is never printed.
Imports nothing heavy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "****"

# Option/variable names whose values are secret (case-insensitive substring match).
_SECRET_NAME = re.compile(r"pass(word|wd)?($|_)|secret|token|private_key|api_key|apikey|"
                          r"credential", re.IGNORECASE)


def is_secret_name(name: str, extra: Iterable[str] = ()) -> bool:
    """True when an option or variable called ``name`` holds a secret."""
    extra_set = {e.lower() for e in extra}
    return name.lower() in extra_set or bool(_SECRET_NAME.search(name))


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


def redact(text: str, values: Iterable[str]) -> str:
    """Replace every occurrence of each secret value (longest first) with the mask."""
    for v in sorted({v for v in values if v and len(v) >= 3}, key=len, reverse=True):
        text = text.replace(v, MASK)
    return text
