"""console: plain Jenkins output has no control characters; terminal output has colour."""

from __future__ import annotations

import io
import re
import time

from dsvm import console
from dsvm.errors import InfraError

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_mode_is_chosen_for_jenkins_pipes_and_no_color():
    assert console.is_plain_environment({}, io.StringIO())
    assert console.is_plain_environment({"JENKINS_URL": "http://j"}, _Tty())
    assert console.is_plain_environment({"BUILD_ID": "12"}, _Tty())
    assert console.is_plain_environment({"NO_COLOR": ""}, _Tty())
    assert console.is_plain_environment({}, _Tty(), no_color=True)
    assert not console.is_plain_environment({}, _Tty())


def _exercise(ui: console.Ui) -> None:
    with ui.phase("workspace", "3 projects"):
        ui.info("cloning [nova] from cache")
        with ui.progress("clone", total=3) as prog:
            for i in range(3):
                prog.advance(item=f"p{i}")
            prog.note("one failure noted")
        ui.table("projects", ["name", "sha"], [("openstack/nova", "abc")])
    ui.warn("something odd")
    ui.error(InfraError("fetch failed", hint="recheck", log_path="/w/logs/x.log",
                        details={"command": "git fetch"}), phase="workspace")


def test_plain_output_is_one_line_per_event_without_control_characters():
    out, err = io.StringIO(), io.StringIO()
    _exercise(console.Ui(plain=True, stream=out, err_stream=err))
    text = out.getvalue() + err.getvalue()
    assert not CONTROL.search(text), repr(CONTROL.search(text))
    lines = out.getvalue().splitlines()
    assert re.match(r"==> \[\d\d:\d\d:\d\d\] phase workspace started: 3 projects", lines[0])
    assert re.search(r"<== \[\d\d:\d\d:\d\d\] phase workspace ok after \d+\.\d+s", text)
    assert "cloning [nova] from cache" in text  # markup-like text is printed literally
    assert "clone: finished, 3/3" in text and "one failure noted" in text
    assert "ERROR: workspace failed: fetch failed" in err.getvalue()
    assert "hint    : recheck" in err.getvalue()
    assert "log     : /w/logs/x.log" in err.getvalue()
    assert err.getvalue().rstrip().endswith("dsvm: exit 3 (infrastructure failure)")


def test_terminal_mode_uses_colour():
    out, err = _Tty(), _Tty()
    ui = console.Ui(plain=False, stream=out, err_stream=err)
    ui.out._force_terminal = True
    ui.err._force_terminal = True
    ui.warn("careful")
    assert "\x1b[" in err.getvalue()


def test_plain_table_is_an_aligned_ascii_box():
    text = console.ascii_table("workspace", ["project", "seconds"],
                               [("openstack/nova", 1.5), ("x", None)], width=100)
    lines = text.split("\n")
    assert lines[0].strip() == "workspace"
    assert lines[1] == lines[-1] == "+----------------+---------+"
    assert lines[2] == "| project        | seconds |"
    assert lines[3] == "|----------------+---------|"
    assert lines[4] == "| openstack/nova | 1.5     |"
    assert lines[5] == "| x              |         |"


def test_plain_table_fits_the_width_cutting_the_widest_column():
    rows = [("openstack/nova", "refs/zuul/master/Z" + "b" * 32, "abc")]
    text = console.ascii_table("t", ["project", "ref", "sha"], rows, width=50)
    lines = text.split("\n")[1:]
    assert {len(line) for line in lines} == {50}
    assert "| openstack/nova | refs/zuul/master/Zbbbb… | abc |" in lines


def test_plain_table_keeps_each_row_on_one_line():
    text = console.ascii_table("t", ["a"], [("two\nlines\x1b[31m",)], width=80)
    assert len(text.split("\n")) == 6 and "\x1b" not in text
    assert "| two lines [31m |" in text


def test_plain_ui_prints_tables_through_the_ascii_renderer():
    out = io.StringIO()
    console.Ui(plain=True, stream=out, err_stream=io.StringIO()).table(
        "projects", ["name"], [("[bold]not markup[/]",)])
    assert "| [bold]not markup[/] |" in out.getvalue()


def _plain(interval: float) -> tuple[console.Ui, io.StringIO]:
    out = io.StringIO()
    return console.Ui(plain=True, stream=out, err_stream=io.StringIO(),
                      heartbeat_seconds=interval), out


def test_the_heartbeat_interval_is_a_minute_by_default():
    assert console.HEARTBEAT_SECONDS == 60.0
    assert console.Ui(plain=True).heartbeat_seconds == 60.0


def test_a_silent_step_gets_a_heartbeat_line_each_interval_saying_what_and_how_long():
    ui, out = _plain(0.25)  # a "minute" of 0.25 s: three and a half minutes of silence
    with console.Heartbeat(ui, "stack.sh", lambda: "last devstack phase: Starting Cinder"):
        time.sleep(0.875)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3, lines
    assert lines == ["... stack.sh: still running after 0s, last devstack phase: Starting Cinder"
                     ] * 3
    assert not CONTROL.search(out.getvalue())


def test_the_heartbeat_stops_with_its_step():
    ui, out = _plain(0.1)
    with console.Heartbeat(ui, "quick"):
        pass
    time.sleep(0.3)
    assert out.getvalue() == ""


def test_a_progress_without_advances_still_beats_with_its_count_in_a_plain_log():
    ui, out = _plain(0.25)
    with ui.progress("workspace", total=40) as prog:
        prog.advance()
        time.sleep(0.875)  # one clone of many minutes: no item finishes
    lines = out.getvalue().splitlines()
    assert lines[0] == "... workspace: started (40 items)"
    assert lines[1:4] == ["... workspace: still running after 0s, 1/40"] * 3
    assert re.fullmatch(r"\.\.\. workspace: finished, 1/40 in 0\.\ds", lines[4])


def test_duration_for_humans():
    assert [console.duration(s) for s in (0, 42.9, 60, 185, 3725)] == [
        "0s", "42s", "1m00s", "3m05s", "1h02m"]


def test_one_phase_marker_format_and_one_marker_per_phase():
    ui, out = _plain(60)
    ui.phase_started("logs", "budget 10 min")
    with ui.phase("logs", "collect into /w/logs"):  # the logs phase marks itself too
        pass
    ui.phase_ended("logs", "ok", 1.25, "42 files")
    with ui.phase("workspace"):
        pass
    lines = out.getvalue().splitlines()
    stamp = r"\[\d\d:\d\d:\d\d\]"
    assert len(lines) == 5, lines
    assert re.fullmatch(rf"==> {stamp} phase logs started: budget 10 min", lines[0])
    assert lines[1] == "collect into /w/logs"
    assert re.fullmatch(rf"<== {stamp} phase logs ok after 1\.2s: 42 files", lines[2])
    assert re.fullmatch(rf"==> {stamp} phase workspace started", lines[3])
    assert re.fullmatch(rf"<== {stamp} phase workspace ok after 0\.0s", lines[4])


def test_one_failure_renderer_for_an_error_and_for_the_jobs_failed_phase():
    from dsvm.errors import Failure, failure_from

    ui, out = _plain(60)
    ui.failure(failure_from({
        "phase": "stack", "message": "stack.sh failed with exit 1 in 'Starting Cinder'",
        "details": {"phase": "Starting Cinder"}, "first_error": "[ERROR] ./stack.sh:12 boom",
        "devstack_phase": "Starting Cinder", "hint": "the first error is above",
        "log": "/w/logs/stack.sh.log", "last_lines": ["Error on exit"], "problems": []}),
        to_stderr=False)
    assert out.getvalue().splitlines() == [
        "ERROR: stack failed: stack.sh failed with exit 1 in 'Starting Cinder'",
        "  devstack phase : Starting Cinder",
        "  first error    : [ERROR] ./stack.sh:12 boom",
        "  hint           : the first error is above",
        "  log            : /w/logs/stack.sh.log",
        "  | Error on exit"]
    exc = InfraError("fetch failed", hint="recheck", details={"command": "git fetch"})
    assert Failure.of(exc, "workspace").body() == ["  command : git fetch",
                                                   "  hint    : recheck"]


def test_json_mode_sends_the_console_to_stderr(monkeypatch):
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(console, "_UI", console.Ui(plain=True, stream=out, err_stream=err))
    ui = console.json_mode()
    assert console.get_ui() is ui
    ui.info("a table row")
    ui.warn("careful")
    assert out.getvalue() == "" and "a table row" in err.getvalue() and "careful" in err.getvalue()


def test_plain_lines_are_what_richs_plain_console_printed():
    """The plain renderer writes directly (no rich import); its lines are those rich's plain
    console made of the same text: control characters dropped, tabs to 8-cell stops."""
    from rich.console import Console
    from rich.markup import escape

    cases = ["plain", "tab\there", "a\tb\tc\t\tdd", "漢字\tx", "cr\rhere", "bell\x07 vt\x0b ff\x0c",
             "multi\nline\n\tindented", "  spaces  ", "x" * 300, "[bold]not markup[/]",
             ":smile:", "wide 漢字 ✓ …", ""]

    def by_rich(text: str) -> str:
        buf = io.StringIO()
        Console(file=buf, highlight=False, soft_wrap=True, no_color=True, force_terminal=False,
                force_interactive=False, emoji=False, color_system=None,
                width=100).print(escape(text))
        return buf.getvalue()

    for text in cases:
        out, err = io.StringIO(), io.StringIO()
        ui = console.Ui(plain=True, stream=out, err_stream=err)
        ui.info(text)
        ui.warn(text)
        assert out.getvalue() == by_rich(text), text
        assert err.getvalue() == by_rich("WARNING: " + text), text
