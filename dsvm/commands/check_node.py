"""``dsvm check-node``: preflight a node before it fails a job."""

from __future__ import annotations

import argparse

from dsvm.commands import add_command, add_json, not_implemented


def register(sub: argparse._SubParsersAction, name: str) -> None:
    p = add_command(
        sub, name, help="preflight the node (disk, kvm, users, git cache, images)",
        description="Check that this node can run a job: free disk, /dev/kvm, not a "
                    "container, stack/tempest users and sudo, git cache complete and fresh, "
                    "images present, required commands. Exit 0 when all pass, 3 otherwise.",
        example="dsvm check-node --json")
    p.add_argument("--git-cache", metavar="DIR", help="cache root (default /opt/git)")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return not_implemented("check-node", "issue 5")
