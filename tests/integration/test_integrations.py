"""Integrations: JJB templates, the devstack-gate drop-in wrapper, Vagrantfile, dib element."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)


# -- Jenkins Job Builder --------------------------------------------------------------------

@pytest.fixture(scope="module")
def jjb_output(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("jjb")
    jjb = shutil.which("jenkins-jobs") or str(VENV_BIN / "jenkins-jobs")
    r = run([jjb, "test", str(ROOT / "scripts/jjb"), "-o", str(out)])
    assert r.returncode == 0, r.stderr[-2000:]
    return out


def test_jjb_generates_the_vendor_jobs(jjb_output: Path):
    assert sorted(p.name for p in jjb_output.iterdir()) == [
        "check-dsvm-tempest-myvendor", "periodic-dsvm-tempest-myvendor"]


def test_jjb_job_runs_dsvm_on_the_vendor_node_with_a_timeout(jjb_output: Path):
    xml = ElementTree.parse(jjb_output / "check-dsvm-tempest-myvendor").getroot()
    assert xml.findtext("assignedNode") == "devstack_slave"
    command = xml.findtext("builders/hudson.tasks.Shell/command")
    assert "exec dsvm run" in command
    assert "export DSVM_PROFILE='vendor-template'" in command
    wrapper = xml.find("buildWrappers/hudson.plugins.build__timeout.BuildTimeoutWrapper")
    assert wrapper.findtext("strategy/timeoutMinutes") == "185"
    # The variable devstack-gate's budget came from (milliseconds): dsvm reads the same.
    assert wrapper.findtext("timeoutEnvVar") == "BUILD_TIMEOUT"


def test_jjb_junit_publisher_reads_the_file_the_results_phase_writes(jjb_output: Path):
    from dsvm.results import phase as results_phase

    xml = ElementTree.parse(jjb_output / "check-dsvm-tempest-myvendor").getroot()
    junit = xml.findtext("publishers/hudson.tasks.junit.JUnitResultArchiver/testResults")
    assert junit == results_phase.JUNIT_RELPATH
    archived = [a.findtext("artifacts") for a in xml.findall(
        "publishers/hudson.tasks.ArtifactArchiver")]
    assert "logs/**" in archived


def test_jjb_periodic_job_exports_the_full_selection(jjb_output: Path):
    xml = ElementTree.parse(jjb_output / "periodic-dsvm-tempest-myvendor").getroot()
    command = xml.findtext("builders/hudson.tasks.Shell/command")
    assert "export DEVSTACK_GATE_TEMPEST_FULL=1" in command


# -- the drop-in wrapper ---------------------------------------------------------------------

WRAP = ROOT / "scripts/devstack-vm-gate-wrap.sh"


def test_wrapper_without_dsvm_says_how_to_install_it(tmp_path: Path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    r = run(["bash", str(WRAP)], env=env)
    assert r.returncode == 2
    assert "dsvm is not installed" in r.stderr and "pip install" in r.stderr


def test_wrapper_execs_dsvm_run_with_the_environment_untouched(tmp_path: Path):
    # A stand-in dsvm that records its argv and environment, honouring the exec contract.
    fake = tmp_path / "bin" / "dsvm"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho \"$@\" > \"$RECORD.argv\"\nenv > \"$RECORD.env\"\n"
                    "exit 7\n")
    fake.chmod(0o755)
    record = tmp_path / "rec"
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin", "RECORD": str(record),
           "ZUUL_BRANCH": "master; $(id)", "DEVSTACK_GATE_TEMPEST": "1",
           "WORKSPACE": str(tmp_path)}
    r = run(["bash", str(WRAP), "--plan"], env=env)
    assert r.returncode == 7  # exec'd: dsvm's exit code is the job's
    assert (tmp_path / "rec.argv").read_text().strip() == "run --plan"
    seen = dict(line.split("=", 1) for line in (tmp_path / "rec.env").read_text().splitlines()
                if "=" in line)
    assert seen["ZUUL_BRANCH"] == "master; $(id)"
    assert seen["DEVSTACK_GATE_TEMPEST"] == "1"


def test_wrapper_is_shellcheck_clean():
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck not installed (.ci/run installs it)")
    r = run(["shellcheck", str(WRAP)])
    assert r.returncode == 0, r.stdout


# -- Vagrantfile -----------------------------------------------------------------------------

needs_vagrant = pytest.mark.skipif(not shutil.which("vagrant"),
                                   reason="vagrant not installed (.ci/run installs it)")


@needs_vagrant
def test_vagrantfile_validates(tmp_path: Path):
    r = run(["vagrant", "validate"], cwd=ROOT, env=dict(os.environ, HOME=str(tmp_path)))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "validated successfully" in r.stdout


@needs_vagrant
def test_vagrant_validate_catches_a_bad_provider_option(tmp_path: Path):
    broken = (ROOT / "Vagrantfile").read_text().replace("lv.memory = MEMORY",
                                                        "lv.memmory = MEMORY")
    (tmp_path / "Vagrantfile").write_text(broken)
    r = run(["vagrant", "validate"], cwd=tmp_path, env=dict(os.environ, HOME=str(tmp_path)))
    assert r.returncode != 0
    assert "memmory" in r.stdout + r.stderr


# -- diskimage-builder element ---------------------------------------------------------------

ELEMENT = ROOT / "scripts/elements/dsvm-node"


def _dib_elements() -> Path:
    import diskimage_builder

    return Path(diskimage_builder.__file__).parent / "elements"


def test_dib_resolves_the_element_and_its_dependencies():
    env = dict(os.environ, ELEMENTS_PATH=f"{ROOT / 'scripts/elements'}:{_dib_elements()}")
    r = run([sys.executable, "-m", "diskimage_builder.element_dependencies",
             "debian-minimal", "dsvm-node"], env=env)
    assert r.returncode == 0, r.stderr[-1500:]
    resolved = r.stdout.split()
    assert "dsvm-node" in resolved and "package-installs" in resolved


def test_dib_element_phase_scripts_are_executable_and_run_prepare_node():
    scripts = [p for d in ("extra-data.d", "install.d") for p in (ELEMENT / d).iterdir()]
    assert scripts
    for script in scripts:
        assert os.access(script, os.X_OK), f"{script} is not executable"
    assert "prepare-node" in (ELEMENT / "install.d/60-dsvm-prepare-node").read_text()


def test_dib_element_scripts_are_shellcheck_clean():
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck not installed (.ci/run installs it)")
    files = [str(p) for d in ("extra-data.d", "install.d", "environment.d")
             for p in (ELEMENT / d).iterdir()]
    r = run(["shellcheck", "-s", "bash", *files])
    assert r.returncode == 0, r.stdout
