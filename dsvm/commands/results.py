"""``dsvm results``: summary, HTML, JUnit, results database, history and compare.

Parsing only; the work is in ``dsvm/results/``. Every action reads the stream from a path or
``-`` (stdin) and writes to ``-o PATH`` (stdout by default); the database is ``--db URL``,
the profile's ``results.db`` or ``$DSVM_RESULTS_DB``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dsvm.commands import HELP_FORMAT, add_command, add_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str) -> None:
    p = add_command(
        sub, name, help="turn a subunit stream into summary, HTML, JUnit, DB; history",
        description="Read a subunit v2 stream (a path or - for stdin) and produce what "
                    "operators use: a console summary, an HTML report, JUnit XML for "
                    "Jenkins, and a results database in subunit2sql's schema (SQLite by "
                    "default, PostgreSQL/MySQL by URL) with history and run comparison.",
        example="dsvm results summary logs/testrepository.subunit")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    for action, (text, example) in ACTIONS.items():
        a = actions.add_parser(action, help=text, description=text.capitalize() + ".",
                               epilog=f"example:\n  {example}", formatter_class=HELP_FORMAT)
        ARGS[action](a)
        a.set_defaults(func=run)
    p.set_defaults(func=run)


def _stream_args(a: argparse.ArgumentParser, out: bool = True) -> None:
    a.add_argument("stream", nargs="?", default="-",
                   help="subunit v2 stream: a file, or - for stdin (default)")
    if out:
        a.add_argument("-o", "--output", metavar="PATH", default="-",
                       help="write here instead of stdout")


def _db_arg(a: argparse.ArgumentParser) -> None:
    a.add_argument("--db", metavar="URL", default=None,
                   help="SQLAlchemy URL (default: profile results.db, $DSVM_RESULTS_DB, "
                        "sqlite:///~/.local/share/dsvm/results.db)")


def _args_summary(a: argparse.ArgumentParser) -> None:
    _stream_args(a)
    add_json(a)


def _args_html(a: argparse.ArgumentParser) -> None:
    _stream_args(a)
    a.add_argument("--history-link", metavar="HREF", default=None,
                   help="link the report to a history page (e.g. history.html)")


def _args_junit(a: argparse.ArgumentParser) -> None:
    _stream_args(a)
    a.add_argument("--suite-name", default="tempest", help="testsuite name (default tempest)")


def _args_store(a: argparse.ArgumentParser) -> None:
    _stream_args(a, out=False)
    _db_arg(a)
    a.add_argument("--run-id", metavar="UUID", default=None,
                   help="the run's uuid (default: a new UUID4)")
    a.add_argument("--artifacts", metavar="URL", default=None, help="URL of the logs")
    a.add_argument("--meta", metavar="KEY=VALUE", action="append", default=[],
                   help="extra run metadata (repeatable); Zuul/Jenkins values are added "
                        "from the environment")
    add_json(a)


def _args_history(a: argparse.ArgumentParser) -> None:
    _db_arg(a)
    a.add_argument("--test", metavar="REGEX", default=None, help="only tests matching REGEX")
    a.add_argument("--last", metavar="N", type=int, default=20, help="runs to look at (20)")
    a.add_argument("--runs", action="store_true", help="list the stored runs instead")
    a.add_argument("--html", action="store_true",
                   help="write the history page (failure-rate plot) as HTML")
    a.add_argument("-o", "--output", metavar="PATH", default="-", help="write here")
    add_json(a)


def _args_compare(a: argparse.ArgumentParser) -> None:
    a.add_argument("run_a", metavar="RUN_A", help="uuid, id, uuid prefix, last or last~N")
    a.add_argument("run_b", metavar="RUN_B", help="the newer run")
    _db_arg(a)
    a.add_argument("--slower", metavar="FACTOR", type=float, default=2.0,
                   help="report tests at least FACTOR times slower (and 1 s more); default 2")
    add_json(a)


def _args_comment(a: argparse.ArgumentParser) -> None:
    a.add_argument("job_dir", nargs="?", default=None, metavar="JOB_DIR",
                   help="the finished job's $WORKSPACE (default: $WORKSPACE or the current "
                        "directory)")


ARGS = {"summary": _args_summary, "html": _args_html, "junit": _args_junit,
        "store": _args_store, "history": _args_history, "compare": _args_compare,
        "comment": _args_comment}

ACTIONS = {
    "summary": ("console summary: counts, failures, 10 slowest, skips (exit 1 if tests failed)",
                "dsvm results summary .dsvm/results/testrepository.subunit"),
    "html": ("one self-contained HTML report (filter, sort, tracebacks, worker timeline)",
             "stestr last --subunit | dsvm results html - -o report.html"),
    "junit": ("JUnit XML for the Jenkins JUnit publisher",
              "dsvm results junit run.subunit -o junit.xml"),
    "store": ("store the run in a subunit2sql-schema database (one transaction)",
              "dsvm results store run.subunit --db postgresql+psycopg://ci:pw@db/results"),
    "history": ("per-test pass/fail over the last runs, failure rate, flaky, failing since",
                "dsvm results history --test 'test_volume' --last 20"),
    "compare": ("what changed between two stored runs: new failures, fixes, skips, slower",
                "dsvm results compare last~1 last"),
    "comment": ("print the Gerrit comment block of a finished job (Zuul's CI-summary shape), "
                "for a Jenkins post-build step", "dsvm results comment \"$WORKSPACE\""),
}


def run(args: argparse.Namespace) -> int:
    return HANDLERS[args.action](args)


# -- actions (each: read, compute with dsvm.results, write) ---------------------------------
def _settings(args: argparse.Namespace) -> Any:
    import os

    from dsvm import profile

    return profile.resolve(args.profile, os.environ)


def _emit_json(path: str, data: Any) -> None:
    import json

    write_output(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_output(path: str, text: str | bytes) -> None:
    """Write ``text`` to PATH (atomically), or to stdout for ``-``."""
    data = text.encode() if isinstance(text, str) else text
    if path == "-":
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    from dsvm.results.phase import write

    write(Path(path), data)


def _summary(args: argparse.Namespace) -> int:
    from dsvm.console import get_ui
    from dsvm.results import known, stream, summary

    run = stream.read(args.stream)
    summ = summary.summarize(run, known.from_settings(_settings(args)))
    if args.json:
        _emit_json(args.output, summary.as_json(summ))
    elif args.output != "-":
        write_output(args.output, summary.render_text(summ))
    else:
        ui = get_ui()
        summary.render(summ, ui.out, ui.plain)
    return 0 if run.is_ok else 1


def _html(args: argparse.Namespace) -> int:
    from dsvm.results import html, known, stream

    run = stream.read(args.stream)
    write_output(args.output, html.render(run, known.from_settings(_settings(args)),
                                          history_link=args.history_link))
    return 0


def _junit(args: argparse.Namespace) -> int:
    from dsvm.results import junit, known, stream

    run = stream.read(args.stream)
    write_output(args.output, junit.render(run, known.from_settings(_settings(args)),
                                           name=args.suite_name))
    return 0


def _store(args: argparse.Namespace) -> int:
    import os

    from dsvm.console import get_ui
    from dsvm.errors import UsageError
    from dsvm.results import db, phase, stream

    extra = {}
    for item in args.meta:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--meta {item!r}: expected KEY=VALUE")
        extra[key] = value
    settings = _settings(args)
    run = stream.read(args.stream)
    engine = db.connect(db.url_for(settings, os.environ, args.db))
    meta = phase.run_metadata(os.environ, settings.profile, extra)
    stored = db.store(engine, run, run_uuid=args.run_id, meta=meta,
                      artifacts=args.artifacts)
    if args.json:
        _emit_json("-", {"version": 1, "uuid": stored.uuid, "id": stored.id,
                         "results": stored.results, "db": db.shown(engine), "meta": meta})
    else:
        get_ui().ok(f"stored run {stored.uuid}: {stored.results} test results in "
                    f"{db.shown(engine)}")
    return 0


def _history(args: argparse.Namespace) -> int:
    import os

    from dsvm.console import get_ui
    from dsvm.results import db, history

    engine = db.connect(db.url_for(_settings(args), os.environ, args.db))
    runs, results = history.fetch(engine, args.last, args.test)
    hist = history.analyse(runs, results)
    if args.html:
        write_output(args.output, history.render_page(hist))
    elif args.json:
        _emit_json(args.output, history.history_json(hist))
    elif args.runs:
        get_ui().table(f"last {len(runs)} runs", ["id", "uuid", "run at", "pass", "fail",
                                                  "skip", "change", "commit"],
                       [[r.id, r.uuid, r.run_at, r.passes, r.fails, r.skips, r.change,
                         r.commit[:10]] for r in reversed(runs)])
    else:
        _history_table(hist)
    return 0


def _history_table(hist: Any) -> None:
    from dsvm.console import get_ui

    marks = {"success": "+", "fail": "F", "crashed": "C", "uxsuccess": "U", "skip": "s",
             "xfail": "x", None: "."}
    rows = sorted(hist.tests, key=lambda t: (-t.streak, -t.failure_rate, t.test_id))
    get_ui().table(
        f"{len(rows)} tests over the last {len(hist.runs)} runs (old → new; + pass, F fail, "
        "s skip, . not run)", ["test", "runs", "fail rate", "flaky", "failing since"],
        [[t.test_id, "".join(marks.get(s, "?") for s in t.statuses), f"{t.failure_rate:.0%}",
          "flaky" if t.is_flaky else "",
          (f"{t.failing_since.uuid[:8]} change {t.failing_since.change or '-'} commit "
           f"{t.failing_since.commit[:10] or '-'} ({t.streak} runs)") if t.failing_since
          else ""] for t in rows])


def _compare(args: argparse.Namespace) -> int:
    import os

    from dsvm.console import get_ui
    from dsvm.results import db, history

    engine = db.connect(db.url_for(_settings(args), os.environ, args.db))
    a = db.load_run(engine, args.run_a, with_attachments=False)
    b = db.load_run(engine, args.run_b, with_attachments=False)
    cmp = history.compare(a, b, factor=args.slower)
    if args.json:
        _emit_json("-", history.compare_json(cmp))
        return 0
    ui = get_ui()
    ui.info(f"{cmp.a} → {cmp.b}: {len(cmp.new_failures)} new failures, {len(cmp.fixed)} "
            f"fixed, {len(cmp.new_skips)} new skips, {len(cmp.slower)} much slower, "
            f"{cmp.added} added, {cmp.removed} removed")
    for title, items in (("new failures", cmp.new_failures), ("fixed", cmp.fixed),
                         ("new skips", cmp.new_skips)):
        if items:
            ui.table(title, ["test"], [[t] for t in items])
    if cmp.slower:
        ui.table("much slower", ["test", "seconds before", "seconds now"],
                 [[k, f"{x:.2f}", f"{y:.2f}"] for k, x, y in cmp.slower])
    return 0


def _comment(args: argparse.Namespace) -> int:
    import os

    from dsvm.compliance import phase

    root = args.job_dir or os.environ.get("WORKSPACE") or os.getcwd()
    write_output("-", phase.comment_for_job(root, _settings(args), os.environ))
    return 0


HANDLERS = {"summary": _summary, "html": _html, "junit": _junit, "store": _store,
            "history": _history, "compare": _compare, "comment": _comment}
