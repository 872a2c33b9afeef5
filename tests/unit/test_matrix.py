"""The feature matrix: devstack-gate's built-in grid, and a vendor's own features.yaml
(DEVSTACK_GATE_FEATURE_MATRIX) in the same format, honoured rather than ignored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dsvm import cli, profile
from dsvm.devstack import configure, localconf, matrix
from dsvm.errors import ProfileError


def as_features_yaml(grid: matrix.Grid) -> dict:
    """A Grid written back in devstack-gate's features.yaml format."""
    config: dict = {"default": {b: list(f) for b, f in grid.defaults.items()}}
    for name, c in grid.configs.items():
        config[name] = {k: list(v) for k, v in (("features", c.features),
                                                 ("rm-features", c.rm_features),
                                                 ("services", c.services),
                                                 ("rm-services", c.rm_services)) if v}
    primary: dict = {}
    for name, f in grid.primary.items():
        entry: dict = {"base": {"services": list(f.add), "rm-services": list(f.rm)}}
        for branch, add in (f.branch_add or {}).items():
            entry.setdefault(branch, {})["services"] = list(add)
        for branch, rm in (f.branch_rm or {}).items():
            entry.setdefault(branch, {})["rm-services"] = list(rm)
        primary[name] = entry
    return {"config": config, "branches": {"default": grid.trunk, "allowed": list(grid.allowed)},
            "primary": primary}


def vendor_yaml() -> dict:
    """devstack-gate's grid plus a vendor config 'acme' (its array's agent, no c-bak)."""
    data = as_features_yaml(matrix.BUILTIN)
    data["config"]["acme"] = {"features": ["acme"], "rm-services": ["c-bak"]}
    data["primary"]["acme"] = {"base": {"services": ["acme-agent"]},
                               "master": {"services": ["acme-master-only"]}}
    return data


@pytest.mark.parametrize("branch", matrix.ALLOWED)
def test_builtin_grid_read_back_from_its_own_file_format(branch: str) -> None:
    parsed = matrix.parse(yaml.safe_dump(as_features_yaml(matrix.BUILTIN)), "features.yaml")
    for configs in (["neutron"], ["neutron", "tempest"], ["grenade", "neutron", "tempest"],
                    ["ironic", "neutron"], ["postgres", "tlsproxy", "zeromq"], []):
        assert matrix.enabled_services(configs, branch, grid=parsed) == \
            matrix.enabled_services(configs, branch)
    assert matrix.enabled_services(["tempest"], branch, True, grid=parsed) == \
        ["dstat", "etcd3", "mysql", "rabbit", "tempest"]


def test_vendor_config_adds_its_feature_and_removes_services() -> None:
    grid = matrix.parse(yaml.safe_dump(vendor_yaml()), "/etc/acme/features.yaml")
    assert grid.extra_configs == ("acme",)
    configs = matrix.configs_from({"DEVSTACK_GATE_NEUTRON": True, "DEVSTACK_GATE_ACME": "1"},
                                  grid)
    assert sorted(configs) == ["acme", "neutron"]
    master = matrix.enabled_services(configs, "master", grid=grid)
    assert "acme-agent" in master and "acme-master-only" in master and "c-bak" not in master
    assert "acme-master-only" not in matrix.enabled_services(configs, "train", grid=grid)


@pytest.mark.parametrize(("mutate", "needle"), [
    (lambda d: d["primary"].pop("nova"), "feature 'nova' is used but has no primary entry"),
    (lambda d: d["config"]["acme"].update(features="acme"), "must be a list of names"),
    (lambda d: d.pop("branches"), "'branches' is missing"),
    (lambda d: d["config"]["default"].pop("master"), "no default features for the trunk"),
])
def test_malformed_matrix_is_exit_2_naming_the_file(mutate, needle: str) -> None:
    data = vendor_yaml()
    mutate(data)
    with pytest.raises(ProfileError) as info:
        matrix.parse(yaml.safe_dump(data), "/etc/acme/features.yaml")
    assert info.value.exit_code == 2
    assert any(needle in p.message and p.where.startswith("/etc/acme/features.yaml")
               for p in info.value.problems), [p.render() for p in info.value.problems]


def test_local_conf_enables_the_vendor_matrix_services(tmp_path: Path) -> None:
    path = tmp_path / "features.yaml"
    path.write_text(yaml.safe_dump(vendor_yaml()))
    env = {"HOME": str(tmp_path), "DEVSTACK_GATE_FEATURE_MATRIX": str(path),
           "DEVSTACK_GATE_ACME": "1", "DEVSTACK_GATE_TEMPEST": "1"}
    settings = profile.resolve("base", env=env)
    conf = localconf.render(settings, grid=configure.feature_matrix(settings))
    line = next(ln for ln in conf.lines if ln.text.startswith("ENABLED_SERVICES="))
    services = line.text.split("=", 1)[1].split(",")
    assert "acme-agent" in services and "tempest" in services and "c-bak" not in services
    assert str(path) in line.origin
    # devstack-gate's own file is the built-in grid: same result as not setting it.
    same = profile.resolve("base", env={**env, "DEVSTACK_GATE_FEATURE_MATRIX":
                                        "roles/test-matrix/files/features.yaml"})
    assert configure.feature_matrix(same) is matrix.BUILTIN


def test_missing_matrix_file_fails_the_plan_with_exit_2(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    for key in list(__import__("os").environ):
        if key.startswith(("DEVSTACK_GATE", "ZUUL_", "DSVM_", "BUILD_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("BASE", str(tmp_path / "base"))
    monkeypatch.setenv("DEVSTACK_GATE_FEATURE_MATRIX", "acme/features.yaml")
    argv = ["run", "--plan", "--json", "--from", "configure", "--to", "configure",
            "--workspace", str(tmp_path / "ws")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "DEVSTACK_GATE_FEATURE_MATRIX" in err
    assert str(tmp_path / "base/new/devstack-gate/acme/features.yaml") in err
    (tmp_path / "base/new/devstack-gate/acme").mkdir(parents=True)
    (tmp_path / "base/new/devstack-gate/acme/features.yaml").write_text(
        yaml.safe_dump(vendor_yaml()))
    monkeypatch.setenv("DEVSTACK_GATE_ACME", "1")
    assert cli.main(argv) == 0
    local_conf = json.loads(capsys.readouterr().out)["phases"]["configure"]["local_conf"]
    assert "acme-agent" in local_conf
