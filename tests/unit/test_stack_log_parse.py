"""stack.StackLog: devstack's markers → phase timings, component timing, first error."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsvm.devstack import stack

SUCCESS = """\
2026-07-17 10:00:00.000 | + ./stack.sh:main:230          :   echo_summary 'stack.sh log /opt/stack/logs/stack.sh.log.2026-07-17-100000'
2026-07-17 10:00:00.500 | + ./stack.sh:main:790          :   echo_summary 'Installing package prerequisites'
2026-07-17 10:00:00.501 | Installing package prerequisites
2026-07-17 10:02:00.500 | + ./stack.sh:main:900          :   echo_summary 'Installing OpenStack project source'
2026-07-17 10:03:00.000 | ++ ./stack.sh:main:905          :   run_phase stack install
2026-07-17 10:05:00.500 | + ./stack.sh:main:1100         :   echo_summary 'Starting Keystone'
2026-07-17 10:05:30.000 | ERROR_ON_CLONE=False
2026-07-17 10:06:00.500 |
2026-07-17 10:06:00.500 | =========================
2026-07-17 10:06:00.500 | DevStack Component Timing
2026-07-17 10:06:00.500 |  (times are in seconds)
2026-07-17 10:06:00.500 | =========================
2026-07-17 10:06:00.500 | wait_for_service      13
2026-07-17 10:06:00.500 | pip_install           93
2026-07-17 10:06:00.500 | -------------------------
2026-07-17 10:06:00.500 | Unaccounted time     440
2026-07-17 10:06:00.500 | =========================
2026-07-17 10:06:00.500 | Total runtime        360
2026-07-17 10:06:00.600 | The password: ****
stack.sh completed in 360 seconds.
"""


def test_success_timings_and_table() -> None:
    log = stack.parse(SUCCESS.splitlines())
    assert log.timings() == [
        {"name": "Installing package prerequisites", "seconds": 120.0},
        {"name": "Installing OpenStack project source", "seconds": 59.5},
        {"name": "stack install", "seconds": 120.5},
        {"name": "Starting Keystone", "seconds": 60.1},  # to the last stamped line
    ]
    assert log.component_timing == {"wait_for_service": 13, "pip_install": 93,
                                    "Unaccounted time": 440}
    assert log.total_runtime == 360
    assert log.completed_seconds == 360
    # ERROR_ON_CLONE=False is a setting, not an error
    assert log.first_error is None


@pytest.mark.parametrize(
    ("lines", "first"),
    [
        # the first error-looking line, even before devstack's own [ERROR] from die
        (["+ ./stack.sh:main:10 : install_package foo", "E: Unable to locate package foo",
          "[ERROR] /opt/stack/devstack/functions-common:600 Failed to install foo"],
         "E: Unable to locate package foo"),
        (["2026-07-17 10:00:00.000 | [ERROR] ./stack.sh:1234 Keystone did not start",
          "stack.sh failed: full log in /opt/stack/logs/stack.sh.log"],
         "[ERROR] ./stack.sh:1234 Keystone did not start"),
        (["fatal: unable to access 'https://opendev.org/openstack/nova/'"],
         "fatal: unable to access 'https://opendev.org/openstack/nova/'"),
        # xtrace lines are commands, not errors, even when they mention one
        (["+ ./stack.sh:main:20 : echo 'ERROR in the string'", "Traceback (most recent call "
          "last):"], "Traceback (most recent call last):"),
        (["all good", "nothing to see"], None),
    ],
)
def test_first_error(lines: list[str], first: str | None) -> None:
    assert stack.parse(lines).first_error == first


def test_unstamped_lines_use_the_receive_time() -> None:
    log = stack.StackLog()
    log.feed(100.0, "+ ./stack.sh:main:1 : echo_summary Installing")
    log.feed(103.0, "+ ./stack.sh:main:2 : echo_summary \"Starting Cinder\"")
    log.feed(110.5, "done")
    assert log.timings() == [{"name": "Installing", "seconds": 3.0},
                             {"name": "Starting Cinder", "seconds": 7.5}]


def test_last_lines_are_bounded_and_skip_blanks() -> None:
    log = stack.parse([f"line {i}" for i in range(100)] + ["", "   "])
    assert list(log.last_lines) == [f"line {i}" for i in range(100 - stack.LAST_LINES, 100)]


def test_localrc_secrets(tmp_path: Path) -> None:
    conf = tmp_path / "local.conf"
    conf.write_text('[[local|localrc]]\nADMIN_PASSWORD="a-secret"\nexport SERVICE_TOKEN=tok123\n'
                    "MY_KEY=vendor-key\nHOST_IP=10.0.0.1\nX_PASSWORD=ab\n")
    assert stack.localrc_secrets(conf, ["MY_KEY"]) == {"a-secret", "tok123", "vendor-key"}


def test_read_stackenv_masks_credentials(tmp_path: Path) -> None:
    env = tmp_path / ".stackenv"
    env.write_text("# 2026 stack.sh completed\nBASE_SQL_CONN=mysql+pymysql://root:pw1@127.0.0.1\n"
                   "DEST=/opt/stack\nSTACK_USER=stack\n")
    assert stack.read_stackenv(env) == {"BASE_SQL_CONN": "mysql+pymysql://root:****@127.0.0.1",
                                        "DEST": "/opt/stack", "STACK_USER": "stack"}
