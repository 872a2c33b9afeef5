"""Zuul parameters: parsing, validation of untrusted values, ref rewriting."""

from __future__ import annotations

import pytest

from dsvm import zuul
from dsvm.errors import UsageError

SHA = "a" * 40


def test_change_parameters_are_parsed() -> None:
    p = zuul.parse({
        "ZUUL_PROJECT": "openstack/nova", "ZUUL_BRANCH": "master",
        "ZUUL_REF": "refs/zuul/master/Z7d2b", "ZUUL_URL": "http://zuul.example.org/p/",
        "ZUUL_CHANGE": "12345", "ZUUL_PATCHSET": "3", "ZUUL_PIPELINE": "check",
        "ZUUL_UUID": "3f2c1b0e9d8a47c6b5a4f3e2d1c0b9a8", "ZUUL_COMMIT": SHA,
        "LOG_PATH": "45/12345/3/check/job/3f2c1b0",
        "ZUUL_CHANGES": "openstack/glance:stable/havana:refs/changes/67/4567/1^"
                        "openstack/nova:master:refs/changes/45/12345/3"})
    assert p.kind == "change"
    assert p.url == "http://zuul.example.org/p"
    assert p.changes == (zuul.Change("openstack/glance", "stable/havana", "refs/changes/67/4567/1"),
                         zuul.Change("openstack/nova", "master", "refs/changes/45/12345/3"))
    assert p.change_projects == ("openstack/glance", "openstack/nova")
    assert p.as_json()["changes"][0]["branch"] == "stable/havana"


def test_ref_update_and_periodic_kinds() -> None:
    post = zuul.parse({"ZUUL_PROJECT": "org/p", "ZUUL_REF": "refs/tags/2014.1",
                       "ZUUL_URL": "/m", "ZUUL_NEWREV": SHA, "ZUUL_OLDREV": "0" * 40})
    assert post.kind == "ref-update"
    assert zuul.parse({"ZUUL_PROJECT": "org/p", "ZUUL_PIPELINE": "periodic"}).kind == "periodic"
    assert zuul.parse({}).kind == "periodic"


@pytest.mark.parametrize("env,where", [
    ({"ZUUL_PROJECT": "../etc"}, "env ZUUL_PROJECT"),
    ({"ZUUL_PROJECT": "/abs/p"}, "env ZUUL_PROJECT"),
    ({"ZUUL_BRANCH": "master; rm -rf /"}, "env ZUUL_BRANCH"),
    ({"ZUUL_BRANCH": "$(touch${IFS}/tmp/pwned)"}, None),  # valid ref chars: harmless, never a shell
    ({"ZUUL_REF": "refs/zuul/master/Z1 && id", "ZUUL_URL": "/m"}, "env ZUUL_REF"),
    ({"ZUUL_REF": "refs/../x", "ZUUL_URL": "/m"}, "env ZUUL_REF"),
    ({"ZUUL_REF": "--upload-pack=touch", "ZUUL_URL": "/m"}, "env ZUUL_REF"),
    ({"ZUUL_URL": "ext::sh -c touch% /tmp/pwned"}, "env ZUUL_URL"),
    ({"ZUUL_URL": "-oProxyCommand=x"}, "env ZUUL_URL"),
    ({"ZUUL_CHANGES": "openstack/nova:master"}, "env ZUUL_CHANGES"),
    ({"ZUUL_CHANGES": "openstack/nova:master:refs/changes/1/2/3^^"}, "env ZUUL_CHANGES"),
    ({"ZUUL_CHANGES": "../x:master:refs/changes/1/2/3"}, "env ZUUL_CHANGES"),
    ({"ZUUL_REF": "refs/zuul/master/Z1"}, "env ZUUL_REF"),  # needs ZUUL_URL
    ({"ZUUL_NEWREV": SHA}, "env ZUUL_NEWREV"),  # needs ZUUL_PROJECT
    ({"ZUUL_NEWREV": "xyz", "ZUUL_PROJECT": "o/p"}, "env ZUUL_NEWREV"),
    ({"ZUUL_CHANGE": "12a"}, "env ZUUL_CHANGE"),
])
def test_bad_values_exit_2_naming_the_variable(env, where) -> None:
    if where is None:
        assert zuul.parse(env).branch == env["ZUUL_BRANCH"]
        return
    with pytest.raises(UsageError) as err:
        zuul.parse(env)
    assert err.value.exit_code == 2
    assert where in [p.where for p in err.value.problems]


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(UsageError) as err:
        zuul.parse({"ZUUL_PROJECT": "../x", "ZUUL_BRANCH": "a b", "ZUUL_CHANGE": "x"})
    assert len(err.value.problems) == 3


@pytest.mark.parametrize("ref,branch,target,expected", [
    ("refs/zuul/master/Zabc", "master", "stable/havana", "refs/zuul/stable/havana/Zabc"),
    ("refs/zuul/stable/havana/Zabc", "stable/havana", "master", "refs/zuul/master/Zabc"),
    # zuul-cloner's re.sub would rewrite the 'f' digits of the id too (spec 2.8):
    ("refs/zuul/f/Zff00", "f", "master", "refs/zuul/master/Zff00"),
    # dots are literal, not regex wildcards:
    ("refs/zuul/stable/1x0/Z1", "stable/1.0", "master", None),
    ("refs/zuul/master/Z1", None, "master", None),
    ("refs/tags/1.0", "master", "stable/x", None),
])
def test_ref_for_branch_replaces_only_the_branch_component(ref, branch, target, expected) -> None:
    assert zuul.ref_for_branch(ref, branch, target) == expected


@pytest.mark.parametrize("ref,ok", [
    ("refs/heads/master", True), ("master", True), ("stable/2024.1", True),
    ("refs/heads/.hidden", False), ("a..b", False), ("a/", False), ("a.lock", False),
    ("a@{1}", False), ("@", False), ("a\\b", False), ("a~1", False), ("a^", False),
    ("a:b", False), ("a?", False), ("a*", False), ("a[b", False), ("", False),
])
def test_ref_names_follow_check_ref_format(ref, ok, tmp_path) -> None:
    import subprocess

    assert (zuul.ref_problem(ref) is None) == ok
    if ref:  # the rules agree with git itself
        real = subprocess.run(["git", "check-ref-format", "--allow-onelevel", ref],
                              capture_output=True).returncode == 0
        assert real == ok
