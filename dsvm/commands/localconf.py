"""``dsvm localconf``: devstack's meta-config functions on a local.conf."""

from __future__ import annotations

import argparse

from dsvm.commands import add_command, not_implemented


def register(sub: argparse._SubParsersAction, name: str) -> None:
    p = add_command(
        sub, name, help="extract the localrc part; merge a phase's sections",
        description="devstack's meta-config: extract-localrc LOCAL_CONF writes .localrc.auto; "
                    "merge LOCAL_CONF GROUP merges that phase's sections into their files.",
        example="dsvm localconf merge /opt/stack/new/devstack/local.conf post-config")
    p.add_argument("action", choices=["extract-localrc", "merge"])
    p.add_argument("args", nargs="*")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return not_implemented("localconf", "issue 4")
