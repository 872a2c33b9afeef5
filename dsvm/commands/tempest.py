"""``dsvm tempest``: select and run Tempest through stestr (the gate job's code path)."""

from __future__ import annotations

import argparse

from dsvm.commands import add_command, add_json

DESCRIPTION = """\
Select Tempest tests and run them through stestr in the Tempest checkout, as the tempest
user, within the time budget; the raw subunit v2 stream is written to
$WORKSPACE/.dsvm/tempest/testrepository.subunit (also when the run is interrupted).

Selection (first match wins): --selection/--regex; devstack-gate's DEVSTACK_GATE_TEMPEST_REGEX,
_ALL_PLUGINS, _ALL, _DISABLE_TENANT_ISOLATION, _FULL, DEVSTACK_GATE_SMOKE_SERIAL,
DEVSTACK_GATE_TEMPEST_SCENARIOS; then the profile's tempest.selection: full | full-serial |
smoke | smoke-serial | scenario | all | regex | none | a key of tempest.selections.
tempest.include/include_file widen it, tempest.exclude/exclude_file (each with a reason)
narrow it; exclusions are printed in the summary.

Tempest environment (said in the output and the tempest log): tempest.stestr or
tempest.venv when set, else the first of <checkout>/.tox/tempest, $DEST/data/venv and the
stestr on PATH whose python imports Tempest. --list runs no test, so it works without the
tempest user (as the current user).

exit: 0 all passed · 1 tests failed · 2 bad selection or checkout (or no test selected,
or a plugin the environment lacks) · 124 time budget ran out (partial stream kept)"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str) -> None:
    p = add_command(
        sub, name, help="run Tempest through stestr with the profile's test selection",
        description=DESCRIPTION,
        example="dsvm --profile tempest-smoke tempest --list --tempest-dir ~/tempest-ws\n"
                "  dsvm tempest --regex 'tempest\\.api\\.volume' --serial --timeout 3600")
    p.add_argument("--tempest-dir", metavar="DIR",
                   help="Tempest checkout with a .stestr.conf (default $BASE/new/tempest)")
    p.add_argument("--tempest-venv", metavar="VENV",
                   help="venv with Tempest and its plugins (default: the first of "
                        "<checkout>/.tox/tempest, $DEST/data/venv, PATH that imports Tempest)")
    p.add_argument("--workspace", metavar="DIR",
                   help="job directory for the stream and logs (default $WORKSPACE or .)")
    p.add_argument("--list", action="store_true",
                   help="print the selected test ids, one per line, and run nothing")
    add_json(p)
    p.add_argument("--selection", metavar="NAME", help="override tempest.selection")
    p.add_argument("--regex", metavar="REGEX",
                   help="run the tests matching REGEX (selection 'regex'; words are OR'ed)")
    p.add_argument("--concurrency", type=int, metavar="N",
                   help="workers (default TEMPEST_CONCURRENCY, else the number of CPUs)")
    p.add_argument("--serial", action="store_true", help="run tests in one worker")
    p.add_argument("--test-timeout", type=int, metavar="SECONDS",
                   help="per-test timeout passed as OS_TEST_TIMEOUT")
    p.add_argument("--user", metavar="USER",
                   help="run stestr as USER (default tempest.user; '' = the current user)")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="time budget of this run; on expiry stestr is stopped (exit 124)")
    p.add_argument("--rerun-failed", action="store_true",
                   help="re-run only the failures of the last run, serially; those that pass "
                        "are reported as flaky")
    p.set_defaults(func=run)


def options(args: argparse.Namespace) -> dict[str, object]:
    """Command-line options as dotted settings keys (None = not given)."""
    selection = args.selection or ("regex" if args.regex else None)
    return {"tempest.dir": args.tempest_dir, "tempest.venv": args.tempest_venv,
            "tempest.selection": selection,
            "tempest.regex": args.regex, "tempest.concurrency": args.concurrency,
            "tempest.serial": True if args.serial else None,
            "tempest.test_timeout": args.test_timeout, "tempest.user": args.user}


def run(args: argparse.Namespace) -> int:
    import json
    import os

    from dsvm import phase, profile, tempest

    settings = profile.resolve(args.profile, os.environ, options(args))
    ctx = phase.context(settings, os.environ, workspace=args.workspace,
                        budget_seconds=args.timeout)
    if args.list:
        selection, listing = tempest.list_selected(ctx)
        if args.json:
            print(json.dumps(listing_json(selection, listing), indent=2))
            return 0
        for test_id in listing.ids:
            print(test_id)
        for exclusion, ids in listing.excluded:
            ctx.ui.err.print(f"excluded {len(ids)}: {exclusion.regex} # {exclusion.reason} "
                             f"({exclusion.where})", markup=False, highlight=False)
        return 0
    result = tempest.rerun_failed(ctx) if args.rerun_failed else tempest.run_phase(ctx)
    ctx.ui.info(f"tempest: {result.summary}")
    # A run and a re-run both record their stream as ``subunit``.
    if stream := phase.TempestOutputs.from_json(result.outputs).subunit:
        ctx.ui.info(f"subunit stream: {stream}")
    return result.exit_code


def listing_json(selection: object, listing: object) -> dict[str, object]:
    """Stable JSON of --list --json: the selection, ids per pass, what each exclusion
    removed."""
    from dsvm.tempest import Listing, Selection

    assert isinstance(selection, Selection) and isinstance(listing, Listing)
    return {"selection": selection.as_json(),
            "passes": [{"name": p.name, "serial": p.serial, "ids": list(ids)}
                       for p, ids in zip(selection.passes, listing.passes, strict=True)],
            "excluded": [{"regex": e.regex, "reason": e.reason, "where": e.where,
                          "ids": list(ids)} for e, ids in listing.excluded],
            "total": len(listing.ids)}
