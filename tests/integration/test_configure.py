"""dsvm configure end to end: the written file, its mode, bash sourcing it, crudini reading cinder.conf."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dsvm import phase
from dsvm.cli import main
from dsvm.devstack import configure, localconf
from tests.fixtures.configure_profiles import SANCO, resolve, write_profile

SECRETS = ("Fleet2024", "k3y-for-sanco", "secretadmin", "secretmysql")


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake node: $BASE/new/devstack exists, WORKSPACE in tmp, profile 'sanco' written."""
    base = tmp_path / "stack"
    (base / "new" / "devstack").mkdir(parents=True)
    write_profile(tmp_path, "sanco", SANCO)
    monkeypatch.setenv("BASE", str(base))
    monkeypatch.setenv("WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("DSVM_PROFILE_PATH", str(tmp_path))
    for var in ("DEVSTACK_LOCAL_CONFIG", "DEVSTACK_LOCALCONF", "ENABLED_SERVICES",
                "OVERRIDE_ENABLED_SERVICES", "KEEP_LOCALRC"):
        monkeypatch.delenv(var, raising=False)
    return base


def localrc_block(path: Path) -> str:
    out, inside = [], False
    for line in path.read_text().split("\n"):
        if line.startswith("[[") and "|" in line:
            inside = line.split()[0] == "[[local|localrc]]"
        elif inside:
            out.append(line)
    return "\n".join(out) + "\n"


def test_configure_writes_0600_local_conf_equal_to_the_render(node: Path, tmp_path: Path,
                                                               capsys):
    assert main(["--profile", "sanco", "configure"]) == 0
    target = node / "new/devstack/local.conf"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    expected = localconf.render(resolve(tmp_path, SANCO, dict(os.environ), name="again"))
    assert target.read_text() == expected.text()
    assert sorted(p.name for p in target.parent.iterdir()) == ["local.conf"]  # no temp left
    out = capsys.readouterr()
    assert "wrote" in out.out and not any(s in out.out + out.err for s in SECRETS)
    log = (tmp_path / "ws/.dsvm/configure.log").read_text()
    assert "san_password = ****" in log and not any(s in log for s in SECRETS)


def test_bash_sources_the_localrc_block_with_last_line_winning(node: Path, tmp_path: Path,
                                                                monkeypatch):
    monkeypatch.setenv("DEVSTACK_GATE_TEMPEST_LARGE_OPS", "1")
    monkeypatch.setenv("DEVSTACK_LOCAL_CONFIG", "EXTRA_FROM_JOB=yes")
    assert main(["--profile", "sanco", "configure"]) == 0
    rc = tmp_path / "localrc.sh"
    rc.write_text(localrc_block(node / "new/devstack/local.conf"))
    script = ('enable_service() { :; }; disable_service() { :; }; enable_plugin() { :; }\n'
              'set -eu; BASE=x; source "$1"\n'
              'printf "%s|" "$VIRT_DRIVER" "$TEMPEST_VOLUME_VENDOR" "$CINDER_ENABLED_BACKENDS" '
              '"$EXTRA_FROM_JOB" "$DEST"')
    r = subprocess.run(["bash", "-c", script, "bash", str(rc)], capture_output=True, text=True,
                       timeout=30, check=True)
    assert r.stdout.split("|")[:5] == ["fake", "SanCo Storage", "sanco:sanco-iscsi", "yes",
                                       f"{node}/new"]


def test_print_masks_secrets_shows_origins_and_writes_nothing(node: Path, tmp_path: Path,
                                                              capsys):
    assert main(["--profile", "sanco", "configure", "--print"]) == 0
    out = capsys.readouterr().out
    assert not (node / "new/devstack/local.conf").exists()
    assert not any(s in out for s in SECRETS)
    assert "san_password = ****" in out and "ADMIN_PASSWORD=****" in out
    line = next(x for x in out.splitlines() if x.startswith("san_ip = 192.0.2.20"))
    assert line.endswith(f"# {tmp_path / 'sanco.yaml'}:13")
    assert main(["--profile", "sanco", "configure", "--print", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["backends"] == ["sanco-iscsi"]
    assert data["local_conf"] == str(node / "new/devstack/local.conf")
    header = next(x for x in data["lines"] if x["text"] == "[[post-config|$CINDER_CONF]]")
    assert header["origin"] == f"{tmp_path / 'sanco.yaml'}:8"
    assert not any(s in json.dumps(data) for s in SECRETS)


def test_bad_profile_exits_2_naming_file_and_line(node: Path, tmp_path: Path):
    write_profile(tmp_path, "broken", """\
        extends: base
        devstack:
          localrc:
            ADMIN_PASSWORD: "p@ss word"
        cinder:
          backends:
            - name: x
        """)
    r = subprocess.run([sys.executable, "-m", "dsvm", "--profile", "broken", "configure"],
                       capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert r.returncode == 2
    assert f"{tmp_path / 'broken.yaml'}:4: ADMIN_PASSWORD" in r.stderr
    assert f"{tmp_path / 'broken.yaml'}:7: backend 'x' has no volume_driver" in r.stderr
    assert "p@ss word" not in r.stderr + r.stdout
    assert not (node / "new/devstack/local.conf").exists()


def test_missing_checkout_is_infra_default_and_usage_when_given(node: Path, tmp_path: Path):
    shutil.rmtree(node / "new/devstack")
    assert main(["--profile", "sanco", "configure"]) == 3
    assert main(["--profile", "sanco", "configure", "--devstack-dir",
                 str(tmp_path / "nowhere")]) == 2


def test_keep_localrc_keeps_the_callers_lines(node: Path, monkeypatch):
    target = node / "new/devstack/local.conf"
    target.write_text("[[local|localrc]]\nPREPOPULATED=1\n")
    target.chmod(0o644)
    monkeypatch.setenv("KEEP_LOCALRC", "1")
    assert main(["--profile", "sanco", "configure"]) == 0
    assert target.read_text().startswith("[[local|localrc]]\nPREPOPULATED=1\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_run_phase_outputs_and_plan_only(node: Path, tmp_path: Path):
    settings = resolve(tmp_path, SANCO, dict(os.environ), name="p")
    ctx = phase.context(settings, dict(os.environ), plan_only=True)
    planned = configure.run_phase(ctx)
    assert planned.outputs == {"local_conf": str(node / "new/devstack/local.conf"),
                               "backends": ["sanco-iscsi"]}
    assert not (node / "new/devstack/local.conf").exists()
    ctx = phase.context(settings, dict(os.environ))
    result = configure.run_phase(ctx)
    assert result.ok and result.outputs == planned.outputs


def crudini(*args: str) -> str:
    exe = shutil.which("crudini") or str(Path(sys.executable).parent / "crudini")
    return subprocess.run([exe, *args], capture_output=True, text=True, check=True,
                          timeout=30).stdout.strip()


def test_apply_cinder_edits_an_existing_cinder_conf(node: Path, tmp_path: Path, capsys):
    conf = tmp_path / "cinder.conf"
    conf.write_text("[DEFAULT]\ndebug = True\nenabled_backends = lvmdriver-1\n\n"
                    "[lvmdriver-1]\nvolume_backend_name = lvmdriver-1\n")
    conf.chmod(0o644)
    assert main(["--profile", "sanco", "configure", "--apply-cinder", str(conf)]) == 0
    out = capsys.readouterr().out
    assert not any(s in out for s in SECRETS) and "sanco_api_key" in out
    assert crudini("--get", str(conf), "DEFAULT", "enabled_backends") == "sanco-iscsi"
    assert crudini("--get", str(conf), "DEFAULT", "default_volume_type") == "sanco-iscsi"
    assert crudini("--get", str(conf), "sanco-iscsi", "san_password") == "Fleet2024"
    assert crudini("--get", str(conf), "sanco-iscsi", "volume_driver") == \
        "cinder.volume.drivers.sanco.iscsi.SanCoISCSIDriver"
    assert crudini("--get", str(conf), "lvmdriver-1", "volume_backend_name") == "lvmdriver-1"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640  # no longer world-readable
    before = conf.read_text()
    assert main(["--profile", "sanco", "configure", "--apply-cinder", str(conf)]) == 0
    assert conf.read_text() == before
    assert main(["--profile", "sanco", "configure", "--apply-cinder",
                 str(tmp_path / "absent.conf")]) == 2


def test_devstacks_meta_config_reads_the_written_file_as_intended(node: Path, tmp_path: Path):
    """stack.sh's own steps (dsvm.devstack.metaconfig) on the written local.conf."""
    from dsvm.devstack import metaconfig
    from tests.unit.test_cinder import AFTER_PURE, DEVSTACK_CINDER_CONF, PURE

    settings = resolve(tmp_path, PURE, dict(os.environ), name="pure")
    ctx = phase.context(settings, dict(os.environ))
    local_conf = Path(configure.run_phase(ctx).outputs["local_conf"])
    auto = local_conf.parent / ".localrc.auto"
    assert metaconfig.extract_localrc_section(str(local_conf), str(local_conf.parent / "localrc"),
                                              str(auto)).rc == 0
    assert "CINDER_ENABLED_BACKENDS=lvm:lvmdriver-1,pure:puredriver-1\n" in auto.read_text()
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "cinder.conf").write_text(DEVSTACK_CINDER_CONF)
    (etc / "tempest.conf").write_text("[DEFAULT]\nlog_file = tempest.log\n")
    env = {"CINDER_CONF": str(etc / "cinder.conf"), "TEMPEST_CONFIG": str(etc / "tempest.conf")}
    for group in ("post-config", "test-config"):
        assert metaconfig.merge_config_group(str(local_conf), group, env,
                                             cwd=str(tmp_path)).rc == 0
    assert (etc / "cinder.conf").read_text() == AFTER_PURE  # devstack's vector result
    assert crudini("--get", str(etc / "tempest.conf"), "volume", "backend_names") == \
        "lvmdriver-1,puredriver-1"
    assert crudini("--get", str(etc / "tempest.conf"), "volume-feature-enabled",
                   "multi_backend") == "True"
    assert crudini("--get", str(etc / "tempest.conf"), "volume", "vendor_name") == "Pure Storage"
