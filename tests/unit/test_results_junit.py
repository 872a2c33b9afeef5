"""dsvm.results.junit: the document validates against the JUnit shape Jenkins reads."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from lxml import etree

from dsvm.results import junit, known
from dsvm.results.stream import CRASHED, Attachment, Run, TestResult

XSD = Path(__file__).resolve().parents[1] / "fixtures" / "junit" / "jenkins-junit.xsd"
T0 = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)


def make(test_id: str, status: str, **atts: str) -> TestResult:
    return TestResult(test_id, status, T0, T0 + dt.timedelta(seconds=1.5),
                      frozenset({"worker-1"}),
                      tuple(Attachment(k, "text/plain", v.encode()) for k, v in atts.items()))


def parse(doc: str) -> etree._Element:
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    root = etree.fromstring(doc.encode())
    schema.assertValid(root)
    return root


def test_every_status_validates_and_maps() -> None:
    run = Run(tests=(
        make("tempest.api.compute.servers.test_servers.ServersTestJSON.test_a[id-1,smoke]",
             "success"),
        make("tempest.api.compute.servers.test_servers.ServersTestJSON.test_b", "fail",
             traceback="Traceback:\nValueError: bad <thing> & \x1b[31m\n",
             **{"pythonlogging:''": "log line\x00"}),
        make("setUpClass (tempest.api.network.test_networks.NetworksTestJSON)", "skip",
             reason="Neutron is not available"),
        make("m.C.test_x", "xfail"), make("m.C.test_ux", "uxsuccess"), make("m.C.test_c", CRASHED),
    ))
    root = parse(junit.render(run, known.parse([{"regex": "test_b", "bug": "LP#9"}]),
                              hostname="node1"))
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"),
            suite.get("skipped")) == ("6", "2", "1", "1")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    ok = cases["test_a[id-1,smoke]"]
    assert ok.get("classname") == "tempest.api.compute.servers.test_servers.ServersTestJSON"
    assert float(ok.get("time")) == 1.5 and len(ok) == 0
    fail = cases["test_b"].find("failure")
    assert fail.get("type") == "ValueError" and "known failure: LP#9" in fail.get("message")
    assert "bad <thing> &" in fail.text and "\x1b" not in fail.text
    assert "log line" in cases["test_b"].find("system-out").text
    skip = cases["setUpClass"]
    assert skip.get("classname") == "tempest.api.network.test_networks.NetworksTestJSON"
    assert skip.find("skipped").get("message") == "Neutron is not available"
    assert cases["test_x"].find("failure") is None
    assert cases["test_ux"].find("failure") is not None
    assert cases["test_c"].find("error").get("message").startswith("test did not finish")


def test_truncated_run_says_so() -> None:
    run = Run(tests=(make("a.B.c", "success"),), problem="Short read - got 3 bytes")
    root = parse(junit.render(run, hostname="h"))
    assert "Short read" in root.find("testsuite/system-err").text


def test_escaping_is_xml_sax_saxutils_byte_for_byte() -> None:
    # junit.py escapes by itself (saxutils imports urllib.request); the output must not change
    import random
    from xml.sax.saxutils import escape, quoteattr

    rnd = random.Random(3)
    alphabet = "ab&<>\"'\n\r\t \x01\x0b\ufffe\u00e9\U0001f600"
    for _ in range(3000):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 10)))
        assert junit._attr(text) == quoteattr(junit.clean(text), {"\n": "&#10;", "\r": "&#13;",
                                                                  "\t": "&#9;"}), text
        assert junit._body(text) == escape(junit.clean(text)), text
