"""``dsvm run``: the whole gate job."""

from __future__ import annotations

import argparse

from dsvm.commands import add_command, add_json, not_implemented

PHASES = ["workspace", "configure", "stack", "tempest", "results", "logs"]


def register(sub: argparse._SubParsersAction, name: str) -> None:
    p = add_command(
        sub, name, help="run the whole gate job (drop-in for devstack-vm-gate-wrap.sh)",
        description="Run the phases workspace, configure, stack, tempest, results, logs with "
                    "the ZUUL_* and DEVSTACK_GATE_* environment. Logs are collected whatever "
                    "happens.",
        example="dsvm --profile tempest-full run --plan")
    p.add_argument("--plan", action="store_true",
                   help="print every phase with its resolved inputs; change nothing")
    p.add_argument("--from", dest="from_phase", choices=PHASES, help="first phase to run")
    p.add_argument("--to", dest="to_phase", choices=PHASES, help="last phase to run")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return not_implemented("run", "issue 8")
