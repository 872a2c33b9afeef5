"""``dsvm run``: the whole gate job (drop-in for devstack-vm-gate-wrap.sh)."""

from __future__ import annotations

import argparse

from dsvm.commands import add_command, add_json
from dsvm.commands.workspace import add_zuul_vars

PHASES = ["workspace", "configure", "stack", "tempest", "results", "logs"]


def register(sub: argparse._SubParsersAction, name: str) -> None:
    p = add_command(
        sub, name, help="run the whole gate job (drop-in for devstack-vm-gate-wrap.sh)",
        description="Run the phases workspace, configure, stack, tempest, results, logs with "
                    "the ZUUL_* and DEVSTACK_GATE_* environment, honouring devstack-gate's "
                    "hooks (exported pre_test_hook/gate_hook/post_test_hook functions) and the "
                    "profile's hooks.*. The time budget is BUILD_TIMEOUT (ms) minus "
                    "DEVSTACK_GATE_TIMEOUT_BUFFER, else DEVSTACK_GATE_TIMEOUT (min), else "
                    "timeout.job_minutes. Logs are collected whatever happens (test or stack "
                    "failure, budget expiry, Ctrl-C, Jenkins abort). State of each phase is kept "
                    "in $WORKSPACE/.dsvm/state.json so --from can re-run part of a job on a "
                    "held node; summary.md is a block for the Gerrit review comment.\n\n"
                    "exit: 0 ok, 1 tests failed, 2 bad input, 3 infrastructure (workspace, "
                    "stack.sh, node), 124 budget ran out, 130 Ctrl-C, 143 SIGTERM",
        example="BUILD_TIMEOUT=7200000 dsvm --profile tempest-full run --plan\n"
                "  dsvm run --from tempest            # re-run tests, results, logs")
    p.add_argument("--plan", action="store_true",
                   help="print every phase with its resolved inputs and the budget split; "
                        "change nothing (secrets masked)")
    p.add_argument("--from", dest="from_phase", choices=PHASES, help="first phase to run")
    p.add_argument("--to", dest="to_phase", choices=PHASES, help="last phase to run")
    p.add_argument("--workspace", metavar="DIR",
                   help="job directory (default $WORKSPACE or the current directory)")
    add_zuul_vars(p)
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import os

    from dsvm import console, job, phase, profile
    from dsvm.devstack import stack

    if args.json:  # stdout carries the JSON alone; the console goes to stderr
        console.json_mode()
    settings = profile.resolve(args.profile, options={"paths.workspace": args.workspace})
    ctx = phase.context(settings, workspace=args.workspace, zuul_vars=args.zuul_vars,
                        src_root=args.src_root)
    ctx.job  # noqa: B018 -- the job's Zuul input resolved once, bad input exits 2 up front
    state = job.load_state(ctx.dsvm_log_dir / "state.json")
    the_plan = job.plan(settings, os.environ, from_phase=args.from_phase,
                        to_phase=args.to_phase, state=state,
                        available=job.available_modules())
    if args.plan:
        data = job.plan_json(the_plan, settings)
        data["phases"] = _phase_plans(ctx, the_plan, quiet=args.json)
        if args.json:
            print(json.dumps(data, indent=2))
        else:
            _show_plan(ctx.ui, data, the_plan)
            _show_phase_plans(ctx.ui, data["phases"])
        return 0
    for warning in the_plan.warnings:
        ctx.ui.warn(warning)
    if any(s.name == "stack" and s.selected for s in the_plan.steps):
        stack.preflight(settings)  # never start a job that would run stack.sh as root
    ctx.ui.info(f"dsvm run: profile {settings.profile}, budget {the_plan.budget.why}")
    outcome = job.run(the_plan, ctx)
    data = job.report(outcome, the_plan, ctx)
    summary_md = job.write_summary(data, ctx)
    if args.json:
        print(json.dumps(data, indent=2))
    job.print_summary(data, ctx, summary_md)
    return outcome.exit_code


def _phase_plans(ctx, the_plan, *, quiet: bool) -> dict:  # type: ignore[no-untyped-def]
    """What the selected phases would do, decided without changing anything.

    The workspace plan (which commit each project gets, and why) reads the git cache only;
    local.conf and the Tempest selection are pure renderings of the settings. Bad input found
    here (a malformed ZUUL_* value, a bad backend) fails the plan with exit 2, as the job would.
    """
    import dataclasses

    from dsvm import tempest, workspace
    from dsvm.devstack import localconf

    selected = {s.name for s in the_plan.steps if s.selected}
    out: dict = {}
    if "workspace" in selected:
        # Under --json, ctx.ui is already console.json_mode()'s (stdout carries the JSON).
        plan_ctx = dataclasses.replace(ctx, plan_only=True)
        result = workspace.run_phase(plan_ctx)
        out["workspace"] = {"projects": result.outputs["projects"],
                            "zuul": result.outputs["zuul"]}
    if "configure" in selected:
        conf = localconf.render(ctx.settings, job=ctx.job)
        out["configure"] = {"local_conf": conf.masked(), "backends": list(conf.backends)}
    if "tempest" in selected:
        out["tempest"] = tempest.plan(ctx).as_json()
    return out


def _show_phase_plans(ui, phases: dict) -> None:  # type: ignore[no-untyped-def]
    from dsvm.commands.workspace import _show_plan as show_workspace

    if "workspace" in phases:
        show_workspace(ui, phases["workspace"])
    if "configure" in phases:
        conf = phases["configure"]
        ui.info(f"local.conf ({len(conf['local_conf'].splitlines())} lines, secrets masked; "
                f"Cinder backends: {', '.join(conf['backends']) or 'devstack default'}); "
                "'dsvm configure --print' shows each line's origin")
    if "tempest" in phases:
        sel = phases["tempest"]
        passes = "; ".join(f"{p['name']}: {' | '.join(p['include'])}"
                           + (" (serial)" if p["serial"] else "") for p in sel["passes"])
        ui.info(f"tempest selection {sel['name']} ({sel['why']}), concurrency "
                f"{sel['concurrency']}: {passes}")
        for ex in sel["exclude"]:
            ui.info(f"  excluded {ex['regex']}: {ex['reason']}")


def _show_plan(ui, data: dict, the_plan) -> None:  # type: ignore[no-untyped-def]
    from dsvm.budget import fmt_seconds

    ui.table(f"time budget ({data['budget']['source']})", ["item", "time", "meaning"],
             the_plan.budget.rows())
    rows = []
    for step in data["steps"]:
        status = ("run" if step["selected"] else "skip") + ("" if step["available"]
                                                            else " (module missing)")
        inputs = [f"{k} = {_short(v['value'])}   [{v['origin']}]"
                  for k, v in step["inputs"].items()]
        inputs += [f"{h['kind']}: {' '.join(h['argv'])}   [{h['source']}]"
                   for h in step["hooks"]]
        rows.append((step["name"], status, step["why"], "\n".join(inputs)))
    ui.table(f"dsvm run --plan (profile {data['profile']})",
             ["step", "status", "why", "resolved inputs"], rows)
    for warning in data["warnings"]:
        ui.warn(warning)
    ui.info(f"stack.sh must end within {fmt_seconds(the_plan.budget.stack_seconds)} of the "
            "start; nothing was changed (--plan)")


def _short(value: object, width: int = 70) -> str:
    text = value if isinstance(value, str) else __import__("json").dumps(value)
    return text if len(text) <= width else text[: width - 3] + "..."
