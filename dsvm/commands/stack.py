"""``dsvm stack``: run devstack's stack.sh within the job's time budget."""

from __future__ import annotations

import argparse

from dsvm.commands import add_command


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str) -> None:
    p = add_command(
        sub, name, help="run stack.sh as the stack user within the time budget",
        description="Run stack.sh from the devstack checkout as the stack user (never root: "
                    "runuser as root, sudo -u otherwise), streaming its output to "
                    "$WORKSPACE/.dsvm/stack.sh.log with timestamps (the admin password "
                    "masked), and kill the whole process tree when the job's time budget "
                    "(BUILD_TIMEOUT ms − DEVSTACK_GATE_TIMEOUT_BUFFER, else "
                    "DEVSTACK_GATE_TIMEOUT min, else timeout.job_minutes) runs out: exit 124. "
                    "A stack.sh failure exits 3 with devstack's first error and last lines.",
        example="BUILD_TIMEOUT=7200000 dsvm --profile cinder-lvm stack "
                "--devstack-dir /opt/stack/new/devstack")
    p.add_argument("--devstack-dir", metavar="DIR",
                   help="devstack checkout (default devstack.dir or $BASE/new/devstack)")
    p.add_argument("--user", metavar="USER", help="stack user (default devstack.user: stack)")
    p.add_argument("--workspace", metavar="DIR",
                   help="job directory for logs and state (default $WORKSPACE or cwd)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dsvm import budget, phase, profile
    from dsvm.devstack import stack

    settings = profile.resolve(args.profile, options={
        "devstack.dir": args.devstack_dir, "devstack.user": args.user,
        "paths.workspace": args.workspace})
    job_budget = budget.from_settings(settings)
    ctx = phase.context(settings, workspace=args.workspace,
                        budget_seconds=job_budget.run_seconds)
    result = stack.run_phase(ctx)
    ctx.ui.ok(result.summary)
    for item in phase.StackOutputs.from_json(result.outputs).phases:
        ctx.ui.detail(f"  {item['name']:<45} {item['seconds']:8.1f}s")
    return result.exit_code
