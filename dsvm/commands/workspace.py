"""``dsvm workspace``: check projects out at the commits Zuul merged."""

from __future__ import annotations

import argparse
from typing import Any

from dsvm.commands import add_command, add_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str) -> None:
    p = add_command(
        sub, name, help="check projects out from the ZUUL_* environment (or Zuul v3's vars)",
        description="Check every project of the job out under $BASE/new at exactly the "
                    "commit Zuul merged (zuul-cloner semantics): seeded from the node's git "
                    "cache (/opt/git), origin pointed at GIT_BASE, the Zuul ref fetched from "
                    "ZUUL_URL, falling back rung by rung (Zuul ref for master, branch tip, "
                    "master) and saying why. A workspace left by a previous job is reused and "
                    "cleaned. --plan prints the decision and changes nothing (offline). Under "
                    "Zuul v3, --zuul-vars FILE (the zuul variable as JSON/YAML) makes the trees "
                    "the executor prepared under --src-root the checkouts, verified at Zuul's "
                    "commits, without any network access.",
        example="ZUUL_PROJECT=openstack/cinder ZUUL_BRANCH=master ZUUL_REF=refs/zuul/master/Z1 "
                "ZUUL_URL=http://zuul.example.org/p dsvm workspace --plan\n"
                "  env $(grep -v '^#' examples/zuul-change.env) dsvm --profile "
                "examples/workspace-demo.yaml workspace --plan --json\n"
                "  dsvm workspace --zuul-vars ~/zuul-vars.json --src-root ~   # Zuul v3")
    p.add_argument("--plan", action="store_true", help="print the plan, change nothing")
    p.add_argument("--git-cache", metavar="DIR", help="cache root (default $DSVM_GIT_CACHE "
                   "or /opt/git)")
    p.add_argument("--base", metavar="DIR", help="install root; projects land in DIR/new "
                   "(default $BASE or /opt/stack)")
    p.add_argument("--jobs", type=int, metavar="N", help="projects checked out in parallel "
                   "(default git.jobs, 8)")
    add_zuul_vars(p)
    add_json(p)
    p.set_defaults(func=run)


def add_zuul_vars(p: argparse.ArgumentParser) -> None:
    """``--zuul-vars FILE`` and ``--src-root DIR`` (Zuul v3), for workspace and run."""
    p.add_argument("--zuul-vars", metavar="FILE",
                   help="Zuul v3+: the job's zuul variable as JSON or YAML (bare or as "
                        "{zuul: ...}); default $DSVM_ZUUL_VARS. Without it, the ZUUL_* "
                        "environment (Zuul v2) is read")
    p.add_argument("--src-root", metavar="DIR",
                   help="where the executor pushed the projects (their src_dir is relative "
                        "to it; default: the home directory)")


def run(args: argparse.Namespace) -> int:
    import json
    import os
    import time

    from dsvm import console, phase, profile, workspace

    options = {"git.cache": args.git_cache, "paths.base": args.base, "git.jobs": args.jobs}
    settings = profile.resolve(args.profile, os.environ, options=options)
    ctx = phase.context(settings, os.environ, plan_only=args.plan, zuul_vars=args.zuul_vars,
                        src_root=args.src_root)
    if args.json:
        ctx.ui = console.json_mode()  # stdout carries the JSON alone
    started = time.monotonic()
    result = workspace.run_phase(ctx)
    seconds = round(time.monotonic() - started, 3)
    if args.json:
        print(json.dumps({"projects": result.outputs["projects"],
                          "zuul": result.outputs["zuul"], "seconds": seconds},
                         indent=2, sort_keys=True))
    elif args.plan:
        show_plan(ctx.ui, result.outputs)
    return result.exit_code


def show_plan(ui: object, data: dict[str, Any]) -> None:
    from dsvm.console import Ui

    assert isinstance(ui, Ui)
    rows = []
    for p in data["projects"]:
        ladder = " > ".join(s["ref"] + ("?" if s["unless_branch"] else "") for s in p["steps"])
        rows.append((p["name"], p["path"], f"{p['branch']} ({p['branch_why']})", ladder,
                     p["source"]))
        if p["cache_note"]:
            ui.warn(f"{p['name']}: {p['cache_note']}")
    ui.table("workspace plan (nothing changed)",
             ["project", "path", "branch (why)", "refs to try, in order", "source"], rows)
    z = data["zuul"]
    origin = "Zuul v3 vars" if z.get("source") == "zuul-vars" else "ZUUL_* env"
    ui.info(f"zuul ({origin}): {z['kind']} pipeline={z['pipeline']} project={z['project']} "
            f"branch={z['branch']} ref={z['ref']} url={z['url']}")
