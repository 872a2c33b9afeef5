"""images.py against a real 127.0.0.1 HTTP server: resume, checksums, retries, discovery."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest

from dsvm import images, proc
from tests.fixtures.gitrepos import make_repo
from tests.fixtures.httpserver import FileServer, closed_port, serve

DATA = os.urandom(300_000)


@pytest.fixture
def http_server() -> Iterator[FileServer]:
    server = serve()
    yield server
    server.stop()


def loader() -> images.Downloader:
    return images.Downloader(attempts=3, timeout=10, backoff=0.01)


def test_dropped_connection_resumes_with_range(http_server, tmp_path):
    http_server.files["img/a.img"] = DATA
    http_server.add_sums("img")
    http_server.drop["img/a.img"] = 100_000
    src = images.ImageSource("a.img", http_server.url("img/a.img"))
    rec = loader().fetch(src, tmp_path)
    assert (tmp_path / "a.img").read_bytes() == DATA
    assert rec["sha256"] == hashlib.sha256(DATA).hexdigest()
    assert rec["verified"] == "sha256 from SUMS" and rec["attempts"] == 2
    got = [(r, code) for p, r, code in http_server.requests if p == "img/a.img"]
    assert got == [(None, 200), ("bytes=100000-", 206)]
    assert not (tmp_path / ".a.img.part").exists()


def test_wrong_checksum_is_rejected_and_nothing_left(http_server, tmp_path):
    http_server.files["img/bad.img"] = DATA
    http_server.add_sums("img", wrong=("bad.img",))
    src = images.ImageSource("bad.img", http_server.url("img/bad.img"))
    with pytest.raises(images.DownloadError, match="sha256 mismatch"):
        loader().fetch(src, tmp_path)
    assert not (tmp_path / "bad.img").exists() and not (tmp_path / ".bad.img.part").exists()


def test_checksum_in_url_fragment(http_server, tmp_path):
    http_server.files["b.img"] = b"hello"
    good = f"{http_server.url('b.img')}#md5={hashlib.md5(b'hello').hexdigest()}"  # noqa: S324
    srcs, _ = images.sources_from_urls([good])
    assert loader().fetch(srcs[0], tmp_path)["verified"] == "md5 from URL"


def test_missing_file_fails_at_once_and_dead_server_after_retries(http_server, tmp_path):
    with pytest.raises(images.DownloadError, match="HTTP 404"):
        loader().fetch(images.ImageSource("n.img", http_server.url("n.img")), tmp_path)
    assert len([r for r in http_server.requests if r[0] == "n.img"]) == 1
    dead = f"http://127.0.0.1:{closed_port()}/x.img"
    with pytest.raises(images.DownloadError, match="after 3 attempt"):
        loader().fetch(images.ImageSource("x.img", dead), tmp_path)


def test_discovery_runs_image_list_per_branch_and_falls_back_to_stackrc(tmp_path):
    up = tmp_path / "up"
    tool = "#!/bin/bash\necho http://h/a/cirros-0.6.img\necho http://h/b/cirros-0.6.img\n"
    make_repo(up, "openstack/devstack", files={"tools/image_list.sh": tool,
                                               "stackrc": "X=1\n"})
    old = make_repo(tmp_path / "old", "openstack/devstack", files={
        "stackrc": 'CIRROS_VERSION=${CIRROS_VERSION:-"0.3.4"}\n'
                   'IMAGE_URLS=${IMAGE_URLS:-"http://h/${CIRROS_VERSION}/c-${CIRROS_VERSION}.img,'
                   ' http://h/x.vmdk"}\n'})
    clone = tmp_path / "cache/devstack"
    run = proc.Runner(tmp_path / "log")
    run.run(["git", "clone", "-q", f"file://{up}/openstack/devstack", str(clone)], desc="c")
    run.run(["git", "fetch", "-q", str(old), "+master:refs/remotes/origin/stable/old"],
            desc="f", cwd=clone)
    found = images.discover(clone, run, ["http://h/get-pip.py"])
    assert [s.url for s in found.sources] == [
        "http://h/a/cirros-0.6.img", "http://h/0.3.4/c-0.3.4.img", "http://h/get-pip.py"]
    assert any("stable/old" in n for n in found.notes)
    assert not list(clone.parent.glob(".*dsvm-tmp*"))


def test_keep_existing_only_for_the_recorded_file(tmp_path):
    f = tmp_path / "a.img"
    f.write_bytes(b"abc")
    assert images.keep_existing(f, "http://h/a.img", {"url": "http://h/a.img", "size": 3})
    assert not images.keep_existing(f, "http://h/a.img", {"url": "http://h/a.img", "size": 4})
    assert not images.keep_existing(f, "http://h/a.img", None)
    assert not images.keep_existing(f, "http://other/a.img", {"url": "http://h/a.img",
                                                               "size": 3})
