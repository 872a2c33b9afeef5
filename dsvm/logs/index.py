"""What makes a logs dir browsable: ``index.html`` per directory and ``manifest.json``.

A plain static web server is enough to browse the result (the nginx/Apache snippets in
``scripts/logserver/`` add inline display of ``*.txt.gz``). The manifest's format is stable
(``format: 1``, documented in docs/logs.md) and holds sizes and redaction counts, never values.
"""

from __future__ import annotations

import html
import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dsvm import fsutil

MANIFEST_FORMAT = 1


def write_indexes(dest: Path, title: str = "logs") -> int:
    """Write ``index.html`` in ``dest`` and every directory below; return how many."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(dest):
        dirnames.sort()
        here = Path(dirpath)
        if "index.html" in filenames and here != dest:
            continue  # a collected page (e.g. stackviz) already indexes this directory
        rel = here.relative_to(dest)
        rows: list[tuple[str, int | None, Path]] = [(d + "/", None, here / d)
                                                    for d in dirnames]
        rows += [(f, (here / f).stat().st_size, here / f) for f in sorted(filenames)
                 if f != "index.html" and not fsutil.is_temporary(f)]
        page = render_index(f"{title}/{rel}" if str(rel) != "." else title, rows,
                            has_parent=here != dest)
        fsutil.write_atomic(here / "index.html", page)
        count += 1
    return count


def render_index(title: str, rows: list[tuple[str, int | None, Path]],
                 has_parent: bool) -> str:
    """An HTML directory listing: name (link), size, modification time."""
    lines = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>Index of {html.escape(title)}</title>",
        "<style>body{font-family:monospace}td{padding:0 1em}td.size{text-align:right}</style>",
        "</head><body>",
        f"<h1>Index of {html.escape(title)}</h1>",
        "<table><tr><th>name</th><th>size</th><th>modified</th></tr>",
    ]
    if has_parent:
        lines.append('<tr><td><a href="../index.html">../</a></td><td></td><td></td></tr>')
    for name, size, path in rows:
        href = quote(name) + ("index.html" if name.endswith("/") else "")
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(path.stat().st_mtime))
        lines.append(f'<tr><td><a href="{href}">{html.escape(name)}</a></td>'
                     f'<td class="size">{"" if size is None else human_size(size)}</td>'
                     f"<td>{when}</td></tr>")
    lines += ["</table>", "</body></html>", ""]
    return "\n".join(lines)


def human_size(n: float) -> str:
    """1536 -> '1.5K' (ls -h style)."""
    for unit in ("", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}" if unit == "" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}G"


def manifest(collection: Any, root: Path | None,
             refused: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """The stable manifest dict of a Collection (see docs/logs.md); ``refused`` lists the
    secrets not masked everywhere (where they came from and why; never a value)."""
    p = collection.plan
    files = sorted((s for s in collection.stored if not s.skipped), key=lambda s: s.rel)
    skipped = [{"source": s.source, "reason": s.reason} for s in p.skipped if s.problem]
    skipped += [{"source": s.source, "reason": s.note} for s in collection.stored if s.skipped]
    aliases = [{"source": s.source, "reason": s.reason} for s in p.skipped if not s.problem]
    return {
        "format": MANIFEST_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "dest": str(p.dest),
        "root": str(root) if root else None,
        "compression": p.compression,
        "size_budget": p.budget,
        "rotated_to": str(collection.rotated) if collection.rotated else None,
        "totals": {
            "files": len(files),
            "size": sum(s.size for s in files),
            "stored": sum(s.stored for s in files),
            "redactions": sum(s.redactions for s in files),
            "truncated": sum(1 for s in files if s.truncated),
            "skipped": len(skipped),
            "missing": len(p.missing),
        },
        "files": [{"path": s.rel, "source": s.source, "size": s.size, "stored": s.stored,
                   "redactions": s.redactions, "truncated": s.truncated, "note": s.note}
                  for s in files],
        "skipped": skipped,
        "aliases": aliases,
        "missing": list(p.missing),
        "refused_secrets": list(refused or []),
    }


def write_manifest(dest: Path, data: dict[str, Any]) -> Path:
    """Write ``manifest.json`` atomically; return its path."""
    path = dest / "manifest.json"
    fsutil.write_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path
