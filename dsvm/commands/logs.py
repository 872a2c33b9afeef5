"""``dsvm logs``: collect, redact, compress, index and publish a job's logs."""

from __future__ import annotations

import argparse

from dsvm.commands import add_command, add_json

DESCRIPTION = """\
Gather the job's logs into $WORKSPACE/logs in devstack-gate's layout and names
(screen-<svc>.txt, devstacklog.txt, local.conf.txt, etc/<service>/, tempest_conf.txt,
testrepository.subunit.gz, testr_results.html, syslog.txt, df.txt, ps.txt, dpkg-l.txt, ...)
plus dsvm's own phase logs (dsvm/) and the job's environment with secrets masked.

Every text file is redacted while it is copied: the values of options upstream marks
secret=True (the services' oslo.config table) in their config files, local.conf passwords,
passwords in URLs, Authorization/X-Auth-Token headers, private keys, and those values
wherever else they stand as whole tokens — nothing else. Then it is compressed
(logs.compression: gzip -> *.txt.gz, or none) on logs.jobs workers. Each directory gets an
index.html; manifest.json lists every file, its source, size and redaction count, what was
not collected and why, and secrets too short or common to mask everywhere. A logs dir left
by a previous job is rotated to logs.1 first. Sources: devstack-gate's table plus the
profile's logs.sources ({src, dest}).

--publish uploads the result to logs.publish under LOG_PATH (Zuul's convention when unset):
rsync over ssh, OpenStack Swift or an S3 API, or a list of them tried in order; it prints
the public URL last. A partial upload lists what did not arrive and exits 3."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str) -> None:
    p = add_command(
        sub, name, help="collect, redact, compress, index and publish logs",
        description=DESCRIPTION,
        example="dsvm --profile myvendor logs collect --publish\n"
                "  dsvm logs collect --root /mnt/node-image --dest /tmp/logs --json")
    p.add_argument("action", choices=["collect"])
    p.add_argument("--publish", action="store_true",
                   help="upload to logs.publish (rsync, swift, s3) after collecting")
    p.add_argument("--root", metavar="DIR",
                   help="prefix every node source path with DIR (a mounted image, a test "
                        "tree); node snapshots (df, ps, ...) are not taken")
    p.add_argument("--dest", metavar="DIR", help="collect here instead of $WORKSPACE/logs")
    p.add_argument("--workspace", metavar="DIR",
                   help="job directory (default $WORKSPACE or the current directory)")
    p.add_argument("--log-path", metavar="PATH",
                   help="path under the log server's root (default $LOG_PATH, or Zuul's "
                        "<change[-2:]>/<change>/<patchset>/<pipeline>/<job>/<uuid>)")
    p.add_argument("--compression", choices=["gzip", "none"],
                   help="override logs.compression")
    p.add_argument("--jobs", type=int, metavar="N", help="override logs.jobs (workers)")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import os

    from dsvm import console, phase, profile
    from dsvm.logs.phase import run_phase

    options = {"logs.compression": args.compression, "logs.jobs": args.jobs}
    settings = profile.resolve(args.profile, os.environ, options)
    ctx = phase.context(settings, os.environ, workspace=args.workspace)
    if args.json:  # human lines to stderr, so stdout is pure JSON
        ctx.ui = console.json_mode()
    result = run_phase(ctx, root=args.root, dest=args.dest,
                       publish_logs=True if args.publish else False, log_path=args.log_path)
    if args.json:
        print(json.dumps(result.outputs, indent=2, sort_keys=True))
    return result.exit_code
