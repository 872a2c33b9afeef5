"""The zuul variable (Zuul v3+) read and validated: file forms, Params mapping, every bad value
collected and named by its key."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from dsvm import zuulv3
from dsvm.errors import UsageError

SHA = "c" * 40


def _tree(root: Path, src_dir: str) -> None:
    subprocess.run(["git", "init", "-q", str(root / src_dir)], check=True)


def _variable(**extra: object) -> dict:
    data = {"project": {"name": "openstack/cinder", "short_name": "cinder",
                        "canonical_name": "opendev.org/openstack/cinder"},
            "branch": "master", "change": "1002", "patchset": "4", "pipeline": "gate",
            "job": "dsvm-tempest-acme", "build": "0123456789abcdef0123456789abcdef",
            "timeout": 3600, "voting": False,
            "items": [{"project": {"name": "openstack/os-brick"}, "branch": "master",
                       "change": 7, "patchset": 2},
                      {"project": {"name": "openstack/cinder"}, "branch": "master",
                       "change": "1002", "patchset": "4"},
                      {"project": {"name": "openstack/nova"}, "branch": "master"}],
            "projects": {"opendev.org/openstack/cinder": {
                "name": "openstack/cinder", "short_name": "cinder",
                "canonical_name": "opendev.org/openstack/cinder",
                "src_dir": "src/opendev.org/openstack/cinder", "checkout": "master",
                "checkout_description": "zuul branch", "commit": SHA, "required": True}}}
    data.update(extra)
    return data


def test_the_variable_maps_onto_params(tmp_path: Path) -> None:
    _tree(tmp_path, "src/opendev.org/openstack/cinder")
    v = zuulv3.parse(_variable(), src_root=tmp_path)
    p = v.params
    assert (p.project, p.branch, p.change, p.patchset, p.pipeline, p.job, p.uuid, p.commit,
            p.voting, p.url) == ("openstack/cinder", "master", "1002", "4", "gate",
                                 "dsvm-tempest-acme", "0123456789abcdef0123456789abcdef", SHA,
                                 "false", None)
    # items: the change and those ahead of it, queue order; a periodic item has no change.
    assert [(c.project, c.ref) for c in p.changes] == [
        ("openstack/os-brick", "refs/changes/07/7/2"),
        ("openstack/cinder", "refs/changes/02/1002/4")]
    assert p.log_path == "02/1002/4/gate/dsvm-tempest-acme/0123456"
    assert v.timeout == 3600 and v.projects[0].path == str(
        (tmp_path / "src/opendev.org/openstack/cinder").resolve())


def test_a_periodic_build_logs_under_its_project() -> None:
    assert zuulv3.log_path(change=None, patchset=None, pipeline="periodic", job="j",
                           build="abcdef012", project="openstack/nova") == \
        "periodic/openstack/nova/j/abcdef0"
    assert zuulv3.log_path(change="1", patchset="1", pipeline=None, job=None, build="b",
                           project=None) is None


@pytest.mark.parametrize("form", ["bare-json", "wrapped-json", "bare-yaml", "wrapped-yaml"])
def test_file_forms(tmp_path: Path, form: str) -> None:
    import yaml

    _tree(tmp_path, "src/opendev.org/openstack/cinder")
    data = _variable()
    body = {"zuul": data} if form.startswith("wrapped") else data
    path = tmp_path / "vars"
    path.write_text(json.dumps(body) if form.endswith("json") else yaml.safe_dump(body))
    assert zuulv3.load(path, tmp_path).params.change == "1002"


def test_every_bad_value_is_reported_at_once_naming_its_key(tmp_path: Path) -> None:
    _tree(tmp_path, "src/opendev.org/openstack/cinder")
    bad = _variable(branch="a b", change="12a", build="x" * 80, timeout=-1,
                    items=[{"project": {"name": "../x"}, "branch": "master", "change": 1,
                            "patchset": 1}])
    entry = bad["projects"]["opendev.org/openstack/cinder"]
    entry["commit"] = "HEAD"
    with pytest.raises(UsageError) as err:
        zuulv3.parse(bad, src_root=tmp_path, file="v.json")
    wheres = {p.where for p in err.value.problems}
    assert wheres == {"v.json: zuul.branch", "v.json: zuul.change", "v.json: zuul.build",
                      "v.json: zuul.timeout", "v.json: zuul.items[0].project.name",
                      "v.json: zuul.projects['opendev.org/openstack/cinder'].commit"}
    assert err.value.exit_code == 2


def test_a_symlink_out_of_the_source_root_is_outside_it(tmp_path: Path) -> None:
    root = tmp_path / "home"
    _tree(tmp_path, "elsewhere")
    (root / "src").mkdir(parents=True)
    (root / "src/cinder").symlink_to(tmp_path / "elsewhere")
    data = _variable()
    data["projects"]["opendev.org/openstack/cinder"]["src_dir"] = "src/cinder"
    with pytest.raises(UsageError) as err:
        zuulv3.parse(data, src_root=root)
    assert "outside the source root" in err.value.problems[0].message
    # A sibling whose name starts like the root is outside it too (no string prefix test).
    _tree(tmp_path, "home2/src/x")
    data["projects"]["opendev.org/openstack/cinder"]["src_dir"] = "../home2/src/x"
    with pytest.raises(UsageError):
        zuulv3.parse(data, src_root=root)


def test_unreadable_and_non_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        zuulv3.read(tmp_path / "missing.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(UsageError, match="does not hold a mapping"):
        zuulv3.read(tmp_path / "list.json")
