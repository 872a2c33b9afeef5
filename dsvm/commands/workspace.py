"""``dsvm workspace``: check projects out at the commits Zuul merged."""

from __future__ import annotations

import argparse

from dsvm.commands import add_command, add_json, not_implemented


def register(sub: argparse._SubParsersAction, name: str) -> None:
    p = add_command(
        sub, name, help="check projects out from the ZUUL_* environment",
        description="Check every project of the job out under $BASE/new at exactly the "
                    "commit Zuul merged (zuul-cloner semantics), cloning from the git cache "
                    "and falling back to GIT_BASE.",
        example="ZUUL_PROJECT=openstack/cinder ZUUL_BRANCH=master ZUUL_REF=refs/zuul/master/Z1 "
                "dsvm workspace --plan")
    p.add_argument("--plan", action="store_true", help="print the plan, change nothing")
    p.add_argument("--git-cache", metavar="DIR", help="cache root (default $DSVM_GIT_CACHE "
                   "or /opt/git)")
    p.add_argument("--base", metavar="DIR", help="install root (default $BASE or /opt/stack)")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return not_implemented("workspace", "issue 3")
