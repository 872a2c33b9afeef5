"""Profiles: extends chains, cycles, ${VAR} expansion, validation with file:line, provenance."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from dsvm import profile
from dsvm.errors import ProfileError

SHIPPED = ["base", "tempest-full", "tempest-smoke", "cinder-lvm", "vendor-template"]


def write(d: Path, name: str, text: str) -> Path:
    path = d / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_resolves(name: str):
    settings = profile.resolve(name, env={})
    assert settings.chain[-1].stem == name
    assert settings.chain[0].stem == "base"
    assert "openstack/devstack" in settings.get("projects")


def test_extends_chain_layers_child_over_parent_with_provenance(tmp_path: Path):
    write(tmp_path, "parent", """\
        description: parent
        tempest:
          selection: smoke
          concurrency: 2
        devstack:
          localrc:
            A: "1"
            B: "2"
        """)
    child = write(tmp_path, "child", """\
        extends: parent
        tempest:
          concurrency: 4
        devstack:
          localrc:
            B: "3"
        """)
    s = profile.resolve(str(child), env={})
    assert s.get("tempest.selection") == "smoke"
    assert s.get("tempest.concurrency") == 4
    assert s.origin("tempest.concurrency") == f"{child}:3"
    assert s.origin("tempest.selection").endswith("parent.yaml:3")
    assert s.get("devstack.localrc") == {"A": "1", "B": "3"}  # maps merge, child wins
    assert s.origin("tempest.serial") == "default"


def test_extends_cycle_is_rejected(tmp_path: Path):
    write(tmp_path, "a", "extends: b\n")
    write(tmp_path, "b", "extends: a\n")
    with pytest.raises(ProfileError) as info:
        profile.resolve(str(tmp_path / "a.yaml"), env={})
    assert "cycle" in info.value.message and info.value.exit_code == 2


def test_missing_extends_target_names_the_line(tmp_path: Path):
    p = write(tmp_path, "x", "description: x\nextends: no-such-profile\n")
    with pytest.raises(ProfileError) as info:
        profile.resolve(str(p), env={})
    assert f"{p}:2" in info.value.message
    assert "unknown profile 'no-such-profile'" in info.value.message


def test_variable_expansion_with_defaults_and_escapes(tmp_path: Path):
    p = write(tmp_path, "v", """\
        git:
          base: ${MIRROR:-https://opendev.org}
          zuul_url: ${ZUUL_URL}
        devstack:
          local_config: "cost $$5 and $NOVA_CONF stays"
        """)
    s = profile.resolve(str(p), env={"ZUUL_URL": "http://zuul.example/p"})
    assert s.get("git.base") == "https://opendev.org"
    assert s.get("git.zuul_url") == "http://zuul.example/p"
    assert s.get("devstack.local_config") == "cost $5 and $NOVA_CONF stays"
    s = profile.resolve(str(p), env={"ZUUL_URL": "x", "MIRROR": "http://mirror"})
    assert s.get("git.base") == "http://mirror"


def test_unset_variable_without_default_is_an_error_with_line(tmp_path: Path):
    p = write(tmp_path, "v", "description: v\ngit:\n  zuul_url: ${NOT_SET_ANYWHERE}\n")
    with pytest.raises(ProfileError) as info:
        profile.resolve(str(p), env={})
    (problem,) = info.value.problems
    assert problem.where == f"{p}:3"
    assert "NOT_SET_ANYWHERE" in problem.message


def test_all_problems_are_reported_with_lines_and_allowed_values(tmp_path: Path):
    p = write(tmp_path, "bad", """\
        description: bad
        tempset:
          selection: full
        tempest:
          concurrency: many
          colour: red
        logs:
          compression: xz
        """)
    with pytest.raises(ProfileError) as info:
        profile.resolve(str(p), env={})
    by_line = {pr.where: pr for pr in info.value.problems}
    assert set(by_line) == {f"{p}:2", f"{p}:5", f"{p}:6", f"{p}:8"}
    assert "did you mean 'tempest'" in by_line[f"{p}:2"].hint
    assert "integer" in by_line[f"{p}:5"].message
    assert "allowed in tempest" in by_line[f"{p}:6"].hint
    assert "gzip, none" in by_line[f"{p}:8"].message
    assert "   5 |   concurrency: many" in by_line[f"{p}:5"].context


def test_invalid_yaml_names_file_and_line(tmp_path: Path):
    p = write(tmp_path, "broken", "description: x\ntempest:\n  selection: [unclosed\n")
    with pytest.raises(ProfileError) as info:
        profile.resolve(str(p), env={})
    assert str(p) in info.value.message and "invalid YAML" in info.value.message


def test_unknown_profile_name_suggests_the_closest():
    with pytest.raises(ProfileError) as info:
        profile.resolve("tempest-smok", env={})
    assert "tempest-smoke" in info.value.hint


def test_precedence_default_profile_env_option():
    s = profile.resolve("tempest-smoke", env={"TEMPEST_CONCURRENCY": "3"},
                        options={"tempest.serial": True})
    assert s.get("tempest.selection") == "smoke" and s.origin("tempest.selection").endswith(
        "tempest-smoke.yaml:5")
    assert s.get("tempest.concurrency") == 3
    assert s.origin("tempest.concurrency") == "env TEMPEST_CONCURRENCY"
    assert s.get("tempest.serial") is True and s.origin("tempest.serial").startswith("option")
    s2 = profile.resolve("tempest-smoke", env={"TEMPEST_CONCURRENCY": "3"},
                         options={"tempest.concurrency": 1})
    assert s2.get("tempest.concurrency") == 1


def test_profile_by_name_from_a_user_directory(tmp_path: Path):
    write(tmp_path, "acme", "extends: cinder-lvm\ndescription: acme\n")
    s = profile.resolve("acme", env={"DSVM_PROFILE_PATH": str(tmp_path)})
    assert [p.stem for p in s.chain] == ["base", "cinder-lvm", "acme"]


def test_json_is_stable_and_masks_secrets():
    s = profile.resolve("vendor-template", env={"ACME_SAN_PASSWORD": "Sup3rS3cret"})
    text = json.dumps(s.as_json())
    assert "Sup3rS3cret" not in text
    assert "Sup3rS3cret" in s.secret_values()
    data = s.as_json()
    assert set(data) == {"profile", "chain", "settings"}
    assert data["settings"]["tempest.selection"] == {
        "value": "volume", "origin": s.origin("tempest.selection")}


def test_every_section_has_a_typed_frozen_view_with_schema_defaults():
    import dataclasses

    from dsvm import profile as profile_mod
    from dsvm import schema

    s = profile_mod.resolve("base", env={"HOME": "/nonexistent"})
    for name, cls in schema.SECTION_VIEWS.items():
        view = getattr(s, name)
        assert isinstance(view, cls)
        for field in dataclasses.fields(cls):
            spec = field.metadata["key"]
            value = getattr(view, field.name)
            default = tuple(spec.default) if spec.type in ("list", "list[map]") \
                else spec.default
            if s.origin(f"{name}.{field.name}") == "default":
                assert value == (default if default is not None else value), field.name
        with pytest.raises(dataclasses.FrozenInstanceError):
            view.__setattr__(dataclasses.fields(cls)[0].name, None)
    assert s.top.projects == tuple(s.get("projects"))


def test_views_follow_later_set_and_type_values(tmp_path):
    from dsvm import profile as profile_mod

    s = profile_mod.resolve("base", env={"HOME": "/nonexistent"})
    assert s.git.timeout == 600
    s.set("git.timeout", 30, "test")
    assert s.git.timeout == 30  # a view is rebuilt after set()
    s.set("tempest.include", ["a", 7], "test")
    assert s.tempest.include == ("a", "7")
    s.set("git.base", None, "test")  # a profile's explicit null is the schema default
    assert s.git.base == "https://opendev.org"
