"""The pure half of the workspace: project lists, branches, ladders, destinations, bad input.

devstack-gate's ``test-functions.sh`` vectors (spec zuul-cloner.md §6.2) run here one to one:
their mock world (which branches and zuul refs each project has) becomes the two callables
``walk()`` takes, so the production ladder is exercised without git.
"""

from __future__ import annotations

import pytest

from dsvm import jobfacts, workspace, zuul
from dsvm.errors import UsageError
from dsvm.jobfacts import BranchRules, Job
from dsvm.workspace import CacheFact, WorkspaceConfig

HAVANA = {"glance", "swift", "nova", "keystone"}  # 'opestnack/tempest' typo: tempest has none
NAMES = {"d-g": "openstack/devstack-gate", "pgc": "openstack/python-glanceclient",
         "glance": "openstack/glance", "nova": "openstack/nova", "keystone": "openstack/keystone",
         "swift": "openstack/swift", "tempest": "openstack/tempest",
         "oslo.config": "openstack/oslo.config"}


def _ref(short: str) -> str:
    branch = {"m": "master", "h": "stable/havana"}[short[0]]
    return f"refs/zuul/{branch}/{short[2:]}"


def config(projects=(), *, branch_overrides=None, override_branch=None, **kw) -> WorkspaceConfig:
    rules = BranchRules(project_overrides=branch_overrides or {}, override_branch=override_branch)
    return WorkspaceConfig(projects=tuple((p, "test") for p in projects), dest_root="/opt/stack/new",
                           cache_root="/opt/git", git_base=kw.pop("git_base", "https://opendev.org"),
                           branches=rules, **kw)


def branch_of(name, params, cfg):
    return jobfacts.indicated_branch(name, cfg.branches, Job(params))


def run_vector(zuul_env: dict, refs: dict[str, list[str]], calls: list[str], branch: str,
               env: dict | None = None) -> dict[str, str]:
    """Plan the projects with devstack-gate's branch argument and walk the mock world."""
    from dsvm import environ

    env = dict(env or {})
    branches, _ = environ.project_overrides(env)
    params = zuul.parse({"ZUUL_URL": "http://zuul.example.org/p", **zuul_env})
    cfg = config([NAMES[c] for c in calls], branch_overrides=branches, override_branch=branch)
    plan = workspace.plan(params, cfg, {})
    out = {}
    for item in plan.projects:
        short = next(k for k, v in NAMES.items() if v == item.name)
        have = {_ref(r) for r in refs.get(short, [])}
        has_branch = lambda b, s=short: b == "master" or (b == "stable/havana" and s in HAVANA)  # noqa: E731
        def resolve(step, have=have, has_branch=has_branch):
            if step.kind == "zuul-ref":
                return "sha" if step.ref in have else None
            if step.kind == "branch":
                return "sha" if has_branch(step.ref) else None
            return None
        found = workspace.walk(item.steps, has_branch, resolve)
        assert found is not None
        out[short] = found[0].ref
    return out


def z(project: str, branch: str | None, ref: str | None) -> dict[str, str]:
    env = {"ZUUL_PROJECT": NAMES[project]}
    if branch:
        env["ZUUL_BRANCH"] = branch
    if ref:
        env["ZUUL_REF"] = _ref(ref)
    return env


M, H = "master", "stable/havana"

VECTORS = [
    ("1 one_on_master", z("d-g", M, "m/ZA"), {"d-g": ["m/ZA"]}, ["d-g"], M, {},
     {"d-g": "m/ZA"}),
    ("2 two_on_master", z("glance", M, "m/ZB"), {"d-g": ["m/ZA", "m/ZB"], "glance": ["m/ZB"]},
     ["d-g", "glance"], M, {}, {"d-g": "m/ZB", "glance": "m/ZB"}),
    ("3 multi_branch_on_master", z("pgc", M, "m/ZC"),
     {"d-g": ["m/ZA", "m/ZB", "m/ZC"], "glance": ["h/ZB", "h/ZC"], "pgc": ["m/ZC"]},
     ["d-g", "glance", "pgc"], M, {}, {"d-g": "m/ZC", "glance": M, "pgc": "m/ZC"}),
    ("4 multi_branch_project_override", z("glance", H, "h/ZD"),
     {"d-g": ["m/ZA", "m/ZB", "m/ZC", "m/ZD"], "pgc": ["m/ZC", "m/ZD"], "glance": ["h/ZD"]},
     ["d-g", "glance", "pgc", "tempest", "nova", "oslo.config"], H,
     {"OVERRIDE_TEMPEST_PROJECT_BRANCH": "master"},
     {"d-g": "m/ZD", "glance": "h/ZD", "pgc": "m/ZD", "tempest": M, "nova": H,
      "oslo.config": M}),
    ("5 multi_branch_on_stable", z("glance", H, "h/ZB"),
     {"d-g": ["m/ZA", "m/ZB"], "glance": ["h/ZB"]}, ["d-g", "glance", "pgc"], H, {},
     {"d-g": "m/ZB", "glance": "h/ZB", "pgc": M}),
    ("7 grenade_backward old", z("glance", M, "m/ZE"),
     {"d-g": ["m/ZA", "m/ZB", "m/ZC", "m/ZD", "m/ZE"], "nova": ["h/ZB", "h/ZC", "h/ZD", "h/ZE"],
      "keystone": ["h/ZC", "h/ZD", "h/ZE", "m/ZD", "m/ZE"], "glance": ["m/ZE"]},
     ["d-g", "nova", "keystone", "glance", "swift", "pgc"], H, {},
     {"d-g": "m/ZE", "nova": "h/ZE", "keystone": "h/ZE", "glance": H, "swift": H, "pgc": M}),
    ("7b grenade_backward new", z("glance", M, "m/ZE"),
     {"d-g": ["m/ZA", "m/ZB", "m/ZC", "m/ZD", "m/ZE"], "nova": ["h/ZB", "h/ZC", "h/ZD", "h/ZE"],
      "keystone": ["h/ZC", "h/ZD", "h/ZE", "m/ZD", "m/ZE"], "glance": ["m/ZE"]},
     ["d-g", "nova", "keystone", "glance", "swift", "pgc"], M, {},
     {"d-g": "m/ZE", "nova": M, "keystone": "m/ZE", "glance": "m/ZE", "swift": M, "pgc": M}),
    ("8 grenade_forward old", z("glance", H, "h/ZE"),
     {"d-g": ["m/ZA", "m/ZB", "m/ZC", "m/ZD", "m/ZE"], "nova": ["m/ZB", "m/ZC", "m/ZD", "m/ZE"],
      "keystone": ["h/ZC", "h/ZD", "h/ZE", "m/ZD", "m/ZE"], "glance": ["h/ZE"]},
     ["d-g", "nova", "keystone", "glance", "swift", "pgc"], H, {},
     {"d-g": "m/ZE", "nova": H, "keystone": "h/ZE", "glance": "h/ZE", "swift": H, "pgc": M}),
    ("8b grenade_forward new", z("glance", H, "h/ZE"),
     {"d-g": ["m/ZA", "m/ZB", "m/ZC", "m/ZD", "m/ZE"], "nova": ["m/ZB", "m/ZC", "m/ZD", "m/ZE"],
      "keystone": ["h/ZC", "h/ZD", "h/ZE", "m/ZD", "m/ZE"], "glance": ["h/ZE"]},
     ["d-g", "nova", "keystone", "glance", "swift", "pgc"], M, {},
     {"d-g": "m/ZE", "nova": "m/ZE", "keystone": "m/ZE", "glance": M, "swift": M, "pgc": M}),
    ("9 branch_override", z("d-g", M, "m/ZB"), {"d-g": ["m/ZB"], "glance": ["h/ZA", "h/ZB"]},
     ["d-g", "glance", "swift", "pgc"], H, {},
     {"d-g": "m/ZB", "glance": "h/ZB", "swift": H, "pgc": M}),
    ("10 periodic", z("glance", H, None), {}, ["glance"], H, {}, {"glance": H}),
    ("11 periodic_no_branch", z("glance", None, None), {}, ["glance"], M, {}, {"glance": M}),
]


@pytest.mark.parametrize("zuul_env,refs,calls,branch,env,expected",
                         [v[1:] for v in VECTORS], ids=[v[0] for v in VECTORS])
def test_devstack_gate_vectors(zuul_env, refs, calls, branch, env, expected) -> None:
    got = run_vector(zuul_env, refs, calls, branch, env)
    assert got == {k: (_ref(v) if v.startswith(("m/", "h/")) else v)
                   for k, v in expected.items()}


def test_vector_6_git_base_overrides() -> None:
    from dsvm import environ

    env = {"OVERRIDE_RYU_GIT_BASE": "https://github.com",
           "OVERRIDE_DEVSTACK_GATE_GIT_BASE": "https://example.com"}
    _, bases = environ.project_overrides(env)
    params = zuul.parse({"ZUUL_PROJECT": "openstack/neutron", "ZUUL_BRANCH": "master",
                         "ZUUL_REF": "refs/zuul/master/ZA", "ZUUL_URL": "http://z/p"})
    cfg = config(["osrg/ryu", "test/devstack-gate", "openstack/keystone"],
                 git_base_overrides=bases)
    origins = {p.name: p.origin for p in workspace.plan(params, cfg, {}).projects}
    assert origins["osrg/ryu"] == "https://github.com/osrg/ryu"
    assert origins["test/devstack-gate"] == "https://example.com/test/devstack-gate"
    assert origins["openstack/keystone"] == "https://opendev.org/openstack/keystone"
    cfg = config(["openstack/glance"], git_base="http://tarballs.openstack.org")
    assert workspace.plan(params, cfg, {}).projects[0].origin == \
        "http://tarballs.openstack.org/openstack/glance"


def test_periodic_no_branch_means_master_everywhere() -> None:
    plan = workspace.plan(zuul.parse({}), config(["openstack/nova"]), {})
    assert [(s.kind, s.ref) for s in plan.projects[0].steps] == [("branch", "master")]


@pytest.mark.parametrize("env,profile,expected", [
    # The ladder: OVERRIDE_<P>_PROJECT_BRANCH > OVERRIDE_ZUUL_BRANCH/BRANCH_OVERRIDE >
    # the profile's project_branches > ZUUL_BRANCH > master (the environment beats the profile).
    ({"OVERRIDE_NOVA_PROJECT_BRANCH": "stable/x", "OVERRIDE_ZUUL_BRANCH": "stable/o"},
     {"openstack/nova": "stable/p"}, ("stable/x", "env OVERRIDE_NOVA_PROJECT_BRANCH")),
    ({"OVERRIDE_ZUUL_BRANCH": "stable/o"}, {"openstack/nova": "stable/p"},
     ("stable/o", "env OVERRIDE_ZUUL_BRANCH")),
    ({"BRANCH_OVERRIDE": "stable/b"}, {"openstack/nova": "stable/p"},
     ("stable/b", "env BRANCH_OVERRIDE")),
    ({"BRANCH_OVERRIDE": "stable/b", "OVERRIDE_ZUUL_BRANCH": "stable/o"}, {},
     ("stable/o", "env OVERRIDE_ZUUL_BRANCH")),
    ({"BRANCH_OVERRIDE": "default"}, {"openstack/nova": "stable/p"},
     ("stable/p", "profile project_branches")),
    ({}, {"openstack/nova": "stable/p"}, ("stable/p", "profile project_branches")),
    ({}, {"openstack/glance": "stable/p"}, ("stable/z", "env ZUUL_BRANCH")),
])
def test_indicated_branch_precedence(env, profile, expected) -> None:
    from dsvm import profile as profmod

    settings = profmod.resolve("base", env)
    settings.set("project_branches", profile, "profile test")
    cfg = workspace.config_from(settings, env)
    params = zuul.parse({"ZUUL_BRANCH": "stable/z"})
    assert branch_of("openstack/nova", params, cfg) == expected


def test_indicated_branch_defaults_to_master() -> None:
    cfg = config(["openstack/nova"])
    assert branch_of("openstack/nova", zuul.parse({}), cfg) == \
        ("master", "default")


def test_devstack_gate_uc_form_is_accepted() -> None:
    assert jobfacts.devstack_gate_uc("openstack/oslo.config") == "OSLOCONFIG"
    assert jobfacts.devstack_gate_uc("openstack/python-glanceclient") == "PYTHON_GLANCECLIENT"
    cfg = config(["openstack/oslo.config"], branch_overrides={"OSLOCONFIG": "stable/q"})
    assert branch_of("openstack/oslo.config", zuul.parse({}), cfg)[0] == "stable/q"


def test_project_list_adds_projects_under_test() -> None:
    params = zuul.parse({"ZUUL_CHANGES": "openstack/os-brick:master:refs/changes/1/2/3^"
                         "openstack/cinder:master:refs/changes/4/5/6",
                         "ZUUL_PROJECT": "openstack/cinder"})
    plan = workspace.plan(params, config(["openstack/nova"]), {})
    assert [(p.name, p.under_test) for p in plan.projects] == [
        ("openstack/cinder", True), ("openstack/nova", False), ("openstack/os-brick", True)]


def test_cache_decides_source_and_says_why() -> None:
    cache = {"openstack/nova": CacheFact("/opt/git/openstack/nova", None),
             "openstack/cinder": CacheFact("/opt/git/openstack/cinder", "corrupt HEAD ('xx')"),
             "openstack/glance": CacheFact("/opt/git/openstack/glance", "missing")}
    plan = workspace.plan(zuul.parse({}), config(["openstack/nova", "openstack/cinder",
                                                  "openstack/glance"]), cache)
    got = {p.name: (p.source, p.note) for p in plan.projects}
    assert got["openstack/nova"] == ("cache", None)
    assert got["openstack/cinder"][0] == "network" and "corrupt HEAD" in got["openstack/cinder"][1]
    assert got["openstack/glance"][0] == "network" and "not in the cache" in got["openstack/glance"][1]


def test_no_upstream_and_not_cached_is_bad_input() -> None:
    with pytest.raises(UsageError) as err:
        workspace.plan(zuul.parse({}), config(["openstack/nova"], git_base=""), {})
    assert "no upstream" in err.value.problems[0].message


# T11: clone map (spec §6.1), workspace /basepath.
@pytest.mark.parametrize("rules,projects,expected", [
    ({}, ["project1", "plugins/plugin1"], ["/basepath/project1", "/basepath/plugin1"]),
    ({"mediawiki/core": "."}, ["mediawiki/core"], ["/basepath"]),
    ({"plugins/(.*)": r"project/plugins/\1"}, ["plugins/PluginFirst"],
     ["/basepath/project/plugins/PluginFirst"]),
    ({"plugins/(.*)": "project/"}, ["plugins/Plugin_1"], ["/basepath/project"]),
    ({"plugins/(.*)": r"./\1"}, ["plugins/PluginInBasePath"], ["/basepath/PluginInBasePath"]),
])
def test_clone_map(rules, projects, expected) -> None:
    cfg = WorkspaceConfig(projects=tuple((p, "t") for p in projects), dest_root="/basepath",
                          cache_root="/c", git_base="https://g", clone_map=rules)
    assert [workspace.destination(p, cfg) for p in projects] == expected


def test_clone_map_same_destination_is_an_error() -> None:
    cfg = WorkspaceConfig(projects=(("plugins/plugin1", "t"), ("plugins/plugin2", "t")),
                          dest_root="/basepath", cache_root="/c", git_base="https://g",
                          clone_map={"plugins/(.*)": "catchall/"})
    with pytest.raises(UsageError) as err:
        workspace.plan(zuul.parse({}), cfg, {})
    assert "same destination" in err.value.message or "shares the destination" in \
        err.value.problems[0].message


def test_flat_layout_collision_between_orgs_is_detected() -> None:
    with pytest.raises(UsageError):
        workspace.plan(zuul.parse({}), config(["openstack/nova", "vendor/nova"]), {})


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a/../b", "a//b", "a b", "a\tb",
                                  "a\nb", "-rf", "", "a/./b", "org/x.lock"])
def test_bad_project_names_exit_2_naming_the_variable(name) -> None:
    with pytest.raises(UsageError) as err:
        workspace.plan(zuul.parse({}), WorkspaceConfig(projects=((name, "env PROJECTS"),),
                                                       dest_root="/b", cache_root="/c",
                                                       git_base="https://g"), {})
    assert err.value.exit_code == 2
    assert err.value.problems[0].where == "env PROJECTS"


def test_plan_json_is_stable_and_serialisable() -> None:
    import json

    params = zuul.parse({"ZUUL_PROJECT": "openstack/nova", "ZUUL_BRANCH": "master",
                         "ZUUL_REF": "refs/zuul/master/Zabc", "ZUUL_URL": "http://z/p"})
    data = json.loads(json.dumps(workspace.plan(params, config(["openstack/nova"]), {})
                                 .as_json()))
    row = data["projects"][0]
    assert {"name", "path", "branch", "ref", "commit", "source", "fallback"} <= set(row)
    assert row["ref"] == "refs/zuul/master/Zabc" and row["path"] == "/opt/stack/new/nova"
    assert data["zuul"]["project"] == "openstack/nova"


def test_clone_map_duplicate_rule_is_an_error_before_anything_is_cloned() -> None:
    cfg = WorkspaceConfig(projects=(("plugins/p1", "t"),), dest_root="/b", cache_root="/c",
                          git_base="https://g",
                          clone_map={"plugins/(.*)": "a", "plugins/p.": "b"})
    with pytest.raises(UsageError) as err:
        workspace.plan(zuul.parse({}), cfg, {})
    assert "several clone_map rules" in err.value.problems[0].message


# T10 (spec 6.1): where the cache is: option beats environment beats profile/default.
@pytest.mark.parametrize("option,env,expected", [
    (None, {}, "/opt/git"),
    (None, {"DSVM_GIT_CACHE": "fromenviron"}, "fromenviron"),
    ("argument", {"DSVM_GIT_CACHE": "fromenviron"}, "argument"),
    ("argument", {}, "argument"),
])
def test_cache_dir_precedence(option, env, expected, tmp_path) -> None:
    from dsvm import profile

    env = {"HOME": str(tmp_path), **env}
    settings = profile.resolve("base", env, options={"git.cache": option})
    assert workspace.config_from(settings, env).cache_root == expected
