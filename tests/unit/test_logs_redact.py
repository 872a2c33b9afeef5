"""Redaction: every secret form is replaced by the marker, nothing else changes, streamed."""

from __future__ import annotations

import io
import os

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


# -- the trigger prefilter finds exactly what a whole-chunk scan finds ----------------------


def reference_spans(r: Redactor, chunk: bytes) -> list[tuple[int, int]]:
    """Every rule run with ``finditer`` over the whole chunk (dsvm's redaction before the
    trigger prefilter): the prefiltered ``Redactor.spans`` must return exactly this."""
    found: list[tuple[int, int]] = []
    for lit in r.literals:
        i = chunk.find(lit)
        while i >= 0:
            found.append((i, i + len(lit)))
            i = chunk.find(lit, i + len(lit))
    low = chunk.lower()
    for rx, _ in redact.ANCHORED:
        found.extend(redact._value_spans(rx, low))
    found.extend(redact._value_spans(redact._URL, low))
    found.extend(m.span(1) for m in redact._FLAG.finditer(low))
    found.extend(redact._key_spans(low))
    return redact._merge(found)


def test_no_rule_matches_across_a_line_end() -> None:
    """What makes running a rule on its trigger's offsets or lines alone exact."""
    for rx, triggers in redact.ANCHORED:
        for trigger in triggers:
            for text in (trigger + b" =\nvalue", trigger + b":\n value", trigger + b"\n=v",
                         trigger + b"user:\npw@host", trigger + b"u:pw\n@host"):
                m = rx.search(text)
                assert m is None or b"\n" not in m.group(0), (rx.pattern, text)
    assert redact._FLAG.search(b"--os-password\nvalue") is None
    for text in (b"://user:\npw@host", b"://user\n:pw@host", b"://user:pw\n@host"):
        assert redact._URL.search(text) is None


FRAGMENTS = [
    "password", "PASSWORD", "Password", "passwd", "passw", "db_password", "admin_password",
    "secret", "SECRET_KEY", "secret_access_key", "token", "X-Auth-Token", "auth_token",
    "tokens", "api_key", "apikey", "API_KEY", "private_key", "credential", "credentials",
    "Authorization", "authorization", "://", "mysql+pymysql://root:", "rabbit://u:",
    "@", ":", "=", " = ", ": ", '"', "'", " ", "\t", "\n", "\n", "\n", "--os-password ",
    "--san-password", "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----",
    "Bearer ", "Basic ", "none", "None", "****", "s3cr3t-value", "Lit3ral-Secret",
    "{'", "'}", ",", ";", "http://10.0.0.1:8774/v2.1", "GET /identity/v3/auth/tokens",
    "caf\xe9", "\x1b[0m", "x" * 40, "2024-05-01 12:00:00.000 1234 DEBUG nova.api [-] ",
]


@pytest.mark.parametrize("seed", range(40))
def test_prefilter_equals_whole_chunk_scan_on_random_text(seed: int) -> None:
    import random

    rng = random.Random(seed)
    text = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(50, 600)))
    chunk = text.encode("utf-8", "surrogateescape")
    r = Redactor.of(["Lit3ral-Secret", "s3cr3t-value"])
    assert r.spans(chunk) == reference_spans(r, chunk)


def test_prefilter_equals_whole_chunk_scan_on_the_fake_node(tmp_path) -> None:
    """Every text file of the fake node tree, in streaming-sized pieces: same spans, and no
    line holding a seeded secret leaves the redactor unchanged."""
    import gzip

    from tests.fixtures import fakenode

    node = fakenode.build(tmp_path / "node", large_lines=3000)
    r = Redactor.of(node.secrets.values())
    seeded = [v.encode() for v in node.secrets.values()] + [k.encode()
                                                            for k in fakenode.KEY_BODY]
    checked = 0
    for path in sorted(node.root.rglob("*")):
        if path.is_symlink() or not path.is_file() or not os.access(path, os.R_OK):
            continue
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            try:
                data = gzip.decompress(data)
            except OSError:
                continue
        if b"\x00" in data:
            continue
        for piece in _pieces(data, 4096):
            assert r.spans(piece) == reference_spans(r, piece), path
        out, _ = r.redact(data)
        assert not [s for s in seeded if s in out], path
        for line in data.splitlines():  # key bodies are secret only between BEGIN and END
            if any(v.encode() in line for v in node.secrets.values()):
                assert r.redact(line)[1] > 0, (path, line)
        checked += 1
    assert checked >= 30


def _pieces(data: bytes, size: int) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        cut = data.rfind(b"\n", pos, pos + size) + 1
        cut = cut if cut > pos else min(len(data), pos + size)
        out.append(data[pos:cut])
        pos = cut
    return out


@pytest.mark.parametrize("line, expected", [
    ("PASSWORD=Upper-Case-1", "PASSWORD=****"),
    ("X-AUTH-TOKEN: Upper-Tok", "X-AUTH-TOKEN: ****"),
    ("AUTHORIZATION: BEARER abc.def", "AUTHORIZATION: BEARER ****"),
    ("api_key=k1 apikey=k2 API_KEY: k3", "api_key=**** apikey=**** API_KEY: ****"),
    ("a token: tok-one, then token=tok-two", "a token: ****, then token=****"),
    ("tokens are fine; token_expiration = 3600", "tokens are fine; token_expiration = 3600"),
    ("password=pw1 --os-password pw2 http://u:pw3@h",
     "password=**** --os-password **** http://u:****@h"),
    ("--os-password none", "--os-password ****"),
])
def test_prefilter_cases(line: str, expected: str) -> None:
    assert red(line)[0] == expected
