"""Redaction: every secret form is replaced by the marker, nothing else changes, streamed."""

from __future__ import annotations

import io

import pytest

from dsvm.logs import redact
from dsvm.logs.collect import budget_cap
from dsvm.logs.redact import Redactor, harvest, redact_stream
from dsvm.logs.sources import stored_name


def red(text: str, literals: tuple[str, ...] = ()) -> tuple[str, int]:
    out, n = Redactor.of(literals).redact(text.encode())
    return out.decode(), n


@pytest.mark.parametrize("line, expected", [
    ("ADMIN_PASSWORD=s3cret-admin", "ADMIN_PASSWORD=****"),
    ("san_password = Vend0r!pw", "san_password = ****"),
    ('{"password": "json pw", "user": "admin"}', '{"password": "****", "user": "admin"}'),
    ("'auth_token': 'abc123def'", "'auth_token': '****'"),
    ("X-Auth-Token: gAAAAABm-token", "X-Auth-Token: ****"),
    ("Authorization: Bearer eyJhbGciOi.x.y", "Authorization: Bearer ****"),
    ("authorization: Basic dXNlcjpwYXNz", "authorization: Basic ****"),
    ("connection = mysql+pymysql://root:DbPw@127.0.0.1/nova?charset=utf8",
     "connection = mysql+pymysql://root:****@127.0.0.1/nova?charset=utf8"),
    ("transport_url = rabbit://stackrabbit:Rabb1t@10.0.0.2:5672/",
     "transport_url = rabbit://stackrabbit:****@10.0.0.2:5672/"),
    ("+ openstack --os-password Adm1nPw server list", "+ openstack --os-password **** server list"),
    ("AWS secret_access_key=AKIAxyz", "AWS secret_access_key=****"),
    ("2024-05-01 DEBUG keystone [-] password = ****", "2024-05-01 DEBUG keystone [-] password = ****"),
])
def test_patterns(line: str, expected: str) -> None:
    assert red(line)[0] == expected


@pytest.mark.parametrize("line", [
    "token_expiration = 3600",
    "auth_type = password",
    "Using token validation for request 42",
    "password reset requested by admin",
    "max_token_size = 255",
    "http://10.0.0.1:8774/v2.1/servers",
    "password = None",
    "[keystone_authtoken]",
    "# the password must be set below",
])
def test_innocent_lines_unchanged(line: str) -> None:
    assert red(line) == (line, 0)


def test_literals_everywhere_and_counted() -> None:
    text = "mysql -uroot -pDbSecret99 -e 'select 1'\nDbSecret99 again DbSecret99\n"
    out, n = red(text, ("DbSecret99",))
    assert "DbSecret99" not in out and n == 3
    assert out == "mysql -uroot -p**** -e 'select 1'\n**** again ****\n"


def test_short_and_multiline_literals() -> None:
    r = Redactor.of(["abc", "line-one-secret\nline-two-secret", "****"])
    assert r.literals == (b"line-one-secret", b"line-two-secret")


def test_private_key_body_replaced_markers_kept() -> None:
    key = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAseeded\nQWERTYbody\n"
           "-----END RSA PRIVATE KEY-----\n")
    out, n = red("before\n" + key + "after\n")
    assert n == 1
    assert out == ("before\n-----BEGIN RSA PRIVATE KEY-----****-----END RSA PRIVATE KEY-----\n"
                   "after\n")


def test_stream_across_chunks_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redact, "CHUNK", 64)
    key = ("-----BEGIN OPENSSH PRIVATE KEY-----\n" + "b3BlbnNzaC1rZXk\n" * 20
           + "-----END OPENSSH PRIVATE KEY-----\n")
    text = ("filler line number %d with nothing\n" * 10 % tuple(range(10))
            + "password=LongSecretValue\n" + key + "tail X-Auth-Token: tok-123456\n")
    out = io.BytesIO()
    read, n = redact_stream(io.BytesIO(text.encode()).read, out.write, Redactor())
    result = out.getvalue().decode()
    assert read == len(text.encode())
    assert "LongSecretValue" not in result and "b3BlbnNzaC1rZXk" not in result
    assert "tok-123456" not in result and n == 3
    assert result.count("filler line") == 10


def test_stream_limit_reads_a_prefix() -> None:
    data = b"a line\n" * 100
    out = io.BytesIO()
    read, _ = redact_stream(io.BytesIO(data).read, out.write, Redactor(), limit=70)
    assert read == 70 and out.getvalue() == data[:70]


def test_non_utf8_bytes_preserved() -> None:
    data = b"caf\xe9 \xff\xfe password=p\xe4ss \x1b[0m\n"
    out, n = Redactor().redact(data)
    assert out == b"caf\xe9 \xff\xfe password=**** \x1b[0m\n" and n == 1


def test_harvest_localrc_ini_and_urls() -> None:
    text = """[[local|localrc]]
ADMIN_PASSWORD=adminpw1
export SERVICE_TOKEN="tok-value"
DATABASE_PASSWORD=$ADMIN_PASSWORD
LOGFILE=/opt/stack/logs/stack.sh.log
[[post-config|$CINDER_CONF]]
[acme]
san_password = vendor pw with spaces
; password = commented
connection = mysql+pymysql://root:dbpw2@127.0.0.1/cinder
"""
    assert harvest(text) == {"adminpw1", "tok-value", "vendor pw with spaces", "dbpw2"}


def test_harvest_extra_names() -> None:
    assert harvest("ACME_KEYPHRASE=zzz-123\n", ["ACME_KEYPHRASE"]) == {"zzz-123"}


@pytest.mark.parametrize("rel, rename, expected", [
    ("kern.log", "file", "kern_log.txt"),
    ("ceph.conf", "file", "ceph_conf.txt"),
    ("sudoers.txt", "file", "sudoers.txt"),
    ("apache/error.log", "log", "apache/error.txt"),
    ("stack.sh.log", "log", "stack.sh.txt"),
    ("screen-n-cpu.log", "log", "screen-n-cpu.txt"),
    ("etc/nova/nova.conf", "config", "etc/nova/nova.conf.txt"),
    ("status/n-cpu.failure", "config", "status/n-cpu.failure.txt"),
    ("glusterd.vol", "keep", "glusterd.vol"),
])
def test_stored_names(rel: str, rename: str, expected: str) -> None:
    assert stored_name(rel, rename) == expected


@pytest.mark.parametrize("sizes, budget, expected", [
    ([10, 20, 30], 100, None),
    ([10, 20, 30], 0, None),
    ([1000, 5000, 100000], 50000, 44000),
    ([100000, 100000], 100000, 50000),
])
def test_budget_cap(sizes: list[int], budget: int, expected: int | None) -> None:
    cap = budget_cap(sizes, budget)
    assert cap == expected
    if cap is not None:
        assert sum(min(s, cap) for s in sizes) <= budget


def test_header_in_a_python_dict_repr() -> None:
    line = "Request headers: {'Authorization': 'Bearer eyJ.seeded', 'X-Auth-Token': 'gAAA-tok'}"
    assert red(line)[0] == "Request headers: {'Authorization': 'Bearer ****', 'X-Auth-Token': '****'}"
