"""A job's facts, resolved once: its Zuul parameters, the projects it needs, each one's branch.

``resolve()`` reads the Zuul input exactly once — Zuul v2's ``ZUUL_*`` environment
(``zuul.parse``) or Zuul v3's ``zuul`` variable (``--zuul-vars FILE``, ``zuulv3.load``) —
into a frozen ``Job`` that ``JobContext`` carries; every phase reads ``ctx.job`` instead of
parsing the environment again. Two more questions have their one answer here:

- ``needed_projects(settings)``: which projects the job needs (the profile's ``projects``,
  ``PROJECTS`` or ``DEVSTACK_GATE_PROJECTS_OVERRIDE``, the projects feature flags pull in,
  ``DEVSTACK_PROJECT_FROM_GIT``), used by the workspace and by prepare-node alike, so a node
  image caches what a job will check out;
- ``indicated_branch(name, rules, job)``: the branch ladder, used by the workspace for each
  project and by local.conf for the job (``name=None``).

Pure apart from ``resolve()`` reading the vars file (and the trees it names).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dsvm import zuul
from dsvm.errors import Problem, UsageError

if TYPE_CHECKING:
    from dsvm.profile import Settings
    from dsvm.zuulv3 import Prepared, Vars

# spec devstack-gate §2.3: projects a feature flag pulls in.
FLAG_PROJECTS = {
    "DEVSTACK_GATE_HORIZON": ("openstack/horizon",),
    "DEVSTACK_GATE_HEAT": ("openstack/dib-utils", "openstack/diskimage-builder"),
    "DEVSTACK_GATE_SAHARA": ("openstack/sahara", "openstack/sahara-dashboard"),
    "DEVSTACK_GATE_TROVE": ("openstack/trove",),
}


@dataclass(frozen=True)
class Job:
    """The resolved job: Zuul's parameters and, for Zuul v3, the trees the executor prepared.

    ``zuul`` has the same fields whichever Zuul sent the job (v3's ``zuul.build`` is ``uuid``,
    its ``items`` are ``changes``), so readers need not care; ``source`` says which it was.
    """

    zuul: zuul.Params = field(default_factory=zuul.Params)
    source: str = "env"  # "env": Zuul v2's ZUUL_* ; "zuul-vars": Zuul v3's zuul variable
    vars: Vars | None = None

    @property
    def prepared(self) -> tuple[Prepared, ...]:
        """The projects Zuul v3's executor prepared (empty for a v2 job)."""
        return self.vars.projects if self.vars else ()

    @property
    def name(self) -> str | None:
        """The job's name (``zuul.job`` or ``ZUUL_JOB``)."""
        return self.zuul.job

    def zuul_branch(self) -> tuple[str, str] | None:
        """The branch Zuul asks for, with where it came from (None: Zuul names none)."""
        if self.vars is not None:
            if self.vars.override_checkout:
                return self.vars.override_checkout, "zuul.override_checkout"
            return (self.zuul.branch, "zuul.branch") if self.zuul.branch else None
        return (self.zuul.branch, "env ZUUL_BRANCH") if self.zuul.branch else None

    def change(self) -> dict[str, str | None]:
        """{project, change, patchset, branch, pipeline}: the change under test (report)."""
        z = self.zuul
        return {"project": z.project, "change": z.change, "patchset": z.patchset,
                "branch": z.branch, "pipeline": z.pipeline}

    def metadata(self) -> dict[str, str]:
        """Results-database run metadata of the job (only the keys that have a value)."""
        z = self.zuul
        meta = {"zuul_change": z.change, "zuul_patchset": z.patchset,
                "zuul_pipeline": z.pipeline, "zuul_project": z.project,
                "zuul_branch": z.branch, "zuul_commit": z.commit or z.newrev,
                "zuul_uuid": z.uuid, "job_name": z.job}
        return {k: v for k, v in meta.items() if v}

    def libs_from_git(self) -> tuple[str, ...]:
        """LIBS_FROM_GIT as devstack's Zuul job writes it: the short names of the ``required``
        projects and of the project under test (empty for a v2 job)."""
        if self.vars is None:
            return ()
        names = [p.short_name for p in self.vars.projects if p.required]
        if self.vars.project_short_name:
            names.append(self.vars.project_short_name)
        return tuple(dict.fromkeys(names))

    def as_json(self) -> dict[str, Any]:
        """The ``zuul`` object of ``workspace --json`` (Params.as_json, plus ``source``)."""
        return {**self.zuul.as_json(), "source": self.source}


def resolve(settings: Settings, env: Mapping[str, str], *, zuul_vars: str | None = None,
            src_root: str | None = None) -> Job:
    """Return the Job of this build; raise UsageError naming every bad input (exit 2).

    ``zuul_vars`` (``--zuul-vars``, else ``$DSVM_ZUUL_VARS``) selects Zuul v3: the ``zuul``
    variable in a JSON/YAML file and the trees under ``src_root`` (default: the home
    directory). Otherwise Zuul v2's environment is parsed; ``ZUUL_*`` rebuilt by Zuul v3's
    ``zuul_legacy_vars`` filter is refused, since it cannot say where the change is.
    """
    path = zuul_vars or env.get("DSVM_ZUUL_VARS") or None
    if path:
        from dsvm import zuulv3

        where = "--zuul-vars" if zuul_vars else "env DSVM_ZUUL_VARS"
        root = src_root or env.get("HOME") or os.path.expanduser("~")
        loaded = zuulv3.load(path, root, where=where)
        return Job(loaded.params, "zuul-vars", loaded)
    if problem := legacy_vars_problem(env):
        raise UsageError("these ZUUL_* variables come from Zuul v3's zuul_legacy_vars, which "
                         "never says where the change is (no ZUUL_URL, ZUUL_REF)",
                         problems=[problem],
                         hint="pass the zuul variable instead: write it to a file in the "
                              "job's pre-run playbook ({{ zuul | to_json }}) and run 'dsvm run "
                              "--zuul-vars FILE' (or export DSVM_ZUUL_VARS=FILE); the playbooks "
                              "in zuul/playbooks/ do exactly that")
    return Job(zuul.parse(env, zuul_url=settings.git.zuul_url or None))


def legacy_vars_problem(env: Mapping[str, str]) -> Problem | None:
    """A Problem when ``env`` looks like ``zuul_legacy_vars`` output: a change (or
    ``ZUUL_SHORT_PROJECT_NAME``, which only that filter sets) but no ZUUL_REF nor ZUUL_URL."""
    if env.get("ZUUL_REF") or env.get("ZUUL_URL"):
        return None
    for name in ("ZUUL_SHORT_PROJECT_NAME", "ZUUL_CHANGES"):
        if env.get(name):
            return Problem(f"env {name}", f"{name} is set but ZUUL_REF and ZUUL_URL are not: "
                           "the change under test cannot be fetched",
                           hint="Zuul v2 sets all three; under Zuul v3 use --zuul-vars")
    return None


# ----------------------------------------------------------------------------------------------
# Which projects a job needs

def needed_projects(settings: Settings) -> tuple[tuple[str, str], ...]:
    """The projects the job needs besides Zuul's own, each with where it was named.

    ``DEVSTACK_GATE_PROJECTS_OVERRIDE`` replaces the list; otherwise the profile's
    ``projects``, ``PROJECTS``, the projects of the feature flags that are on
    (``DEVSTACK_GATE_HORIZON``…) and ``DEVSTACK_PROJECT_FROM_GIT`` (openstack/<lib>).
    """
    gate: Mapping[str, Any] = settings.gate or {}
    override = [str(p) for p in gate.get("DEVSTACK_GATE_PROJECTS_OVERRIDE") or []]
    if override:
        return tuple((p, "env DEVSTACK_GATE_PROJECTS_OVERRIDE") for p in override)
    where = settings.origin("projects")
    named = [(p, where) for p in settings.top.projects]
    named += [(str(p), "env PROJECTS") for p in gate.get("PROJECTS") or []]
    for flag, projects in FLAG_PROJECTS.items():
        if gate.get(flag):
            named += [(p, f"env {flag}") for p in projects]
    libs = [n.strip() for n in str(gate.get("DEVSTACK_PROJECT_FROM_GIT") or "").split(",")]
    named += [(f"openstack/{n}", "env DEVSTACK_PROJECT_FROM_GIT") for n in libs if n]
    if "manila-ui" in libs:
        named.append(("openstack/horizon", "env DEVSTACK_PROJECT_FROM_GIT"))
    return tuple(named)


def project_problems(named: tuple[tuple[str, str], ...]) -> list[Problem]:
    """A Problem for every name of ``named`` that cannot be a project (zuul.project_problem)."""
    return [Problem(where, f"project {name!r} {why}",
                    hint="a project is org/name, relative, without '..'")
            for name, where in named if (why := zuul.project_problem(name))]


# ----------------------------------------------------------------------------------------------
# The branch ladder

@dataclass(frozen=True)
class BranchRules:
    """What beside Zuul decides a branch: the job's environment, then the profile."""

    project_overrides: Mapping[str, str] = field(default_factory=dict)  # UC -> branch
    override_branch: str | None = None  # OVERRIDE_ZUUL_BRANCH / BRANCH_OVERRIDE
    override_branch_from: str = "env OVERRIDE_ZUUL_BRANCH"  # which of the two set it
    project_branches: Mapping[str, str] = field(default_factory=dict)  # project -> branch


def branch_rules(settings: Settings, env: Mapping[str, str]) -> BranchRules:
    """The BranchRules of resolved settings and the job's environment."""
    from dsvm import environ

    gate: Mapping[str, Any] = settings.gate or {}
    branches, _ = environ.project_overrides(env)
    override = env.get("OVERRIDE_ZUUL_BRANCH") or None
    override_from = "env OVERRIDE_ZUUL_BRANCH"
    if not override and env.get("BRANCH_OVERRIDE") not in (None, "", "default"):
        override, override_from = env["BRANCH_OVERRIDE"], "env BRANCH_OVERRIDE"
    if not override and gate.get("OVERRIDE_ZUUL_BRANCH"):
        override = str(gate["OVERRIDE_ZUUL_BRANCH"])
    return BranchRules(
        project_overrides=branches, override_branch=override, override_branch_from=override_from,
        project_branches={str(k): str(v) for k, v in settings.top.project_branches.items()})


def devstack_gate_uc(project: str) -> str:
    """devstack-gate's <UC>: upper case, '-' → '_', first char not in [A-Z_] deleted (sed)."""
    short = project.rsplit("/", 1)[-1].upper().replace("-", "_")
    return re.sub(r"[^A-Z_]", "", short, count=1)


def override_for(table: Mapping[str, str], project: str) -> tuple[str, str] | None:
    """(UC, value) of ``table``'s entry for ``project`` under either <UC> spelling, or None."""
    from dsvm import environ

    for uc in dict.fromkeys((environ.uc_name(project), devstack_gate_uc(project))):
        if table.get(uc):
            return uc, table[uc]
    return None


def indicated_branch(name: str | None, rules: BranchRules, job: Job) -> tuple[str, str]:
    """Return (branch, why) for project ``name`` (None: the job's own branch, local.conf's).

    The ladder: ``OVERRIDE_<P>_PROJECT_BRANCH``, ``OVERRIDE_ZUUL_BRANCH``/``BRANCH_OVERRIDE``,
    the profile's ``project_branches``, Zuul's branch (v3: ``override_checkout`` first), then
    ``master``. The job's environment beats the profile (dsvm's precedence: defaults < profile
    < env < options); within each, the per-project value wins.
    """
    if name is not None and (found := override_for(rules.project_overrides, name)):
        return found[1], f"env OVERRIDE_{found[0]}_PROJECT_BRANCH"
    if rules.override_branch:
        return rules.override_branch, rules.override_branch_from
    if name is not None and name in rules.project_branches:
        return rules.project_branches[name], "profile project_branches"
    return job.zuul_branch() or ("master", "default")
