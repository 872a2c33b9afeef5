"""Command-line parsing and dispatch only: each command lives in ``dsvm/commands/<name>.py``.

A command module exposes ``register(subparsers)``, which adds its parser and binds
``func=run`` (a function taking the parsed namespace and returning an exit code). Parsers are
built with argparse alone and command modules import their heavy dependencies inside ``run``,
so ``dsvm ini`` (called hundreds of times by vendor hook scripts) never imports rich or sh.
This is the single place where errors become exit codes.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from dsvm import __version__
from dsvm.errors import (
    EXIT_INFRA,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    DsvmError,
    Failure,
    exit_line,
)

# Command name -> module under dsvm.commands, in the order --help lists them.
COMMANDS: dict[str, str] = {
    "prepare-node": "prepare_node",
    "check-node": "check_node",
    "workspace": "workspace",
    "configure": "configure",
    "stack": "stack",
    "tempest": "tempest",
    "results": "results",
    "logs": "logs",
    "run": "run",
    "ini": "ini",
    "localconf": "localconf",
    "profile": "profile",
    "compliance": "compliance",
}

# Commands that must start fast: no rich console is built for them.
LEAN_COMMANDS = {"ini", "localconf"}

EPILOG = """\
exit codes: 0 success · 1 tests failed · 2 bad usage, profile or input ·
3 infrastructure failure · 124 time budget ran out · 130/143 interrupted (logs still collected)

example: dsvm --profile tempest-smoke run --plan
"""


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with the usage and a one-line error (never a traceback)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Return the parser of DESIGN.md's CLI contract; with ``only``, just that command's
    subparser is added (argparse costs ~3 ms a command, which a job pays at every step)."""
    parser = _Parser(
        prog="dsvm",
        description="Run an OpenStack third-party CI job: workspace from Zuul, devstack, "
                    "Tempest through stestr, results and logs. Replaces devstack-gate.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--profile", metavar="NAME|PATH", default=None,
                        help="profile to use (name searched in ./profiles, /etc/dsvm/profiles, "
                             "~/.config/dsvm/profiles and the shipped ones; or a path). "
                             "Default: $DSVM_PROFILE or 'base'")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show command output and tracebacks")
    parser.add_argument("--no-color", action="store_true",
                        help="plain output, as in a Jenkins log (also NO_COLOR, JENKINS_URL)")
    parser.add_argument("--version", action="version", version=f"dsvm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, module in COMMANDS.items():
        if only is None or name == only:
            importlib.import_module(f"dsvm.commands.{module}").register(sub, name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dsvm`` console script; returns the process exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    fast = _fast_ini(args_list)
    if fast is not None:
        return fast
    at = _command_at(args_list)
    named = args_list[at] if at < len(args_list) else None
    parser = build_parser(named if named in COMMANDS else None)
    args = parser.parse_args(args_list)
    lean = args.command in LEAN_COMMANDS
    if not lean:
        from dsvm import console

        console.set_ui(console.Ui(
            plain=console.is_plain_environment(os.environ, sys.stdout, args.no_color),
            verbose=args.verbose))
    return _guarded(lambda: int(args.func(args) or 0), args, lean)


def _guarded(command: Callable[[], int], args: argparse.Namespace, lean: bool) -> int:
    """Run ``command``: the one place where an error becomes an exit code and its report."""
    try:
        return command()
    except DsvmError as exc:
        return _report(exc, args, lean)
    except KeyboardInterrupt:
        print("dsvm: interrupted (exit 130)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except SystemExit:
        raise
    except Exception as exc:  # a bug: say where the report is, never just a traceback
        return _report_bug(exc, args)


_GLOBAL_FLAGS = {"-v", "--verbose", "--no-color"}


def _command_at(args_list: list[str]) -> int:
    """Index of the command name in ``args_list`` (past the global options), or its length.
    Anything else there (``--help``, ``--version``, a typo) stops the scan: the full parser
    then handles the line."""
    i = 0
    while i < len(args_list):
        arg = args_list[i]
        if arg in _GLOBAL_FLAGS or arg.startswith("--profile="):
            i += 1
        elif arg == "--profile":
            i += 2
        else:
            break
    return i


def _fast_ini(args_list: list[str]) -> int | None:
    """``dsvm [globals] ini ACTION ...`` without building any parser (hook scripts call it
    hundreds of times); None when argparse should handle the line (--help, no action…)."""
    i = _command_at(args_list)
    rest = args_list[i + 1:]
    if args_list[i:i + 1] != ["ini"] or not rest or rest[0].startswith("-"):
        return None
    from dsvm.commands import ini

    args = argparse.Namespace(command="ini", verbose="-v" in args_list[:i]
                              or "--verbose" in args_list[:i])
    return _guarded(lambda: ini.main(rest), args, True)


def _report(exc: DsvmError, args: argparse.Namespace, lean: bool) -> int:
    import traceback

    if lean:  # no rich: the same lines, printed plainly
        failure = Failure.of(exc, args.command)
        print("\n".join([f"ERROR: {failure.headline()}", *failure.body(),
                         exit_line(exc.exit_code)]), file=sys.stderr)
        return exc.exit_code
    from dsvm import console

    console.get_ui().error(exc, phase=args.command, traceback=traceback.format_exc())
    return exc.exit_code


def _report_bug(exc: BaseException, args: argparse.Namespace) -> int:
    import tempfile
    import traceback

    text = traceback.format_exc()
    fd, path = tempfile.mkstemp(prefix="dsvm-crash-", suffix=".log")
    with os.fdopen(fd, "w") as fh:
        fh.write(f"dsvm {' '.join(sys.argv[1:])}\n\n{text}")
    print(f"dsvm {args.command}: internal error: {exc!s}", file=sys.stderr)
    if getattr(args, "verbose", False):
        print(text, file=sys.stderr)
    print(f"  this is a bug in dsvm; the full report is in {path} — please attach it to an issue",
          file=sys.stderr)
    print(f"dsvm: exit {EXIT_INFRA} (internal error)", file=sys.stderr)
    return EXIT_INFRA


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
