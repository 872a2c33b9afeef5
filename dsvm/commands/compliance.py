"""``dsvm compliance [--json] [JOB_DIR]``: grade a finished job against Cinder's CI rules."""

from __future__ import annotations

import argparse

from dsvm.commands import add_command, add_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str) -> None:
    p = add_command(
        sub, name, help="grade a finished job against Cinder's third-party CI rules",
        description="Check a finished job directory ($WORKSPACE) rule by rule — the vendor "
                    "backend exercised (and no LVM or undeclared backend), volume and "
                    "cinder-tempest-plugin tests run, skips with reasons, cinder.conf "
                    "(redacted), cinder service logs, testr_results.html, the Tempest log and "
                    "the command trace published, UTC times, the tested commit, leaks left on "
                    "the array, a success within 14 days — each pass / fail / n.a. with the "
                    "file:line lines that prove it; a failed run also lists the service-log "
                    "errors that are new since the job's last passing run. "
                    "Exit 0 when no check fails, 1 when one does, 2 when JOB_DIR is not a "
                    "job directory.",
        example="dsvm --profile sanco compliance --json $WORKSPACE")
    p.add_argument("job_dir", nargs="?", default=None, metavar="JOB_DIR",
                   help="the job's $WORKSPACE (default: $WORKSPACE or the current directory)")
    p.add_argument("--db", metavar="URL", default=None,
                   help="results database for history and log signatures (default: profile "
                        "results.db, $DSVM_RESULTS_DB, the SQLite file under ~)")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import os
    from pathlib import Path

    from dsvm import console, profile
    from dsvm.compliance import checks, phase
    from dsvm.compliance.evidence import JobDir
    from dsvm.errors import ProfileError

    root = Path(args.job_dir or os.environ.get("WORKSPACE") or os.getcwd())
    job_dir = JobDir.open(root)
    recorded = job_dir.state().get("profile")
    name = args.profile or (str(recorded) if recorded else None)
    try:
        settings = profile.resolve(name, options={"results.db": args.db})
    except ProfileError as exc:
        if args.profile or not recorded:
            raise
        raise ProfileError(f"the job's profile {recorded!r} (its state.json) cannot be "
                           f"loaded here: {exc.message}", problems=exc.problems,
                           hint="give the profile the job ran with: dsvm --profile NAME|PATH "
                                "compliance JOB_DIR") from exc
    job = phase.job_of(settings, dict(os.environ), job_dir.root)
    summary = _summary(job_dir)
    verdict = str(summary.get("verdict") or "")
    uuid = summary.get("run_uuid")
    report = phase.evaluate(job, live=False, run_uuid=str(uuid) if uuid else None,
                            failed=bool(verdict) and verdict != "SUCCESS")
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        ui = console.get_ui()
        for line in phase.lines(report):
            ui.info(line)
    return 1 if report.status == checks.FAIL else 0


def _summary(job_dir: object) -> dict[str, object]:
    from dsvm.compliance.evidence import JobDir

    assert isinstance(job_dir, JobDir)
    return job_dir.json_object("summary_json")
