"""``dsvm configure``: write devstack's local.conf (and apply the vendor's Cinder backend)."""

from __future__ import annotations

import argparse

from dsvm.commands import add_command, add_json

EXAMPLE = """dsvm --profile cinder-lvm configure --print
  DEVSTACK_GATE_TEMPEST=1 dsvm --profile myvendor configure
  dsvm --profile myvendor configure --apply-cinder /etc/cinder/cinder.conf"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str) -> None:
    p = add_command(
        sub, name, help="write local.conf from the profile and DEVSTACK_GATE_* environment",
        description="Render devstack's local.conf as devstack-gate would have for the same "
                    "environment (DEVSTACK_GATE_*, DEVSTACK_LOCAL_CONFIG, ...), plus the "
                    "profile's devstack settings and Cinder backends, and write it into the "
                    "devstack checkout (0600 when it holds secrets). Bad input (a non-"
                    "alphanumeric password, a backend without volume_driver, ...) exits 2 "
                    "naming the profile line.\n\n"
                    "--print shows the file with secrets masked and where each line came "
                    "from; --apply-cinder edits an existing cinder.conf (a node where "
                    "stack.sh already ran) with the profile's backends, like iniset.",
        example=EXAMPLE)
    p.add_argument("--print", dest="print_only", action="store_true",
                   help="show the result (secrets masked, each line's origin); write nothing")
    p.add_argument("--apply-cinder", metavar="CINDER_CONF",
                   help="apply the profile's Cinder backends to an existing cinder.conf")
    p.add_argument("--devstack-dir", metavar="DIR",
                   help="devstack checkout (default: devstack.dir, else $BASE/new/devstack)")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import os
    from pathlib import Path

    from dsvm import environ, profile
    from dsvm.console import get_ui
    from dsvm.devstack import configure

    settings = profile.resolve(args.profile, os.environ,
                               options={"devstack.dir": args.devstack_dir})
    ui = get_ui()
    if args.apply_cinder:
        edits = configure.apply_cinder(settings, Path(args.apply_cinder))
        if args.json:
            print(json.dumps({"cinder_conf": args.apply_cinder, "edits": [
                {"section": e.section, "option": e.option,
                 "value": "****" if e.secret else e.value, "origin": e.origin}
                for e in edits]}, indent=2))
        else:
            ui.table(f"applied to {args.apply_cinder}", ["section", "option", "value", "origin"],
                     [(e.section, e.option, "****" if e.secret else e.value, e.origin)
                      for e in edits])
        return 0
    for warning in environ.warnings_for(os.environ):
        ui.warn(warning)
    from dsvm import phase  # after --apply-cinder: phase pulls in the command runner (sh)

    ctx = phase.context(settings, os.environ, plan_only=args.print_only)
    if args.print_only:
        target, rendered = configure.render_for(ctx)
        if args.json:
            print(json.dumps({"local_conf": str(target), "backends": list(rendered.backends),
                              "lines": [{"text": line.display, "origin": line.origin}
                                        for line in rendered.lines]}, indent=2))
        else:
            print(f"# {target} (not written; secrets masked)")
            print(configure.format_lines(rendered), end="")
        return 0
    result = configure.run_phase(ctx)
    if args.json:
        print(json.dumps(result.outputs, indent=2))
    else:
        ui.ok(result.summary)
    return result.exit_code
