"""Suite-wide isolation: a private HOME and git identity, so no test touches the real home."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# tests/fixtures holds builders and small suites that stestr runs; pytest must not collect them.
collect_ignore_glob = ["fixtures/*"]


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path_factory.mktemp("home")
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = dsvm tests\n\temail = tests@dsvm.invalid\n"
        "[init]\n\tdefaultBranch = master\n[protocol \"file\"]\n\tallow = always\n"
        "[advice]\n\tdetachedHead = false\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("JENKINS_URL", "BUILD_ID", "DSVM_PROFILE", "GIT_DIR", "GIT_WORK_TREE"):
        monkeypatch.delenv(var, raising=False)
    for name in list(os.environ):
        if name.startswith(("ZUUL_", "DEVSTACK_GATE_")):
            monkeypatch.delenv(name, raising=False)
    from dsvm import console

    console._UI = None  # each test gets a console bound to its own captured streams
    yield home
    console._UI = None


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """In CI (CI=true) a test skipped for a tool or server .ci/run provides is a failure.

    Locally such tests skip when the tool is missing; in CI that would hide a broken setup.
    """
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") == "true" and ".ci/" in str(report.longrepr):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, but .ci/run must provide it: {report.longrepr}"
