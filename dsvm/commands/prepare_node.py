"""``dsvm prepare-node``: cache repos, images and packages on a node image."""

from __future__ import annotations

import argparse
from typing import Any

from dsvm.commands import add_command, add_json

STEPS = ("users", "repos", "images", "pip-cache", "packages")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str) -> None:
    p = add_command(
        sub, name, help="cache git repos, images and packages on a node image",
        description="Run during node image build (as root): mirror every git repository the "
                    "profiles may need under the git cache (<cache>/<org>/<name>, plus the "
                    "projects the cached devstack's stackrc names), download the images "
                    "devstack would fetch into its files/ cache, create the stack/tempest "
                    "users with devstack-gate's sudo rules and the pip cache, and write "
                    "<cache>/.dsvm-manifest.json. Idempotent (a second run fetches only what "
                    "changed) and resumable (a half-written repo or download is redone).\n\n"
                    f"steps: {', '.join(STEPS)} (leave one out with --skip STEP)\n"
                    "profiles: the ones named, else --profile, else every shipped profile",
        example="sudo GIT_BASE=https://opendev.org dsvm prepare-node --jobs 4 "
                "tempest-full cinder-lvm")
    p.add_argument("profiles", nargs="*", metavar="PROFILE",
                   help="profiles whose projects/images to cache (default: all shipped)")
    p.add_argument("--git-cache", metavar="DIR", help="cache root (default $DSVM_GIT_CACHE "
                   "or /opt/git)")
    p.add_argument("--git-base", metavar="URL", help="where to clone from (default $GIT_BASE "
                   "or https://opendev.org)")
    p.add_argument("--files-dir", metavar="DIR", help="image cache (default /opt/cache/files)")
    p.add_argument("--root", metavar="DIR", help="node root: prepare a chroot/image tree "
                   "instead of / (default /)")
    p.add_argument("--jobs", type=int, default=None, help="parallel workers (default 4)")
    p.add_argument("--skip", action="append", default=[], metavar="STEP",
                   help="leave out a named step (repeatable)")
    add_json(p)
    p.set_defaults(func=run)


def options_from(args: argparse.Namespace) -> dict[str, Any]:
    """Command-line values as dotted settings keys (None = not given)."""
    return {"git.cache": args.git_cache, "git.base": args.git_base,
            "node.files_dir": args.files_dir, "node.root": args.root, "node.jobs": args.jobs,
            "node.skip": list(args.skip) or None}


def profile_names(args: argparse.Namespace) -> list[str]:
    """The profiles to cache for: positional, else --profile, else every shipped one."""
    from dsvm import profile

    if args.profiles:
        return list(args.profiles)
    if args.profile:
        return [args.profile]
    return [name for name, path, _ in profile.list_profiles()
            if path.parent in (profile.SHIPPED_DIR, profile.PACKAGED_DIR)]


def merged_settings(names: list[str], options: dict[str, Any]) -> Any:
    """Resolve the first profile with the union of every profile's projects/images/packages."""
    from dsvm import profile

    union: dict[str, list[str]] = {"projects": [], "node.images": [], "node.packages": []}
    for name in names:
        settings = profile.resolve(name)
        for key, values in (("projects", settings.top.projects),
                            ("node.images", settings.node.images),
                            ("node.packages", settings.node.packages)):
            union[key].extend(v for v in values if v not in union[key])
    extra = {k: v for k, v in union.items() if len(names) > 1}
    return profile.resolve(names[0], options={**extra, **options})


def run(args: argparse.Namespace) -> int:
    import json
    import signal
    import threading

    from dsvm import console, errors, node, phase
    from dsvm.console import get_ui

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, errors.terminate_handler)
    if args.json:  # stdout carries only the JSON; progress goes to stderr
        console.json_mode()
    settings = merged_settings(profile_names(args), options_from(args))
    ctx = phase.context(settings)
    ctx.ui = get_ui()
    result = node.prepare_phase(ctx)
    if args.json:
        print(json.dumps(result.outputs, indent=2, sort_keys=True))
        return result.exit_code
    ui = get_ui()
    out = result.outputs
    rows = [(step, verdict) for step, verdict in out["steps"].items()]
    ui.table("prepare-node", ["step", "result"], rows)
    for note in out["notes"]:
        ui.info(f"note: {note}")
    ui.ok(result.summary)
    return result.exit_code
