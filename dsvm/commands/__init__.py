"""One module per CLI command: ``register(subparsers, name)`` adds the parser, ``run`` acts.

Parsers use argparse only; a ``run`` function imports what it needs, so building the whole
parser stays cheap. Commands turn options into calls of the phase modules (``dsvm/*.py``) and
return an exit code; they never hold phase logic themselves.
"""

from __future__ import annotations

import argparse

HELP_FORMAT = argparse.RawDescriptionHelpFormatter


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str, *,
                help: str, description: str, example: str) -> argparse.ArgumentParser:
    """Add a subcommand whose --help shows a description and an example."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help, description=description, epilog=f"example:\n  {example}",
        formatter_class=HELP_FORMAT)
    return parser


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print stable, documented JSON instead of tables")
