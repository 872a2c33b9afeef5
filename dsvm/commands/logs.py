"""``dsvm logs``: collect, redact, compress and publish a job's logs."""

from __future__ import annotations

import argparse

from dsvm.commands import add_command, not_implemented


def register(sub: argparse._SubParsersAction, name: str) -> None:
    p = add_command(
        sub, name, help="collect, redact, compress and publish logs",
        description="Gather the job's logs into $WORKSPACE/logs in devstack-gate's layout, "
                    "with every secret redacted, compressed, indexed, and optionally published.",
        example="dsvm logs collect --publish")
    p.add_argument("action", choices=["collect"])
    p.add_argument("--publish", action="store_true", help="upload to the log server")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return not_implemented("logs", "issue 9")
