"""``dsvm tempest``: select and run Tempest through stestr."""

from __future__ import annotations

import argparse

from dsvm.commands import add_command, not_implemented


def register(sub: argparse._SubParsersAction, name: str) -> None:
    p = add_command(
        sub, name, help="run Tempest through stestr with the profile's test selection",
        description="Select Tempest tests (full, smoke, regex, include/exclude lists, a "
                    "profile's named selection; DEVSTACK_GATE_TEMPEST* honoured) and run them "
                    "through stestr, writing the subunit stream to the workspace.",
        example="dsvm --profile tempest-smoke tempest --list")
    p.add_argument("--tempest-dir", metavar="DIR",
                   help="Tempest checkout (default $BASE/new/tempest)")
    p.add_argument("--list", action="store_true", help="print selected test ids, run nothing")
    p.add_argument("--concurrency", type=int, help="workers (default TEMPEST_CONCURRENCY or "
                   "the number of CPUs)")
    p.add_argument("--serial", action="store_true", help="run tests in one worker")
    p.add_argument("--rerun-failed", action="store_true",
                   help="re-run only the failures of the last run, serially")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return not_implemented("tempest", "issue 6")
