"""``dsvm ini``: devstack's iniset family, same arguments, same file result and exit status."""

from __future__ import annotations

import argparse

from dsvm.commands import add_command, not_implemented


def register(sub: argparse._SubParsersAction, name: str) -> None:
    p = add_command(
        sub, name, help="iniset/iniget/... with devstack's arguments and results",
        description="Edit ini files exactly as devstack's inc/ini-config functions do, so a "
                    "hook script can call 'dsvm ini set' where it called iniset.",
        example="dsvm ini set /etc/cinder/cinder.conf DEFAULT debug True")
    p.add_argument("action")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return not_implemented("ini", "issue 4")
