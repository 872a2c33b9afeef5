"""JUnit XML for the Jenkins JUnit plugin, in the shape ``spec/results.md`` section 4 gives.

Tempest ids are split where Jenkins groups them (class = up to the last dot before ``[``; the
attrs stay in the test name); setUpClass pseudo-tests get their class, never an empty one;
fail → ``<failure>``, crashed → ``<error>``, skip → ``<skipped message>``, xfail passes,
uxsuccess fails. Pure: a Run in, text out.
"""

from __future__ import annotations

import os
import re

from dsvm.results.known import KnownFailures
from dsvm.results.stream import CRASHED, Run, TestResult, split_class
from dsvm.results.summary import failure_message

# Characters XML 1.0 forbids (control bytes from captured logs).
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
MAX_STDIO = 200_000  # per testcase; Jenkins trims far more anyway


def clean(text: str) -> str:
    """Text safe for XML 1.0 (illegal characters replaced by U+FFFD)."""
    if text.isprintable():  # no control, non-character or surrogate code point: nothing to do
        return text
    return _ILLEGAL.sub("\ufffd", text)


# xml.sax.saxutils' escape/quoteattr, byte for byte (the same replacements in the same order):
# that module imports urllib.request (http, email, ssl), which cost more than rendering a
# 2,000-test report.
def _attr(text: str) -> str:
    """A quoted attribute value: double quotes unless the value holds only the other kind."""
    value = (clean(text).replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")
             .replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;"))
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    return '"' + value.replace('"', "&quot;") + '"'


def _body(text: str) -> str:
    return clean(text).replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")


def _exc_type(test: TestResult) -> str:
    att = test.attachment("traceback")
    if att is None:
        return {"uxsuccess": "unittest.case._UnexpectedSuccess",
                CRASHED: "WorkerCrashed"}.get(test.status, "Failure")
    for line in reversed(att.text().splitlines()):
        m = re.match(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exception\w*|Failure|Mismatch\w*|"
                     r"Exit|Interrupt|Timeout\w*))\b", line.strip())
        if m:
            return m.group(1)
    return "Failure"


def testcase(test: TestResult, bug: str | None = None) -> str:
    """One ``<testcase>`` element."""
    classname, name = split_class(test.test_id)
    head = (f'    <testcase classname={_attr(classname)} name={_attr(name)} '
            f'time="{test.duration:.6f}"')
    parts: list[str] = []
    note = f" [known failure: {bug}]" if bug else ""
    if test.status in ("fail", "uxsuccess"):
        att = test.attachment("traceback")
        parts.append(f"      <failure message={_attr(failure_message(test) + note)} "
                     f"type={_attr(_exc_type(test))}>{_body(att.text() if att else '')}"
                     "</failure>")
    elif test.status == CRASHED:
        parts.append(f"      <error message={_attr('test did not finish (crash)' + note)} "
                     'type="WorkerCrashed">the test started but the stream has no final status'
                     "</error>")
    elif test.status == "skip":
        att = test.attachment("reason")
        reason = att.text().strip() if att else ""
        parts.append(f"      <skipped message={_attr(reason)}>{_body(reason)}</skipped>")
    out = [a for a in test.attachments if a.name not in ("traceback", "reason")]
    if out and test.status != "success":
        text = "\n".join(f"--- {a.name} ---\n{a.text()}" for a in out)
        parts.append(f"      <system-out>{_body(text[:MAX_STDIO])}</system-out>")
    elif test.status == "xfail":
        parts.append("      <system-out>expected failure</system-out>")
    if not parts:
        return head + "/>"
    return head + ">\n" + "\n".join(parts) + "\n    </testcase>"


def render(run: Run, known: KnownFailures | None = None, name: str = "tempest",
           hostname: str | None = None) -> str:
    """The whole JUnit document for ``run`` (one testsuite)."""
    known = known or KnownFailures()
    counts = run.counts
    failures = counts["fail"] + counts["uxsuccess"]
    errors, skipped, tests = counts[CRASHED], counts["skip"], len(run.tests)
    secs = f"{run.wall_seconds:.6f}"
    stamp = run.started.replace(tzinfo=None).isoformat(timespec="seconds") if run.started else None
    host = hostname if hostname is not None else os.uname().nodename  # gethostname(2)
    totals = f'tests="{tests}" failures="{failures}" errors="{errors}" skipped="{skipped}"'
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f"<testsuites name={_attr(name)} {totals} time=\"{secs}\">",
             f"  <testsuite name={_attr(name)} {totals} time=\"{secs}\""
             + (f' timestamp="{stamp}"' if stamp else "") + f" hostname={_attr(host)}>"]
    lines.extend(testcase(t, known.bug_for(t)) for t in run.tests)
    if run.problem:
        lines.append(f"    <system-err>{_body('stream truncated or corrupt: ' + run.problem)}"
                     "</system-err>")
    lines += ["  </testsuite>", "</testsuites>", ""]
    return "\n".join(lines)
