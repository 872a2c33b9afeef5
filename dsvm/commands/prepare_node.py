"""``dsvm prepare-node``: cache repos, images and packages on a node image."""

from __future__ import annotations

import argparse

from dsvm.commands import add_command, add_json, not_implemented


def register(sub: argparse._SubParsersAction, name: str) -> None:
    p = add_command(
        sub, name, help="cache git repos, images and packages on a node image",
        description="Run during node image build (as root): mirror every git repository the "
                    "profiles may need under the git cache, download devstack's images, and "
                    "prepare users and caches so every job starts warm. Idempotent and "
                    "resumable.",
        example="sudo dsvm prepare-node --jobs 4")
    p.add_argument("--git-cache", metavar="DIR", help="cache root (default $DSVM_GIT_CACHE "
                   "or /opt/git)")
    p.add_argument("--jobs", type=int, default=None, help="parallel workers")
    p.add_argument("--skip", action="append", default=[], metavar="STEP",
                   help="leave out a named step (repeatable)")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return not_implemented("prepare-node", "issue 5")
