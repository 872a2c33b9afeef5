"""scripts/logserver/{nginx,apache}.conf on real servers: logs dsvm wrote read inline.

Each server runs the shipped snippet (only the port and document root substituted) on
127.0.0.1 over a logs dir laid out by ``dsvm logs collect``; headers are checked with raw
HTTP and the page with headless Chromium, which must show the log as text, not download it.
"""

from __future__ import annotations

import gzip
import http.client
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.browser import browser  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[2]
SNIPPETS = ROOT / "scripts/logserver"
LOG_LINE = "2026-11-25 10:00:00.000 INFO cinder.volume.manager [-] Driver initialized ü\n"
NGINX, APACHE = "/usr/sbin/nginx", "/usr/sbin/apache2"
APACHE_MODULES = Path("/usr/lib/apache2/modules")

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def docroot() -> Iterator[Path]:
    """A published job dir the server's workers (nobody/www-data) can read."""
    top = Path(tempfile.mkdtemp(prefix="dsvm-logserver-"))
    job = top / "45/12345/3/check/job/abc1234"
    job.mkdir(parents=True)
    for d in (top, *(p for p in job.parents if top in p.parents), job):
        d.chmod(0o755)
    (job / "screen-c-vol.txt.gz").write_bytes(gzip.compress((LOG_LINE * 50).encode()))
    (job / "summary.md.gz").write_bytes(gzip.compress(b"### acme-ci: SUCCESS\n"))
    (job / "testr_results.html.gz").write_bytes(
        gzip.compress(b"<html><body><h1 id='verdict'>PASSED</h1></body></html>"))
    (job / "testrepository.subunit.gz").write_bytes(gzip.compress(b"\xb3)\x01\x0c binary"))
    (job / "index.html").write_text("<html><body><a href='screen-c-vol.txt.gz'>c-vol</a>"
                                    "</body></html>")
    for f in job.iterdir():
        f.chmod(0o644)
    yield top
    shutil.rmtree(top, ignore_errors=True)


def _run_server(check: list[str], serve: list[str], port: int, log: Path) -> Iterator[int]:
    """Check the configuration, start the server in the foreground, yield its port once it
    listens, stop it afterwards."""
    checked = subprocess.run(check, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    proc = subprocess.Popen(serve, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited {proc.returncode}: {log.read_text()[-2000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"server did not listen: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _snippet(name: str, port: int, docroot: Path) -> str:
    text = (SNIPPETS / name).read_text()
    assert "/srv/static/logs" in text  # what an operator edits, and all the test changes
    return text.replace("/srv/static/logs", str(docroot))


@pytest.fixture
def nginx(tmp_path: Path, docroot: Path) -> Iterator[int]:
    if not os.access(NGINX, os.X_OK):
        pytest.skip("nginx is not installed (.ci/run installs nginx-light)")
    port = _free_port()
    server = _snippet("nginx.conf", port, docroot).replace("listen 80;",
                                                          f"listen 127.0.0.1:{port};")
    temp = "".join(f"{k}_temp_path {tmp_path / k};\n"
                   for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"worker_processes 1;\ndaemon off;\npid {tmp_path / 'nginx.pid'};\n"
                    f"error_log {tmp_path / 'error.log'};\nevents {{ worker_connections 64; }}\n"
                    f"http {{\ninclude /etc/nginx/mime.types;\naccess_log off;\n{temp}"
                    f"{server}\n}}\n")
    yield from _run_server([NGINX, "-t", "-p", str(tmp_path), "-c", str(conf)],
                           [NGINX, "-p", str(tmp_path), "-c", str(conf)], port,
                           tmp_path / "error.log")


@pytest.fixture
def apache(tmp_path: Path, docroot: Path) -> Iterator[int]:
    if not os.access(APACHE, os.X_OK):
        pytest.skip("apache2 is not installed (.ci/run installs it)")
    port = _free_port()
    vhost = _snippet("apache.conf", port, docroot).replace("<VirtualHost *:80>",
                                                           f"<VirtualHost 127.0.0.1:{port}>")
    modules = "".join(f"LoadModule {m}_module {APACHE_MODULES / f'mod_{m}.so'}\n"
                      for m in ("mpm_event", "authz_core", "mime", "headers", "dir",
                                "autoindex", "setenvif", "alias"))
    conf = tmp_path / "httpd.conf"
    conf.write_text(f"ServerRoot {tmp_path}\nServerName 127.0.0.1\nListen 127.0.0.1:{port}\n"
                    f"{modules}PidFile {tmp_path / 'httpd.pid'}\n"
                    f"ErrorLog {tmp_path / 'error.log'}\nDefaultRuntimeDir {tmp_path}\n"
                    f"Mutex file:{tmp_path} default\nTypesConfig /etc/mime.types\n"
                    + ("User nobody\nGroup nogroup\n" if os.geteuid() == 0 else "")
                    + vhost + "\n")
    yield from _run_server([APACHE, "-t", "-f", str(conf)], [APACHE, "-X", "-f", str(conf)],
                           port, tmp_path / "error.log")


def _get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Accept-Encoding": "gzip"})
    res = conn.getresponse()
    body = res.read()
    conn.close()
    return res.status, {k.lower(): v for k, v in res.getheaders()}, body


JOB = "/45/12345/3/check/job/abc1234/"


def _check_headers(port: int) -> None:
    status, headers, body = _get(port, JOB + "screen-c-vol.txt.gz")
    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert headers["content-type"].startswith("text/plain")
    assert "attachment" not in headers.get("content-disposition", "")
    assert gzip.decompress(body).decode() == LOG_LINE * 50  # sent once-compressed, as stored
    status, headers, body = _get(port, JOB + "summary.md.gz")  # dsvm run's review comment
    assert headers["content-type"].startswith("text/plain")
    assert headers["content-encoding"] == "gzip"
    status, headers, body = _get(port, JOB + "testr_results.html.gz")
    assert headers["content-type"].startswith("text/html")
    assert headers["content-encoding"] == "gzip"
    status, headers, body = _get(port, JOB + "testrepository.subunit.gz")
    assert status == 200 and "attachment" in headers.get("content-disposition", "")
    assert headers.get("content-encoding") != "gzip"  # the stream itself, to download
    status, headers, body = _get(port, JOB)
    assert status == 200 and b"screen-c-vol.txt.gz" in body  # dsvm's index.html


def _check_browser(driver, port: int) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    driver.get(f"http://127.0.0.1:{port}{JOB}screen-c-vol.txt.gz")
    text = driver.find_element(By.TAG_NAME, "body").text
    assert "cinder.volume.manager [-] Driver initialized ü" in text
    driver.get(f"http://127.0.0.1:{port}{JOB}testr_results.html.gz")
    assert driver.find_element(By.ID, "verdict").text == "PASSED"


def test_nginx_snippet_serves_gzipped_logs_inline(nginx: int, browser) -> None:  # noqa: F811
    _check_headers(nginx)
    _check_browser(browser, nginx)


def test_apache_snippet_serves_gzipped_logs_inline(apache: int, browser) -> None:  # noqa: F811
    _check_headers(apache)
    _check_browser(browser, apache)
