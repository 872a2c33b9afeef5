"""The object-store client's pure parts: AWS Signature V4, content headers, the upload plan."""

from __future__ import annotations

import calendar
import gzip
import time
from pathlib import Path

from dsvm.logs import objstore


def test_sigv4_matches_the_aws_documentation_example() -> None:
    """The GET-object example of AWS's "Signature Calculations" page for S3."""
    now = calendar.timegm(time.strptime("20130524T000000Z", "%Y%m%dT%H%M%SZ"))
    headers = objstore.sign_v4(
        "GET", "https://examplebucket.s3.amazonaws.com/test.txt", {"Range": "bytes=0-9"},
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        objstore.S3Credentials("AKIAIOSFODNN7EXAMPLE",
                               "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        "us-east-1", now=now)
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    assert headers["x-amz-date"] == "20130524T000000Z"


def test_credentials_never_in_their_repr() -> None:
    s3 = objstore.S3Credentials("AKIAEXAMPLEKEY", "s3cr3t-value-xyz", "session-tok-123")
    swift = objstore.SwiftCredentials("https://u:pw@keystone.example.org/v3", "ci",
                                      "sw1ft-pw-abc")
    shown = repr(s3) + repr(swift)
    assert "s3cr3t-value-xyz" not in shown and "session-tok-123" not in shown
    assert "sw1ft-pw-abc" not in shown and "u:pw" not in shown


def test_plan_lists_files_with_digests_and_headers(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "screen-n-cpu.txt.gz").write_bytes(gzip.compress(b"log line\n"))
    (tmp_path / "apache.txt.2.gz").write_bytes(gzip.compress(b"rotated text\n"))
    (tmp_path / "etc" / "index.html").write_text("<html></html>")
    (tmp_path / "etc" / "half.txt.gz.part").write_text("being written")
    files = {f.rel: f for f in objstore.plan(tmp_path)}
    assert sorted(files) == ["apache.txt.2.gz", "etc/index.html", "screen-n-cpu.txt.gz"]
    assert files["apache.txt.2.gz"].content_encoding == "gzip"  # sniffed: gzipped text
    assert files["etc/index.html"].content_type == "text/html; charset=utf-8"
    import hashlib

    assert files["etc/index.html"].md5 == hashlib.md5(b"<html></html>").hexdigest()
