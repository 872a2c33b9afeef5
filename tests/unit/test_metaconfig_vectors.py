"""Every recorded devstack local.conf result (spec/vectors/localconf.jsonl), replayed as the README
says. Cases whose result depends on running a command are expected refusals (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsvm.devstack import metaconfig
from tests.fixtures.devstack_vectors import (
    files_after,
    load,
    localconf_layout,
    read_or_none,
    runs_commands,
)

CASES = load("localconf.jsonl")
REFUSAL = ("devstack eval's merged values, so `...` and $(...) run commands; dsvm refuses "
           "them with exit 2 (the one deliberate difference, issue 4)")


def _replay(case: dict, root: Path) -> tuple[str, dict[str, int | None]]:
    local_conf, env = localconf_layout(root, case)
    top = root / "devstack"
    result = metaconfig.extract_localrc_section(str(local_conf), str(top / "localrc"),
                                                str(top / ".localrc.auto"))
    stdout, rcs = result.stdout, {"local": result.rc}
    for group in case["groups"]:
        merged = metaconfig.merge_config_group(str(local_conf), group, env,
                                               cwd=str(root / "work"), runner="{RUNNER}")
        stdout += merged.stdout
        rcs[group] = merged.rc
        if merged.rc == 1:      # devstack's die: the run stops here
            break
    for group in case["groups"]:
        rcs.setdefault(group, None)
    return stdout, rcs


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_matches_devstack(case: dict, tmp_path: Path) -> None:
    if runs_commands(case):
        with pytest.raises(metaconfig.CommandSubstitutionError) as err:
            _replay(case, tmp_path)
        assert err.value.exit_code == 2, REFUSAL
        assert "refuses" in err.value.message
        return
    stdout, rcs = _replay(case, tmp_path)
    assert read_or_none(tmp_path / "devstack" / ".localrc.auto") == case["localrc_auto"]
    assert files_after(tmp_path) == case["files_after"]
    assert stdout == case["stdout"]
    assert rcs == case["step_rcs"]


def test_refusal_changes_nothing(tmp_path: Path) -> None:
    conf = tmp_path / "local.conf"
    conf.write_text("[[post-config|$X]]\n[DEFAULT]\na = 1\nb = $(touch pwned)\n")
    with pytest.raises(metaconfig.CommandSubstitutionError):
        metaconfig.merge_config_group(str(conf), "post-config", {"X": str(tmp_path / "x.conf")},
                                      cwd=str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local.conf"]


def test_die_on_bogus_parent(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    conf = tmp_path / "local.conf"
    conf.write_text("[[post-config|$X]]\n[DEFAULT]\na = 1\n")
    result = metaconfig.merge_config_group(str(conf), "post-config",
                                           {"X": str(tmp_path / "file" / "x.conf")})
    assert result.rc == 1
    assert "bogus config file specification" in result.warnings[-1]
