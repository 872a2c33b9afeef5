"""Log collection for a job: sources → redaction (streamed) → compression → index → publish.

``sources`` holds devstack-gate's table and the naming rules, ``redact`` the secret
patterns, ``collect`` inspect/plan/apply, ``store`` one file's write, ``index`` the HTML
listings and manifest, ``snapshot`` the node snapshots (commands, via proc), ``publish``
the rsync upload, ``phase`` the wiring (``run_phase``). Nothing here prints a secret value.
"""

from __future__ import annotations

from typing import Any


def run_phase(ctx: Any, **options: Any) -> Any:
    """The logs phase (see ``dsvm.logs.phase.run_phase``)."""
    from dsvm.logs.phase import run_phase as _run_phase

    return _run_phase(ctx, **options)
