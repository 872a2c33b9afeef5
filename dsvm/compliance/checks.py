"""Cinder's third-party CI rules as checks: pass / fail / n.a., each with its evidence.

``grade()`` turns a job's evidence (a ``JobDir``), the profile's policy and facts gathered
elsewhere (leak findings, run history, new log signatures) into a frozen ``Report``. The rules
(cinder ``doc/source/contributor/new_driver_checklist.rst``, ``drivers-all-about.rst``):
test only the vendor's backend; run Tempest's volume tests and all cinder-tempest-plugin tests,
listing every skip with its reason; publish cinder.conf (redacted) and every cinder service log,
testr_results.html, the Tempest log and a trace of the commands, with UTC timestamps; test the
change's patchset; report successfully at least once every two weeks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dsvm import secrets
from dsvm.compliance import backends as backends_mod
from dsvm.compliance.evidence import JobDir, ini_options, read_bytes
from dsvm.compliance.inventory import Findings
from dsvm.compliance.signatures import Baseline, Signature

PASS, FAIL, NA = "pass", "fail", "n.a."
VOLUME_PREFIX = "tempest.api.volume."
PLUGIN_PREFIX = "cinder_tempest_plugin."
CINDER_LOGS = ("c-api", "c-sch", "c-vol")
HISTORY_DAYS = 14
JSON_VERSION = 1


@dataclass(frozen=True)
class Policy:
    """What the profile says the job must be."""

    declared: tuple[str, ...] = ()  # cinder.backends names
    secret_options: frozenset[str] = frozenset()
    reference_job: bool = False
    has_inventory: bool = False
    job_name: str = ""


@dataclass(frozen=True)
class HistoryFacts:
    """The job's record in the results database."""

    last_success: datetime | None
    runs: int  # in the last HISTORY_DAYS days
    successes: int
    source: str  # the database, password hidden


@dataclass(frozen=True)
class Check:
    """One rule: its verdict and the lines that prove it."""

    id: str
    rule: str
    status: str  # pass | fail | n.a.
    evidence: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "rule": self.rule, "status": self.status,
                "evidence": list(self.evidence)}


@dataclass(frozen=True)
class Report:
    """Every check, the backend verdicts, leaks, new log signatures and warnings."""

    checks: tuple[Check, ...]
    backends: tuple[backends_mod.Verdict, ...] = ()
    findings: tuple[Findings, ...] = ()
    new_signatures: tuple[Signature, ...] = ()
    baseline: Baseline | None = None
    warnings: tuple[str, ...] = ()
    failures: tuple[tuple[str, str | None], ...] = field(default=())  # (test id, known bug)

    @property
    def status(self) -> str:
        if any(c.status == FAIL for c in self.checks):
            return FAIL
        return PASS if any(c.status == PASS for c in self.checks) else NA

    def as_json(self) -> dict[str, Any]:
        return {
            "version": JSON_VERSION, "status": self.status,
            "checks": [c.as_json() for c in self.checks],
            "backends": [b.as_json() for b in self.backends],
            "leaks": [leak.as_json() for f in self.findings for leak in f.leaks],
            "foreign": [{"backend": f.backend, **o.as_json()} for f in self.findings
                        for o in f.foreign],
            "new_signatures": [s.as_json() for s in self.new_signatures],
            "baseline": ({"uuid": self.baseline.uuid, "run_at": self.baseline.run_at}
                         if self.baseline else None),
            "warnings": list(self.warnings),
            "failures": [{"test_id": t, "bug": b} for t, b in self.failures],
        }


def _where(lines: Iterable[Any]) -> list[str]:
    return [f"{line.where}: {line.text.strip()[:400]}" for line in lines]


def check_backends(verdicts: Sequence[backends_mod.Verdict], problems: Sequence[str],
                   policy: Policy) -> Check:
    rule = "only the vendor's backend is configured and it is exercised"
    if not verdicts:
        return Check("backends", rule, NA, tuple(problems) or ("no Cinder backend configured "
                                                              "or declared",))
    evidence: list[str] = list(problems)
    for v in verdicts:
        evidence.append(f"{v.name}: {v.status}" + (f" — VIOLATION: {v.violation}"
                                                   if v.violation else "")
                        + (f" ({'; '.join(v.notes)})" if v.notes else ""))
        evidence += ["  " + e for e in _where(v.evidence)]
    bad = any(v.violation for v in verdicts)
    if policy.reference_job:
        evidence.append("compliance.reference_job: LVM and undeclared backends allowed")
    return Check("backends", rule, FAIL if bad else PASS, tuple(evidence))


def _run_of(job: JobDir) -> Any:
    from dsvm.results import stream

    path = job.find("subunit")
    if path is None:
        return None, "no subunit stream among the job's files (testrepository.subunit)"
    try:
        return stream.parse_bytes(read_bytes(path), job.shown(path)), ""
    except Exception as exc:  # noqa: BLE001 - a bad stream is evidence, not a crash
        return None, f"{job.shown(path)}: {exc}"


def check_tests(run: Any, why: str) -> list[Check]:
    vol_rule = "Tempest's volume API tests ran"
    plug_rule = "all cinder-tempest-plugin tests ran (the plugin is installed)"
    if run is None:
        return [Check("volume-tests", vol_rule, FAIL, (why,)),
                Check("plugin-tests", plug_rule, FAIL, (why,))]
    out = []
    for cid, rule, prefix in (("volume-tests", vol_rule, VOLUME_PREFIX),
                              ("plugin-tests", plug_rule, PLUGIN_PREFIX)):
        tests = [t for t in run.tests if t.test_id.startswith(prefix)]
        counts: dict[str, int] = {}
        for t in tests:
            counts[t.status] = counts.get(t.status, 0) + 1
        ran = sum(n for s, n in counts.items() if s != "skip")
        line = f"{len(tests)} {prefix}* tests in {run.source}: " + (
            ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none")
        evidence = [line]
        if not ran and prefix == PLUGIN_PREFIX:
            evidence.append("no cinder-tempest-plugin test ran: is cinder-tempest-plugin "
                            "installed in the Tempest environment, and does the selection "
                            "include cinder_tempest_plugin?")
        out.append(Check(cid, rule, PASS if ran else FAIL, tuple(evidence)))
    return out


def check_skips(run: Any) -> Check:
    rule = "every skipped test is listed with why"
    if run is None:
        return Check("skips", rule, NA, ("no test results",))
    skipped = [t for t in run.tests if t.status == "skip"]
    evidence, missing = [], 0
    for t in skipped:
        reason = t.attachment("reason")
        text = reason.text().strip() if reason else ""
        missing += not text
        evidence.append(f"{t.test_id}: {text or '(no reason given)'}")
    if not skipped:
        evidence = ["no test was skipped"]
    return Check("skips", rule, FAIL if missing else PASS, tuple(evidence))


def check_published(job: JobDir, policy: Policy) -> list[Check]:
    """cinder.conf (redacted), the c-* logs, testr_results.html, the Tempest log, the trace."""
    out = []
    if job.live:
        note = ("the logs are not collected yet: 'dsvm compliance' on the job directory "
                "checks what was published",)
        return [Check(cid, rule, NA, note) for cid, rule in PUBLISHED_RULES.items()]
    conf = job.find("cinder_conf")
    rule = PUBLISHED_RULES["cinder-conf"]
    if conf is None or not job.is_published(conf):
        out.append(Check("cinder-conf", rule, FAIL, ("logs/etc/cinder/cinder.conf.txt is "
                                                     "missing",)))
    else:
        leaked = [o for o in ini_options(job.lines(conf))
                  if (o.name in policy.secret_options or secrets.is_secret_name(o.name))
                  and not _no_secret(o.value)]
        out.append(Check("cinder-conf", rule, FAIL if leaked else PASS, tuple(
            [f"{job.shown(conf)}"] + [f"{o.line.where}: [{o.section}] {o.name} is not "
                                      "redacted" for o in leaked])))
    logs = {s: p for s, p in job.service_logs().items() if job.is_published(p)}
    missing = [s for s in CINDER_LOGS if s not in logs]
    cinder = sorted(job.shown(p) for s, p in logs.items() if s.startswith("c-"))
    out.append(Check("cinder-logs", PUBLISHED_RULES["cinder-logs"], FAIL if missing else PASS,
                     tuple(cinder + [f"missing: logs/screen-{s}.txt" for s in missing])))
    for cid, kind, name in (("testr-results", "testr_results", "logs/testr_results.html"),
                            ("tempest-log", "tempest_log", "logs/tempest.txt")):
        path = job.find(kind)
        ok = path is not None and job.is_published(path)
        out.append(Check(cid, PUBLISHED_RULES[cid], PASS if ok else FAIL,
                         (job.shown(path) if ok and path else f"{name} is missing",)))
    trace = sorted(job.shown(p) for p in (job.logs / "dsvm").glob("*.txt*")) \
        if (job.logs / "dsvm").is_dir() else []
    trace += [job.shown(p) for p in job.logs.glob("devstacklog.txt*")]
    out.append(Check("command-trace", PUBLISHED_RULES["command-trace"],
                     PASS if trace else FAIL, tuple(trace) or ("no logs/dsvm/*.txt and no "
                                                               "logs/devstacklog.txt",)))
    return out


def _no_secret(value: str) -> bool:
    """A value that holds no secret by the logs phase's own rule (masked, empty, a boolean
    like ``send_service_user_token = True``, None)."""
    from dsvm.logs.redact import _EMPTY_VALUES  # the redactor's rule, not a second one

    low = value.strip().lower().encode()
    return not low or low in _EMPTY_VALUES or low.startswith(secrets.MASK.encode())


PUBLISHED_RULES = {
    "cinder-conf": "cinder.conf is published, with its secrets redacted",
    "cinder-logs": "every cinder service log (c-api, c-sch, c-vol) is published",
    "testr-results": "testr_results.html is published",
    "tempest-log": "the Tempest log is published",
    "command-trace": "a trace of the commands run is published",
}


def check_utc(job: JobDir) -> Check:
    rule = "the job's times are recorded in UTC"
    state = job.state()
    stamps = [str(state.get(k)) for k in ("started", "finished") if state.get(k)]
    if not stamps:
        return Check("utc-timestamps", rule, FAIL, ("the state file records no start time",))
    ok = all(s.endswith(("+00:00", "Z")) for s in stamps)
    return Check("utc-timestamps", rule, PASS if ok else FAIL,
                 tuple(f"state.json: {s}" for s in stamps))


def check_commit(job: JobDir) -> Check:
    """The project under test was checked out at the change's Zuul ref (no fallback)."""
    rule = "the tested commit is the change's patchset"
    ws = job.outputs("workspace")
    zuul = ws.get("zuul") or {}
    if not zuul.get("change") and not zuul.get("ref"):
        return Check("tested-commit", rule, NA, ("no change under test (periodic job or no "
                                                 "workspace phase)",))
    project = zuul.get("project")
    item = next((p for p in ws.get("projects") or [] if p.get("name") == project), None)
    head = f"change {zuul.get('change')} patchset {zuul.get('patchset')} of {project}"
    if item is None:
        return Check("tested-commit", rule, FAIL, (f"{head}: {project} was not checked out",))
    evidence = [f"{head}: {project} checked out {item.get('ref')} at "
                f"{str(item.get('commit') or '?')[:12]} from {item.get('source')}"]
    bad = bool(item.get("fallback"))
    if bad:
        evidence.append(f"fallback: {item['fallback']}")
    if zuul.get("ref") and item.get("ref") != zuul.get("ref"):
        bad = True
        evidence.append(f"Zuul's ref was {zuul['ref']}")
    commit = zuul.get("commit") or zuul.get("newrev")
    if commit and item.get("commit") and item["commit"] != commit:
        bad = True
        evidence.append(f"ZUUL_COMMIT is {commit}")
    return Check("tested-commit", rule, FAIL if bad else PASS, tuple(evidence))


def check_leaks(findings: Sequence[Findings], policy: Policy, cleaned: Mapping[str, str]
                ) -> tuple[Check, list[str]]:
    rule = "the run leaves nothing it created on the array"
    if not policy.has_inventory:
        return Check("leaks", rule, NA, ("no cinder.backends[*].inventory hook in the "
                                         "profile",)), []
    warnings = [f.warning for f in findings if f.warning]
    if not findings or len(warnings) == len(findings):
        return Check("leaks", rule, NA, tuple(warnings) or ("no inventory was taken",)), \
            warnings
    evidence = []
    leaks = [leak for f in findings for leak in f.leaks]
    for leak in leaks:
        size = f"{leak.size} bytes" if leak.size is not None else "size unknown"
        made = f"created by {leak.test}" if leak.test else "creating test unknown"
        where = f" ({leak.evidence.where})" if leak.evidence else ""
        evidence.append(f"{leak.backend}: {leak.name} ({size}), {made}{where}; "
                        f"{cleaned.get(leak.name, 'not cleaned')}")
    for f in findings:
        for o in f.foreign:
            evidence.append(f"{f.backend}: {o.name} appeared during the job but no volume of "
                            "this job has its id (another job on the array?): left alone")
    if not evidence:
        evidence.append("nothing created during the job is left on the array")
    return Check("leaks", rule, FAIL if leaks else PASS, tuple(evidence + warnings)), warnings


def check_history(facts: HistoryFacts | None, why: str, now: datetime | None = None) -> Check:
    rule = f"a successful run at least every {HISTORY_DAYS} days"
    if facts is None:
        return Check("history", rule, NA, (why,))
    now = now or datetime.now(UTC)
    evidence = [f"{facts.runs} run(s), {facts.successes} successful, in the last "
                f"{HISTORY_DAYS} days ({facts.source})"]
    if facts.last_success is None:
        evidence.append("no successful run recorded")
        return Check("history", rule, FAIL, tuple(evidence))
    age = now - facts.last_success
    evidence.append(f"last successful run {facts.last_success.isoformat(timespec='seconds')}"
                    f", {_age(age)} ago")
    ok = age <= timedelta(days=HISTORY_DAYS)
    if not ok:
        evidence.append(f"that is past Cinder's {HISTORY_DAYS}-day limit: the driver would "
                        "be marked unsupported")
    return Check("history", rule, PASS if ok else FAIL, tuple(evidence))


def _age(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    return f"{hours // 24}d {hours % 24}h" if hours >= 24 else f"{hours}h"


def grade(job: JobDir, policy: Policy, *, findings: Sequence[Findings] = (),
          cleaned: Mapping[str, str] | None = None, history: HistoryFacts | None = None,
          history_why: str = "", new_signatures: Sequence[Signature] = (),
          baseline: Baseline | None = None, known: Any = None) -> Report:
    """The Report of a job (reads its files; everything else is given)."""
    verdicts, problems = backends_mod.decide(job, policy.declared,
                                             reference_job=policy.reference_job)
    run, why = _run_of(job)
    checks = [check_backends(verdicts, problems, policy), *check_tests(run, why),
              check_skips(run), *check_published(job, policy), check_utc(job),
              check_commit(job)]
    leak_check, warnings = check_leaks(findings, policy, cleaned or {})
    checks += [leak_check, check_history(history, history_why)]
    failures: list[tuple[str, str | None]] = []
    if run is not None:
        failures = [(t.test_id, known.bug_for(t) if known is not None else None)
                    for t in run.tests if t.is_failure]
    return Report(tuple(checks), tuple(verdicts), tuple(findings), tuple(new_signatures),
                  baseline, tuple(warnings), tuple(failures))
