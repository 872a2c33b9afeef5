"""``dsvm stack``: run devstack's stack.sh within the job's time budget."""

from __future__ import annotations

import argparse

from dsvm.commands import add_command, not_implemented


def register(sub: argparse._SubParsersAction, name: str) -> None:
    p = add_command(
        sub, name, help="run stack.sh as the stack user within the time budget",
        description="Run stack.sh from the devstack checkout as the stack user (never root), "
                    "streaming its output to the console and stack.sh.log, and kill the whole "
                    "process tree when the job's time budget runs out (exit 124).",
        example="dsvm stack --devstack-dir /opt/stack/new/devstack")
    p.add_argument("--devstack-dir", metavar="DIR",
                   help="devstack checkout (default $BASE/new/devstack)")
    p.add_argument("--user", metavar="USER", help="stack user (default: stack)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return not_implemented("stack", "issue 8")
