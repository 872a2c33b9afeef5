"""Redaction: every secret form is replaced by the marker, nothing else changes, streamed."""

from __future__ import annotations

import io
import os
import re

import pytest

from dsvm.logs import redact
from dsvm.logs.collect import budget_cap
from dsvm.logs.redact import Redactor, harvest, redact_stream
from dsvm.logs.sources import stored_name
from dsvm.secrets import merge, secret_options


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
[database]
connection = mysql+pymysql://root:dbpw3@127.0.0.1/cinder
[key_manager]
fixed_key = 0123456789abcdef
"""
    found = harvest(text, name="local.conf")
    assert {v for _, v in found} == {"adminpw1", "tok-value", "vendor pw with spaces", "dbpw2",
                                     "dbpw3", "0123456789abcdef"}
    assert ("local.conf [localrc] ADMIN_PASSWORD", "adminpw1") in found
    assert ("local.conf [database] connection", "dbpw3") in found


def test_harvest_extra_names() -> None:
    options = secret_options().with_extra(["ACME_KEYPHRASE"])
    assert harvest("ACME_KEYPHRASE=zzz-123\n", options) == [(" [DEFAULT] ACME_KEYPHRASE",
                                                             "zzz-123")]
    assert harvest("ACME_KEYPHRASE=zzz-123\n") == []


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


def reference_literal_spans(chunk: bytes, literals: tuple[bytes, ...]) -> list[tuple[int, int]]:
    """Every whole-token occurrence of each literal, by regex over the whole chunk."""
    found = []
    for lit in literals:
        rx = re.compile(rb"(?:(?<![A-Za-z0-9_])|(?<=[ \t\n\r\"'=(]-p)|(?<=\A-p))(?="
                        + re.escape(lit) + rb"(?![A-Za-z0-9_]))")
        found += [(m.start(), m.start() + len(lit)) for m in rx.finditer(chunk)]
    return found


def reference_spans(r: Redactor, chunk: bytes) -> list[tuple[int, int]]:
    """Every rule run with ``finditer`` over the whole chunk (no trigger prefilter, literals
    by regex): the prefiltered ``Redactor.spans`` must return exactly this."""
    found = reference_literal_spans(chunk, r.literals)
    low = chunk.lower()
    for rx, _ in redact.ANCHORED:
        found.extend(r.value_spans(rx, low))
    found.extend(r.value_spans(redact._URL, low))
    found.extend(m.span(1) for m in redact._FLAG.finditer(low))
    found.extend(redact._key_spans(low))
    return merge(found)


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
    "adminPass", "X-Subject-Token", "x-auth-key", "{SHA256}", "auth.", "identity:", "-p",
    " -p", "keystone_authtoken.", "service_token", "max_token_size", "_", ".", "-",
]


ENGINES = ["find", *(["hyperscan"] if redact.ENGINE == "hyperscan" else [])]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("seed", range(40))
def test_prefilter_equals_whole_chunk_scan_on_random_text(seed: int, engine: str) -> None:
    import random

    rng = random.Random(seed)
    text = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(50, 600)))
    chunk = text.encode("utf-8", "surrogateescape")
    r = Redactor.of(["Lit3ral-Secret", "s3cr3t-value"])
    assert r.spans(chunk, engine=engine) == reference_spans(r, chunk)


@pytest.mark.parametrize("engine", ENGINES)
def test_prefilter_equals_whole_chunk_scan_on_the_fake_node(tmp_path, engine: str) -> None:
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
            assert r.spans(piece, engine=engine) == reference_spans(r, piece), path
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


# -- exactly the secrets: the cases of issue 18 ------------------------------------------------


def redact_config(text: str, name: str = "etc/x.conf",
                  literals: tuple[str, ...] = ()) -> str:
    r = Redactor.of(literals)
    out, _ = r.redact(text.encode(), redact.ConfigScan(r.options, name))
    return out.decode()


def test_harvested_numbers_and_words_never_spread() -> None:
    """A value of a non-secret option is never harvested; a too-common one never spreads."""
    conf = "[DEFAULT]\nmax_token_size = 8192\nservice_token_roles = service\n" \
           "[token]\nexpiration = 1800\n[libvirt]\nrbd_secret_uuid = 457eb676-33da-42ec\n"
    assert harvest(conf) == []
    assert redact_config(conf) == conf
    r = Redactor.of(["8192", "service", "true", "1800", "password"])
    assert r.literals == ()
    line = b"headers 8192 bytes oslo_service.service token_ttl=1800\n"
    assert r.redact(line) == (line, 0)


def test_keystone_auth_plugin_options_and_policy_rules_are_not_secrets() -> None:
    conf = "[auth]\nmethods = external,password,token\n" \
           "password = keystone.auth.plugins.password.Password\n" \
           "token = keystone.auth.plugins.token.Token\n"
    assert redact_config(conf, "etc/keystone/keystone.conf") == conf
    log = "DEBUG oslo_service.service [-] auth.password = keystone.auth.plugins.password." \
          "Password log_opt_values\n"
    assert red(log) == (log, 0)
    policy = '"identity:change_password": "rule:owner"\n' \
             '"identity:revoke_token": "rule:admin_or_token_subject"\n' \
             "identity:update_password: rule:admin_required\n"
    assert redact_config(policy, "etc/keystone/policy.yaml") == policy
    assert red(policy) == (policy, 0)


@pytest.mark.parametrize("section, option", [
    ("glance_store", "swift_store_key"), ("glance_store", "s3_store_access_key"),
    ("DEFAULT", "metadata_encryption_key"), ("DEFAULT", "backup_swift_key"),
    ("DEFAULT", "backup_s3_store_access_key"), ("zadara-1", "zadara_access_key"),
    ("cache", "backend_argument"), ("key_manager", "fixed_key"),
    ("keystone_authtoken", "memcache_secret_key"), ("keystone_authtoken", "password"),
    ("lvmdriver-1", "san_password"), ("DEFAULT", "admin_token"),
])
def test_secret_options_with_plain_names_are_masked(section: str, option: str) -> None:
    value = "Qz8-value-x41"
    conf = f"[{section}]\n{option} = {value}\n"
    found = harvest(conf, name="c.conf")
    assert found == [(f"c.conf [{section.lower()}] {option}", value)]
    assert redact_config(conf) == f"[{section}]\n{option} = ****\n"
    # quoted in a service log or devstack's xtrace: masked as a whole token
    out, n = Redactor.of([value]).redact(
        f"+ iniset /etc/x.conf {section} {option} {value}\nusing {value}-suffix\n".encode())
    assert out.decode() == f"+ iniset /etc/x.conf {section} {option} ****\n" \
                           f"using ****-suffix\n" and n == 2


def test_url_valued_secrets_keep_their_host() -> None:
    conf = "[DEFAULT]\ntransport_url = rabbit://u1:Pw-one-1@h1:5672,u2:Pw-two-2@h2:5672/\n" \
           "[database]\nconnection = sqlite:////var/lib/nova/nova.sqlite\n"
    assert {v for _, v in harvest(conf)} == {"Pw-one-1", "Pw-two-2"}
    assert redact_config(conf) == "[DEFAULT]\ntransport_url = rabbit://u1:****@h1:5672," \
                                  "u2:****@h2:5672/\n[database]\n" \
                                  "connection = sqlite:////var/lib/nova/nova.sqlite\n"


def test_local_conf_and_yaml() -> None:
    text = "[[local|localrc]]\nADMIN_PASSWORD=secretadmin\nLOGFILE=/x/stack.log\n" \
           "SERVICE_TOKEN=tok-987654\n[[post-config|$GLANCE_API_CONF]]\n[glance_store]\n" \
           "swift_store_key = gk-key-12345\n"
    assert redact_config(text, "local.conf") == (
        "[[local|localrc]]\nADMIN_PASSWORD=****\nLOGFILE=/x/stack.log\nSERVICE_TOKEN=****\n"
        "[[post-config|$GLANCE_API_CONF]]\n[glance_store]\nswift_store_key = ****\n")
    clouds = "clouds:\n  devstack:\n    auth:\n      username: demo\n      password: 'Dm0-pw-77'\n"
    assert redact_config(clouds, "etc/openstack/clouds.yaml") == clouds.replace("Dm0-pw-77",
                                                                                "****")
    accounts = "- username: 'tempest-1'\n  password: 'T3mp-pw-1'\n"
    assert redact_config(accounts, "accounts.yaml") == accounts.replace("T3mp-pw-1", "****")


def test_config_section_carried_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redact, "CHUNK", 32)
    conf = "[auth]\n" + "# filler comment line\n" * 10 + \
        "password = keystone.auth.plugins.password.Password\n[ldap]\npassword = Ld4p-pw-x\n"
    r = Redactor()
    out = io.BytesIO()
    redact_stream(io.BytesIO(conf.encode()).read, out.write, r,
                  config=redact.ConfigScan(r.options, "keystone.conf"))
    assert out.getvalue().decode() == conf.replace("Ld4p-pw-x", "****")


def test_refused_secrets_are_reported_without_their_value() -> None:
    found = harvest("[keystone_authtoken]\npassword = abc\n[DEFAULT]\nadmin_token = "
                    "long-enough-token\n", name="nova.conf")
    notes = redact.refused(found)
    assert notes == [{"source": "nova.conf [keystone_authtoken] password",
                      "reason": "shorter than 6 characters: masked where it is set, "
                                "not elsewhere"}]
    assert redact.refused([("logs.secrets", "true")], where_set=False)[0]["reason"] == \
        "a boolean or null: not masked"


@pytest.mark.parametrize("line, expected", [
    ("X-Subject-Token: gAAAAsubject", "X-Subject-Token: ****"),
    ("'X-Service-Token': 'gAAAAsvc'", "'X-Service-Token': '****'"),
    ("X-Auth-Key: swiftkey1", "X-Auth-Key: ****"),
    ("X-Auth-Token: {SHA256}5f2b1e", "X-Auth-Token: {SHA256}5f2b1e"),
    ('{"server": {"adminPass": "Nov4-admin"}}', '{"server": {"adminPass": "****"}}'),
    ("--os-password=Adm1n-eq", "--os-password=****"),
    ("client_secret = oidc-s3cret", "client_secret = ****"),
    ("ADMIN_PASSWORD=secretadmin", "ADMIN_PASSWORD=****"),
])
def test_more_forms(line: str, expected: str) -> None:
    assert red(line)[0] == expected


def test_the_fast_engine_is_installed() -> None:
    if redact.ENGINE != "hyperscan":
        pytest.skip("hyperscan is not installed (pyproject's dependency; .ci/run installs it)")
    r = Redactor.of(["Lit3ral-Secret"])
    line = b"password=pw1 Lit3ral-Secret http://u:pw3@h\n"
    assert r.spans(line, engine="hyperscan") == r.spans(line, engine="find")


def test_out_of_tree_driver_options_named_like_secrets() -> None:
    """Options the table does not know (an out-of-tree driver's) are secret by name, in
    their file and in log lines alike; known plain options never are."""
    conf = "[flashfleet-1]\nflashfleet_api_password = Ff-pw-9912\nflashfleet_secret = " \
           "Ff-sec-7781\nflashfleet_password_policy = strict\nmax_token_size = 8192\n"
    assert {v for _, v in harvest(conf)} == {"Ff-pw-9912", "Ff-sec-7781"}
    assert redact_config(conf, "etc/cinder/cinder.conf") == conf.replace(
        "Ff-pw-9912", "****").replace("Ff-sec-7781", "****")
    log = "flashfleet-1.flashfleet_api_password = Ff-pw-9912 max_token_size = 8192\n"
    assert red(log)[0] == "flashfleet-1.flashfleet_api_password = **** max_token_size = 8192\n"
