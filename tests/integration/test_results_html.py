"""The HTML report in a real browser: headless Chromium (Debian) driven by Selenium."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from dsvm.results import html, known, stream
from tests.fixtures.browser import browser  # noqa: F401 - fixture
from tests.fixtures.results_streams import results_streams  # noqa: F401 - fixture

pytestmark = pytest.mark.slow


def visible_rows(driver) -> list:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "#tests tbody tr:not(.detail)")


def test_report_loads_filters_sorts_expands(browser, results_streams, tmp_path) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    run = stream.read(results_streams["mixed"])
    rules = known.parse([{"regex": "boom", "bug": "https://bugs.example/77",
                          "on": "traceback"}])
    page = tmp_path / "report.html"
    page.write_text(html.render(run, rules, history_link="history.html"), encoding="utf-8")
    browser.get(page.as_uri())
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    assert browser.find_element(By.ID, "verdict").text == "FAILED"
    assert len(visible_rows(browser)) == len(run.tests)
    # failures sort first by default
    first = visible_rows(browser)[0].get_attribute("data-status")
    assert first == "fail"
    box = browser.find_element(By.ID, "filter")
    box.send_keys("ünïcode")
    rows = visible_rows(browser)
    assert len(rows) == 1 and "test_ünïcode_名前" in rows[0].text
    box.clear()
    box.send_keys("skip")
    assert {r.get_attribute("data-status") for r in visible_rows(browser)} == {"skip"}
    assert len(visible_rows(browser)) == run.counts["skip"]
    box.clear()
    box.send_keys("test_error")
    row = visible_rows(browser)[0]
    assert "known: https://bugs.example/77" in row.text
    row.find_element(By.CSS_SELECTOR, "td.name").click()
    detail = browser.find_element(By.CSS_SELECTOR, "#tests tr.detail pre")
    assert "RuntimeError: boom from the server" in detail.text
    box.clear()
    box.send_keys("\b")
    browser.find_element(By.CSS_SELECTOR, "th[data-k='d']").click()  # slowest first
    durations = [float(r.find_elements(By.CSS_SELECTOR, "td")[2].text)
                 for r in visible_rows(browser)]
    assert durations == sorted(durations, reverse=True)
    lanes = browser.find_elements(By.CSS_SELECTOR, "#timeline .lane")
    assert len(lanes) == len({t.worker for t in run.tests})
    assert len(browser.find_elements(By.CSS_SELECTOR, "#timeline .blk")) == len(run.tests)
    assert browser.find_element(By.ID, "history-link").get_attribute("href").endswith(
        "history.html")
    skips = browser.find_elements(By.CSS_SELECTOR, "#skips tbody tr")
    assert len(skips) == 3
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    keep = os.environ.get("DSVM_TEST_ARTIFACTS")
    if keep:  # CI keeps the screenshot for people to look at
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "results-report.png")


def test_hostile_test_ids_stay_text(browser, tmp_path) -> None:  # noqa: F811
    import datetime as dt

    from dsvm.results.stream import Attachment, Run, TestResult

    t0 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    evil = "x.Y.test_</script><img src=x onerror=alert(1)>"
    run = Run(tests=(TestResult(evil, "fail", t0, t0, frozenset(), (
        Attachment("traceback", "text/plain", b"<b>not bold</b>"),)),))
    page = tmp_path / "evil.html"
    page.write_text(html.render(run), encoding="utf-8")
    browser.get(page.as_uri())
    from selenium.webdriver.common.by import By

    assert browser.find_elements(By.CSS_SELECTOR, "#tests img") == []
    assert evil in visible_rows(browser)[0].text
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
