"""environ: devstack-gate variables become typed settings; unknown names warn helpfully."""

from __future__ import annotations

import pytest

from dsvm import environ, profile
from dsvm.errors import ProfileError


@pytest.mark.parametrize("raw,expected", [("1", True), ("0", False), ("true", True),
                                          ("False", False), ("", False)])
def test_booleans_accept_devstack_gate_forms(raw: str, expected: bool):
    s = profile.resolve("base", env={"DEVSTACK_GATE_TEMPEST": raw})
    assert s.gate["DEVSTACK_GATE_TEMPEST"] is expected


def test_bad_boolean_and_integer_are_reported_by_name():
    with pytest.raises(ProfileError) as info:
        profile.resolve("base", env={"DEVSTACK_GATE_TEMPEST": "maybe",
                                     "TEMPEST_CONCURRENCY": "four"})
    wheres = {p.where for p in info.value.problems}
    assert wheres == {"env DEVSTACK_GATE_TEMPEST", "env TEMPEST_CONCURRENCY"}


def test_concurrency_must_be_positive():
    with pytest.raises(ProfileError):
        profile.resolve("base", env={"TEMPEST_CONCURRENCY": "0"})


def test_env_overrides_profile_with_origin():
    s = profile.resolve("base", env={"DEVSTACK_GATE_TEMPEST_REGEX": "volume",
                                     "GIT_BASE": "http://mirror.local"})
    assert s.get("tempest.regex") == "volume"
    assert s.origin("tempest.regex") == "env DEVSTACK_GATE_TEMPEST_REGEX"
    assert s.get("git.base") == "http://mirror.local"


def test_build_timeout_in_milliseconds_sets_job_minutes():
    s = profile.resolve("base", env={"BUILD_TIMEOUT": "5400000"})
    assert s.get("timeout.job_minutes") == 90
    assert s.origin("timeout.job_minutes") == "env BUILD_TIMEOUT"


def test_branch_override_maps_to_override_zuul_branch():
    s = profile.resolve("base", env={"BRANCH_OVERRIDE": "stable/2024.1"})
    assert s.gate["OVERRIDE_ZUUL_BRANCH"] == "stable/2024.1"
    s = profile.resolve("base", env={"BRANCH_OVERRIDE": "default"})
    assert s.gate["OVERRIDE_ZUUL_BRANCH"] == ""


def test_unknown_variable_warns_with_closest_known_name():
    warnings = environ.warnings_for({"DEVSTACK_GATE_TEMPST_FULL": "1",
                                     "DEVSTACK_GATE_EXERCISES": "1",
                                     "DEVSTACK_GATE_CLEAN_LOGS": "0"})
    assert len(warnings) == 2
    assert "did you mean DEVSTACK_GATE_TEMPEST_FULL?" in warnings[1] or \
        "did you mean DEVSTACK_GATE_TEMPEST_FULL?" in warnings[0]
    assert any("DEVSTACK_GATE_EXERCISES is removed" in w for w in warnings)


def test_project_overrides_and_uc_names():
    branches, bases = environ.project_overrides({
        "OVERRIDE_PYTHON_CINDERCLIENT_PROJECT_BRANCH": "stable/x",
        "OVERRIDE_ZUUL_BRANCH": "ignored-here",
        "OVERRIDE_NOVA_GIT_BASE": "http://elsewhere"})
    assert branches == {"PYTHON_CINDERCLIENT": "stable/x"}
    assert bases == {"NOVA": "http://elsewhere"}
    assert environ.uc_name("openstack/python-cinderclient") == "PYTHON_CINDERCLIENT"
    assert environ.uc_name("x/networking-foo.bar") == "NETWORKING_FOO_BAR"


def test_every_spec_variable_is_known():
    # The §3 tables of spec/devstack-gate.md, as names dsvm must accept without warning.
    for name in ["DEVSTACK_GATE_TEMPEST_FULL", "DEVSTACK_GATE_TEMPEST_REGEX",
                 "DEVSTACK_GATE_TIMEOUT_BUFFER", "DEVSTACK_GATE_VIRT_DRIVER",
                 "DEVSTACK_GATE_NEUTRON", "DEVSTACK_GATE_TOPOLOGY", "DEVSTACK_GATE_GRENADE",
                 "DEVSTACK_GATE_PROJECTS_OVERRIDE", "DEVSTACK_GATE_MQ_DRIVER"]:
        assert environ.warnings_for({name: "1"}) == []


@pytest.mark.parametrize("env,name", [
    ({"DEVSTACK_GATE_GRENADE": "pullup"}, "DEVSTACK_GATE_GRENADE"),
    ({"DEVSTACK_GATE_TOPOLOGY": "multinode"}, "DEVSTACK_GATE_TOPOLOGY"),
    ({"DEVSTACK_GATE_SETTINGS": "/tmp/settings.sh"}, "DEVSTACK_GATE_SETTINGS"),
])
def test_unsupported_features_are_refused_not_ignored(env, name):
    with pytest.raises(ProfileError) as info:
        profile.resolve("base", env=env)
    assert info.value.exit_code == 2
    assert [p.where for p in info.value.problems] == [f"env {name}"]


def test_harmless_removed_variables_only_warn():
    s = profile.resolve("base", env={"DEVSTACK_GATE_EXERCISES": "1",
                                     "DEVSTACK_GATE_CLEAN_LOGS": "0"})
    assert s.profile == "base"


@pytest.mark.parametrize(("env", "selection", "origin"), [
    ({"DEVSTACK_GATE_TEMPEST_FULL": "1"}, "full", "env DEVSTACK_GATE_TEMPEST_FULL"),
    ({"DEVSTACK_GATE_TEMPEST_NOTESTS": "1", "DEVSTACK_GATE_TEMPEST_FULL": "1"}, "none",
     "env DEVSTACK_GATE_TEMPEST_NOTESTS"),
    ({"DEVSTACK_GATE_TEMPEST_FULL": "0"}, "volume", "cinder-lvm.yaml"),
])
def test_tempest_variables_resolve_into_tempest_selection(env, selection, origin):
    # The gate table lives in the environment layer: profile show prints what the run does.
    s = profile.resolve("cinder-lvm", env=env)
    assert s.tempest.selection == selection
    assert origin in s.origin("tempest.selection")
    if env.get("DEVSTACK_GATE_TEMPEST_FULL") == "1" and selection == "full":
        assert s.why("tempest.selection") == \
            "DEVSTACK_GATE_TEMPEST_FULL=1 (devstack-gate: tox -efull)"


def test_gate_view_is_frozen_with_origins():
    s = profile.resolve("base", env={"DEVSTACK_GATE_TEMPEST": "1"})
    assert s.gate.origin("DEVSTACK_GATE_TEMPEST") == "env DEVSTACK_GATE_TEMPEST"
    assert s.gate.origin("DEVSTACK_GATE_CEPH") == "default"
    assert set(s.gate) == set(environ.VARS)  # no hidden keys
    with pytest.raises(TypeError):
        s.gate.data["DEVSTACK_GATE_CEPH"] = True  # type: ignore[index]
