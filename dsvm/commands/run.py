"""``dsvm run``: the whole gate job (drop-in for devstack-vm-gate-wrap.sh)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from dsvm.commands import add_command, add_json
from dsvm.commands.workspace import add_zuul_vars

if TYPE_CHECKING:
    from dsvm.console import Ui
    from dsvm.job import JobPlan


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str) -> None:
    from dsvm.phase import PHASES

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
    p.add_argument("--from", dest="from_phase", choices=list(PHASES), help="first phase to run")
    p.add_argument("--to", dest="to_phase", choices=list(PHASES), help="last phase to run")
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
                        to_phase=args.to_phase, state=state)
    if args.plan:
        data = job.plan_json(the_plan, settings)
        data["phases"] = job.phase_plans(the_plan, ctx)
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


def _show_phase_plans(ui: Ui, phases: dict[str, Any]) -> None:
    from dsvm.commands.workspace import show_plan as show_workspace

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
        env = sel.get("environment") or {}
        ui.info(f"  tempest environment: {env.get('why')}")
        for ex in sel["exclude"]:
            ui.info(f"  excluded {ex['regex']}: {ex['reason']}")


def _show_plan(ui: Ui, data: dict[str, Any], the_plan: JobPlan) -> None:
    from dsvm.budget import fmt_seconds

    ui.table(f"time budget ({data['budget']['source']})", ["item", "time", "meaning"],
             the_plan.budget.rows())
    rows = []
    for step in data["steps"]:
        status = "run" if step["selected"] else "skip"
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
