"""``dsvm results``: summary, HTML, JUnit, results database, history and compare."""

from __future__ import annotations

import argparse

from dsvm.commands import add_command, not_implemented


def register(sub: argparse._SubParsersAction, name: str) -> None:
    p = add_command(
        sub, name, help="turn a subunit stream into summary, HTML, JUnit, DB; history",
        description="Read a subunit v2 stream (path or -) and produce what operators use.",
        example="dsvm results summary logs/testrepository.subunit")
    p.add_argument("action", choices=["summary", "html", "junit", "store", "history",
                                      "compare"])
    p.add_argument("args", nargs="*")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return not_implemented(f"results {args.action}", "issue 7")
