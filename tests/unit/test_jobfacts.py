"""A job's facts have one owner each: the projects it needs, its branch ladder, project names.

These tests pin the agreements that used to break: prepare-node caching a different project
list from the one the workspace checks out (feature flags, DEVSTACK_PROJECT_FROM_GIT), local.conf
choosing its branch by a ladder of its own, two project-name validators.
"""

from __future__ import annotations

import pytest

from dsvm import cache, jobfacts, node, profile, workspace, zuul
from dsvm.devstack import localconf
from dsvm.errors import UsageError
from dsvm.jobfacts import Job
from dsvm.zuulv3 import Vars

ENVS = [
    {},
    {"PROJECTS": "openstack/manila openstack/os-brick"},
    {"DEVSTACK_GATE_HORIZON": "1", "DEVSTACK_GATE_HEAT": "1"},
    {"DEVSTACK_GATE_SAHARA": "1", "DEVSTACK_GATE_TROVE": "1", "PROJECTS": "openstack/x"},
    {"DEVSTACK_PROJECT_FROM_GIT": "oslo.config, manila-ui"},
    {"DEVSTACK_GATE_PROJECTS_OVERRIDE": "openstack/nova openstack/devstack",
     "DEVSTACK_GATE_HORIZON": "1"},
]


@pytest.mark.parametrize("env", ENVS)
def test_prepare_node_caches_exactly_what_the_workspace_checks_out(env) -> None:
    settings = profile.resolve("cinder-lvm", env)
    cached = set(node.required_projects(settings))
    planned = {name for name, _ in workspace.config_from(settings, env).projects}
    assert cached == planned
    # The flags and libraries the node used to ignore are in both.
    if env.get("DEVSTACK_GATE_HORIZON") and not env.get("DEVSTACK_GATE_PROJECTS_OVERRIDE"):
        assert "openstack/horizon" in cached
    if "DEVSTACK_PROJECT_FROM_GIT" in env:
        assert {"openstack/oslo.config", "openstack/manila-ui", "openstack/horizon"} <= cached


def test_needed_projects_say_where_each_was_named() -> None:
    settings = profile.resolve("base", {"DEVSTACK_GATE_TROVE": "1", "PROJECTS": "org/a"})
    named = dict(jobfacts.needed_projects(settings))
    assert named["openstack/trove"] == "env DEVSTACK_GATE_TROVE"
    assert named["org/a"] == "env PROJECTS"


def _v3(branch: str, override: str | None = None) -> Job:
    params = zuul.Params(project="openstack/cinder", branch=branch)
    vars_ = Vars(params=params, projects=(), override_checkout=override, timeout=None,
                 project_short_name="cinder", src_root="/home/zuul", file="vars.json")
    return Job(params, "zuul-vars", vars_)


@pytest.mark.parametrize("env,job,expected", [
    ({"ZUUL_BRANCH": "stable/mitaka"}, None, ("stable/mitaka", "env ZUUL_BRANCH")),
    ({"ZUUL_BRANCH": "master", "OVERRIDE_ZUUL_BRANCH": "stable/mitaka"}, None,
     ("stable/mitaka", "env OVERRIDE_ZUUL_BRANCH")),
    ({"BRANCH_OVERRIDE": "stable/mitaka"}, None, ("stable/mitaka", "env BRANCH_OVERRIDE")),
    ({}, None, ("master", "default")),
    ({}, _v3("stable/mitaka"), ("stable/mitaka", "zuul.branch")),
    ({}, _v3("master", override="stable/mitaka"), ("stable/mitaka", "zuul.override_checkout")),
    ({"OVERRIDE_ZUUL_BRANCH": "stable/newton"}, _v3("stable/mitaka"),
     ("stable/newton", "env OVERRIDE_ZUUL_BRANCH")),
])
def test_local_conf_and_the_workspace_take_the_same_branch(env, job, expected) -> None:
    settings = profile.resolve("base", {"DEVSTACK_GATE_TEMPEST": "0", **env})
    job = job or Job(zuul.parse(env))
    # The workspace, for a project without a project-level override...
    config = workspace.config_from(settings, env)
    assert jobfacts.indicated_branch("openstack/nova", config.branches, job) == expected
    # ...and local.conf, whose feature matrix names the branch and the rung that chose it.
    rendered = localconf.render(settings, job=job)
    services = next(line for line in rendered.lines if line.text.startswith("ENABLED_SERVICES="))
    assert services.origin.endswith(f"; {expected[1]})")
    old = expected[0] in ("stable/mitaka", "stable/newton")
    assert ("Q_USE_DEBUG_COMMAND=True" in rendered.text()) is not old


def test_v3_libs_from_git_are_the_required_projects_and_the_project() -> None:
    from dsvm.zuulv3 import Prepared

    def tree(name: str, required: bool) -> Prepared:
        short = name.rsplit("/", 1)[-1]
        return Prepared(name, short, f"opendev.org/{name}", f"src/opendev.org/{name}",
                        f"/home/zuul/src/opendev.org/{name}", "master", "zuul branch",
                        "a" * 40, required)

    job = _v3("master")
    vars_ = Vars(params=job.zuul, projects=(tree("openstack/os-brick", True),
                                            tree("openstack/devstack", False)),
                 override_checkout=None, timeout=None, project_short_name="cinder",
                 src_root="/home/zuul", file="vars.json")
    job = Job(job.zuul, "zuul-vars", vars_)
    assert job.libs_from_git() == ("os-brick", "cinder")
    rendered = localconf.render(profile.resolve("base", {}), job=job)
    assert "LIBS_FROM_GIT=os-brick,cinder" in rendered.text()
    # An explicit DEVSTACK_PROJECT_FROM_GIT wins, as devstack's job lets LIBS_FROM_GIT win.
    given = localconf.render(profile.resolve("base", {"DEVSTACK_PROJECT_FROM_GIT": "oslo.db"}),
                             job=job)
    assert "LIBS_FROM_GIT=oslo.db" in given.text()


@pytest.mark.parametrize("name", [
    "openstack/nova", "config", "opendev.org/openstack/nova", "org/oslo.config", "a/b+c",
    "../etc", "/abs/x", "-rf/x", "a b/c", "a/.git", "a/..", "", "a//b", "x.lock/y", "a:b/c",
])
def test_one_project_name_validator(name) -> None:
    why = zuul.project_problem(name)
    if why is None:
        assert cache.validate_project(name) == name
    else:
        with pytest.raises(UsageError) as err:
            cache.validate_project(name)
        assert why in err.value.message


def test_legacy_vars_without_a_ref_are_refused_with_the_hint() -> None:
    env = {"ZUUL_PROJECT": "openstack/cinder", "ZUUL_BRANCH": "master",
           "ZUUL_CHANGES": "openstack/cinder:master:refs/changes/45/12345/3",
           "ZUUL_PIPELINE": "check", "ZUUL_SHORT_PROJECT_NAME": "cinder"}
    with pytest.raises(UsageError) as err:
        jobfacts.resolve(profile.resolve("base", env), env)
    assert err.value.exit_code == 2
    assert "--zuul-vars" in (err.value.hint or "") and "zuul/playbooks" in (err.value.hint or "")
    # Zuul v2 sends ZUUL_REF and ZUUL_URL with its changes: accepted as before.
    v2 = {**env, "ZUUL_REF": "refs/zuul/master/Z1", "ZUUL_URL": "http://zuul.example.org/p"}
    assert jobfacts.resolve(profile.resolve("base", v2), v2).source == "env"
