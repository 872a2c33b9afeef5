"""``dsvm localconf``: devstack's meta-config functions on a local.conf (see metaconfig.py)."""

from __future__ import annotations

import argparse
import sys

from dsvm.commands import add_command

DESCRIPTION = """\
devstack's inc/meta-config, with devstack's results (spec/devstack.md §2):

  extract-localrc LOCAL_CONF   = extract_localrc_section: removes .localrc.auto beside
                                 LOCAL_CONF, then writes it from the [[local|localrc]]
                                 blocks, unless a 'localrc' file there wins (as stack.sh)
  merge LOCAL_CONF GROUP...    = merge_config_group: merges each phase's [[GROUP|file]]
                                 blocks into their files; file names and values expand
                                 $VAR / ${VAR} / ${VAR:-default} from the environment

One deliberate difference: devstack eval's merged values, so $(...) and backticks in a
local.conf run commands. dsvm never runs them: it refuses with exit 2 and says where.
Relative file names resolve against --cwd (default: the current directory). Exit status
is devstack's (1 when devstack would 'die', 2 when its eval hits a syntax error).
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str) -> None:
    p = add_command(
        sub, name, help="extract the localrc part; merge a phase's sections",
        description=DESCRIPTION,
        example="dsvm localconf merge /opt/stack/devstack/local.conf post-config")
    p.add_argument("action", choices=["extract-localrc", "merge"])
    p.add_argument("local_conf", metavar="LOCAL_CONF")
    p.add_argument("groups", nargs="*", metavar="GROUP",
                   help="phases to merge: post-config, extra, post-extra, test-config")
    p.add_argument("--cwd", metavar="DIR", help="directory relative file names resolve in")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from dsvm.devstack import metaconfig
    from dsvm.errors import UsageError

    if args.action == "extract-localrc":
        if args.groups:
            raise UsageError("extract-localrc takes only LOCAL_CONF")
        top = os.path.dirname(os.path.abspath(args.local_conf))
        result = metaconfig.extract_localrc_section(
            args.local_conf, os.path.join(top, "localrc"), os.path.join(top, ".localrc.auto"))
        return _finish(result)
    if not args.groups:
        raise UsageError("merge needs a GROUP",
                         hint="one of: " + ", ".join(metaconfig.PHASES))
    rc = 0
    for group in args.groups:
        result = metaconfig.merge_config_group(args.local_conf, group, os.environ,
                                               cwd=args.cwd, runner="dsvm localconf")
        rc = _finish(result)
        if rc == 1:
            break
    return rc


def _finish(result: object) -> int:
    sys.stdout.write(getattr(result, "stdout", ""))
    sys.stdout.flush()
    for warning in getattr(result, "warnings", []):
        print(f"dsvm localconf: {warning}", file=sys.stderr)
    return int(getattr(result, "rc", 0))
