"""``dsvm profile``: list profiles, show one fully resolved with provenance."""

from __future__ import annotations

import argparse
import json
import os

from dsvm.commands import add_command, add_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str) -> None:
    p = add_command(
        sub, name, help="list profiles; show one fully resolved",
        description="list: the profiles found and where. show [NAME]: every setting after "
                    "built-in defaults, the profile chain (extends), the environment "
                    "(DEVSTACK_GATE_* and friends) and options, with where each value came "
                    "from (default, file:line, env VAR, option). Secret values are masked.",
        example="dsvm profile show cinder-lvm --json")
    p.add_argument("action", choices=["list", "show"])
    p.add_argument("name", nargs="?", help="profile name or path (default: --profile, "
                   "$DSVM_PROFILE or 'base')")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dsvm import console, environ, profile

    ui = console.get_ui()
    if args.action == "list":
        found = profile.list_profiles()
        if args.json:
            print(json.dumps([{"name": n, "path": str(p), "description": d}
                              for n, p, d in found], indent=2))
        else:
            ui.table("profiles", ["name", "description", "path"],
                     [(n, d, str(p)) for n, p, d in found])
        return 0
    settings = profile.resolve(args.name or args.profile, os.environ)
    if args.json:
        print(json.dumps(settings.as_json(), indent=2, sort_keys=True, default=str))
        return 0
    for warning in environ.warnings_for(os.environ):
        ui.warn(warning)
    data = settings.as_json()["settings"]
    rows = [(k, _short(v["value"]), v["origin"]) for k, v in data.items()]
    ui.info(f"profile {settings.profile}: " + " <- ".join(p.stem for p in settings.chain))
    ui.table(f"settings of {settings.profile}", ["key", "value", "from"], rows)
    return 0


def _short(value: object) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 70 else text[:67] + "..."
