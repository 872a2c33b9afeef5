"""Publishing logs to a REAL OpenStack Swift (and its S3 API through boto3) on 127.0.0.1.

The servers are Debian's swift 2.30 (proxy with tempauth + s3api, account/container/object
servers on one-replica rings in a temp dir), started per test by tests/fixtures/swiftserver.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from dsvm import phase, profile
from dsvm.errors import UsageError
from dsvm.logs import objstore, publish
from dsvm.logs.phase import run_phase
from tests.fixtures import fakenode
from tests.fixtures.browser import browser  # noqa: F401 (fixture)
from tests.fixtures.httpserver import closed_port
from tests.fixtures.swiftserver import KEY, USER, Swift, swift, swift_servers  # noqa: F401

ZUUL = {"ZUUL_CHANGE": "123456", "ZUUL_PATCHSET": "3", "ZUUL_PIPELINE": "check",
        "JOB_NAME": "dsvm-tempest-acme", "ZUUL_UUID": "0123456789abcdef"}
LOG_PATH = "56/123456/3/check/dsvm-tempest-acme/0123456"


def make_ctx(tmp_path: Path, publish_yaml: str, env: dict[str, str]):
    prof = tmp_path / "pub.yaml"
    prof.write_text("extends: base\nlogs:\n  snapshots: false\n  sources:\n"
                    "    - {src: /var/log/acme, dest: acme}\n  publish:\n" + publish_yaml)
    full = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], **ZUUL, **env}
    settings = profile.resolve(str(prof), full)
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    return phase.context(settings, {**full, "WORKSPACE": str(ws)}, workspace=ws)


def swift_env(sw: Swift, key: str = KEY) -> dict[str, str]:
    return {"ST_AUTH": sw.auth_url, "ST_USER": USER, "ST_KEY": key}


def get(sw: Swift, path: str, token: str | None = None, method: str = "GET"):
    req = urllib.request.Request(f"{sw.storage_url}/{path}", method=method,
                                 headers={"X-Auth-Token": token} if token else {})
    return urllib.request.urlopen(req, timeout=10)


def listing(sw: Swift, container: str, token: str) -> dict[str, str]:
    with get(sw, f"{container}?format=json&limit=10000", token) as resp:
        return {r["name"]: r["hash"] for r in json.loads(resp.read())}


def test_complete_upload_read_back_with_headers_and_expiry(tmp_path: Path, swift: Swift,  # noqa: F811
                                                           capsys) -> None:
    node = fakenode.build(tmp_path / "node", large_lines=500)
    ctx = make_ctx(tmp_path, "    type: swift\n    container: ci-logs\n    jobs: 4\n",
                   swift_env(swift))
    t0 = time.time()
    result = run_phase(ctx, root=node.root)
    assert result.exit_code == 0, result.summary
    url = f"{swift.storage_url}/ci-logs/{LOG_PATH}/index.html"
    assert result.outputs["url"] == url and result.outputs["publish"]["state"] == "complete"
    # the public URL is the phase's last line
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith(f"logs: {url}")
    token = swift.token()
    there = listing(swift, "ci-logs", token)  # the container did not exist: created
    local = {f.rel: f.md5 for f in objstore.plan(ctx.logs_dir)}
    assert {k[len(LOG_PATH) + 1:]: v for k, v in there.items()} == local
    assert "etc/nova/index.html" in local and "index.html" in local
    with get(swift, f"ci-logs/{LOG_PATH}/screen-n-cpu.txt.gz", token, "HEAD") as resp:
        assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert resp.headers["Content-Encoding"] == "gzip"
        delete_at = int(resp.headers["X-Delete-At"])
    assert abs(delete_at - (t0 + 30 * 86400)) < 600
    with get(swift, f"ci-logs/{LOG_PATH}/index.html", None, "HEAD") as resp:  # public read
        assert resp.headers["Content-Type"].startswith("text/html")
    with get(swift, f"ci-logs/{LOG_PATH}/testrepository.subunit.gz", token, "HEAD") \
            if "testrepository.subunit.gz" in local else \
            get(swift, f"ci-logs/{LOG_PATH}/manifest.json", token, "HEAD") as resp:
        assert "Content-Encoding" not in resp.headers


def test_swift_dies_half_way_then_a_rerun_completes(tmp_path: Path, swift: Swift) -> None:  # noqa: F811
    logs = tmp_path / "logs"
    for i in range(40):
        (logs / f"d{i % 4}").mkdir(parents=True, exist_ok=True)
        (logs / f"d{i % 4}" / f"f{i}.txt").write_text(f"file {i}\n" * 200)
    files = objstore.plan(logs)
    creds = objstore.SwiftCredentials(swift.auth_url, USER, KEY, v1=True)
    arrived: list[str] = []

    def die_after_ten(rel: str) -> None:
        arrived.append(rel)
        if len(arrived) == 10:
            swift.kill_proxy()

    store = objstore.SwiftStore(creds, "half", keep_days=30)
    first = objstore.upload(store, files, "job/1", jobs=1, attempts=2, backoff=0.05,
                            advance=die_after_ten)
    assert first.state == "partial"
    assert len(first.sent) == 10 and len(first.failed) == 30
    assert all("ConnectionRefused" in why or "HTTP" in why for _, why in first.failed)
    swift.restart_proxy()
    second = objstore.upload(objstore.SwiftStore(creds, "half", keep_days=30), files, "job/1",
                             jobs=4, backoff=0.05)
    assert second.state == "complete"
    assert sorted(second.present) == sorted(first.sent)  # not sent again
    assert sorted(second.sent) == sorted(rel for rel, _ in first.failed)
    assert len(listing(swift, "half", swift.token())) == 40


def test_partial_upload_is_exit_3_and_lists_what_did_not_arrive(tmp_path: Path,
                                                                swift: Swift) -> None:  # noqa: F811
    node = fakenode.build(tmp_path / "node", large_lines=200)
    for i in range(400):  # enough objects that the watcher kills the proxy mid-way
        fakenode._w(node.root, f"var/log/acme/many/f{i}.log", f"line {i}\n")
    ctx = make_ctx(tmp_path, "    type: swift\n    container: part\n    jobs: 1\n"
                   "    attempts: 1\n", swift_env(swift))
    objects = swift.root / "srv" / "d1" / "objects"
    before = sum(1 for _ in objects.rglob("*.data")) if objects.exists() else 0
    stop = threading.Event()

    def watcher() -> None:
        while not stop.wait(0.005):
            if objects.exists() and sum(1 for _ in objects.rglob("*.data")) >= before + 20:
                swift.kill_proxy()
                return

    thread = threading.Thread(target=watcher, daemon=True)
    thread.start()
    try:
        result = run_phase(ctx, root=node.root)
    finally:
        stop.set()
        thread.join()
    pub = result.outputs["publish"]
    assert pub["state"] == "partial" and result.exit_code == 3
    assert "logs partially published" in result.summary
    not_arrived = pub["targets"][0]["not_arrived"]
    assert 0 < len(not_arrived) and "index.html" in not_arrived  # listings go last


def test_wrong_credentials_exit_3_and_the_password_is_never_shown(tmp_path: Path,
                                                                 swift: Swift,  # noqa: F811
                                                                 capsys) -> None:
    node = fakenode.build(tmp_path / "node", large_lines=100)
    wrong = "Wr0ng-Swift-Key-9917"
    ctx = make_ctx(tmp_path, "    type: swift\n    container: ci-logs\n",
                   swift_env(swift, wrong))
    result = run_phase(ctx, root=node.root)
    assert result.exit_code == 3
    assert result.outputs["publish"]["state"] == "failed"
    assert "refused user test:tester" in result.summary
    seen = capsys.readouterr()
    assert wrong not in seen.out + seen.err + result.summary + json.dumps(result.outputs)
    for path in [*ctx.dsvm_log_dir.rglob("*"), *ctx.logs_dir.rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            data = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
            assert wrong.encode() not in data, path


def test_failover_from_an_unreachable_rsync_host_to_swift(tmp_path: Path,
                                                          swift: Swift) -> None:  # noqa: F811
    node = fakenode.build(tmp_path / "node", large_lines=100)
    key = tmp_path / "nokey"
    key.write_text("")
    ctx = make_ctx(tmp_path,
                   f"    - {{type: rsync, host: 127.0.0.1, port: {closed_port()}, "
                   f"path: /srv/logs, key: {key}, attempts: 1}}\n"
                   "    - {type: swift, container: failover, partition: true}\n",
                   swift_env(swift))
    result = run_phase(ctx, root=node.root)
    pub = result.outputs["publish"]
    assert result.exit_code == 0, result.summary
    assert [t["state"] for t in pub["targets"]] == ["failed", "complete"]
    assert "rsync" in pub["targets"][0]["target"]
    # partitioned by change: the log path's first segment moves into the container name
    rest = LOG_PATH.split("/", 1)[1]
    assert result.outputs["url"] == f"{swift.storage_url}/failover_56/{rest}/index.html"
    assert f"{rest}/index.html" in listing(swift, "failover_56", swift.token())


def test_s3_api_upload_read_back_with_boto3(tmp_path: Path, swift: Swift) -> None:  # noqa: F811
    import boto3  # a test dependency (pyproject's test extra): missing is a failure
    node = fakenode.build(tmp_path / "node", large_lines=100)
    creds = tmp_path / "s3.ini"
    creds.write_text(f"[ci]\naws_access_key_id = {USER}\naws_secret_access_key = {KEY}\n")
    ctx = make_ctx(tmp_path, f"    type: s3\n    endpoint: {swift.url}\n    bucket: ci-logs-s3\n"
                   f"    credentials_file: {creds}\n    profile: ci\n    keep_days: 14\n", {})
    result = run_phase(ctx, root=node.root)
    assert result.exit_code == 0, result.summary
    pub = result.outputs["publish"]["targets"][0]
    assert "lifecycle rule" in pub["notes"][0] and "14 days" in pub["notes"][0]
    s3 = boto3.client("s3", endpoint_url=swift.url, aws_access_key_id=USER,
                      aws_secret_access_key=KEY, region_name="us-east-1")
    keys = {o["Key"] for page in s3.get_paginator("list_objects").paginate(
        Bucket="ci-logs-s3", Prefix=LOG_PATH + "/") for o in page.get("Contents", [])}
    assert keys == {f"{LOG_PATH}/{f.rel}" for f in objstore.plan(ctx.logs_dir)}
    obj = s3.get_object(Bucket="ci-logs-s3", Key=f"{LOG_PATH}/screen-n-cpu.txt.gz")
    assert obj["ContentType"] == "text/plain; charset=utf-8"
    assert obj["ContentEncoding"] == "gzip"
    body = obj["Body"].read()
    assert gzip.decompress(body) == gzip.decompress(
        (ctx.logs_dir / "screen-n-cpu.txt.gz").read_bytes())
    # a second run sends nothing again
    again = objstore.upload(objstore.S3Store(objstore.S3Credentials(USER, KEY), swift.url,
                                             "ci-logs-s3", region="us-east-1", keep_days=14),
                            objstore.plan(ctx.logs_dir), LOG_PATH)
    assert again.state == "complete" and again.sent == []


def test_browser_opens_the_uploaded_index_and_a_gzipped_log_inline(
        tmp_path: Path, swift: Swift, browser) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    node = fakenode.build(tmp_path / "node", large_lines=100)
    ctx = make_ctx(tmp_path, "    type: swift\n    container: browse\n", swift_env(swift))
    result = run_phase(ctx, root=node.root)
    assert result.exit_code == 0, result.summary
    browser.get(result.outputs["url"])  # anonymous: the container is publicly readable
    assert "Index of logs" in browser.title
    names = [a.text for a in browser.find_elements(By.TAG_NAME, "a")]
    assert "screen-n-cpu.txt.gz" in names and "etc/" in names
    browser.find_element(By.LINK_TEXT, "screen-n-cpu.txt.gz").click()
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "INFO n-cpu.manager" in text or "DEBUG" in text  # decoded, shown inline
    assert "****" in text  # and redacted
    browser.get(result.outputs["url"])
    browser.find_element(By.LINK_TEXT, "etc/").click()
    assert "Index of logs/etc" in browser.title


# -- bad input: exit 2 before anything is collected ---------------------------------------------

@pytest.mark.parametrize("conf, where", [
    ({"type": "ftp", "host": "x"}, "logs.publish.type"),
    ({"type": "swift"}, "logs.publish.container"),
    ({"type": "s3", "endpoint": "https://s3.example.org"}, "logs.publish.bucket"),
    ({"type": "s3", "endpoint": "s3.example.org", "bucket": "logs"}, "logs.publish.endpoint"),
    ({"type": "swift", "container": "logs", "keep_days": 0}, "logs.publish.keep_days"),
    ({"type": "swift", "container": "logs", "keep_days": -3}, "logs.publish.keep_days"),
    ({"type": "swift", "container": "logs", "password": "x"}, "logs.publish.password"),
    ({"type": "swift", "container": "logs", "when": "sometimes"}, "logs.publish.when"),
    ([{"type": "swift", "container": "logs"}, {"type": "s3"}], "logs.publish[1].endpoint"),
])
def test_bad_publish_config_refused(conf, where: str) -> None:
    env = {"LOG_PATH": "a/b", "ST_AUTH": "http://127.0.0.1:1/auth/v1.0", "ST_USER": "u",
           "ST_KEY": "k", "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s"}
    with pytest.raises(UsageError) as err:
        publish.targets(conf, env)
    assert where in [p.where for p in err.value.problems], err.value.problems
    assert err.value.exit_code == 2


def test_bad_publish_config_stops_before_collecting(tmp_path: Path) -> None:
    node = fakenode.build(tmp_path / "node", large_lines=50)
    ctx = make_ctx(tmp_path, "    type: swift\n    container: logs\n    keep_days: 0\n",
                   {"ST_AUTH": "http://127.0.0.1:1/auth/v1.0", "ST_USER": "u", "ST_KEY": "k"})
    with pytest.raises(UsageError):
        run_phase(ctx, root=node.root)
    assert not ctx.logs_dir.exists()


def test_no_credentials_is_bad_input() -> None:
    with pytest.raises(UsageError) as err:
        publish.targets({"type": "swift", "container": "logs"}, {"LOG_PATH": "a", "HOME": "/x"})
    assert "no Swift credentials" in err.value.problems[0].message


def test_clouds_yaml_and_keystone_catalog(tmp_path: Path) -> None:
    (tmp_path / "clouds.yaml").write_text(
        "clouds:\n  ci:\n    region_name: RegionTwo\n    auth:\n"
        "      auth_url: https://keystone.example.org/identity\n      username: ci\n"
        "      password: Cl0ud-pw-55\n      project_name: logs\n")
    t = publish.targets({"type": "swift", "container": "logs", "cloud": "ci"},
                        {"LOG_PATH": "a/b", "OS_CLIENT_CONFIG_FILE": str(tmp_path /
                                                                         "clouds.yaml")})[0]
    store = t.store() if t.store else None
    assert isinstance(store, objstore.SwiftStore)
    assert store.creds.region_name == "RegionTwo" and not store.creds.v1
    assert "Cl0ud-pw-55" not in repr(t) + repr(store.creds) and t.secrets == ("Cl0ud-pw-55",)
    token = {"token": {"catalog": [
        {"type": "identity", "endpoints": [{"interface": "public", "url": "https://k/v3"}]},
        {"type": "object-store", "endpoints": [
            {"interface": "internal", "region_id": "RegionTwo", "url": "http://int/v1/AUTH_x"},
            {"interface": "public", "region_id": "RegionOne", "url": "https://one/v1/AUTH_x"},
            {"interface": "public", "region_id": "RegionTwo", "url": "https://two/v1/AUTH_x/"},
        ]}]}}
    assert objstore.catalog_url(token, "object-store", "public", "RegionTwo") == \
        "https://two/v1/AUTH_x"


@pytest.mark.parametrize("rel, ctype, enc", [
    ("screen-n-cpu.txt.gz", "text/plain; charset=utf-8", "gzip"),
    ("testr_results.html.gz", "text/html; charset=utf-8", "gzip"),
    ("index.html", "text/html; charset=utf-8", ""),
    ("manifest.json", "application/json", ""),
    ("testrepository.subunit.gz", "application/gzip", ""),
    ("etc/nova/nova.conf.txt.gz", "text/plain; charset=utf-8", "gzip"),
    ("apache/access.txt.2.gz", "application/gzip", ""),
])
def test_content_headers(rel: str, ctype: str, enc: str) -> None:
    assert objstore.content_headers(rel) == (ctype, enc)
    assert objstore.content_headers("apache/access.txt.2.gz", gzipped_text=True) == \
        ("text/plain; charset=utf-8", "gzip")
    assert objstore.content_headers("testrepository.subunit.gz", gzipped_text=True) == \
        ("application/gzip", "")


def test_upload_only_on_failure(tmp_path: Path, swift: Swift) -> None:  # noqa: F811
    node = fakenode.build(tmp_path / "node", large_lines=50)
    ctx = make_ctx(tmp_path, "    type: swift\n    container: onfail\n    when: failure\n",
                   swift_env(swift))
    state = ctx.dsvm_log_dir / "state.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"phases": {"stack": {"status": "ok"},
                                            "tempest": {"status": "ok"}}}))
    passed = run_phase(ctx, root=node.root)
    assert passed.exit_code == 0 and passed.outputs["publish"]["state"] == "skipped"
    assert passed.outputs["url"] == ""
    state.write_text(json.dumps({"phases": {"stack": {"status": "ok"},
                                            "tempest": {"status": "failed"}}}))
    failed = run_phase(ctx, root=node.root)
    assert failed.exit_code == 0 and failed.outputs["publish"]["state"] == "complete"
    assert f"{LOG_PATH}/index.html" in listing(swift, "onfail", swift.token())
