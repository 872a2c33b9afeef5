"""``dsvm configure``: write devstack's local.conf (and the vendor's Cinder backend)."""

from __future__ import annotations

import argparse

from dsvm.commands import add_command, not_implemented


def register(sub: argparse._SubParsersAction, name: str) -> None:
    p = add_command(
        sub, name, help="write local.conf from the profile and DEVSTACK_GATE_* environment",
        description="Render devstack's local.conf as devstack-gate would have for the same "
                    "environment, plus the profile's settings and Cinder backends, and write "
                    "it into the devstack checkout (0600 when it holds secrets).",
        example="dsvm --profile cinder-lvm configure --print")
    p.add_argument("--print", dest="print_only", action="store_true",
                   help="show the result (secrets masked, each line's origin); write nothing")
    p.add_argument("--apply-cinder", metavar="CINDER_CONF",
                   help="apply the profile's Cinder backends to an existing cinder.conf")
    p.add_argument("--devstack-dir", metavar="DIR",
                   help="devstack checkout (default $BASE/new/devstack)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return not_implemented("configure", "issue 4")
