"""The Gerrit comment block, in the shape Gerrit's CI summary (zuul-results-summary) parses.

Zuul's shape: a status line ``Build succeeded.`` / ``Build failed.`` (with `` (check
pipeline)`` before the period when the pipeline is known), a blank line, then one line per job
``- <job> <url> : <RESULT> in <duration>``, `` (non-voting)`` appended when the job does not
vote. The plugin only shows a comment whose author matches ``.* CI`` and only a job line with
an http(s) URL; ``problems()`` says which of those rules a block breaks. Pure text functions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

STATUS_WORD = {"SUCCESS": "succeeded"}  # every other result is "failed", as Zuul reports it
_AUTHOR = re.compile(r"^(?P<author>.* CI|Zuul)")
_WORD = re.compile(r"^\w+$")


def duration(seconds: float) -> str:
    """Zuul's elapsed time: ``45s``, ``5m 04s``, ``1h 02m 03s``."""
    total = max(0, int(round(seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


@dataclass(frozen=True)
class Failure:
    """A failed test as the comment lists it."""

    test_id: str
    bug: str | None = None


def block(*, job: str, url: str, result: str, seconds: float, pipeline: str | None = None,
          voting: bool = True, failures: Iterable[Failure] = (), recheck: Iterable[str] = (),
          more: int = 0) -> str:
    """The comment: status line, job line, then failures and the recheck hint."""
    word = STATUS_WORD.get(result, "failed")
    status = f"Build {word}" + (f" ({pipeline} pipeline)" if pipeline and
                                _WORD.match(pipeline) else "") + "."
    job_line = f"- {job}{' ' + url if url else ''} : {result} in {duration(seconds)}" + \
        ("" if voting else " (non-voting)")
    lines = [status, "", job_line]
    failed = list(failures)
    if failed:
        lines += ["", "Failed tests:"]
        lines += [f"* {f.test_id}" + (f" (known: {f.bug})" if f.bug else "") for f in failed]
        if more:
            lines.append(f"* ... and {more} more (see the logs)")
    hints = [h for h in recheck if h]
    if hints:
        lines += ["", "To run this job again, leave a comment: "
                  + " or ".join(f"`{h}`" for h in hints)]
    return "\n".join(lines) + "\n"


def problems(text: str, author: str) -> list[str]:
    """Why Gerrit's CI summary would not show this comment (empty when it would)."""
    out = []
    if not _AUTHOR.match(author or ""):
        out.append(f"the CI's Gerrit name {author!r} does not end in ' CI': the summary "
                   "plugin only reads comments of authors matching '.* CI' (report.ci_name)")
    if not re.search(r"^Build \w+(?: \(\w+ pipeline\))?\.", text, re.MULTILINE):
        out.append("no 'Build succeeded.' / 'Build failed.' line")
    if not re.search(r"^- [^ ]+ https?://[^ ]+ : [^ ]+", text, re.MULTILINE):
        out.append("no '- <job> <http(s) url> : <RESULT>' line: the job has no log URL "
                   "(report.log_url, or BUILD_URL)")
    return out


def recheck_hints(recheck: str) -> list[str]:
    """The comments that re-run the job: the profile's ``report.recheck``, comma-separated
    when the CI listens for several (``recheck, run-SanCo CI``)."""
    return [h.strip() for h in recheck.split(",") if h.strip()]


def from_report(data: Mapping[str, object], failures: Iterable[Failure] = (),
                voting: bool = True, job: str | None = None) -> str:
    """The block for a ``dsvm run`` summary (job.report's data)."""
    change = data.get("change") if isinstance(data.get("change"), Mapping) else {}
    assert isinstance(change, Mapping)
    pipeline = change.get("pipeline")
    failed = list(failures)
    shown, more = failed[:20], max(0, len(failed) - 20)
    return block(job=job or str(data.get("job") or data.get("profile") or "dsvm"),
                 url=str(data.get("log_url") or data.get("build_url") or ""),
                 result=str(data.get("verdict") or "FAILURE"),
                 seconds=float(str(data.get("seconds") or 0)),
                 pipeline=str(pipeline) if pipeline else None, voting=voting,
                 failures=shown, more=more,
                 recheck=recheck_hints(str(data.get("recheck") or "")))
