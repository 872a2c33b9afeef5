"""The configure phase: render local.conf and write it into the devstack checkout; apply Cinder backends.

``run_phase(ctx)`` gathers two facts (the primary node's IP for multinode, an existing
local.conf when ``KEEP_LOCALRC`` is set), renders with ``localconf.render`` (which validates
and raises ``ProfileError``, exit 2) and writes the file atomically: 0600 when it holds
secrets, owned like the devstack checkout so the stack user can read it. ``apply_cinder``
edits an existing cinder.conf the same way. Nothing here runs a command.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsvm import fsutil
from dsvm.devstack import cinder, localconf, matrix
from dsvm.errors import InfraError, UsageError

if TYPE_CHECKING:
    from dsvm.phase import JobContext, PhaseResult
    from dsvm.profile import Settings

PRIMARY_IP_FILE = Path("/etc/nodepool/primary_node_private")


def devstack_dir(ctx: JobContext) -> Path:
    """The devstack checkout: ``devstack.dir`` or ``$BASE/new/devstack``."""
    configured = ctx.settings.devstack.dir
    return Path(configured) if configured else ctx.base / "new" / "devstack"


def primary_ip(settings: Settings) -> str:
    """The primary node's private IP (multinode only); 127.0.0.1 on a single node."""
    if (settings.gate.get("DEVSTACK_GATE_TOPOLOGY") or "aio") == "aio":
        return "127.0.0.1"
    try:
        return PRIMARY_IP_FILE.read_text().split()[0]
    except (OSError, IndexError) as exc:
        raise InfraError(f"multinode needs the primary node's IP in {PRIMARY_IP_FILE}",
                         hint="create it (devstack-gate required it too)") from exc


def feature_matrix(settings: Settings) -> matrix.Grid:
    """The feature matrix: a vendor's DEVSTACK_GATE_FEATURE_MATRIX file, else devstack-gate's
    own (built in); ProfileError (exit 2) when the vendor's cannot be read or is malformed."""
    path = str(settings.gate["DEVSTACK_GATE_FEATURE_MATRIX"] or "")
    if not path or path in matrix.BUILTIN_PATHS:
        return matrix.BUILTIN
    return matrix.load(path, settings.paths.base)


def render_for(ctx: JobContext) -> tuple[Path, localconf.LocalConf]:
    """Return (target path, rendered local.conf) for the job; raises ProfileError on bad input."""
    target = devstack_dir(ctx) / "local.conf"
    existing = ""
    if ctx.settings.gate.get("KEEP_LOCALRC") and target.is_file():
        existing = target.read_text(encoding="utf-8")
    return target, localconf.render(ctx.settings, primary_ip=primary_ip(ctx.settings),
                                    existing=existing, job=ctx.job,
                                    grid=feature_matrix(ctx.settings))


def plan_phase(ctx: JobContext) -> dict[str, Any]:
    """For ``dsvm run --plan``: the local.conf the job would write (masked) and its backends."""
    conf = localconf.render(ctx.settings, job=ctx.job, grid=feature_matrix(ctx.settings))
    return {"local_conf": conf.masked(), "backends": list(conf.backends)}


def run_phase(ctx: JobContext) -> PhaseResult:
    """Render and write local.conf; outputs ``{"local_conf": path, "backends": [...]}``."""
    from dsvm.phase import ConfigureOutputs, PhaseResult  # imports the command runner: not
    # for --apply-cinder

    target, rendered = render_for(ctx)
    outputs = ConfigureOutputs(str(target), rendered.backends).as_json()
    if ctx.plan_only:
        return PhaseResult("configure", 0, outputs, f"would write {target}")
    if not target.parent.is_dir():
        error = UsageError if ctx.settings.devstack.dir else InfraError
        raise error(f"devstack checkout not found: {target.parent}",
                    hint="run 'dsvm workspace' first, or set devstack.dir / --devstack-dir")
    mode = 0o600 if rendered.has_secrets else 0o644
    fsutil.write_atomic(target, rendered.text(), mode=mode, owner_like=target.parent)
    _log(ctx, target, rendered)
    n = len(rendered.backends)
    summary = f"wrote {target} ({len(rendered.lines)} lines, {n} Cinder backend{'s' * (n != 1)})"
    return PhaseResult("configure", 0, outputs, summary)


def _log(ctx: JobContext, target: Path, rendered: localconf.LocalConf) -> None:
    """Record the masked local.conf with origins in the phase log (it is collected later)."""
    log = ctx.phase_log("configure")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as fh:
        fh.write(f"# local.conf written to {target} (secrets masked)\n")
        fh.write(format_lines(rendered))


def format_lines(rendered: localconf.LocalConf, width: int = 60) -> str:
    """The masked lines, each followed by ``# origin`` in an aligned column."""
    out = []
    for line in rendered.lines:
        shown = line.display
        pad = max(width - len(shown), 1)
        out.append(f"{shown}{' ' * pad}# {line.origin}" if shown else f"{'':{width}}# "
                   f"{line.origin}")
    return "\n".join(out) + "\n"


def apply_cinder(settings: Settings, conf: Path) -> list[cinder.Edit]:
    """Apply the profile's backends to an existing cinder.conf; return the edits made."""
    found, problems = cinder.backends(settings)
    if problems:
        raise UsageError(f"cinder backends: {len(problems)} problem(s)", problems=problems,
                         exit_code=2)
    if not found:
        raise UsageError("the profile has no cinder.backends to apply",
                         hint="use a profile with a cinder section (e.g. cinder-lvm)")
    try:
        text = conf.read_text(encoding="utf-8")
        stat = conf.stat()
    except OSError as exc:
        raise UsageError(f"cannot read {conf}: {exc.strerror}",
                         hint="give the path of an existing cinder.conf") from exc
    edits = cinder.cinder_edits(settings, found)
    new = cinder.apply_text(text, edits)
    mode = stat.st_mode & 0o7777
    if any(e.secret for e in edits):
        mode &= ~0o007  # never world-readable once it holds a backend secret
    fsutil.write_atomic(conf, new, mode=mode, owner_like=conf)
    return edits
