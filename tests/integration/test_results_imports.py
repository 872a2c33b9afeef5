"""``dsvm results`` commands import only what they use (issue 19: their start-up was most of
their time): no python-subunit or testtools anywhere (dsvm decodes subunit itself), no
SQLAlchemy unless the command talks to the database, no xml.sax/urllib for the JUnit XML."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.results_streams import synthetic_stream

NEVER = {"subunit", "testtools", "xml.sax.saxutils", "urllib.request"}
DATABASE = {"sqlalchemy"}


def imported(args: list[str], cwd: Path) -> set[str]:
    """Every module a ``dsvm results`` process imported (``-X importtime``), after a check
    that the command worked."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "dsvm", "--no-color",
                           "results", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)})
    assert done.returncode in (0, 1), done.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_stream(tmp_path_factory.mktemp("imports") / "s.subunit", 40,
                            fail_every=7, skip_every=5)


@pytest.mark.parametrize("action", ["junit", "html", "summary"])
def test_rendering_commands_import_no_database_and_no_python_subunit(
        action: str, src: Path, tmp_path: Path) -> None:
    modules = imported([action, str(src), "-o", str(tmp_path / "out")], tmp_path)
    assert "dsvm.results.decoder" in modules  # the probe sees dsvm's own modules
    assert not modules & (NEVER | DATABASE)


def test_store_imports_sqlalchemy_but_not_python_subunit(src: Path, tmp_path: Path) -> None:
    modules = imported(["store", str(src), "--db", f"sqlite:///{tmp_path}/r.db"], tmp_path)
    assert DATABASE <= modules
    assert not modules & NEVER
    assert "sqlalchemy.dialects.mysql" not in modules  # only a MySQL URL needs that dialect
